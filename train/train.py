"""Train stemserve-small: ``python -m stemserve.train.train --run-dir train/runs/NAME``.

Seeded and resumable: a run folder holds ``latest.pt`` (model, optimizer, step), ``best.pt``
(best validation SDR so far), ``step_NNNNNN.pt`` snapshots with ``--keep-every`` and
``train.log``; running the same command again continues
from ``latest.pt``. Batch ``step`` draws its data from ``default_rng([seed, step])`` so a
resumed run sees the same data it would have seen without the interruption.

Loss: L1 (``--loss l2``: squared error) between masked mixture spectra and the target stem
spectra (complex difference plus magnitude difference), in units of each example's mix level.
Validation: plain SDR per stem on whole held-out songs through the waveform (export) path.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from stemserve.train.dataset import RemixSampler, SongCache
from stemserve.train.metrics import clip_scores, sdr_db, stem_is_active
from stemserve.train.model import MIN_MEAN_MAGNITUDE, STEMS, ModelConfig, Separator, copy_stem_head, phase_features
from stemserve.train.stft import frame_padding, sqrt_hann
from torch.nn import functional as F

log = logging.getLogger("train")
SAMPLE_RATE_HZ = 44100
DEFAULT_CACHE = Path("train/cache/songs")


def stem_spectra(stems: torch.Tensor, config: ModelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """``(batch, stems, channels, samples)`` -> real and imaginary parts, each
    ``(batch, stems, channels, bins, frames)``, framed exactly as the model's STFT."""
    batch, nb_stems, channels, samples = stems.shape
    padded = F.pad(stems.reshape(-1, samples), frame_padding(samples, config.hop))
    spec = torch.stft(padded, config.n_fft, config.hop, window=sqrt_hann(config.n_fft).float(),
                      center=False, return_complex=True)  # (batch * stems * channels, bins, frames)
    shape = (batch, nb_stems, channels, spec.shape[1], spec.shape[2])
    return spec.real.contiguous().view(shape), spec.imag.contiguous().view(shape)


def random_eq(shape: tuple[int, int], config: ModelConfig, rng: np.random.Generator,
                bump_db: float = 0.0) -> torch.Tensor:
    """Per (example, stem) EQ, ``(b, s, 1, bins, 1)``: half of the stems get a spectral tilt
    of +-4 dB/octave around 1 kHz. With ``bump_db``, every stem also gets three resonances
    or notches of up to +-``bump_db`` dB, 1/3 to 2 octaves wide, centred anywhere in
    60 Hz-12 kHz: another spectral envelope, as another instrument sample would have."""
    freqs = np.maximum(np.arange(config.nb_bins) * SAMPLE_RATE_HZ / config.n_fft, 40.0)
    tilt = rng.uniform(-4, 4, size=shape) * (rng.random(shape) < 0.5)
    gain_db = tilt[..., None] * np.log2(freqs / 1000.0)  # (b, s, bins)
    if bump_db:
        octave = np.log2(freqs)
        centres = rng.uniform(np.log2(60.0), np.log2(12000.0), size=(*shape, 3, 1))
        widths = rng.uniform(1 / 3, 2.0, size=(*shape, 3, 1)) / 2.355  # FWHM in octaves -> sigma
        heights = rng.uniform(-bump_db, bump_db, size=(*shape, 3, 1))
        gain_db = gain_db + (heights * np.exp(-0.5 * ((octave - centres) / widths) ** 2)).sum(axis=-2)
    gains = torch.from_numpy((10 ** (np.clip(gain_db, -18, 18) / 20)).astype(np.float32))
    return gains[:, :, None, :, None]


def spectral_loss(model: Separator, stems: torch.Tensor, eq: torch.Tensor, squared: bool = False) -> torch.Tensor:
    """L1 (``squared``: mean squared error) on real and imaginary parts plus the same on
    magnitudes of the masked mix, in units of each example's mix level. Masks are real, so
    |mask * mix| = mask * |mix|. Where two stems sound alike, L1 is least for a mask that
    gives each bin to the likelier stem, squared error for one that shares it."""
    cfg = model.config
    with torch.no_grad():
        real, imag = stem_spectra(stems, cfg)  # each (batch, stems, channels, bins, frames)
        real, imag = real * eq, imag * eq
        mix_real, mix_imag = real.sum(dim=1, keepdim=True), imag.sum(dim=1, keepdim=True)
        mix_mag = torch.sqrt(mix_real.square() + mix_imag.square() + 1e-12)  # (batch, 1, channels, bins, frames)
        target_mag = torch.sqrt(real.square() + imag.square() + 1e-12)
        batch, _, channels, bins, frames = mix_mag.shape
        scale = 1.0 / mix_mag.mean(dim=(1, 2, 3, 4)).clamp_min(MIN_MEAN_MAGNITUDE).view(batch, 1, 1, 1, 1)
        real, imag, target_mag = real * scale, imag * scale, target_mag * scale
        mix_real, mix_imag, mix_mag = mix_real * scale, mix_imag * scale, mix_mag * scale
    phase = phase_features(mix_real[:, 0], mix_imag[:, 0], mix_mag[:, 0]) if cfg.phase_cues else None
    masks = model.masknet(mix_mag.reshape(batch, channels * bins, frames), phase)
    masks = masks.view(batch, cfg.nb_stems, channels, bins, frames)

    def error(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        difference = estimate - target
        return (difference.square() if squared else difference.abs()).mean(dim=(2, 3, 4))  # (batch, stems)

    errors = error(masks * mix_real, real) + error(masks * mix_imag, imag) + error(masks * mix_mag, target_mag)
    return errors.mean()


VALIDATION_METRICS = ("sdr", "bss")


@torch.no_grad()
def validate(model: Separator, songs: Sequence[np.ndarray], metric: str = "sdr") -> dict[str, float]:
    """Median SDR (dB) per stem over held-out ``(stems, channels, samples)`` songs, counting
    only active stems: with ``metric`` "sdr" each song's plain SDR (``sdr_db``), with "bss"
    its BSS Eval SDR (``clip_scores``: the quality benchmark's figure)."""
    check_metric(metric)
    model.eval()
    figures = []
    for song in songs:
        stems = np.asarray(song, dtype=np.float32)  # (stems, channels, samples)
        figures.append(song_figures(stems, model(torch.from_numpy(stems.sum(axis=0))[None])[0].numpy(), metric))
    model.train()
    return median_figures(figures)


def check_metric(metric: str) -> None:
    if metric not in VALIDATION_METRICS:
        raise ValueError(f"metric must be one of {VALIDATION_METRICS}, got {metric!r}")


def song_figures(stems: np.ndarray, estimate: np.ndarray, metric: str) -> np.ndarray:
    """``(stems, channels, samples)`` references and estimates -> ``(stems,)`` dB, NaN where a
    stem does not count (silent, or with "bss" never active in a frame)."""
    if metric == "bss":
        return clip_scores(stems, estimate, SAMPLE_RATE_HZ)["sdr"]
    mix = stems.sum(axis=0)
    return np.array([sdr_db(stems[i], estimate[i]) if stem_is_active(stems[i], mix) else np.nan
                     for i in range(len(STEMS))])


def median_figures(figures: Sequence[np.ndarray]) -> dict[str, float]:
    """Songs' ``song_figures`` -> {stem: median over the songs where it counts, "mean": mean of those}."""
    table = np.array(figures).reshape(-1, len(STEMS))
    result = {}
    for index, stem in enumerate(STEMS):
        counted = table[:, index][np.isfinite(table[:, index])]
        result[stem] = float(np.median(counted)) if counted.size else float("nan")
    result["mean"] = float(np.nanmean([result[s] for s in STEMS]))
    return result


def learning_rate(step: int, base: float, warmup: int, half_life: int) -> float:
    return base * min(1.0, (step + 1) / warmup) * 0.5 ** (step / half_life)


def save(path: Path, model: Separator, optimizer: torch.optim.Optimizer | None, step: int,
         extra: dict | None = None) -> None:
    state = {"model": model.state_dict(), "config": model.config.to_dict(), "step": step, **(extra or {})}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.rename(path)


# what a checkpoint may gain when fine-tuned: config field -> prefix of the new weights, all
# of which start at zero so the model's output is unchanged
ADDABLE = {"local_width": "masknet.local.", "stereo_cues": "masknet.stereo.", "phase_cues": "masknet.phase."}
# config fields of options no longer in the model, with the value that meant "off": checkpoints
# written while they existed (the committed one among them) store them
RETIRED = {"low_band_bins": 0}


def load_separator(path: Path, **changes: int | bool) -> tuple[Separator, dict]:
    """The checkpoint's model; ``changes`` (e.g. ``local_width=8``, ``stereo_cues=True``,
    ``phase_cues=True``) may only add the local branch or the stereo or phase cues, which
    then start at zero, so the model's output is unchanged. The added parts start alike
    whatever the caller's random stream, so runs extending one checkpoint can be averaged."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    return separator_from_state(state, path, **changes), state


def separator_from_state(state: dict, source: Path, **changes: int | bool) -> Separator:
    """``load_separator`` for a checkpoint already read from ``source``."""
    config = dict(state["config"])
    config["dilations"] = tuple(config["dilations"])
    for name, off in RETIRED.items():
        if config.pop(name, off) != off:
            raise ValueError(f"checkpoint {source} uses {name}={state['config'][name]}, an option this model "
                             f"no longer has (only {name}={off} loads)")
    current = {name: config.get(name, getattr(ModelConfig, name)) for name in ADDABLE}
    added = [name for name, value in changes.items() if name in current and value != current[name]]
    if set(changes) - set(ADDABLE) or any(current[name] for name in added):
        raise ValueError(f"a checkpoint can only gain a local branch or stereo or phase cues it lacks, "
                         f"got changes {changes} for {current}")
    with torch.random.fork_rng():  # the caller's random stream is left as it was
        torch.manual_seed(0)
        model = Separator(ModelConfig(**{**config, **changes}))
    missing, unexpected = model.load_state_dict(state["model"], strict=False)
    prefixes = tuple(ADDABLE[name] for name in added)
    if unexpected or any(not key.startswith(prefixes) for key in missing):
        raise ValueError(f"checkpoint {source} does not fit its config: missing {missing}, unexpected {unexpected}")
    return model.eval()


def parameter_groups(model: Separator, lr_scales: Sequence[str]) -> list[dict]:
    """The optimizer's parameter groups: one per ``PREFIX=FACTOR`` of ``lr_scales`` (the
    parameters whose names start with PREFIX, at FACTOR times the learning rate; the first
    matching prefix wins) and one of the rest at the learning rate itself. Lets weights that
    start at zero (cues added with ``--init``) learn faster than the trained ones."""
    scales: list[tuple[str, float]] = []
    for item in lr_scales:
        prefix, _, text = item.partition("=")
        try:
            factor = float(text)
        except ValueError:
            raise ValueError(f"--lr-scale must be PREFIX=FACTOR with a number FACTOR, got {item!r}") from None
        if not prefix or factor < 0:
            raise ValueError(f"--lr-scale must be PREFIX=FACTOR with a prefix and FACTOR >= 0, got {item!r}")
        scales.append((prefix, factor))
    groups = [{"params": [], "lr_scale": factor} for _, factor in scales]
    rest: dict = {"params": [], "lr_scale": 1.0}
    for name, parameter in model.named_parameters():
        index = next((i for i, (prefix, _) in enumerate(scales) if name.startswith(prefix)), None)
        (rest if index is None else groups[index])["params"].append(parameter)
    empty = [prefix for (prefix, _), group in zip(scales, groups) if not group["params"]]
    if empty:
        raise ValueError(f"--lr-scale prefixes {empty} match no parameter of the model")
    return [*groups, rest]


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train the stemserve-small separation model.")
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--cache", type=Path, action="append", default=None, metavar="DIR",
                        help=f"a folder of rendered training songs, repeatable (default: {DEFAULT_CACHE})")
    parser.add_argument("--valid-cache", type=Path, default=Path("train/cache/valid"))
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop-s", type=float, default=1.5)
    parser.add_argument("--lr", type=float, default=1.5e-3)
    parser.add_argument("--lr-half-life", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=150)
    parser.add_argument("--valid-songs", type=int, default=12)
    parser.add_argument("--save-every", type=int, default=50)
    parser.add_argument("--keep-every", type=int, default=0, metavar="N",
                        help="also keep the weights of every N-th step as step_NNNNNN.pt (0: none), for "
                             "choosing a checkpoint on other validation sets afterwards")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--init", type=Path, default=None,
                        help="start a new run from this checkpoint's weights (fine-tuning)")
    parser.add_argument("--copy-head", action="append", default=[], metavar="SOURCE:TARGET",
                        help="with --init: restart stem TARGET's head from stem SOURCE's (e.g. other:piano)")
    parser.add_argument("--hidden", type=int, default=None,
                        help=f"temporal net channels of a new model (default {ModelConfig.hidden}); a run with "
                             "--init keeps the checkpoint's")
    parser.add_argument("--head-rank", type=int, default=None,
                        help=f"rank of each stem's head in a new model (default {ModelConfig.head_rank}); a run "
                             "with --init keeps the checkpoint's")
    parser.add_argument("--loss", choices=("l1", "l2"), default="l1",
                        help="spectral error: l1, or l2 (squared), which shares bins between stems that sound alike")
    parser.add_argument("--eq-bumps-db", type=float, default=0.0, metavar="DB",
                        help="also give every stem three random resonances or notches of up to +-DB dB")
    parser.add_argument("--p-coherent", type=float, default=0.3, metavar="P",
                        help="share of crops whose stems all come from one song (the others remix songs)")
    parser.add_argument("--shift-semitones", type=float, default=0.0, metavar="N",
                        help="resample every stem by up to +-N semitones (pitch and spectral envelope)")
    parser.add_argument("--local-width", type=int, default=ModelConfig.local_width,
                        help="channels of the frequency-local branch (0: none); with --init, adds it")
    parser.add_argument("--stereo-cues", action="store_true",
                        help="per-bin inter-channel level differences as model inputs; with --init, adds them")
    parser.add_argument("--lr-scale", action="append", default=[], metavar="PREFIX=FACTOR",
                        help="parameters whose names start with PREFIX learn at FACTOR times --lr (repeatable; "
                             "e.g. masknet.phase.=10 for cues just added)")
    parser.add_argument("--phase-cues", action="store_true",
                        help="per-bin inter-channel phase agreement and centre coherence as model inputs; "
                             "with --init, adds them")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    handler = logging.FileHandler(args.run_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        train(args)
    finally:
        log.removeHandler(handler)
        handler.close()


def train(args: argparse.Namespace) -> None:
    if not 0.0 <= args.p_coherent <= 1.0:
        raise ValueError(f"--p-coherent must be a probability in [0, 1], got {args.p_coherent}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    latest = args.run_dir / "latest.pt"
    if latest.exists():
        model, state = load_separator(latest)
        model.train()
        step = int(state["step"])
        best = float(state.get("best_sdr", -math.inf))
        log.info("resuming from %s at step %d", latest, step)
    else:
        parts = {name: getattr(args, name) for name in ADDABLE}  # the optional parts the command line asks for
        if args.init is not None:
            model = load_separator(args.init, **{name: value for name, value in parts.items() if value})[0]
            log.info("weights initialized from %s", args.init)
            size = {"hidden": args.hidden, "head_rank": args.head_rank}
            changed = {name: value for name, value in size.items()
                       if value is not None and value != getattr(model.config, name)}
            if changed:
                raise ValueError(f"a run with --init keeps the checkpoint's hidden {model.config.hidden} and "
                                 f"head_rank {model.config.head_rank}, got {changed}")
            model.train()
            for pair in args.copy_head:
                source, target = (STEMS.index(name) for name in pair.split(":"))
                copy_stem_head(model.masknet, source, target)
                log.info("stem head %s copied to %s", *pair.split(":"))
        else:
            model = Separator(ModelConfig(hidden=args.hidden or ModelConfig.hidden,
                                          head_rank=args.head_rank or ModelConfig.head_rank, **parts)).train()
        step, best, state = 0, -math.inf, {}
        log.info("new run: %s, %d parameters", model.config, sum(p.numel() for p in model.parameters()))
    groups = parameter_groups(model, args.lr_scale)
    lr_scales = [group["lr_scale"] for group in groups]
    optimizer = torch.optim.Adam(groups, lr=args.lr)
    if "optimizer" in state:
        optimizer.load_state_dict(state["optimizer"])  # refuses another number of groups

    cache, valid = SongCache(*(args.cache or [DEFAULT_CACHE])), SongCache(args.valid_cache)
    crop = round(args.crop_s * SAMPLE_RATE_HZ / model.config.hop) * model.config.hop
    sampler = RemixSampler(cache, crop, p_coherent=args.p_coherent, shift_semitones=args.shift_semitones)
    log.info("%d training songs, %d validation songs, crops of %d samples", len(cache), len(valid), crop)

    losses: list[float] = []
    started = time.monotonic()
    while step < args.steps:
        rng = np.random.default_rng([args.seed, step])
        if step % 100 == 0:
            cache.refresh()
        stems = torch.from_numpy(sampler.batch(args.batch_size, rng))
        eq = random_eq(tuple(stems.shape[:2]), model.config, rng, args.eq_bumps_db)
        for group, lr_scale in zip(optimizer.param_groups, lr_scales):
            group["lr"] = lr_scale * learning_rate(step, args.lr, 25, args.lr_half_life)
        loss = spectral_loss(model, stems, eq, squared=args.loss == "l2")
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        losses.append(float(loss.detach()))
        step += 1
        if step % 25 == 0:
            elapsed = (time.monotonic() - started) / len(losses)
            log.info("step %d loss %.4f lr %.2e %.2f s/step songs %d", step, np.mean(losses[-25:]),
                     optimizer.param_groups[-1]["lr"], elapsed, len(cache))
        if step % args.eval_every == 0 or step == args.steps:
            scores = validate(model, valid.songs[: args.valid_songs])
            log.info("valid step %d SDR %s", step, " ".join(f"{k} {v:.2f}" for k, v in scores.items()))
            if scores["mean"] > best:
                best = scores["mean"]
                save(args.run_dir / "best.pt", model, None, step, {"best_sdr": best, "valid": scores})
        if step % args.save_every == 0 or step == args.steps:
            save(latest, model, optimizer, step, {"best_sdr": best})
        if args.keep_every and step % args.keep_every == 0:
            save(args.run_dir / f"step_{step:06d}.pt", model, None, step)
    log.info("finished at step %d, best mean SDR %.2f dB", step, best)


if __name__ == "__main__":
    main()
