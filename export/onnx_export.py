"""Export a graph module to ONNX and check it against the PyTorch model.

The export uses the TorchScript-based exporter (``dynamo=False``): the graph modules of
this package are free of complex tensors, data-dependent asserts and Python-side random
numbers, and this exporter keeps the batch axis symbolic through ``dynamic_axes`` while
the fixed segment becomes constant. Parity is measured on full-length windows with
ONNX Runtime against the unmodified PyTorch model; fp16 copies are compared with the fp32
ONNX model by SDR.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from stemserve.backends.session import session_options
from stemserve.core.model_config import INPUT_NAME, OUTPUT_NAME
from stemserve.export.errors import ExportError
from stemserve.export.repository import ONNXRUNTIME_CONFIG
from torch import nn

logger = logging.getLogger(__name__)

OPSET = 17
PARITY_TOLERANCE = 1e-4  # max abs error, fp32, waveform in [-1, 1]
SDR_FLOOR_DB = 1e-20


@dataclass(frozen=True, kw_only=True)
class ParityReport:
    max_abs_error: float
    batch: int
    segment_samples: int
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.max_abs_error <= self.tolerance

    def line(self, name: str) -> str:
        verdict = "ok" if self.passed else "FAILED"
        return (
            f"parity {name}: max abs error {self.max_abs_error:.3g} (tolerance "
            f"{self.tolerance:g}) on {self.batch} x {self.segment_samples} samples: {verdict}"
        )


def export_onnx(graph: nn.Module, path: Path, segment_samples: int) -> Path:
    """Write ``graph`` as ``path``: input ``mix`` (batch, 2, segment), output ``stems``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(1, 2, segment_samples)
    graph = graph.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about constant Python values
        torch.onnx.export(
            graph,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )
    onnx.checker.check_model(str(path))
    logger.info("exported %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return path


def open_session(path: Path, threads: int = 0) -> ort.InferenceSession:
    """The exported graph with the options it will be served with (the repository's session config)."""
    options = session_options(ONNXRUNTIME_CONFIG, threads)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def parity_signal(batch: int, segment_samples: int, seed: int = 0) -> np.ndarray:
    """A music-like stereo window: a few partials, a decaying click train and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(segment_samples) / 44100.0
    mix = np.zeros((batch, 2, segment_samples))
    for item in range(batch):
        for _ in range(6):
            freq = rng.uniform(55, 2000)
            mix[item] += rng.uniform(0.02, 0.1) * np.sin(2 * math.pi * freq * t + rng.uniform(0, 6))
        clicks = (np.arange(segment_samples) % int(rng.integers(8000, 20000))) == 0
        mix[item] += 0.3 * np.convolve(clicks, np.exp(-np.arange(2000) / 200.0))[:segment_samples]
        mix[item] += 0.02 * rng.standard_normal((2, segment_samples))
    return np.clip(mix, -1.0, 1.0).astype(np.float32)


def check_parity(
    path: Path,
    reference: Callable[[torch.Tensor], torch.Tensor],
    segment_samples: int,
    *,
    batch: int = 2,
    tolerance: float = PARITY_TOLERANCE,
    threads: int = 0,
    name: str = "model",
) -> ParityReport:
    """Max abs difference between the ONNX file and ``reference`` on full windows."""
    mix = parity_signal(batch, segment_samples)
    with torch.no_grad():
        expected = reference(torch.from_numpy(mix)).numpy()
    got = open_session(path, threads).run([OUTPUT_NAME], {INPUT_NAME: mix})[0]
    if got.shape != expected.shape:
        raise ExportError(f"{path.name}: output must be {expected.shape}, got {got.shape}")
    report = ParityReport(
        max_abs_error=float(np.abs(got - expected).max()),
        batch=batch,
        segment_samples=segment_samples,
        tolerance=tolerance,
    )
    logger.info(report.line(name))
    return report


def sdr_db(reference: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """SDR of ``estimate`` against ``reference`` per stem, (batch, stems, ...) arrays."""
    axes = tuple(range(2, reference.ndim))
    signal = np.sum(reference.astype(np.float64) ** 2, axis=axes)
    noise = np.sum((reference.astype(np.float64) - estimate) ** 2, axis=axes)
    return 10 * np.log10((signal + SDR_FLOOR_DB) / (noise + SDR_FLOOR_DB)).mean(axis=0)


# Node names follow module paths ("/encoder.0/conv/Conv", "/targets.1/lstm/LSTM"). The
# spectral front / back ends and the graphs' own top-level arithmetic (normalisation, the
# Wiener filter) keep fp32: sums of squares over 4096-point frames overflow fp16.
_FP32_SCOPE = re.compile(r"(/graphs\.\d+)?(/i?stft(/.*)?)?")


def keeps_fp32(node_name: str) -> bool:
    """True for nodes outside the networks' layers."""
    scope = node_name.rsplit("/", 1)[0] if node_name.startswith("/") else ""
    return _FP32_SCOPE.fullmatch(scope) is not None


def convert_fp16(source: Path, target: Path) -> Path:
    """fp16 for the networks' layers; STFT, ISTFT, normalisation and the Wiener filter stay
    fp32, as do ``mix`` and ``stems`` (the contract)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(source))
    keep = [n.name for n in model.graph.node if keeps_fp32(n.name)]
    half = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False, node_block_list=keep)
    drop_fp16_round_trips(half)
    onnx.save(half, str(target))
    return target


def _cast_to(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "to"), -1)


def drop_fp16_round_trips(model: onnx.ModelProto) -> int:
    """Remove the fp32 -> fp16 -> fp32 cast pairs the converter puts between two fp32 nodes.

    ``convert_float_to_float16`` stores every intermediate tensor as fp16 and casts around
    the blocked (fp32) nodes, so a value passed between two fp32 nodes still goes through
    fp16 and overflows there. Returns the number of round trips removed.
    """
    graph = model.graph
    producers = {output: node for node in graph.node for output in node.output}
    rename: dict[str, str] = {}
    for node in graph.node:
        if node.op_type != "Cast" or _cast_to(node) != onnx.TensorProto.FLOAT:
            continue
        source = producers.get(node.input[0])
        if source is not None and source.op_type == "Cast" and _cast_to(source) == onnx.TensorProto.FLOAT16:
            rename[node.output[0]] = source.input[0]
    graph_outputs = {output.name for output in graph.output}
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name in rename:
                node.input[index] = rename[name]
    while True:  # drop casts nothing reads any more
        used = {name for node in graph.node for name in node.input} | graph_outputs
        dead = [n for n in graph.node if n.op_type == "Cast" and not any(o in used for o in n.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    return len(rename)


def compare_fp16(fp32_path: Path, fp16_path: Path, segment_samples: int) -> np.ndarray:
    """SDR (dB) of the fp16 model's stems with the fp32 model's stems as reference."""
    mix = parity_signal(1, segment_samples, seed=1)
    reference = open_session(fp32_path).run([OUTPUT_NAME], {INPUT_NAME: mix})[0]
    try:
        estimate = open_session(fp16_path).run([OUTPUT_NAME], {INPUT_NAME: mix})[0]
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ExportError(
            f"{fp16_path.name}: the CPU execution provider cannot run this fp16 model ({exc}); "
            "build it on a GPU machine (--tensorrt or the CUDA provider)"
        ) from exc
    return sdr_db(reference, estimate)
