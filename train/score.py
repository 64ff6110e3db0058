"""Score checkpoints for selection: ``python -m stemserve.train.score CHECKPOINT [CHECKPOINT ...]``.

SDR per stem (``stemserve.train.train.validate``: median over the songs that have the stem) on two
validation sets that the training log never scores: validation songs 12-23 (the training
soundfonts; the log scores songs 0-11) and the songs rendered with a soundfont no training
song uses (``make_cache --soundfont``), and with ``--ensemble-cache`` a third set,
part-writing songs (``make_cache --ensemble``) rendered with that soundfont, with
``--unison-cache`` a fourth, unison songs (``make_cache --unison``) rendered with it, and
with ``--sampled-ensemble-cache`` a fifth, part-writing songs rendered with the training
soundfonts, and with ``--real-cache`` songs of real recordings of validation identities
(``make_cache --real --identities valid``). A checkpoint's selection figure is the mean of the sets' means. ``--metric sdr``
(the default) scores each song's plain SDR, ``--metric bss`` its BSS Eval SDR, the quality
benchmark's figure, which forgives a fixed filtering of a stem and so weighs interference
from other stems more. The committed checkpoints were chosen among a run's snapshots by the
plain figure (stages 1-5 on the first two sets, stages 6-11 on the first three).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch
from stemserve.train.dataset import SongCache
from stemserve.train.model import Separator
from stemserve.train.train import VALIDATION_METRICS, load_separator, validate


def score(checkpoint: Path, sets: dict[str, list[np.ndarray]], metric: str = "sdr") -> dict[str, dict[str, float]]:
    """-> {set name: {stem: SDR, "mean": ...}, "selection": {"mean": mean of the sets' means}}."""
    return score_model(load_separator(checkpoint)[0], sets, metric)


def score_model(model: Separator, sets: dict[str, list[np.ndarray]], metric: str = "sdr") -> dict[str, dict[str, float]]:
    """``score`` of a loaded model."""
    return with_selection({name: validate(model, songs, metric) for name, songs in sets.items()})


def with_selection(scores: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per-set scores plus ``"selection"``: the mean of the sets' means."""
    return {**scores, "selection": {"mean": float(np.mean([s["mean"] for s in scores.values()]))}}


def add_set_arguments(parser: argparse.ArgumentParser) -> None:
    """The selection sets' folders, shared by the commands that score on them."""
    parser.add_argument("--valid-cache", type=Path, default=Path("train/cache/valid"))
    parser.add_argument("--first-song", type=int, default=12,
                        help="score validation songs from this index on (the training log scores the ones before)")
    parser.add_argument("--unseen-cache", type=Path, default=Path("train/cache/valid-opl3"),
                        help="validation songs rendered with a soundfont no training song uses")
    parser.add_argument("--ensemble-cache", type=Path, default=None,
                        help="validation part-writing songs rendered with a soundfont no training song uses")
    parser.add_argument("--unison-cache", type=Path, default=None,
                        help="validation unison songs rendered with a soundfont no training song uses")
    parser.add_argument("--sampled-ensemble-cache", type=Path, default=None,
                        help="validation part-writing songs rendered with the training soundfonts")
    parser.add_argument("--real-cache", type=Path, default=None,
                        help="validation songs of real recordings, identities no training song uses "
                             "(make_cache --real --identities valid)")
    parser.add_argument("--metric", choices=VALIDATION_METRICS, default="sdr",
                        help="each song's plain SDR, or its BSS Eval SDR as the quality benchmark scores it")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; train.calibrate scores the songs in as many processes")


def selection_sets(args: argparse.Namespace) -> dict[str, list[np.ndarray]]:
    """{set name: songs} from the folders of ``add_set_arguments``; exits with a clear message
    when a folder has no songs or too few validation songs."""
    folders = {"valid": args.valid_cache, "unseen": args.unseen_cache, "ensemble": args.ensemble_cache,
               "unison": args.unison_cache, "sampled-ensemble": args.sampled_ensemble_cache, "real": getattr(args, "real_cache", None)}
    sets = {name: SongCache(folder).songs for name, folder in folders.items() if folder is not None}
    for name, songs in sets.items():
        if not songs:
            raise SystemExit(f"no cached songs (song_*.npy) in {folders[name]}; render them with train.make_cache")
    if len(sets["valid"]) <= args.first_song:
        raise SystemExit(f"--first-song {args.first_song} needs more than {args.first_song} songs in "
                         f"{args.valid_cache}, got {len(sets['valid'])}")
    sets["valid"] = sets["valid"][args.first_song:]
    return sets


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Score checkpoints on the selection validation sets.")
    parser.add_argument("checkpoints", type=Path, nargs="+")
    add_set_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> dict[Path, dict[str, dict[str, float]]]:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    sets = selection_sets(args)
    results = {}
    for checkpoint in args.checkpoints:
        results[checkpoint] = scores = score(checkpoint, sets, args.metric)
        print(f"{checkpoint} | " + " | ".join(
            f"{name}: " + " ".join(f"{stem} {value:.2f}" for stem, value in values.items())
            for name, values in scores.items()), flush=True)
    best = max(results, key=lambda path: results[path]["selection"]["mean"])
    print(f"best: {best} ({results[best]['selection']['mean']:.2f} dB)")
    return results


if __name__ == "__main__":
    main()
