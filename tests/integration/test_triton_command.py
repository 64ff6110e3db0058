"""``stemserve triton`` starts Triton on the CPU variant, serves until SIGINT, then stops
cleanly: exit code 0, its ports closed."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request

from stemserve.server.triton.process import free_ports

from tests.integration.test_triton_support import write_repository


def http_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def test_command_serves_until_sigint(tmp_path):
    write_repository(tmp_path / "models")
    grpc_port, http_port, metrics_port = free_ports(3)
    command = [
        *(sys.executable, "-m", "stemserve.cli", "--model-repository", str(tmp_path / "models"), "triton"),
        *("--grpc-port", str(grpc_port), "--http-port", str(http_port), "--metrics-port", str(metrics_port)),
        *("--build-dir", str(tmp_path / "build")),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not http_ready(http_port):
            assert process.poll() is None, process.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "stemserve triton was not ready within 60 s"
            time.sleep(0.2)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        assert 'nv_inference_request_success{model="split5",version="1"}' in metrics
        assert sorted(p.name for p in (tmp_path / "build" / "model_repository").iterdir() if p.is_dir()) == [
            "split4",
            "split5",
        ]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", grpc_port)) != 0  # nothing listens any more
