"""Average checkpoints' weights: ``python -m train.average OUT CHECKPOINT CHECKPOINT [...]``.

Two fine-tunes of one checkpoint (other seeds, other data) end near each other in weight
space, and the mean of their weights often separates better than either ("model soup").
Every floating-point tensor is averaged, batch-norm running statistics included; counters
(``num_batches_tracked``) come from the first checkpoint. The checkpoints must share one
architecture (the same config). The average is a checkpoint like any other: score it with
``train.score``, calibrate it with ``train.calibrate``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from train.model import Separator
from train.train import load_separator, save


def average_models(models: list[Separator]) -> Separator:
    """A new model whose floating-point weights and buffers are the mean of ``models``'."""
    if len(models) < 2:
        raise ValueError(f"averaging needs at least 2 checkpoints, got {len(models)}")
    first = models[0]
    for index, model in enumerate(models[1:], start=1):
        if model.config != first.config:
            raise ValueError(f"checkpoint {index} has config {model.config}, checkpoint 0 has {first.config}; "
                             "only checkpoints of one architecture can be averaged")
    states = [model.state_dict() for model in models]
    averaged = {name: torch.stack([state[name] for state in states]).mean(dim=0) if value.is_floating_point()
                else value for name, value in states[0].items()}
    out = Separator(first.config)
    out.load_state_dict(averaged)
    return out.eval()


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("checkpoints", type=Path, nargs="+")
    args = parser.parse_args(argv)
    loaded = [load_separator(path) for path in args.checkpoints]
    model = average_models([model for model, _ in loaded])
    step = max(int(state["step"]) for _, state in loaded)
    save(args.out, model, None, step, {"averaged": [path.name for path in args.checkpoints]})
    print(f"{args.out}: the mean of {len(args.checkpoints)} checkpoints")
    return args.out


if __name__ == "__main__":
    main()
