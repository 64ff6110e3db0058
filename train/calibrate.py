"""Calibrate a checkpoint's masks: ``python -m train.calibrate CHECKPOINT --out PATH``.

The masks are a softmax across stems of per-stem logits. Two calibrations change them
without retraining: a temperature ``t`` multiplies every logit (below 1 the stems share a
bin more evenly, above 1 the likeliest stem takes more of it) and an offset ``b_s`` is added
to stem ``s``'s logits (the stem gets a larger share of every bin). Both fold exactly into
the weights that make the logits, so a calibrated checkpoint has the same architecture, size
and speed as the one it came from.

The command searches them on the selection sets (``train.score``, with its ``--metric``) and
writes the calibrated checkpoint: first the temperature over a grid, then rounds of
coordinate search, each trying every stem's offset one step up and down and keeping a
change only when the selection figure rises. The model runs once per song: the calibrated
logits are ``t * logits + b``, so each trial only redoes the softmax, the inverse STFT and
the scoring (``SelectionLogits``).
"""

from __future__ import annotations

import argparse
import copy
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch

from train.model import STEMS, MaskNet, Separator, stem_softmax
from train.score import add_set_arguments, selection_sets
from train.train import check_metric, load_separator, median_figures, save, song_figures

log = logging.getLogger("train.calibrate")


@torch.no_grad()
def fold_calibration(masknet: MaskNet, temperature: float, offsets: Mapping[str, float]) -> None:
    """Make ``masknet``'s masks ``softmax(temperature * logits + offsets)`` in place, by scaling
    every term of the logits and adding the offsets to the per-stem bias."""
    if not temperature > 0:
        raise ValueError(f"a mask temperature must be positive, got {temperature}")
    unknown = set(offsets) - set(STEMS)
    if unknown:
        raise ValueError(f"offsets for unknown stems {sorted(unknown)}; the stems are {STEMS}")
    scaled = [masknet.head_out, masknet.head_bias, masknet.skip_scale]
    if masknet.local is not None:
        scaled += [masknet.local.out.weight, masknet.local.out.bias]
    if masknet.stereo is not None:
        scaled += [masknet.stereo.signed_scale, masknet.stereo.size_scale]
    if masknet.phase is not None:
        scaled += [masknet.phase.cosine_scale, masknet.phase.centre_scale]
    if masknet.low_band is not None:
        scaled += [masknet.low_band.out.weight, masknet.low_band.out.bias]
    for weight in scaled:
        weight.mul_(temperature)
    for stem, offset in offsets.items():
        masknet.head_bias[:, STEMS.index(stem)] += offset


def calibrated(model: Separator, temperature: float, offsets: Mapping[str, float]) -> Separator:
    """A calibrated copy of ``model``."""
    copied = copy.deepcopy(model)
    fold_calibration(copied.masknet, temperature, offsets)
    return copied


class SelectionLogits:
    """The selection sets' songs with ``model``'s spectrograms and mask logits, computed once:
    ``score`` gives ``train.score.score_model(calibrated(model, temperature, offsets), sets,
    metric)`` without running the model again."""

    @torch.no_grad()
    def __init__(self, model: Separator, sets: Mapping[str, list[np.ndarray]]) -> None:
        model.eval()
        self.model = model
        self.sets = {}
        for name, songs in sets.items():
            self.sets[name] = []
            for song in songs:
                stems = np.asarray(song, dtype=np.float32)
                spec, logits = model.mask_logits(torch.from_numpy(stems.sum(axis=0))[None])
                self.sets[name].append((stems, spec, logits))

    @torch.no_grad()
    def score(self, temperature: float, offsets: Mapping[str, float], metric: str = "sdr") -> dict[str, dict[str, float]]:
        check_metric(metric)
        bias = torch.tensor([offsets.get(stem, 0.0) for stem in STEMS]).view(1, len(STEMS), 1, 1)
        scores = {}
        for name, songs in self.sets.items():
            figures = []
            for stems, spec, logits in songs:
                estimate = self.model.apply_masks(spec, stem_softmax(temperature * logits + bias), stems.shape[-1])
                figures.append(song_figures(stems, estimate[0].numpy(), metric))
            scores[name] = median_figures(figures)
        scores["selection"] = {"mean": float(np.mean([s["mean"] for s in scores.values()]))}
        return scores


def search(evaluate: Callable[[float, dict[str, float]], float], temperatures: list[float],
           offset_step: float, rounds: int) -> tuple[float, dict[str, float], float]:
    """-> (temperature, offsets, figure) maximizing ``evaluate(temperature, offsets)``: the
    temperature over ``temperatures`` with no offsets, then ``rounds`` of coordinate search on
    the offsets in steps of ``offset_step``."""
    figures = {t: evaluate(t, {}) for t in temperatures}
    temperature = max(figures, key=figures.get)
    offsets, best = {stem: 0.0 for stem in STEMS}, figures[temperature]
    for _ in range(rounds):
        improved = False
        for stem in STEMS:
            for direction in (1, -1):
                trial = {**offsets, stem: offsets[stem] + direction * offset_step}
                figure = evaluate(temperature, trial)
                if figure > best:
                    offsets, best, improved = trial, figure, True
                    break
        if not improved:
            break
    return temperature, offsets, best


def _format(offsets: Mapping[str, float]) -> str:
    return " ".join(f"{stem} {value:+.2f}" for stem, value in offsets.items())


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Search a mask temperature and per-stem offsets on the "
                                                 "selection sets and write the calibrated checkpoint.")
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.7, 0.8, 0.9, 1.0])
    parser.add_argument("--offset-step", type=float, default=0.25)
    parser.add_argument("--rounds", type=int, default=2)
    add_set_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> tuple[float, dict[str, float], float]:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    sets = selection_sets(args)
    model, state = load_separator(args.checkpoint)
    cached = SelectionLogits(model, sets)

    def evaluate(temperature: float, offsets: dict[str, float]) -> float:
        figure = cached.score(temperature, offsets, args.metric)["selection"]["mean"]
        log.info("temperature %.2f offsets %s: %.3f dB", temperature, _format(offsets) or "none", figure)
        return figure

    temperature, offsets, figure = search(evaluate, args.temperatures, args.offset_step, args.rounds)
    save(args.out, calibrated(model, temperature, offsets), None, int(state["step"]),
         {"calibration": {"source": args.checkpoint.name, "temperature": temperature, "offsets": offsets,
                          "metric": args.metric, "selection": figure}})
    print(f"{args.out}: temperature {temperature:.2f}, offsets {_format(offsets)}, selection {figure:.2f} dB")
    return temperature, offsets, figure


if __name__ == "__main__":
    main()
