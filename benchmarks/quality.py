"""Separation quality of stemserve-small: ``python -m benchmarks.quality [--songs N]``.

SDR / SIR / SAR per stem (``stemserve.train.metrics``: BSS Eval with fast_bss_eval, median over 1-s
frames, then median over clips) of the served model beside the oracle ratio mask and a
DSP baseline (``benchmarks.quality_methods``), on (a) held-out generated songs and (b)
multi-part pieces of the music21 corpus, both rendered with a soundfont no training song
used (``benchmarks.quality_sets``), and (r) mixes of real recorded stems of validation
identities (``benchmarks.real_sets``: voices, kits, sampled instruments that no training
song uses; needs ``python -m stemserve.train.real_sources fetch`` once). For set r it also
writes the routing table: each real stem fed alone, the share of its energy in each output
stem. Writes ``benchmarks/results/quality.{json,md}``, ``quality_routing.{json,md}`` and the
listening report ``benchmarks/results/quality.html``. Exits 1 when a target is missed: the
model must beat the baseline's SDR on every stem of sets a and b, and average >= 5 dB on
(a); where it does not beat the baseline on set r, the figures list it (``real_below_baseline``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import torch
from stemserve.train.arrange import STEMS
from stemserve.train.metrics import METRICS, clip_scores
from stemserve.train.render import TRAIN_SOUNDFONTS, StemRenderer

from benchmarks.quality_methods import ModelSeparator, dsp_baseline, oracle_ratio_mask
from benchmarks.quality_report import write_listening_report
from benchmarks.quality_sets import EVAL_SOUNDFONT, SAMPLE_RATE_HZ, corpus_clips, generated_clips
from benchmarks.real_sets import routing, routing_rows
from benchmarks.report import RESULTS, write

log = logging.getLogger("benchmarks.quality")
TARGET_AVERAGE_SDR_DB = 5.0
TARGET_SETS = ("a", "b")  # set r (real recordings) is reported against the baseline, not a target yet
METHODS = ("model", "oracle", "baseline")


def evaluate(clips, separators, sample_rate_hz: int = SAMPLE_RATE_HZ) -> dict:
    """-> {set: {method: {metric: {stem: median over clips}}}} plus the per-clip figures."""
    per_clip: list[dict] = []
    for clip in clips:
        entry = {"name": clip.name, "set": clip.set_name, "style": clip.style}
        for method, separate in separators.items():
            estimate = separate(clip.mix, clip.stems)
            scores = clip_scores(clip.stems, estimate, sample_rate_hz)
            entry[method] = {m: dict(zip(STEMS, map(float, scores[m]))) for m in METRICS}
            if method == "model":
                entry["estimate"] = estimate
        log.info("%s: SDR model %s | oracle %s | baseline %s", clip.name,
                 *(" ".join(f"{s[:3]} {entry[m]['sdr'][s]:.1f}" for s in STEMS) for m in METHODS))
        per_clip.append(entry)
    summary: dict = {}
    for set_name in sorted({c["set"] for c in per_clip}):
        rows = [c for c in per_clip if c["set"] == set_name]
        summary[set_name] = {
            method: {metric: {stem: _nanmedian([r[method][metric][stem] for r in rows]) for stem in STEMS}
                     for metric in METRICS}
            for method in METHODS}
    return {"summary": summary, "clips": per_clip}


def _nanmedian(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.median(finite)) if finite else float("nan")


def check_targets(summary: dict, sets: tuple[str, ...] = TARGET_SETS) -> list[str]:
    misses = []
    for set_name, methods in summary.items():
        if set_name not in sets:
            continue
        model, baseline = methods["model"]["sdr"], methods["baseline"]["sdr"]
        for stem in STEMS:
            if np.isfinite(model[stem]) and not model[stem] > baseline[stem]:
                misses.append(f"set {set_name}, {stem}: model SDR {model[stem]:.2f} dB must beat the "
                              f"baseline's {baseline[stem]:.2f} dB")
    if "a" in summary:
        average = float(np.nanmean(list(summary["a"]["model"]["sdr"].values())))
        if average < TARGET_AVERAGE_SDR_DB:
            misses.append(f"set a: average model SDR must be >= {TARGET_AVERAGE_SDR_DB} dB, got {average:.2f} dB")
    return misses


def table_rows(summary: dict) -> list[dict]:
    rows = []
    for set_name, methods in summary.items():
        for stem in (*STEMS, "average"):
            def pick(method: str, metric: str, methods: dict = methods, stem: str = stem) -> str:
                values = methods[method][metric]
                value = float(np.nanmean(list(values.values()))) if stem == "average" else values[stem]
                return "-" if not np.isfinite(value) else f"{value:.2f}"
            rows.append({"set": set_name, "stem": stem,
                         "model SDR": pick("model", "sdr"), "model SIR": pick("model", "sir"),
                         "model SAR": pick("model", "sar"), "oracle IRM SDR": pick("oracle", "sdr"),
                         "DSP baseline SDR": pick("baseline", "sdr")})
    return rows


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Separation quality of stemserve-small, with targets.")
    parser.add_argument("--songs", type=int, default=4, help="clips per set")
    parser.add_argument("--repository", type=Path, default=Path("model_repository"))
    parser.add_argument("--soundfont", type=Path, default=EVAL_SOUNDFONT)
    parser.add_argument("--listen", type=int, default=2, help="clips per set in the listening report")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--real-songs", type=int, default=6,
                        help="clips of set r, real recorded stems (0: leave the set out)")
    parser.add_argument("--real-data", type=Path, default=Path("data/real"),
                        help="where python -m stemserve.train.real_sources fetch unpacked the packages")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    if args.soundfont.name in TRAIN_SOUNDFONTS:
        parser.error(f"--soundfont must be one no training song used (not {', '.join(TRAIN_SOUNDFONTS)}), "
                     f"got {args.soundfont}")
    if not args.soundfont.is_file():
        parser.error(f"--soundfont must be a readable soundfont file (the default comes with the Debian "
                     f"package musescore-general-soundfont-small), got {args.soundfont}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    if args.real_songs and not (args.real_data / "pkgs").is_dir():
        parser.error(f"set r needs the real recordings: run python -m stemserve.train.real_sources fetch "
                     f"(or pass --real-songs 0), no {args.real_data / 'pkgs'}")
    renderer = StemRenderer(args.soundfont)
    clips = generated_clips(renderer, args.songs) + corpus_clips(renderer, args.songs)
    real = []
    if args.real_songs:
        from benchmarks.real_sets import real_clips

        real = real_clips(args.real_songs, data_dir=args.real_data)
    clips += real
    model = ModelSeparator(args.repository, threads=args.threads)
    separators = {"model": model, "oracle": oracle_ratio_mask, "baseline": dsp_baseline}
    result = evaluate(clips, separators)
    misses = check_targets(result["summary"])
    real_below = check_targets({k: v for k, v in result["summary"].items() if k == "r"}, ("r",))
    listen = [c for s in ("a", "b", "r") for c in [c for c in result["clips"] if c["set"] == s][: args.listen]]
    by_name = {clip.name: clip for clip in clips}
    report = write_listening_report(RESULTS, [
        {"name": c["name"], "style": c["style"], "mix": by_name[c["name"]].mix,
         "reference": by_name[c["name"]].stems, "estimate": c["estimate"],
         "sdr": c["model"]["sdr"]} for c in listen], SAMPLE_RATE_HZ)
    for clip in result["clips"]:
        clip.pop("estimate", None)
    figures = {
        "metric": "BSS Eval SDR/SIR/SAR (fast_bss_eval, 512 taps, CG solver), median over 1-s frames "
                  "then over clips, dB",
        "sets": "a: held-out generated songs; b: music21 corpus pieces; both rendered with "
                f"{args.soundfont.name} (not used in training); r: real recorded stems of validation "
                "identities (voices, kits, instruments no training song uses), exact sums",
        "clips_per_set": args.songs, "real_clips": len(real), "targets_missed": misses,
        "real_below_baseline": real_below, "listening_report": str(report),
        "summary": result["summary"], "clips": result["clips"],
    }
    table = write("quality", figures, table_rows(result["summary"]))
    if real:
        routed = routing(real, model)
        routing_table = write("quality_routing", {
            "what": "each real stem of set r fed alone to the model: mean share of its energy per output stem",
            "summary": routed["summary"], "clips": routed["clips"]}, routing_rows(routed["summary"]))
        print(routing_table.read_text().split("\n- ")[0])
    log.info("results: %s, listening report: %s", table, report)
    print(table.read_text().split("\n- ")[0])
    for miss in misses:
        log.error("target missed: %s", miss)
    for below in real_below:
        log.warning("real recordings: %s", below)
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
