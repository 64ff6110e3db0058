"""The models a server serves: loaded once, warmed up, kept in memory between requests.

Each backend is wrapped so that every ``infer`` call is timed into the per-window
inference histogram. Until :meth:`ModelPool.load_and_warm` has finished, ``get`` answers
BackendUnavailableError (UNAVAILABLE) and health says NOT_SERVING.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from server.backends.base import Backend
from server.metrics import ServiceMetrics
from stemserve.errors import BackendUnavailableError, ModelNotFoundError
from stemserve.model_config import ModelSpec, list_model_names, load_model

log = logging.getLogger(__name__)

BackendFactory = Callable[[str], Backend]


class TimedBackend:
    """A backend whose ``infer`` calls are observed as per-window latencies."""

    def __init__(self, backend: Backend, metrics: ServiceMetrics) -> None:
        self._backend, self._metrics = backend, metrics
        self.name, self.device, self.spec = backend.name, backend.device, backend.spec

    @property
    def max_batch_size(self) -> int:
        return max(int(getattr(self._backend, "max_batch_size", 1)), 1)

    def infer(self, windows: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        outputs = self._backend.infer(windows)
        self._metrics.observe_inference(self.name, time.perf_counter() - started, len(windows))
        return outputs

    def warm_up(self) -> None:
        warm_up = getattr(self._backend, "warm_up", None)
        if warm_up is not None:
            warm_up()


def local_backends(repository: Path, intra_op_threads: int = 0) -> BackendFactory:
    """Load models from a repository into in-process ONNX Runtime sessions."""
    from server.backends.local import LocalBackend

    def make(name: str) -> Backend:
        return LocalBackend(load_model(repository, name), intra_op_threads=intra_op_threads)

    return make


class ModelPool:
    def __init__(self, names: list[str], factory: BackendFactory, metrics: ServiceMetrics) -> None:
        if not names:
            raise ModelNotFoundError("expected at least one model to serve, got none")
        self.names = list(names)
        self._factory, self._metrics = factory, metrics
        self._backends: dict[str, TimedBackend] = {}

    @classmethod
    def from_repository(
        cls, repository: Path, names: list[str], metrics: ServiceMetrics, *, intra_op_threads: int = 0
    ) -> ModelPool:
        """``names`` empty: every model of the repository."""
        available = list_model_names(repository)
        if not available:
            raise ModelNotFoundError(f"expected models (<name>/config.pbtxt) in {repository}, found none")
        unknown = [n for n in names if n not in available]
        if unknown:
            raise ModelNotFoundError(f"models to serve must be among {available}, got unknown {unknown}")
        return cls(names or available, local_backends(repository, intra_op_threads), metrics)

    @property
    def ready(self) -> bool:
        return len(self._backends) == len(self.names)

    def load_and_warm(self) -> None:
        """Blocking: load every model and run one window through it."""
        loaded: dict[str, TimedBackend] = {}
        for name in self.names:
            started = time.perf_counter()
            backend = TimedBackend(self._factory(name), self._metrics)
            backend.warm_up()
            loaded[name] = backend
            log.info("model %s loaded and warm in %.2f s", name, time.perf_counter() - started)
        self._backends = loaded

    def get(self, name: str) -> TimedBackend:
        if name not in self.names:
            raise ModelNotFoundError(f"model must be one of {self.names}, not {name!r}")
        backend = self._backends.get(name)
        if backend is None:
            raise BackendUnavailableError(
                f"model {name!r} is still loading; expected the server to be ready (health SERVING), retry shortly"
            )
        return backend

    def specs(self) -> Mapping[str, tuple[ModelSpec, str]]:
        """name -> (spec, device) of the loaded models."""
        return {name: (b.spec, b.device) for name, b in self._backends.items()}
