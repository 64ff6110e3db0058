"""The TensorRT build's wiring (profile, precision, failures), against a recording stand-in.

The real engine build needs an NVIDIA GPU; the stand-in records what the builder is asked
for, so the optimization profile and flags are checked on every machine.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
from stemserve.export.errors import ExportError, TensorRTUnavailableError
from stemserve.export.tensorrt_build import EngineProfile, build_engine


class _Recorder:
    def __init__(self, parses: bool = True, builds: bool = True) -> None:
        self.parses, self.builds = parses, builds
        self.shapes: dict[str, tuple] = {}
        self.flags: list[str] = []
        self.profiles = 0


def _fake_tensorrt(recorder: _Recorder) -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.Logger = type("Logger", (), {"WARNING": 1, "__init__": lambda self, level: None})
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="workspace")
    trt.BuilderFlag = types.SimpleNamespace(FP16="fp16")

    class Profile:
        def set_shape(self, name: str, low: tuple, opt: tuple, high: tuple) -> None:
            recorder.shapes[name] = (low, opt, high)

    class Config:
        def set_memory_pool_limit(self, pool: str, size: int) -> None:
            pass

        def set_flag(self, flag: str) -> None:
            recorder.flags.append(flag)

        def add_optimization_profile(self, profile: Profile) -> None:
            recorder.profiles += 1

    class Builder:
        def __init__(self, logger: object) -> None:
            pass

        def create_network(self, flags: int) -> object:
            return object()

        def create_builder_config(self) -> Config:
            return Config()

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network: object, config: Config) -> bytes | None:
            return b"engine" if recorder.builds else None

    class OnnxParser:
        num_errors = 1

        def __init__(self, network: object, logger: object) -> None:
            pass

        def parse_from_file(self, path: str) -> bool:
            return recorder.parses

        def get_error(self, index: int) -> str:
            return "unsupported operator"

    trt.Builder, trt.OnnxParser = Builder, OnnxParser
    return trt


def test_profile_covers_the_batch_range_at_the_fixed_segment(tmp_path: Path, monkeypatch) -> None:
    recorder = _Recorder()
    monkeypatch.setitem(sys.modules, "tensorrt", _fake_tensorrt(recorder))
    plan = build_engine(
        tmp_path / "model.onnx",
        tmp_path / "1" / "model.plan",
        segment_samples=343980,
        profile=EngineProfile(opt_batch=4, max_batch=8, fp16=True),
    )
    assert plan.read_bytes() == b"engine"
    assert recorder.shapes["mix"] == ((1, 2, 343980), (4, 2, 343980), (8, 2, 343980))
    assert recorder.flags == ["fp16"] and recorder.profiles == 1


@pytest.mark.parametrize("parses,builds,message", [(False, True, "cannot parse"), (True, False, "could not build")])
def test_failures_are_export_errors(tmp_path: Path, monkeypatch, parses: bool, builds: bool, message: str) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", _fake_tensorrt(_Recorder(parses, builds)))
    with pytest.raises(ExportError, match=message):
        build_engine(tmp_path / "m.onnx", tmp_path / "m.plan", segment_samples=1024, profile=EngineProfile())
    assert not (tmp_path / "m.plan").exists()


def test_missing_tensorrt_and_bad_profiles_are_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(TensorRTUnavailableError, match="not installed here"):
        build_engine(tmp_path / "m.onnx", tmp_path / "m.plan", segment_samples=1024, profile=EngineProfile())
    with pytest.raises(ValueError, match="1 <= min <= opt <= max"):
        EngineProfile(opt_batch=16, max_batch=8)
