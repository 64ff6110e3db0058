"""A fleet of two real Triton servers: a song's windows go to both, and when one is killed
mid-song the other finishes it, with the same stems as in process."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import soundfile as sf
from stemserve.backends.fleet import triton_fleet_backends
from stemserve.backends.local import LocalBackend
from stemserve.core.model_config import load_model
from stemserve.pipeline.options import SeparationOptions
from stemserve.pipeline.run import separate
from stemserve.server.triton.process import TritonProcess

from tests.integration import test_triton_support as support

OPTIONS = SeparationOptions(model="split5", bit_depth="float")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    servers = []
    try:
        for name in ("a", "b"):
            root = tmp_path_factory.mktemp(f"fleet-{name}")
            support.write_repository(root / "models")
            servers.append(TritonProcess(support.triton_config(root)))
            servers[-1].start()
        yield servers
    finally:
        for server in servers:
            server.stop(grace_s=5.0)


def inferences(server: TritonProcess) -> float:
    return support.model_counters(server.metrics_url, "split5")["nv_inference_count"]


def test_windows_spread_over_both_and_one_killed_mid_song_is_skipped(tmp_path, pair):
    a, b = pair
    fleet = triton_fleet_backends(f"{a.grpc_url},{b.grpc_url}")("split5")
    reference = LocalBackend(load_model(a.config.model_repository, "split5"), intra_op_threads=1)
    expected = separate(support.song(6.0, seed=2), tmp_path / "local", reference, OPTIONS)
    try:
        first = separate(support.song(6.0, seed=2), tmp_path / "both", fleet, OPTIONS)
        assert inferences(a) > 0 and inferences(b) > 0  # the windows went to both servers
        killed = threading.Event()

        def kill_b(done: int, total: int) -> None:
            if not killed.is_set() and 0 < done < total:
                killed.set()
                b.kill()

        with fleet.deadline(60.0):
            after = separate(support.song(6.0, seed=2), tmp_path / "one", fleet, OPTIONS, progress=kill_b)
        assert killed.is_set() and [m.up for m in fleet.members] == [True, False]  # b was skipped
    finally:
        fleet.close()
    for record in (first, after):
        for name, path in record.paths.items():
            got, want = sf.read(path, dtype="float32")[0], sf.read(expected.paths[name], dtype="float32")[0]
            np.testing.assert_allclose(got, want, atol=1e-5)
