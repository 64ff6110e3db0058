"""In-process inference with ONNX Runtime: one session per model, created once, reused."""

from __future__ import annotations

import logging
import threading
from contextlib import AbstractContextManager, nullcontext

import numpy as np
import onnxruntime as ort
from stemserve.backends.session import session_options
from stemserve.core.errors import ModelConfigError
from stemserve.core.model_config import INPUT_NAME, OUTPUT_NAME, ModelEntry

log = logging.getLogger(__name__)


class LocalBackend:
    """``batch_size``: windows per session run. On a CPU one window at a time is as fast
    as larger batches (ONNX Runtime already spreads a window over every core) at a
    fraction of the memory; the model's ``max_batch_size`` is for Triton's batcher."""

    name = "onnxruntime"

    def __init__(
        self, entry: ModelEntry, *, intra_op_threads: int = 0, batch_size: int = 1, version: str = "1"
    ) -> None:
        if batch_size < 1:
            raise ModelConfigError(f"batch_size must be >= 1, not {batch_size}")
        self.spec = entry.spec
        self.batch_size = batch_size
        model_file = entry.model_file(version)
        if not model_file.is_file():
            raise ModelConfigError(f"model {self.spec.name!r}: expected {model_file} to exist")
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
        try:
            self._session = ort.InferenceSession(
                str(model_file), sess_options=session_options(self.spec.onnxruntime_config, intra_op_threads),
                providers=providers,
            )
        except Exception as exc:  # onnxruntime's own errors: a bad file or session setting in the model's folder
            raise ModelConfigError(f"model {self.spec.name!r}: ONNX Runtime cannot load {model_file}: {exc}") from exc
        self.device = "gpu" if self._session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        self._check_contract()
        self._lock = threading.Lock()  # one run at a time: the session already uses every core
        log.info("loaded model %s (%s) on %s", self.spec.name, self.spec.model_version, self.device)

    def _check_contract(self) -> None:
        inputs = {i.name: i.shape for i in self._session.get_inputs()}
        outputs = {o.name: o.shape for o in self._session.get_outputs()}
        if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
            raise ModelConfigError(
                f"model {self.spec.name!r}: ONNX must have input {INPUT_NAME!r} and output {OUTPUT_NAME!r}, "
                f"got inputs {list(inputs)} and outputs {list(outputs)}"
            )
        stems_dim = outputs[OUTPUT_NAME][1]
        if isinstance(stems_dim, int) and stems_dim != len(self.spec.stems):
            raise ModelConfigError(
                f"model {self.spec.name!r}: config.pbtxt names {len(self.spec.stems)} stems, "
                f"the ONNX graph outputs {stems_dim}"
            )

    @property
    def max_batch_size(self) -> int:
        return self.batch_size

    def infer(self, windows: np.ndarray) -> np.ndarray:
        # (batch, channels, segment) -> (batch, stems, channels, segment)
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        outputs = []
        with self._lock:
            for first in range(0, len(windows), self.max_batch_size):
                batch = windows[first : first + self.max_batch_size]
                outputs.append(self._session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0])
        return outputs[0] if len(outputs) == 1 else np.concatenate(outputs)

    def warm_up(self) -> None:
        self.infer(np.zeros((1, 2, self.spec.segment_samples), dtype=np.float32))

    checks_readiness = False  # a session in this process stays ready

    def ready(self) -> bool:
        return True

    def deadline(self, seconds: float | None) -> AbstractContextManager[None]:
        """A local run cannot be interrupted part-way: the caller's deadline is checked between windows."""
        return nullcontext()

    def close(self) -> None:
        self._session = None  # type: ignore[assignment]
