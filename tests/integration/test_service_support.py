"""Shared pieces of the service tests (no tests here): settings on free ports and temp
folders, a server fixture, a backend the tests can hold mid-song, audio bytes."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile as sf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from stemserve.client import StemserveClient
from stemserve.core.settings import Settings
from stemserve.server.auth import hash_api_key
from stemserve.server.metrics import ServiceMetrics
from stemserve.server.models import ModelPool, local_backends

from tests.conftest import tone_mix
from tests.integration.background_server import BackgroundServer

SERVICE = "stemserve.v1.Separation"
KEYS = {"alice": "alice-secret-key", "bob": "bob-secret-key", "carol": "carol-secret-key"}


def wav_bytes(seconds: float = 1.0, rate: int = 44_100, seed: int = 0, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, tone_mix(int(seconds * rate), rate, seed=seed), rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def settings_for(tmp_path: Path, repo: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {"model_repository": repo, "host": "127.0.0.1", "port": 0, "metrics_port": 0,
                                 "cache_dir": tmp_path / "cache", "intra_op_threads": 1}
    values.update(overrides)
    return Settings.load(values, environ={})


def write_keys(path: Path) -> Path:
    path.write_text("# test keys\n" + "".join(f"{n} {hash_api_key(k)}\n" for n, k in KEYS.items()))
    return path


class GatedBackend:
    """Lets ``free_windows`` windows through, then holds every ``infer`` until ``gate``
    opens; ``entered`` tells that a song reached the gate."""

    def __init__(self, backend, gate: threading.Event, entered: threading.Event, free_windows: int = 0) -> None:
        self._backend, self.gate, self.entered = backend, gate, entered
        self.name, self.device, self.spec = backend.name, backend.device, backend.spec
        self.max_batch_size = backend.max_batch_size
        self.free_windows = free_windows

    def infer(self, windows: np.ndarray) -> np.ndarray:
        if self.free_windows >= len(windows):
            self.free_windows -= len(windows)
            return self._backend.infer(windows)
        self.entered.set()
        if not self.gate.wait(30):
            raise TimeoutError("the test never opened the gate")
        return self._backend.infer(windows)

    def warm_up(self) -> None:
        self._backend.warm_up()

    checks_readiness = False

    def ready(self) -> bool:
        return True

    def deadline(self, seconds):
        return self._backend.deadline(seconds)

    def close(self) -> None:
        self._backend.close()


class Gate:
    def __init__(self, free_windows: int = 0) -> None:
        self.open, self.entered = threading.Event(), threading.Event()
        self.free_windows = free_windows

    def pool(self, repo: Path, names: list[str], metrics: ServiceMetrics) -> ModelPool:
        make = local_backends(repo, intra_op_threads=1)
        return ModelPool(
            names, lambda name: GatedBackend(make(name), self.open, self.entered, self.free_windows), metrics
        )


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def sample(server: BackgroundServer, name: str, **labels: str) -> float:
    value = server.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


@pytest.fixture
def start_server(tmp_path, repo):
    """``start_server(**settings) -> BackgroundServer``; ``gate=Gate()`` holds songs mid-way,
    ``pool=`` (with its ``metrics=``) serves other backends."""
    running: list[BackgroundServer] = []

    def start(*, gate: Gate | None = None, warm: bool = True, models: tuple[str, ...] = ("split5", "split4"),
              pool: ModelPool | None = None, metrics: ServiceMetrics | None = None,
              **overrides: object) -> BackgroundServer:
        settings = settings_for(tmp_path, repo, models=",".join(models), **overrides)
        metrics = ServiceMetrics() if metrics is None else metrics
        if gate is not None:
            pool = gate.pool(repo, list(models), metrics)
        server = BackgroundServer(settings, pool=pool, metrics=metrics, warm=warm).start()
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop(grace_s=0)


def health_of(port: int, service: str = "") -> int:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service)).status


def client_for(server: BackgroundServer, key: str | None = None, **kwargs) -> StemserveClient:
    return StemserveClient(f"127.0.0.1:{server.port}", api_key=KEYS[key] if key else None, **kwargs)
