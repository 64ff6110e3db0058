"""Tiny ONNX models for pipeline tests: each stem is the mix times a fixed gain.

They follow the model contract (mix [batch, 2, segment] -> stems [batch, stems, 2,
segment]) so they exercise chunking, overlap-add, presets and encoding; they are not
separators."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from stemserve.core.model_config import ModelSpec, file_sha256, render_config


def mask_model(gains: list[float], segment: int, *, channel_gains: tuple[float, float] = (1.0, 1.0)) -> onnx.ModelProto:
    """stems[b, s, c, t] = mix[b, c, t] * gains[s] * channel_gains[c]"""
    masks = np.asarray(gains, np.float32)[:, None, None] * np.asarray(channel_gains, np.float32)[None, :, None]
    nodes = [
        helper.make_node("Unsqueeze", ["mix", "axes"], ["mix_4d"]),  # (batch, 1, 2, segment)
        helper.make_node("Mul", ["mix_4d", "masks"], ["stems"]),  # (batch, stems, 2, segment)
    ]
    graph = helper.make_graph(
        nodes,
        "mask",
        [helper.make_tensor_value_info("mix", TensorProto.FLOAT, ["batch", 2, segment])],
        [helper.make_tensor_value_info("stems", TensorProto.FLOAT, ["batch", len(gains), 2, segment])],
        initializer=[
            numpy_helper.from_array(np.array([1], np.int64), "axes"),
            numpy_helper.from_array(masks[None].astype(np.float32), "masks"),  # (1, stems, 2, 1)
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def write_mask_model(
    repository: Path,
    name: str,
    gains: list[float],
    *,
    stems: tuple[str, ...] = ("vocals", "drums", "bass", "piano", "other"),
    sample_rate_hz: int = 44_100,
    segment: int = 4_096,
    overlap: float = 0.25,
    max_batch_size: int = 4,
    channel_gains: tuple[float, float] = (1.0, 1.0),
) -> ModelSpec:
    folder = Path(repository) / name
    (folder / "1").mkdir(parents=True, exist_ok=True)
    onnx_path = folder / "1" / "model.onnx"
    onnx.save(mask_model(gains, segment, channel_gains=channel_gains), onnx_path)
    spec = ModelSpec(
        name=name,
        stems=stems,
        sample_rate_hz=sample_rate_hz,
        segment_samples=segment,
        default_overlap=overlap,
        model_version=file_sha256(onnx_path)[:12],
        architecture="test-mask",
        license="test fixture",
        max_batch_size=max_batch_size,
    )
    (folder / "config.pbtxt").write_text(render_config(spec))
    return spec
