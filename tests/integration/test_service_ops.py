"""What operators rely on: health turns SERVING only after warm-up, reflection lists the
service, shutdown lets songs in flight finish, TLS, the metrics endpoint and its values,
and ``stemserve serve`` itself."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from stemserve.client import RemoteError
from stemserve.core.errors import InvalidOptionError
from stemserve.pipeline.options import SeparationOptions
from stemserve.preprocess.chunk import WindowPlan
from stemserve.server.app import create_server
from stemserve.server.metrics import ServiceMetrics, start_metrics_server
from stemserve.server.models import ModelPool, local_backends

from stemserve.cli import main
from tests.integration import test_service_support as support
from tests.integration.serve_process import free_port
from tests.integration.test_service_support import (
    KEYS,
    SERVICE,
    Gate,
    client_for,
    health_of,
    sample,
    settings_for,
    wait_until,
    wav_bytes,
    write_keys,
)

start_server = support.start_server  # the fixture, shared


SPLIT4 = SeparationOptions(stems=4, model="split5")


def test_health_is_not_serving_until_the_models_are_warm(start_server):
    server = start_server(warm=False)
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    assert health_of(server.port) == not_serving and health_of(server.port, SERVICE) == not_serving
    assert not server.server.pool.ready
    server.run(server.server.warm_up())
    assert server.server.pool.ready
    serving = health_pb2.HealthCheckResponse.SERVING
    assert health_of(server.port) == serving and health_of(server.port, SERVICE) == serving


def test_reflection_lists_and_describes_the_service(start_server):
    server = start_server()
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        assert {SERVICE, "grpc.health.v1.Health"} <= set(database.get_services())
        proto = database.FindFileContainingSymbol(SERVICE)
    assert proto.name == "stemserve/v1/separation.proto"
    methods = {m.name: (m.client_streaming, m.server_streaming) for m in proto.service[0].method}
    assert methods == {"RemoveVocals": (True, True), "SplitStems": (True, True), "ListModels": (False, False)}


def test_graceful_shutdown_finishes_the_song_in_flight_and_refuses_new_ones(tmp_path, start_server):
    gate = Gate()
    server = start_server(gate=gate)
    outcome: dict = {}
    with client_for(server) as client:
        worker = threading.Thread(
            target=lambda: outcome.setdefault("result", client.separate(wav_bytes(0.5), tmp_path / "a", **vars(SPLIT4))))
        worker.start()
        wait_until(gate.entered.is_set)
        stopping = threading.Thread(target=lambda: server.stop(grace_s=20))
        stopping.start()
        wait_until(lambda: health_refused(server.port))
        with client_for(server) as late, pytest.raises(RemoteError) as refused:
            late.separate(wav_bytes(0.5), tmp_path / "b", **vars(SPLIT4))
        assert refused.value.code == grpc.StatusCode.UNAVAILABLE
        gate.open.set()
        worker.join(20)
        stopping.join(20)
    assert outcome["result"].summary()["audio_seconds"] == 0.5
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["bass.wav", "drums.wav", "other.wav", "vocals.wav"]


def health_refused(port: int) -> bool:
    try:
        health_of(port)
    except grpc.RpcError:
        return True
    return False


@pytest.fixture
def certificate(tmp_path):
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed for the TLS test (server/apt-packages.txt)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def test_tls_serves_encrypted_clients_only(tmp_path, start_server, certificate):
    cert, key = certificate
    server = start_server(tls_cert=cert, tls_key=key)
    with client_for(server, root_certificates=cert.read_bytes()) as client:
        result = client.separate(wav_bytes(0.3), tmp_path / "out", **vars(SPLIT4))
    assert result.summary()["stems"]["vocals"]["nb_frames"] == round(0.3 * 44_100)
    with client_for(server) as plaintext, pytest.raises(RemoteError) as failure:
        plaintext.list_models(timeout_s=5)
    assert failure.value.code == grpc.StatusCode.UNAVAILABLE


def test_metrics_endpoint_values_and_promtool(tmp_path, start_server):
    server = start_server()
    audio = wav_bytes(1.0)
    with client_for(server) as client:
        totals: list[int] = []
        first = client.separate(audio, tmp_path / "a", **vars(SPLIT4), progress=lambda done, total: totals.append(total))
        client.separate(audio, tmp_path / "b", **vars(SPLIT4))
        with pytest.raises(RemoteError):
            client.separate(b"junk" * 50, tmp_path / "c", **vars(SPLIT4))
    rpc = "stemserve.v1.Separation/SplitStems"
    # the interceptor counts a call just after its status went out
    wait_until(lambda: sample(server, "stemserve_request_duration_seconds_count", rpc=rpc) == 3)
    httpd, port = start_metrics_server(0, server.metrics.registry, host="127.0.0.1")
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        httpd.shutdown()
    assert f'stemserve_requests_total{{code="OK",rpc="{rpc}"}} 2.0' in text
    assert f'stemserve_requests_total{{code="INVALID_ARGUMENT",rpc="{rpc}"}} 1.0' in text
    assert f'stemserve_request_duration_seconds_count{{rpc="{rpc}"}} 3.0' in text
    assert 'stemserve_rejected_inputs_total{reason="not_audio"} 1.0' in text
    assert "stemserve_cache_hits_total 1.0" in text and "stemserve_cache_misses_total 2.0" in text
    assert 'stemserve_audio_processed_seconds_total{model="split5"} 1.0' in text
    assert 'stemserve_real_time_factor_ratio_count{model="split5"} 1.0' in text
    assert "stemserve_songs_in_flight 0.0" in text
    windows = WindowPlan.for_fraction(44_100, 4096, 0.25).nb_windows  # split5: segment 4096, overlap 25 %
    assert totals[-1] == windows
    assert sample(server, "stemserve_window_inference_duration_seconds_count", backend="onnxruntime") == windows
    assert first.summary()["audio_seconds"] == 1.0
    cache_bytes = sum(p.stat().st_size for p in (tmp_path / "cache").rglob("*") if p.is_file())
    assert sample(server, "stemserve_cache_size_bytes") == cache_bytes
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is needed to check the exposition (Debian package prometheus)")
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_serve_command_serves_until_sigterm(tmp_path, repo):
    port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEMSERVE_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "stemserve.cli", "--model-repository", str(repo), "serve", "--host", "127.0.0.1",
         "--port", str(port), "--metrics-port", str(metrics_port), "--models", "split5",
         "--cache-dir", str(tmp_path / "cache")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if health_of(port) == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.RpcError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1]
            time.sleep(0.1)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        assert "stemserve_songs_in_flight 0.0" in metrics
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr


def test_cli_server_mode_takes_its_key_and_ca_from_the_environment(tmp_path, start_server, certificate,
                                                                   monkeypatch, capsys):
    cert, key = certificate
    server = start_server(tls_cert=cert, tls_key=key, api_keys_file=write_keys(tmp_path / "keys.txt"))
    song = tmp_path / "song.wav"
    song.write_bytes(wav_bytes(0.4))
    args = ["separate", str(song), "-o", str(tmp_path / "out"), "--server", f"127.0.0.1:{server.port}",
            "--model", "split5", "--stems", "2", "--no-progress"]
    monkeypatch.setenv("STEMSERVE_SERVER_CA", str(cert))
    assert main(args) == 5  # a server or backend failure
    assert "server answered UNAUTHENTICATED" in capsys.readouterr().err
    monkeypatch.setenv("STEMSERVE_API_KEY", KEYS["bob"])
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert sorted(summary["stems"]) == ["instrumental", "vocals"]
    assert summary["cache_hit"] is False and (tmp_path / "out" / "song" / "vocals.wav").is_file()


def test_a_port_in_use_is_a_clear_error_not_a_shared_port(tmp_path, start_server, repo):
    server = start_server()
    settings = settings_for(tmp_path, repo, port=server.port, models="split5", cache_dir=tmp_path / "other")

    async def bind_again():
        return create_server(settings)

    with pytest.raises(InvalidOptionError, match=f"expected to bind 127.0.0.1:{server.port}, got no port"):
        server.run(bind_again())


def test_a_restarted_server_reports_and_serves_the_cache_it_finds(tmp_path, start_server):
    first = start_server()
    audio = wav_bytes(0.5, seed=4)
    with client_for(first) as client:
        original = client.separate(audio, tmp_path / "a", **vars(SPLIT4))
    first.stop()
    second = start_server()  # same cache folder
    on_disk = sum(p.stat().st_size for p in (tmp_path / "cache").rglob("*") if p.is_file())
    assert on_disk > 0 and sample(second, "stemserve_cache_size_bytes") == on_disk
    with client_for(second) as client:
        again = client.separate(audio, tmp_path / "b", **vars(SPLIT4))
    assert again.cache_hit and not original.cache_hit
    assert again.paths["bass"].read_bytes() == original.paths["bass"].read_bytes()


def test_a_metrics_port_in_use_is_a_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(InvalidOptionError, match=f"expected to serve metrics on 127.0.0.1:{port}, got"):
            start_metrics_server(port, ServiceMetrics().registry, host="127.0.0.1")


class RemoteLikeBackend:
    """An in-process backend that behaves like a remote one: it can turn unready, and it
    records the deadlines it is given."""

    def __init__(self, backend) -> None:
        self._backend = backend
        self.name, self.device, self.spec = "remote-like", backend.device, backend.spec
        self.max_batch_size = backend.max_batch_size
        self.is_ready = True
        self.deadlines: list[float] = []

    def infer(self, windows):
        return self._backend.infer(windows)

    def warm_up(self) -> None:
        self._backend.warm_up()

    def ready(self) -> bool:
        return self.is_ready

    checks_readiness = True

    @contextmanager
    def deadline(self, seconds: float | None):
        self.deadlines.append(seconds)
        yield

    def close(self) -> None:
        self._backend.close()


@pytest.fixture
def remote_like(repo, start_server, monkeypatch):
    monkeypatch.setattr("stemserve.server.app.READINESS_POLL_S", 0.05)
    made: list[RemoteLikeBackend] = []
    make = local_backends(repo, intra_op_threads=1)

    def factory(name: str) -> RemoteLikeBackend:
        made.append(RemoteLikeBackend(make(name)))
        return made[-1]

    metrics = ServiceMetrics()
    server = start_server(pool=ModelPool(["split5"], factory, metrics), metrics=metrics)
    return server, made[0]


def test_health_follows_a_remote_backends_readiness(remote_like):
    server, backend = remote_like
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    assert health_of(server.port, SERVICE) == serving
    backend.is_ready = False
    wait_until(lambda: health_of(server.port, SERVICE) == not_serving and health_of(server.port) == not_serving)
    backend.is_ready = True
    wait_until(lambda: health_of(server.port, SERVICE) == serving)


def test_the_calls_deadline_reaches_the_backend(tmp_path, remote_like):
    server, backend = remote_like
    with client_for(server) as client:
        client.separate(wav_bytes(0.3), tmp_path / "a", **vars(SPLIT4), timeout_s=20)
        client.separate(wav_bytes(0.3, seed=9), tmp_path / "b", **vars(SPLIT4))  # no deadline: none passed on
    # the time left as the server sees it: the client's 20 s, less transit, give or take gRPC's rounding
    assert len(backend.deadlines) == 2 and 15 < backend.deadlines[0] <= 20.5 and backend.deadlines[1] is None
    assert sample(server, "stemserve_window_inference_duration_seconds_count", backend="remote-like") > 0
