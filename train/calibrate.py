"""Calibrate a checkpoint's masks: ``python -m stemserve.train.calibrate CHECKPOINT --out PATH``.

The masks are a softmax across stems of per-stem logits. Two calibrations change them
without retraining: a temperature ``t`` multiplies every logit (below 1 the stems share a
bin more evenly, above 1 the likeliest stem takes more of it) and an offset ``b_s`` is added
to stem ``s``'s logits (the stem gets a larger share of every bin). Both fold exactly into
the weights that make the logits, so a calibrated checkpoint has the same architecture, size
and speed as the one it came from. A third, ``--wiener-shares``, is the share of the
spatial Wiener estimate (``stemserve.train.wiener``) in the stems: a setting of the model's config,
with no weights.

The command searches them on the selection sets (``stemserve.train.score``, with its ``--metric``) and
writes the calibrated checkpoint: first the Wiener share and the temperature over a grid,
then rounds of coordinate search, each trying every stem's offset one step up
and down and keeping a change only when the selection figure rises. The model runs once per
song: the calibrated logits are ``t * logits + b``, so each trial only redoes the softmax,
the Wiener filter, the inverse STFT and the scoring (``SelectionLogits``).
"""

from __future__ import annotations

import argparse
import copy
import logging
import multiprocessing
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from itertools import repeat
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from stemserve.train.model import STEMS, MaskNet, ModelConfig, Separator, stem_softmax
from stemserve.train.score import add_set_arguments, selection_sets, with_selection
from stemserve.train.train import check_metric, load_separator, median_figures, save, song_figures

log = logging.getLogger("stemserve.train.calibrate")


class Calibration(NamedTuple):
    wiener_share: float
    temperature: float
    offsets: dict[str, float]
    figure: float  # the selection figure it scored


def offset_bias(config: ModelConfig, offsets: Mapping[str, float]) -> torch.Tensor:
    """-> ``(1, stems, channels * bins, 1)``, each stem's offset (``offsets[stem]``, 0 if absent) in every bin."""
    unknown = set(offsets) - set(STEMS)
    if unknown:
        raise ValueError(f"offsets for unknown stems {sorted(unknown)}; the stems are {STEMS}")
    bias = torch.zeros(len(STEMS), config.nb_bins)
    for stem, value in offsets.items():
        bias[STEMS.index(stem)] = value
    return bias.repeat(1, config.nb_channels).view(1, len(STEMS), config.nb_channels * config.nb_bins, 1)


@torch.no_grad()
def fold_calibration(masknet: MaskNet, temperature: float, offsets: Mapping[str, float]) -> None:
    """Make ``masknet``'s masks ``softmax(temperature * logits + offset_bias(...))`` in place, by
    scaling every term of the logits and adding the offsets to the per-stem, per-bin bias."""
    if not temperature > 0:
        raise ValueError(f"a mask temperature must be positive, got {temperature}")
    bias = offset_bias(masknet.config, offsets)
    scaled = [masknet.head_out, masknet.head_bias, masknet.skip_scale]
    if masknet.local is not None:
        scaled += [masknet.local.out.weight, masknet.local.out.bias]
    if masknet.stereo is not None:
        scaled += [masknet.stereo.signed_scale, masknet.stereo.size_scale]
    if masknet.phase is not None:
        scaled += [masknet.phase.cosine_scale, masknet.phase.centre_scale]
    for weight in scaled:
        weight.mul_(temperature)
    masknet.head_bias += bias


def calibrated(model: Separator, temperature: float, offsets: Mapping[str, float],
               wiener_share: float | None = None) -> Separator:
    """A calibrated copy of ``model``, with ``wiener_share`` as its config's ``spatial_wiener``
    unless None."""
    copied = copy.deepcopy(model)
    fold_calibration(copied.masknet, temperature, offsets)
    if wiener_share is not None:
        copied.config = replace(copied.config, spatial_wiener=wiener_share)
    return copied


class SelectionLogits:
    """The selection sets' songs with ``model``'s spectrograms and mask logits, computed once:
    ``score`` gives ``stemserve.train.score.score_model(calibrated(model, temperature, offsets,
    wiener_share), sets, metric)`` without running the model again; with
    ``workers`` above 1, that many processes score the songs."""

    @torch.no_grad()
    def __init__(self, model: Separator, sets: Mapping[str, list[np.ndarray]], workers: int = 1) -> None:
        model.eval()
        self.model = model
        self.workers = workers
        self.sets = {}
        for name, songs in sets.items():
            self.sets[name] = []
            for song in songs:
                stems = np.asarray(song, dtype=np.float32)
                spec, logits = model.mask_logits(torch.from_numpy(stems.sum(axis=0))[None])
                self.sets[name].append((stems, spec, logits))

    @torch.no_grad()
    def score(self, temperature: float, offsets: Mapping[str, float], metric: str = "sdr",
              wiener_share: float | None = None) -> dict[str, dict[str, float]]:
        check_metric(metric)
        bias = offset_bias(self.model.config, offsets)
        names, references, estimates = [], [], []
        for name, songs in self.sets.items():
            for stems, spec, logits in songs:
                masks = stem_softmax(temperature * logits + bias)
                estimate = self.model.apply_masks(spec, masks, stems.shape[-1], wiener_share)
                names.append(name)
                references.append(stems)
                estimates.append(estimate[0].numpy())
        if self.workers > 1:
            with ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("fork"),
                                     initializer=torch.set_num_threads, initargs=(1,)) as pool:
                figures = list(pool.map(song_figures, references, estimates, repeat(metric)))
        else:
            figures = [song_figures(r, e, metric) for r, e in zip(references, estimates)]
        return with_selection({name: median_figures([f for n, f in zip(names, figures) if n == name])
                               for name in self.sets})


def search(evaluate: Callable[[float, float, dict[str, float]], float], temperatures: Sequence[float],
           offset_step: float, rounds: int, wiener_shares: Sequence[float] = (0.0,)) -> Calibration:
    """The calibration maximizing ``evaluate(wiener_share, temperature, offsets)``: the Wiener
    share and the temperature over ``wiener_shares`` x ``temperatures`` with no offsets, then
    ``rounds`` of coordinate search on each stem's offset, in steps of ``offset_step``."""
    figures = {(share, t): evaluate(share, t, {}) for share in wiener_shares for t in temperatures}
    share, temperature = max(figures, key=figures.get)
    offsets, best = {stem: 0.0 for stem in STEMS}, figures[share, temperature]
    for _ in range(rounds):
        improved = False
        for stem in STEMS:
            for direction in (1, -1):
                trial = {**offsets, stem: offsets[stem] + direction * offset_step}
                figure = evaluate(share, temperature, trial)
                if figure > best:
                    offsets, best, improved = trial, figure, True
                    break
        if not improved:
            break
    return Calibration(share, temperature, offsets, best)


def _format(offsets: Mapping[str, float]) -> str:
    return " ".join(f"{stem} {value:+.2f}" for stem, value in offsets.items())


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Search a mask temperature and per-stem offsets on the "
                                                 "selection sets and write the calibrated checkpoint.")
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.7, 0.8, 0.9, 1.0])
    parser.add_argument("--wiener-shares", type=float, nargs="+", default=None,
                        help="shares of the spatial Wiener estimate to try (default: the checkpoint's)")
    parser.add_argument("--offset-step", type=float, default=0.25)
    parser.add_argument("--rounds", type=int, default=2)
    add_set_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> Calibration:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    sets = selection_sets(args)
    model, state = load_separator(args.checkpoint)
    shares = args.wiener_shares or [model.config.spatial_wiener]
    outside = [share for share in shares if not 0 <= share <= 1]
    if outside:
        raise SystemExit(f"--wiener-shares must lie from 0 to 1, got {outside}")
    cached = SelectionLogits(model, sets, args.threads)

    def evaluate(share: float, temperature: float, offsets: dict[str, float]) -> float:
        figure = cached.score(temperature, offsets, args.metric, share)["selection"]["mean"]
        log.info("wiener share %.2f temperature %.2f offsets %s: %.3f dB", share, temperature,
                 _format(offsets) or "none", figure)
        return figure

    found = search(evaluate, args.temperatures, args.offset_step, args.rounds, shares)
    save(args.out, calibrated(model, found.temperature, found.offsets, found.wiener_share),
         None, int(state["step"]),
         {"calibration": {"source": args.checkpoint.name, "wiener_share": found.wiener_share,
                          "temperature": found.temperature, "offsets": found.offsets,
                          "metric": args.metric, "selection": found.figure}})
    print(f"{args.out}: wiener share {found.wiener_share:.2f}, temperature {found.temperature:.2f}, "
          f"offsets {_format(found.offsets)}, selection {found.figure:.2f} dB")
    return found


if __name__ == "__main__":
    main()
