"""Start, watch and stop a ``tritonserver`` process on the CPU variant of a repository.

``TritonProcess`` is a context manager: it generates the CPU variant, starts Triton on
the configured ports (0: a free one), waits until it is ready and stops it on exit, with
its python-backend stubs (the process gets its own process group). ``run`` is what
``stemserve triton`` calls: the same, until SIGINT or SIGTERM.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Self

from stemserve.core.errors import BackendUnavailableError, InvalidOptionError
from stemserve.core.model_config import Repository
from stemserve.server.triton.bundle import (
    DEFAULT_BUILD_DIR,
    DEFAULT_PYTHON_ENV,
    check_python_env,
    find_bundle,
    prepare_backends,
    server_environment,
)
from stemserve.server.triton.repository import CpuVariantOptions, generate

log = logging.getLogger(__name__)
SHM_DIR = "/dev/shm"  # where POSIX shared memory regions live on Linux


@dataclass(frozen=True, kw_only=True)
class TritonConfig:
    model_repository: Repository  # the source repository or search path (config.pbtxt + model.onnx per model)
    build_dir: Path = DEFAULT_BUILD_DIR  # generated CPU variant, backend directory, log
    python_env: Path = DEFAULT_PYTHON_ENV  # the models' Python environment
    host: str = "0.0.0.0"  # address every endpoint binds
    grpc_port: int = 8001  # Triton's usual ports; 0: a free one
    http_port: int = 8000
    metrics_port: int = 8002  # Prometheus /metrics
    variant: CpuVariantOptions = field(default_factory=CpuVariantOptions)
    startup_timeout_s: float = 120.0
    exit_timeout_s: int = 10  # what requests in flight get to finish on stop
    log_to_file: bool = True  # build_dir/tritonserver.log; False: this process's stderr
    log_verbose: int = 0
    python_shm_bytes: int = 16 * 1024**2  # python-backend shared memory per instance, and each growth step

    def __post_init__(self) -> None:
        for name in ("grpc_port", "http_port", "metrics_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise InvalidOptionError(f"{name} must be within 0-65535, not {getattr(self, name)}")
        if self.startup_timeout_s <= 0 or self.exit_timeout_s < 0:
            raise InvalidOptionError(
                f"startup_timeout_s must be > 0 and exit_timeout_s >= 0, "
                f"not {self.startup_timeout_s} and {self.exit_timeout_s}"
            )

    @property
    def cpu_repository(self) -> Path:
        return Path(self.build_dir) / "model_repository"

    @property
    def log_file(self) -> Path:
        return Path(self.build_dir) / "tritonserver.log"


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports the OS reports free now."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((host, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class TritonProcess:
    """A running ``tritonserver``; ``grpc_url``, ``http_url`` and ``metrics_url`` once started."""

    def __init__(self, config: TritonConfig) -> None:
        zero = [name for name in ("grpc_port", "http_port", "metrics_port") if getattr(config, name) == 0]
        picked = dict(zip(zero, free_ports(len(zero))))
        self.config = replace(config, **picked)  # type: ignore[arg-type]
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._starts = 0

    @property
    def _client_host(self) -> str:
        return "127.0.0.1" if self.config.host in ("0.0.0.0", "::", "[::]") else self.config.host

    @property
    def grpc_url(self) -> str:
        return f"{self._client_host}:{self.config.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self._client_host}:{self.config.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self._client_host}:{self.config.metrics_port}/metrics"

    def command(self, backend_directory: Path) -> list[str]:
        c = self.config
        return [
            str(find_bundle().executable),
            f"--model-repository={c.cpu_repository}",
            f"--backend-directory={backend_directory}",
            f"--grpc-address={c.host}",
            f"--grpc-port={c.grpc_port}",
            f"--http-address={c.host}",
            f"--http-port={c.http_port}",
            f"--metrics-address={c.host}",
            f"--metrics-port={c.metrics_port}",
            "--allow-metrics=true",
            "--allow-gpu-metrics=false",
            "--strict-readiness=true",
            "--exit-on-error=true",
            f"--exit-timeout-secs={c.exit_timeout_s}",
            f"--log-verbose={c.log_verbose}",
            # regions of its own: several Triton servers may run on one machine
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
            f"--backend-config=python,shm-default-byte-size={c.python_shm_bytes}",
            f"--backend-config=python,shm-growth-byte-size={c.python_shm_bytes}",
        ]

    @property
    def shm_prefix(self) -> str:
        """Names of this start's python-backend shared memory regions begin with it."""
        return f"stemserve_{os.getpid()}_{id(self):x}_{self._starts}_"

    def start(self, *, wait: bool = True) -> Self:
        """Generate the CPU variant and start Triton; with ``wait``, return once it is ready."""
        if self.running:
            raise InvalidOptionError(f"Triton is already running (pid {self._process.pid})")  # type: ignore[union-attr]
        c = self.config
        bundle = find_bundle()
        python_env = check_python_env(c.python_env)
        generate(c.model_repository, c.cpu_repository, c.variant)
        backends = prepare_backends(bundle, c.build_dir)
        self._starts += 1
        output: IO[bytes] | None = None
        if c.log_to_file:
            self._log = output = open(c.log_file, "ab")  # noqa: SIM115 - open while Triton runs, closed on stop
        self._process = subprocess.Popen(
            self.command(backends),
            env=server_environment(bundle, python_env),
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
            start_new_session=True,  # its own process group: the python-backend stubs stop with it
        )
        log.info(
            "started tritonserver (pid %d) on grpc %s, metrics %s", self._process.pid, self.grpc_url, self.metrics_url
        )
        if wait:
            self.wait_ready()
        return self

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.http_url}/v2/health/ready", timeout=1.0) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout_s: float | None = None) -> None:
        timeout_s = self.config.startup_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running:
                code = self._process.returncode if self._process else None
                raise BackendUnavailableError(f"tritonserver exited with code {code} while starting{self._log_hint()}")
            if self.is_ready():
                log.info("Triton ready on %s", self.grpc_url)
                return
            time.sleep(0.1)
        self.stop()
        raise BackendUnavailableError(f"Triton must be ready within {timeout_s:g} s and was not{self._log_hint()}")

    def _log_hint(self) -> str:
        if not self.config.log_to_file or not self.config.log_file.exists():
            return ""
        tail = self.config.log_file.read_text(errors="replace").splitlines()[-15:]
        return f"; last lines of {self.config.log_file}:\n" + "\n".join(tail)

    def stop(self, grace_s: float | None = None) -> int | None:
        """SIGTERM (Triton lets requests in flight finish), then SIGKILL to the group."""
        process = self._process
        if process is None:
            return None
        grace_s = self.config.exit_timeout_s + 5.0 if grace_s is None else grace_s
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                log.warning("tritonserver (pid %d) did not stop within %g s: killing it", process.pid, grace_s)
        self._kill_group(process)
        self._close_log()
        log.info("tritonserver (pid %d) stopped with code %s", process.pid, process.returncode)
        return process.returncode

    def kill(self) -> None:
        """Stop at once, as a crash would: requests in flight fail."""
        if self._process is not None:
            self._kill_group(self._process)
            self._close_log()

    def _kill_group(self, process: subprocess.Popen[bytes]) -> None:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # the group of the process this object started
        except ProcessLookupError:
            pass
        process.wait()
        # a killed server leaves its python-backend shared memory behind: remove this start's
        for region in Path(SHM_DIR).glob(f"{self.shm_prefix}*"):
            region.unlink(missing_ok=True)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def wait(self, stop: threading.Event) -> int | None:
        """Block until ``stop`` is set or Triton exits on its own; return its exit code or None."""
        while not stop.wait(0.5):
            if not self.running:
                return self._process.returncode if self._process else None
        return None

    def __enter__(self) -> Self:
        return self.start() if not self.running else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run(config: TritonConfig) -> int:
    """Serve until SIGINT or SIGTERM, then stop cleanly; 1 when Triton exits on its own."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with TritonProcess(config) as triton:
        log.info("Triton serving %s: grpc %s, metrics %s", config.cpu_repository, triton.grpc_url, triton.metrics_url)
        code = triton.wait(stop)
        if code is not None:
            log.error("tritonserver exited on its own with code %d", code)
            return 1
    return 0


def run_command(model_repository: Repository, build_dir: Path | None = None, **ports: int | None) -> int:
    """``stemserve triton``: what is given overrides TritonConfig's defaults; Triton logs to stderr."""
    given: dict[str, Any] = {name: port for name, port in ports.items() if port is not None}
    if build_dir is not None:
        given["build_dir"] = build_dir
    return run(TritonConfig(model_repository=model_repository, log_to_file=False, **given))
