"""Average checkpoints' weights: ``python -m stemserve.train.average OUT CHECKPOINT CHECKPOINT [...]``.

Two fine-tunes of one checkpoint (other seeds, other data) end near each other in weight
space, and the mean of their weights often separates better than either ("model soup");
so does a fine-tune's snapshot and the checkpoint it started from. Every floating-point
tensor is averaged, batch-norm running statistics included; counters
(``num_batches_tracked``) come from the first checkpoint. The checkpoints must share one
architecture. The average is a checkpoint like any other: score it with
``stemserve.train.score``, calibrate it with ``stemserve.train.calibrate``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from stemserve.train.model import Separator
from stemserve.train.train import load_separator, save


def average_models(models: list[Separator]) -> Separator:
    """A new model whose floating-point weights and buffers are the mean of ``models``'."""
    if len(models) < 2:
        raise ValueError(f"averaging needs at least 2 checkpoints, got {len(models)}")
    first = models[0]
    for index, model in enumerate(models[1:], start=1):
        if model.config != first.config:
            raise ValueError(f"checkpoint {index} has config {model.config}, checkpoint 0 has {first.config}; "
                             "only checkpoints of one architecture can be averaged")
    shares = torch.full((len(models),), 1.0 / len(models), dtype=torch.float64)
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


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("checkpoints", type=Path, nargs="+")
    return parser


def main(argv: list[str] | None = None) -> Path:
    args = get_parser().parse_args(argv)
    loaded = [load_separator(path) for path in args.checkpoints]
    model = average_models([model for model, _ in loaded])
    step = max(int(state["step"]) for _, state in loaded)
    save(args.out, model, None, step, {"averaged": [path.name for path in args.checkpoints]})
    print(f"{args.out}: the mean of {len(args.checkpoints)} checkpoints")
    return args.out


if __name__ == "__main__":
    main()
