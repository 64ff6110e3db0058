"""A real Triton serving the CPU variant of a fixture repository: TritonBackend gives the
same stems as the in-process backend, reads the model's metadata from Triton, and songs in
flight together are batched across songs by Triton's dynamic batcher."""

from __future__ import annotations

import re
import threading
import urllib.request

import numpy as np
import pytest
from stemserve.backends.local import LocalBackend
from stemserve.backends.triton import TritonBackend, TritonClientConfig
from stemserve.core.errors import DeadlineExceededError
from stemserve.core.model_config import load_model
from stemserve.pipeline.options import SeparationOptions
from stemserve.pipeline.run import separate

from tests.integration import test_triton_support as support
from tests.integration.test_triton_support import model_counters, read_stems, song

triton = support.triton  # the module's Triton, shared


@pytest.fixture(scope="module")
def backends(triton):
    made: dict[str, TritonBackend] = {}

    def make(name: str) -> TritonBackend:
        if name not in made:
            made[name] = TritonBackend(name, TritonClientConfig(url=triton.grpc_url, connect_timeout_s=10.0))
        return made[name]

    yield make
    for backend in made.values():
        backend.close()


@pytest.mark.parametrize(("model", "stems"), [("split5", 5), ("split5", 2), ("split4", 4)])
def test_stems_equal_the_in_process_backend(tmp_path, triton, backends, model, stems):
    audio = song(1.7, seed=stems)
    options = SeparationOptions(stems=stems, model=model, bit_depth="float")
    reference = LocalBackend(load_model(triton.config.model_repository, model), intra_op_threads=1)
    remote = separate(audio, tmp_path / "triton", backends(model), options)
    inprocess = separate(audio, tmp_path / "local", reference, options)
    got, expected = read_stems(remote), read_stems(inprocess)
    assert list(got) == list(expected)
    for name in expected:
        assert got[name].shape == expected[name].shape
        np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-5, err_msg=name)
    assert remote.model_version == inprocess.model_version
    assert remote.device == "cpu"
    # the stems are the fixture's gains times the mix, not silence
    assert float(np.abs(got["vocals"]).max()) > 0.1


def test_metadata_comes_from_tritons_model_config(triton, backends):
    backend = backends("split4")
    source = load_model(triton.config.model_repository, "split4").spec
    assert backend.spec.stems == ("vocals", "drums", "bass", "other")
    assert (backend.spec.sample_rate_hz, backend.spec.segment_samples) == (
        source.sample_rate_hz,
        source.segment_samples,
    )
    assert (backend.spec.model_version, backend.spec.max_batch_size) == (source.model_version, source.max_batch_size)
    assert backend.spec.default_overlap == source.default_overlap
    assert backend.spec.platform == "python"  # the CPU variant
    assert backend.ready()


def test_windows_of_concurrent_songs_are_batched_across_songs(tmp_path, triton):
    """One window per call and song: only batching across songs can make batches > 1."""
    config = TritonClientConfig(url=triton.grpc_url, windows_per_call=1)
    before = model_counters(triton.metrics_url, "split5")
    errors: list[BaseException] = []
    with TritonBackend("split5", config) as backend:

        def run(index: int) -> None:
            try:
                separate(song(1.0, seed=index), tmp_path / str(index), backend, SeparationOptions(model="split5"))
            except Exception as exc:  # noqa: BLE001 - reported by the assert below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors
    after = model_counters(triton.metrics_url, "split5")
    windows = after["nv_inference_count"] - before["nv_inference_count"]
    executions = after["nv_inference_exec_count"] - before["nv_inference_exec_count"]
    requests = after["nv_inference_request_success"] - before["nv_inference_request_success"]
    assert windows == requests == 4 * 15  # 1.0 s at 44.1 kHz: 15 windows of 4096 with a 3072 hop
    # with batching off every window is its own execution; how many merge depends on the
    # machine's load (means of 1.5-3 seen), so the test asks only that some did
    assert executions < windows, f"expected batches of several windows, got {windows} windows in {executions} runs"


def test_metrics_port_serves_prometheus_text(triton, backends):
    backends("split5").warm_up()
    counters = model_counters(triton.metrics_url, "split5")
    assert counters["nv_inference_request_success"] >= 1
    assert counters["nv_inference_exec_count"] >= 1
    assert counters["nv_inference_queue_duration_us"] >= 0


def test_dashboard_triton_metrics_exist_on_a_real_triton(triton, backends):
    """deploy/grafana charts Triton metrics by name: each one (GPU ones aside) is served here."""
    from tests.unit.test_triton_deploy import dashboard_metrics

    backends("split5").warm_up()
    text = urllib.request.urlopen(triton.metrics_url, timeout=5).read().decode()
    served = set(re.findall(r"^(nv_[a-z_]+)", text, re.MULTILINE))
    used = {name for name in dashboard_metrics("nv_") if not name.startswith("nv_gpu_")}
    assert used and used <= served, f"not served by Triton: {sorted(used - served)}"


def test_a_song_deadline_bounds_every_call(triton, backends):
    backend = backends("split5")
    windows = np.zeros((4, 2, 4096), np.float32)
    with backend.deadline(0.0), pytest.raises(DeadlineExceededError, match="deadline passed"):
        backend.infer(windows)
    with backend.deadline(30.0):
        assert backend.infer(windows).shape == (4, 5, 2, 4096)  # the deadline ends with the block
