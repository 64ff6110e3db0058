"""Triton python-backend model: runs a stemserve model's ``model.onnx`` in ONNX Runtime.

Copied into each model's version folder of the generated CPU repository. It runs inside
Triton's python-backend interpreter, so it imports nothing from stemserve; everything it
needs comes from the model's ``config.pbtxt`` (passed in as JSON by Triton).

With dynamic batching Triton hands ``execute`` several requests at once; they are run as
one ONNX batch and the outputs are split back per request.
"""

import importlib.util
import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

INPUT_NAME = "mix"
OUTPUT_NAME = "stems"
ONNX_NAME = "model.onnx"
SESSION_MODULE = "session.py"  # stemserve.backends.session


def _parameters(config):
    return {key: value.get("string_value", "") for key, value in config.get("parameters", {}).items()}


def _load_session_options():
    """stemserve's one definition of the session options, copied beside this file."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), SESSION_MODULE)
    spec = importlib.util.spec_from_file_location("stemserve_session", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.session_options


def _config_entries(parameters):
    pairs = [item.split("=", 1) for item in parameters.get("onnxruntime_session_config", "").split(";") if item.strip()]
    return {key.strip(): value.strip() for key, value in pairs}


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        parameters = _parameters(config)
        model_dir = os.path.join(args["model_repository"], args["model_version"])
        self.name = config["name"]
        self.session = ort.InferenceSession(
            os.path.join(model_dir, ONNX_NAME),
            sess_options=_load_session_options()(
                _config_entries(parameters), int(parameters.get("intra_op_threads", "0") or 0)
            ),
            providers=["CPUExecutionProvider"],
        )
        dims = [int(d) for d in config["input"][0]["dims"]]  # (channels, segment)
        max_batch = max(int(config.get("max_batch_size", 0)), 1)
        # one warm-up at the largest batch: the arena grows once, before the first request
        self.session.run([OUTPUT_NAME], {INPUT_NAME: np.zeros([max_batch, *dims], np.float32)})
        pb_utils.Logger.log_info(f"{self.name}: ONNX Runtime session ready, warmed up at batch {max_batch}")

    def execute(self, requests):
        arrays = [pb_utils.get_input_tensor_by_name(r, INPUT_NAME).as_numpy() for r in requests]
        sizes = [len(a) for a in arrays]  # windows per request
        batch = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)  # (batch, channels, segment)
        try:
            stems = self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(batch, np.float32)})[0]
        except Exception as exc:  # noqa: BLE001 - any failure becomes every request's error response
            error = pb_utils.TritonError(f"{self.name}: ONNX Runtime failed on batch {batch.shape}: {exc}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        responses = []
        first = 0
        for size in sizes:
            out = stems[first : first + size]  # (size, stems, channels, segment)
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(OUTPUT_NAME, out)]))
            first += size
        return responses

    def finalize(self):
        self.session = None
