"""Export a stemserve-small checkpoint to the Triton model repository.

``python -m stemserve.train.export_onnx --checkpoint train/checkpoints/stemserve-small.pt`` writes
``model_repository/stemserve-small/1/model.onnx`` and its ``config.pbtxt`` (metadata from
``stemserve.core.model_config``), after checking the ONNX output against PyTorch.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from stemserve.core.model_config import (
    CONFIG_NAME,
    INPUT_NAME,
    ONNX_NAME,
    OUTPUT_NAME,
    ModelSpec,
    file_sha256,
    render_config,
)
from stemserve.train.model import STEMS, Separator
from stemserve.train.train import SAMPLE_RATE_HZ, load_separator

log = logging.getLogger(__name__)

MODEL_NAME = "stemserve-small"
ARCHITECTURE = "stemserve-small-v1"
SEGMENT_SAMPLES = 344 * 1024  # 7.99 s, a whole number of STFT hops
OPSET = 17


def export_onnx(model: Separator, path: Path, segment_samples: int = SEGMENT_SAMPLES) -> None:
    """Trace the waveform model to ONNX with a dynamic batch axis."""
    model = model.eval()
    example = torch.zeros(1, model.config.nb_channels, segment_samples)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.onnx.export(
        model, (example,), str(tmp), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        opset_version=OPSET, dynamo=False,
    )
    _share_constants(tmp)
    tmp.rename(path)


def _share_constants(path: Path) -> None:
    """Keep one copy of identical large constants (the DFT basis of the STFT and the ISTFT)."""
    graph_model = onnx.load(str(path))
    graph = graph_model.graph
    first_output: dict[bytes, str] = {}
    renamed: dict[str, str] = {}
    kept = []
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            tensor = node.attribute[0].t
            if len(tensor.raw_data) > 1 << 16:
                key = str(list(tensor.dims)).encode() + tensor.raw_data
                if key in first_output:
                    renamed[node.output[0]] = first_output[key]
                    continue
                first_output[key] = node.output[0]
        kept.append(node)
    for node in kept:
        for i, name in enumerate(node.input):
            if name in renamed:
                node.input[i] = renamed[name]
    del graph.node[:]
    graph.node.extend(kept)
    onnx.checker.check_model(graph_model)
    onnx.save(graph_model, str(path))


def max_parity_error(model: Separator, onnx_path: Path, mix: np.ndarray) -> float:
    """Largest absolute difference between PyTorch and ONNX Runtime stems for ``mix``."""
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(mix)).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: mix})[0]
    return float(np.abs(expected - got).max())


def model_spec(onnx_path: Path, segment_samples: int = SEGMENT_SAMPLES) -> ModelSpec:
    return ModelSpec(
        name=MODEL_NAME, stems=STEMS, sample_rate_hz=SAMPLE_RATE_HZ, segment_samples=segment_samples,
        default_overlap=0.25, model_version=file_sha256(onnx_path)[:12], architecture=ARCHITECTURE,
        license="Apache-2.0", max_batch_size=8,
    )


def export_repository(checkpoint: Path, repository: Path, tolerance: float = 1e-4) -> Path:
    """Export ``checkpoint`` into ``repository/stemserve-small``; returns the ONNX path."""
    model, _ = load_separator(checkpoint)
    onnx_path = repository / MODEL_NAME / "1" / ONNX_NAME
    export_onnx(model, onnx_path)
    rng = np.random.default_rng(0)
    mix = (0.1 * rng.standard_normal((2, model.config.nb_channels, SEGMENT_SAMPLES))).astype(np.float32)
    error = max_parity_error(model, onnx_path, mix)
    if error > tolerance:
        raise RuntimeError(f"ONNX output must match PyTorch within {tolerance}, got max error {error:.2e}")
    (repository / MODEL_NAME / CONFIG_NAME).write_text(render_config(model_spec(onnx_path)))
    log.info("exported %s (parity error %.2e, %.1f MB)", onnx_path, error, onnx_path.stat().st_size / 1e6)
    return onnx_path


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
