"""``python -m stemserve.export NAME --checkpoint FILE``: export a published architecture.

Loads the operator's checkpoint, exports the model contract graph to ONNX, checks it
against the PyTorch model on full-length windows (the parity line is printed), optionally
converts it to fp16 (reporting the SDR against fp32) or builds a TensorRT engine, and
writes ``<out>/<name>/config.pbtxt`` and ``<out>/<name>/1/model.onnx``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from stemserve.core.errors import StemserveError
from stemserve.export.architectures import ARCHITECTURES
from stemserve.export.exporter import ExportConfig, describe_sdr, run_export


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stemserve.export", description=__doc__.splitlines()[0])
    parser.add_argument("architecture", choices=sorted(ARCHITECTURES))
    parser.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        help="demucs: the .th package (or the bag .yaml for htdemucs_ft); umx: the folder of <target>-<hash>.pth files",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("model_repository"), help="Triton model repository to write into"
    )
    parser.add_argument("--name", default="", help="model name in the repository (default: the architecture)")
    parser.add_argument("--precision", choices=("fp32", "fp16"), default="fp32")
    parser.add_argument(
        "--tensorrt", action="store_true", help="build a TensorRT engine (needs the tensorrt package and a GPU)"
    )
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument(
        "--threads", type=int, default=0, help="ONNX Runtime threads for the parity check (0: all cores)"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        config = ExportConfig(
            architecture=args.architecture,
            checkpoint=args.checkpoint,
            repository=args.out,
            model_name=args.name,
            precision=args.precision,
            tensorrt=args.tensorrt,
            max_batch_size=args.max_batch_size,
            threads=args.threads,
        )
        result = run_export(config)
    except (StemserveError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.parity.line(config.name))
    if result.fp16_sdr_db is not None:
        print(describe_sdr(result.stems, result.fp16_sdr_db))
    print(f"wrote {result.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
