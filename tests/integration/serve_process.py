"""Run ``stemserve serve`` as a child process on loopback and wait until it answers: for
tests and benchmarks that need a real server process (to kill it, or to measure it)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from stemserve.server.triton.process import free_ports


def _serving(target: str) -> bool:
    with grpc.insecure_channel(target) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
        except grpc.RpcError:
            return False
    return answer.status == health_pb2.HealthCheckResponse.SERVING


def free_port() -> int:
    return free_ports(1)[0]


def start_serve_process(
    repository: Path,
    port: int,
    serve_args: Sequence[str] = (),
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 120.0,
) -> subprocess.Popen:
    """Start ``stemserve serve`` on ``127.0.0.1:port`` and return once its health check
    says SERVING (models loaded and warm)."""
    command = [
        sys.executable,
        "-m",
        "stemserve.cli",
        "--model-repository",
        str(repository),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--metrics-port",
        "0",
        *serve_args,
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=None if env is None else dict(env)
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"stemserve serve exited with code {process.returncode} before answering")
        if _serving(f"127.0.0.1:{port}"):
            return process
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"stemserve serve did not answer on port {port} within {timeout_s:g} s")


@contextmanager
def serve_process(repository: Path, port: int, serve_args: Sequence[str] = (), **kwargs) -> Iterator[subprocess.Popen]:
    """:func:`start_serve_process`, stopped gracefully (SIGTERM) on exit, killed if it hangs."""
    process = start_serve_process(repository, port, serve_args, **kwargs)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
