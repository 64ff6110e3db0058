"""The contract every inference backend fulfils; the pipeline and the service depend on it alone.

Every member a caller uses is declared here, so no caller probes a backend for what it
can do: a backend that has nothing to do for a member (a local session is always ready
and takes no deadline) implements it as the documented no-op.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

import numpy as np
from stemserve.core.model_config import ModelSpec


class Backend(Protocol):
    """Runs one model. ``infer`` maps ``(batch, 2, segment)`` float32 windows to
    ``(batch, nb_stems, 2, segment)`` float32 stems."""

    name: str  # "onnxruntime", "triton"
    device: str  # "cpu" or "gpu"
    spec: ModelSpec

    @property
    def max_batch_size(self) -> int:
        """Windows the pipeline hands over per ``infer`` call (>= 1)."""
        ...

    @property
    def checks_readiness(self) -> bool:
        """True when the backend can become unready after warm-up (a remote server)."""
        ...

    def infer(self, windows: np.ndarray) -> np.ndarray: ...

    def warm_up(self) -> None:
        """Run one window through the model, so the first song pays no start-up cost."""
        ...

    def ready(self) -> bool:
        """Whether the backend can serve now (for health checks)."""
        ...

    def deadline(self, seconds: float | None) -> AbstractContextManager[None]:
        """``infer`` calls made by this thread inside the block finish within ``seconds``
        from now (None: no deadline beyond the backend's own)."""
        ...

    def close(self) -> None:
        """Release sessions and connections; the backend is unusable afterwards."""
        ...
