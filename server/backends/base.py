"""The interface every inference backend implements."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from stemserve.model_config import ModelSpec


class Backend(Protocol):
    """Runs one model. ``infer`` maps ``(batch, 2, segment)`` float32 windows to
    ``(batch, nb_stems, 2, segment)`` float32 stems."""

    name: str  # "onnxruntime", "triton"
    device: str  # "cpu" or "gpu"
    spec: ModelSpec

    def infer(self, windows: np.ndarray) -> np.ndarray: ...
