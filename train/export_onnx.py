"""Export a stemserve-small checkpoint to the Triton model repository.

``python -m stemserve.train.export_onnx --checkpoint train/checkpoints/stemserve-small.pt`` writes
``model_repository/stemserve-small/1/model.onnx`` and its ``config.pbtxt`` the way
``python -m stemserve.export`` writes the published architectures: the ONNX export and its
parity check against PyTorch (``stemserve.export.onnx_export``), then the model folder
(``stemserve.export.repository``: the model file installed atomically, config.pbtxt with
the metadata of ``stemserve.core.model_config`` and a warm-up block).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from stemserve.core.model_config import ONNX_NAME, ModelSpec, file_sha256
from stemserve.export import onnx_export
from stemserve.export.errors import ExportError
from stemserve.export.onnx_export import PARITY_TOLERANCE, check_parity
from stemserve.export.repository import VERSION, VERSION_HASH_CHARS, write_model_folder
from stemserve.train.model import STEMS, Separator
from stemserve.train.train import SAMPLE_RATE_HZ, load_separator

log = logging.getLogger(__name__)

MODEL_NAME = "stemserve-small"
ARCHITECTURE = "stemserve-small-v1"
SEGMENT_SAMPLES = 344 * 1024  # 7.99 s, a whole number of STFT hops


def export_onnx(model: Separator, path: Path, segment_samples: int = SEGMENT_SAMPLES) -> Path:
    """Trace the waveform model to ONNX with a dynamic batch axis."""
    if model.config.nb_channels != 2:
        raise ExportError(f"a served model takes stereo windows, got nb_channels {model.config.nb_channels}")
    return onnx_export.export_onnx(model.eval(), path, segment_samples)


def model_spec(onnx_path: Path, segment_samples: int = SEGMENT_SAMPLES) -> ModelSpec:
    return ModelSpec(
        name=MODEL_NAME, stems=STEMS, sample_rate_hz=SAMPLE_RATE_HZ, segment_samples=segment_samples,
        default_overlap=0.25, model_version=file_sha256(onnx_path)[:VERSION_HASH_CHARS], architecture=ARCHITECTURE,
        license="Apache-2.0", max_batch_size=8,
    )


def export_repository(checkpoint: Path, repository: Path, tolerance: float = PARITY_TOLERANCE) -> Path:
    """Export ``checkpoint`` into ``repository/stemserve-small``; returns the ONNX path.
    Raises ``ExportError`` (and leaves the repository as it was) if the ONNX output differs
    from PyTorch's by more than ``tolerance``."""
    model, _ = load_separator(checkpoint)
    with tempfile.TemporaryDirectory(prefix="stemserve-export-") as scratch:
        onnx_path = export_onnx(model, Path(scratch) / ONNX_NAME)
        parity = check_parity(onnx_path, model, SEGMENT_SAMPLES, tolerance=tolerance, name=MODEL_NAME)
        if not parity.passed:
            raise ExportError(parity.line(MODEL_NAME))
        folder = write_model_folder(repository, model_spec(onnx_path), onnx_path)
    return folder / VERSION / ONNX_NAME


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("train/checkpoints/stemserve-small.pt"))
    parser.add_argument("--repository", type=Path, default=Path("model_repository"))
    return parser


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    export_repository(args.checkpoint, args.repository)


if __name__ == "__main__":
    main()
