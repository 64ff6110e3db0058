"""Shared pieces of the Triton tests: a fixture repository, a Triton per module, a song.

Triton comes from the nvidia-pytriton wheel (``server/triton/requirements-install.sh``);
when it cannot be had these tests fail with the reason, they are not skipped.
"""

from __future__ import annotations

import io
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from stemserve.server.triton.process import TritonConfig, TritonProcess
from stemserve.server.triton.repository import CpuVariantOptions

from tests.conftest import tone_mix
from tests.model_fixtures import write_mask_model

SAMPLE_RATE_HZ = 44_100


def write_repository(root: Path) -> Path:
    write_mask_model(root, "split5", [0.4, 0.25, 0.15, 0.1, 0.1])
    write_mask_model(root, "split4", [0.4, 0.3, 0.2, 0.1], stems=("vocals", "drums", "bass", "other"))
    return root


def triton_config(root: Path, **variant: object) -> TritonConfig:
    return TritonConfig(
        model_repository=root / "models",
        build_dir=root / "build",
        host="127.0.0.1",
        grpc_port=0,
        http_port=0,
        metrics_port=0,
        exit_timeout_s=2,
        startup_timeout_s=60.0,
        variant=CpuVariantOptions(intra_op_threads=1, **variant),  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonProcess]:
    """One Triton for a test module, on free ports; stopped (with its stubs) at the end."""
    root = tmp_path_factory.mktemp("triton")
    write_repository(root / "models")
    process = TritonProcess(triton_config(root))
    try:
        process.start()
        yield process
    finally:
        process.stop(grace_s=5.0)


def song(seconds: float, seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, tone_mix(int(seconds * SAMPLE_RATE_HZ), SAMPLE_RATE_HZ, seed=seed), SAMPLE_RATE_HZ, format="WAV")
    return buffer.getvalue()


def read_stems(result) -> dict[str, np.ndarray]:
    return {name: sf.read(path, dtype="float32")[0] for name, path in result.paths.items()}


def model_counters(metrics_url: str, model: str) -> dict[str, float]:
    """Triton's per-model counters, e.g. ``nv_inference_count`` (windows) and ``nv_inference_exec_count``."""
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    pattern = re.compile(rf'^(nv_inference_\w+)\{{model="{re.escape(model)}",version="1"\}} (\S+)$', re.MULTILINE)
    return {name: float(value) for name, value in pattern.findall(text)}
