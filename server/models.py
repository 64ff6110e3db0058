"""The models a server serves: loaded once, warmed up, kept in memory between requests,
in process (ONNX Runtime) or on a Triton server.

Each backend is wrapped so that every ``infer`` call is timed into the per-window
inference histogram. Until :meth:`ModelPool.load_and_warm` has finished, ``get`` answers
BackendUnavailableError (UNAVAILABLE) and health says NOT_SERVING; a remote backend's
readiness is checked again while serving (:meth:`ModelPool.backends_ready`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager

import numpy as np
from stemserve.backends.base import Backend
from stemserve.core.errors import BackendUnavailableError, ModelNotFoundError
from stemserve.core.model_config import ModelSpec, Repository, load_model, require_models
from stemserve.core.settings import Settings
from stemserve.server.metrics import ServiceMetrics

log = logging.getLogger(__name__)

BackendFactory = Callable[[str], Backend]


class TimedBackend:
    """A backend whose ``infer`` calls are observed as per-window latencies; every other
    member of the contract is the wrapped backend's."""

    def __init__(self, backend: Backend, metrics: ServiceMetrics) -> None:
        self._backend, self._metrics = backend, metrics
        self.name, self.device, self.spec = backend.name, backend.device, backend.spec

    @property
    def max_batch_size(self) -> int:
        return self._backend.max_batch_size

    @property
    def checks_readiness(self) -> bool:
        return self._backend.checks_readiness

    def infer(self, windows: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        outputs = self._backend.infer(windows)
        self._metrics.observe_inference(self.name, time.perf_counter() - started, len(windows))
        return outputs

    def warm_up(self) -> None:
        self._backend.warm_up()

    def ready(self) -> bool:
        return self._backend.ready()

    def close(self) -> None:
        self._backend.close()

    def deadline(self, seconds: float | None) -> AbstractContextManager[None]:
        return self._backend.deadline(seconds)


def local_backends(repository: Repository, intra_op_threads: int = 0) -> BackendFactory:
    """Load models from a repository into in-process ONNX Runtime sessions."""
    from stemserve.backends.local import LocalBackend

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
        cls, repository: Repository, names: list[str], metrics: ServiceMetrics, *, intra_op_threads: int = 0
    ) -> ModelPool:
        """``names`` empty: every model of the repository."""
        available = require_models(repository)
        unknown = [n for n in names if n not in available]
        if unknown:
            raise ModelNotFoundError(f"models to serve must be among {available}, got unknown {unknown}")
        return cls(names or available, local_backends(repository, intra_op_threads), metrics)

    @classmethod
    def from_settings(cls, settings: Settings, metrics: ServiceMetrics) -> ModelPool:
        """The local repository's models on ONNX Runtime, or on ``settings.triton_url``."""
        if not settings.triton_url:
            return cls.from_repository(settings.model_repository, settings.model_names, metrics,
                                       intra_op_threads=settings.intra_op_threads)
        names = settings.model_names or require_models(settings.model_repository)
        from stemserve.backends.fleet import triton_fleet_backends  # one server, or a fleet of several

        return cls(names, triton_fleet_backends(settings.triton_url), metrics)

    @property
    def ready(self) -> bool:
        return len(self._backends) == len(self.names)

    @property
    def checks_readiness(self) -> bool:
        return any(backend.checks_readiness for backend in self._backends.values())

    def close(self) -> None:
        """Release the backends (connections of remote ones); the pool is then unready."""
        backends, self._backends = self._backends, {}
        for backend in backends.values():
            backend.close()

    def backends_ready(self) -> bool:
        """Blocking: whether every loaded backend answers that it is ready."""
        return self.ready and all(backend.ready() for backend in self._backends.values())

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
