"""``stemserve serve --triton``: the service runs its models on a real Triton server (from
the nvidia-pytriton wheel, see server/triton/) and its health follows Triton's."""

from __future__ import annotations

import numpy as np
import soundfile as sf
from grpc_health.v1 import health_pb2
from stemserve.pipeline.options import SeparationOptions
from stemserve.pipeline.run import separate
from stemserve.server.triton.process import TritonProcess

from tests.integration import test_service_support as support
from tests.integration import test_triton_support as triton_support
from tests.integration.test_service_support import SERVICE, client_for, health_of, sample, wait_until, wav_bytes

start_server = support.start_server  # the fixtures, shared
triton = triton_support.triton


def test_songs_separate_on_triton_like_in_process(tmp_path, start_server, triton, local_backend):
    server = start_server(triton_url=triton.grpc_url, models=("split5",))
    audio = wav_bytes(2.0, seed=5)
    options = SeparationOptions(stems=5, model="split5", bit_depth="float")
    with client_for(server) as client:
        remote = client.separate(audio, tmp_path / "remote", **vars(options), timeout_s=60)
    local = separate(audio, tmp_path / "local", local_backend("split5"), options)
    assert list(remote.paths) == list(local.paths)
    for name, path in remote.paths.items():
        got, expected = sf.read(path, dtype="float32")[0], sf.read(local.paths[name], dtype="float32")[0]
        np.testing.assert_allclose(got, expected, atol=1e-5)
    assert sample(server, "stemserve_window_inference_duration_seconds_count", backend="triton") > 0


def test_health_follows_tritons_readiness(tmp_path, start_server, monkeypatch):
    monkeypatch.setattr("stemserve.server.app.READINESS_POLL_S", 0.1)
    triton_support.write_repository(tmp_path / "models")
    process = TritonProcess(triton_support.triton_config(tmp_path))
    process.start()
    try:
        server = start_server(triton_url=process.grpc_url, models=("split5",))
        assert health_of(server.port, SERVICE) == health_pb2.HealthCheckResponse.SERVING
        process.stop(grace_s=5.0)
        wait_until(lambda: health_of(server.port, SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING,
                   timeout_s=30)
    finally:
        process.stop(grace_s=5.0)
