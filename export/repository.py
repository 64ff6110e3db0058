"""Write one model's folder of the Triton model repository.

``<repository>/<name>/config.pbtxt`` and ``<repository>/<name>/1/model.onnx`` (or
``model.plan``). The metadata is rendered by :mod:`stemserve.core.model_config` from one
``ModelSpec``; this module adds what the export needs around it: the ``model_warmup``
block and the TensorRT platform. The CPU variant for the Triton server that runs here
(python backend, the same ONNX file in ONNX Runtime) is generated from this folder by
``server/triton/repository.py``, like every model's.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Literal

from stemserve.core.model_config import (
    CONFIG_NAME,
    INPUT_NAME,
    ONNX_NAME,
    ModelSpec,
    file_sha256,
    render_config,
)
from stemserve.export.architectures import Architecture

logger = logging.getLogger(__name__)

VERSION = "1"
PLAN_NAME = "model.plan"
VERSION_HASH_CHARS = 12
# ONNX Runtime session settings carried in config.pbtxt: without prepacking a session keeps
# one copy of the weights instead of two.
ONNXRUNTIME_CONFIG = {"session.disable_prepacking": "1"}

Backend = Literal["onnxruntime", "tensorrt"]
_PLATFORM = {"onnxruntime": "onnxruntime_onnx", "tensorrt": "tensorrt_plan"}


def model_spec(
    *,
    name: str,
    architecture: Architecture,
    stems: tuple[str, ...],
    segment_samples: int,
    model_file: Path,
    backend: Backend = "onnxruntime",
    max_batch_size: int = 8,
) -> ModelSpec:
    """The served model's metadata; its version is the hash of the model file."""
    return ModelSpec(
        name=name,
        stems=stems,
        sample_rate_hz=architecture.sample_rate_hz,
        segment_samples=segment_samples,
        default_overlap=architecture.default_overlap,
        model_version=file_sha256(model_file)[:VERSION_HASH_CHARS],
        architecture=architecture.name,
        license=architecture.license,
        max_batch_size=max_batch_size,
        platform=_PLATFORM[backend],
        onnxruntime_config=dict(ONNXRUNTIME_CONFIG) if backend != "tensorrt" else {},
    )


def warmup_block(spec: ModelSpec) -> str:
    """Triton ``model_warmup``: one random window at batch 1 before the model is ready."""
    return (
        "model_warmup [\n"
        "  {\n"
        '    name: "random_window"\n'
        "    batch_size: 1\n"
        f'    inputs {{ key: "{INPUT_NAME}" value: {{ data_type: TYPE_FP32 '
        f"dims: [ 2, {spec.segment_samples} ] random_data: true }} }}\n"
        "  }\n"
        "]\n"
    )


def render_model_config(spec: ModelSpec, backend: Backend = "onnxruntime") -> str:
    """config.pbtxt for ``backend``; every variant carries the same parameters."""
    kind = "KIND_GPU" if backend == "tensorrt" else "KIND_CPU"
    return render_config(spec, kind=kind) + warmup_block(spec)


def _install(source: Path, target: Path) -> None:
    """Move (or copy) ``source`` to ``target`` atomically within the target folder."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    shutil.copyfile(source, temporary)
    os.replace(temporary, target)


def write_model_folder(
    repository: Path,
    spec: ModelSpec,
    model_file: Path,
    backend: Backend = "onnxruntime",
    extra_config: str = "",
) -> Path:
    """Install the model file and its config.pbtxt; returns the model's folder."""
    folder = Path(repository) / spec.name
    version_dir = folder / VERSION
    file_name = PLAN_NAME if backend == "tensorrt" else ONNX_NAME
    for stale in (ONNX_NAME, PLAN_NAME):  # the file of another backend
        if stale != file_name and (version_dir / stale).exists():
            (version_dir / stale).unlink()
    _install(model_file, version_dir / file_name)
    config = render_model_config(spec, backend) + extra_config
    temporary = folder / (CONFIG_NAME + ".tmp")
    temporary.write_text(config)
    os.replace(temporary, folder / CONFIG_NAME)
    logger.info("wrote %s (version %s, %s)", folder, spec.model_version, backend)
    return folder
