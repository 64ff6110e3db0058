"""Build a TensorRT engine (``model.plan``) from an exported ONNX file.

The engine keeps the model contract: FP32 ``mix`` in, FP32 ``stems`` out, a dynamic
batch axis described by one optimization profile (min / opt / max batch) and the fixed
segment. ``tensorrt`` is an optional dependency (extra ``gpu``); where it is missing the
build stops with :class:`TensorRTUnavailableError` before any work is done.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from stemserve.core.model_config import INPUT_NAME
from stemserve.export.errors import ExportError, TensorRTUnavailableError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class EngineProfile:
    """Batch sizes of the optimization profile, and the builder's workspace."""

    min_batch: int = 1
    opt_batch: int = 4
    max_batch: int = 8
    workspace_bytes: int = 4 << 30
    fp16: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ValueError(
                "batch sizes must satisfy 1 <= min <= opt <= max, got "
                f"{self.min_batch}, {self.opt_batch}, {self.max_batch}"
            )


def import_tensorrt():  # returns the tensorrt module (no type stubs)
    try:
        import tensorrt  # type: ignore[import-not-found]
    except ImportError as exc:
        raise TensorRTUnavailableError(
            "--tensorrt needs the tensorrt package (pip install 'stemserve[gpu]' on a machine "
            f"with an NVIDIA GPU); it is not installed here: {exc}"
        ) from exc
    return tensorrt


def build_engine(onnx_path: Path, plan_path: Path, *, segment_samples: int, profile: EngineProfile) -> Path:
    """Parse ``onnx_path``, build with ``profile`` and write the serialized engine."""
    trt = import_tensorrt()
    trt_logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(trt_logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise ExportError(f"TensorRT cannot parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, profile.workspace_bytes)
    if profile.fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    trt_profile = builder.create_optimization_profile()
    trt_profile.set_shape(
        INPUT_NAME,
        (profile.min_batch, 2, segment_samples),
        (profile.opt_batch, 2, segment_samples),
        (profile.max_batch, 2, segment_samples),
    )
    config.add_optimization_profile(trt_profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"TensorRT could not build an engine from {onnx_path.name}")
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    plan_path.write_bytes(bytes(serialized))
    logger.info("built %s (%.1f MB)", plan_path, plan_path.stat().st_size / 1e6)
    return plan_path
