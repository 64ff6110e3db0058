"""The python-backend model of the CPU Triton variant, with Triton's utility module faked.

``triton_python_backend_utils`` exists only inside a Triton server; a stand-in with the same
three calls lets the batching logic (concatenate requests, run once, split) be checked here.
"""

from __future__ import annotations

import importlib
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from export.onnx_export import export_onnx


class _Tensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        self.name, self.array = name, array

    def as_numpy(self) -> np.ndarray:
        return self.array


class _Response:
    def __init__(self, output_tensors: list[_Tensor]) -> None:
        self.output_tensors = output_tensors


class _Request:
    def __init__(self, mix: np.ndarray) -> None:
        self.inputs = {"mix": _Tensor("mix", mix)}


class _Scale(torch.nn.Module):
    """mix -> stems: stem k is (k + 1) / 10 of the mix."""

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        return torch.stack([mix * (k + 1) / 10 for k in range(3)], dim=1)


@pytest.fixture
def python_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    utils = types.ModuleType("triton_python_backend_utils")
    utils.Tensor = _Tensor
    utils.InferenceResponse = _Response
    utils.get_input_tensor_by_name = lambda request, name: request.inputs[name]
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", utils)
    module = importlib.import_module("export.triton_python_model")
    monkeypatch.delitem(sys.modules, "export.triton_python_model")
    export_onnx(_Scale(), tmp_path / "1" / "model.onnx", 256)
    # Triton hands the model its config.pbtxt as JSON; parameters map to {"string_value": ...}
    config = {"parameters": {"onnxruntime_session_config": {"string_value": "session.disable_prepacking=1"}}}
    model = module.TritonPythonModel()
    model.initialize({"model_config": json.dumps(config), "model_repository": str(tmp_path), "model_version": "1"})
    return model


def test_requests_are_run_as_one_batch_and_split_back(python_model) -> None:
    rng = np.random.default_rng(0)
    mixes = [rng.standard_normal((size, 2, 256)).astype(np.float32) for size in (1, 3, 2)]
    responses = python_model.execute([_Request(mix) for mix in mixes])
    assert len(responses) == 3
    for mix, response in zip(mixes, responses):
        stems = response.output_tensors[0].as_numpy()
        assert stems.shape == (len(mix), 3, 2, 256)
        np.testing.assert_allclose(stems[:, 2], mix * 0.3, rtol=1e-6)
        np.testing.assert_allclose(stems[:, 0], mix * 0.1, rtol=1e-6)
