"""Triton python-backend model: runs the ONNX file beside it in ONNX Runtime.

Copied as ``<model>/1/model.py`` by ``python -m export ... --backend python`` for the CPU
Triton server (whose bundled build has no onnxruntime backend). Triton's dynamic batcher
still forms the batches: ``execute`` receives several requests, which are concatenated on
the batch axis, run as one call and split again. The session settings come from the
``onnxruntime_session_config`` parameter of config.pbtxt, like the in-process backend.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils  # provided by the Triton python backend

INPUT_NAME = "mix"
OUTPUT_NAME = "stems"
ONNX_NAME = "model.onnx"


def _session_entries(config: dict) -> dict[str, str]:
    text = config.get("parameters", {}).get("onnxruntime_session_config", {}).get("string_value", "")
    pairs = [item.split("=", 1) for item in text.split(";") if "=" in item]
    return {key.strip(): value.strip() for key, value in pairs}


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        options = ort.SessionOptions()
        options.enable_mem_pattern = False
        for key, value in _session_entries(config).items():
            options.add_session_config_entry(key, value)
        model_path = Path(args["model_repository"]) / args["model_version"] / ONNX_NAME
        self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])

    def execute(self, requests: list) -> list:
        mixes = [pb_utils.get_input_tensor_by_name(r, INPUT_NAME).as_numpy() for r in requests]
        sizes = [mix.shape[0] for mix in mixes]
        stems = self.session.run([OUTPUT_NAME], {INPUT_NAME: np.concatenate(mixes, axis=0)})[0]
        responses = []
        start = 0
        for size in sizes:
            tensor = pb_utils.Tensor(OUTPUT_NAME, np.ascontiguousarray(stems[start : start + size]))
            responses.append(pb_utils.InferenceResponse(output_tensors=[tensor]))
            start += size
        return responses

    def finalize(self) -> None:
        self.session = None
