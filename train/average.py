"""Average checkpoints' weights: ``python -m stemserve.train.average OUT CHECKPOINT CHECKPOINT [...]``.

Two fine-tunes of one checkpoint (other seeds, other data) end near each other in weight
space, and the mean of their weights often separates better than either ("model soup").
Every floating-point tensor is averaged, batch-norm running statistics included; counters
(``num_batches_tracked``) come from the first checkpoint. The checkpoints must share one
architecture, except that a checkpoint lacking the local branch, cues or low band another
one has is averaged as a fine-tune extending it started: with those parts added, which
leaves its output unchanged (``stemserve.train.train.load_separator``). So the checkpoint a run
started from and the run's snapshot can be mixed, ``--weights 0.5 0.5`` or any other share:
a fine-tune moved part of the way ("weight-space ensembling"). With ``--lend-parts`` the
lacking checkpoint takes such a part from the first checkpoint that has it, silenced (the
weights through which the part reaches the output, ``SILENT`` in ``stemserve.train.model``, at zero;
its output is unchanged all the same): in the mix the part is then the trained one, its
output scaled by the share of the checkpoints that trained it, where a fine-tune's starting
part would mix in untrained weights. The average is a checkpoint like any other: score it
with ``stemserve.train.score``, calibrate it with ``stemserve.train.calibrate``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch
from stemserve.train.model import Separator
from stemserve.train.train import ADDABLE, save, separator_from_state


def average_models(models: list[Separator], weights: Sequence[float] | None = None) -> Separator:
    """A new model whose floating-point weights and buffers are the mean of ``models``', or
    their mean weighted by ``weights`` (non-negative, normalized to sum to 1)."""
    if len(models) < 2:
        raise ValueError(f"averaging needs at least 2 checkpoints, got {len(models)}")
    first = models[0]
    for index, model in enumerate(models[1:], start=1):
        if model.config != first.config:
            raise ValueError(f"checkpoint {index} has config {model.config}, checkpoint 0 has {first.config}; "
                             "only checkpoints of one architecture can be averaged")
    shares = torch.tensor(_shares(weights, len(models)), dtype=torch.float64)
    states = [model.state_dict() for model in models]
    averaged = {}
    for name, value in states[0].items():
        if value.is_floating_point():
            stacked = torch.stack([state[name].double() for state in states])
            value = torch.tensordot(shares, stacked, dims=1).to(value.dtype)
        averaged[name] = value
    out = Separator(first.config)
    out.load_state_dict(averaged)
    return out.eval()


def _shares(weights: Sequence[float] | None, count: int) -> list[float]:
    if weights is None:
        return [1.0 / count] * count
    if len(weights) != count or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"--weights needs {count} non-negative numbers, one per checkpoint, not all zero; "
                         f"got {list(weights)}")
    return [w / sum(weights) for w in weights]


def load_alike(paths: Sequence[Path], lend_parts: bool = False) -> list[tuple[Separator, dict]]:
    """The checkpoints' models, each with every addable part (local branch, cues, low band)
    that any of them has, so that a checkpoint and a fine-tune extending it share one
    architecture; ``lend_parts``: a part a checkpoint lacks is a silenced copy of the first
    one's that has it, not the part as a fine-tune adding it starts."""
    states = [torch.load(path, map_location="cpu", weights_only=False) for path in paths]
    union: dict[str, int | bool] = {}
    for name in ADDABLE:
        values = [state["config"][name] for state in states if state["config"].get(name)]
        if len(set(values)) > 1:
            raise ValueError(f"the checkpoints have different {name}: {values}; only checkpoints of one "
                             "architecture can be averaged")
        if values:
            union[name] = values[0]
    loaded = [(separator_from_state(state, path, **union), state) for path, state in zip(paths, states)]
    if lend_parts:
        for name in union:
            part = ADDABLE[name].rstrip(".")
            lender = next(model for model, state in loaded if state["config"].get(name))
            for model, state in loaded:
                if not state["config"].get(name):
                    borrowed = model.get_submodule(part)
                    borrowed.load_state_dict(lender.get_submodule(part).state_dict())
                    with torch.no_grad():
                        for silent in borrowed.SILENT:
                            borrowed.get_parameter(silent).zero_()
    return loaded


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("checkpoints", type=Path, nargs="+")
    parser.add_argument("--weights", type=float, nargs="+", default=None, metavar="W",
                        help="one share per checkpoint (normalized to sum to 1; default: equal shares)")
    parser.add_argument("--lend-parts", action="store_true",
                        help="a checkpoint lacking a part (local branch, cues, low band) another has takes that "
                             "one's, silenced, not the part as a fine-tune adding it starts")
    args = parser.parse_args(argv)
    loaded = load_alike(args.checkpoints, args.lend_parts)
    shares = _shares(args.weights, len(loaded))
    model = average_models([model for model, _ in loaded], shares)
    step = max(int(state["step"]) for _, state in loaded)
    extra: dict = {"averaged": [path.name for path in args.checkpoints]}
    if args.weights is not None:
        extra["weights"] = shares
    if args.lend_parts:
        extra["lent_parts"] = True
    save(args.out, model, None, step, extra)
    print(f"{args.out}: the {'weighted ' if args.weights else ''}mean of {len(args.checkpoints)} checkpoints")
    return args.out


if __name__ == "__main__":
    main()
