"""Triton going away: stopped in the middle of a song, back within the deadline, not yet
ready when the front end connects. A failed song leaves no stem behind."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from stemserve.backends.local import LocalBackend
from stemserve.backends.triton import TritonBackend, TritonClientConfig
from stemserve.core.errors import BackendUnavailableError
from stemserve.core.model_config import load_model
from stemserve.pipeline.options import SeparationOptions
from stemserve.pipeline.run import separate
from stemserve.server.triton.process import SHM_DIR, TritonProcess, free_ports

from tests.integration import test_triton_support as support
from tests.integration.test_triton_support import read_stems, song

OPTIONS = SeparationOptions(model="split5", bit_depth="float")


@pytest.fixture(scope="module")
def triton(tmp_path_factory):
    """A Triton these tests may kill and restart (same ports); stopped at the end."""
    root = tmp_path_factory.mktemp("triton-failures")
    support.write_repository(root / "models")
    process = TritonProcess(support.triton_config(root))
    try:
        process.start()
        yield process
    finally:
        process.stop(grace_s=5.0)


def ensure_running(triton: TritonProcess) -> None:
    if not triton.running:
        triton.start()


def kill_after_first_call(triton: TritonProcess, then=None):
    """A progress callback that kills Triton once the first windows are back."""
    fired = threading.Event()

    def progress(done: int, total: int) -> None:
        if not fired.is_set() and 0 < done < total:
            fired.set()
            triton.kill()
            if then is not None:
                then()

    return progress, fired


def test_triton_killed_mid_song_is_unavailable_and_leaves_no_stems(tmp_path, triton):
    ensure_running(triton)
    config = TritonClientConfig(url=triton.grpc_url, request_timeout_s=1.5)
    out = tmp_path / "stems"
    with TritonBackend("split5", config) as backend:
        progress, fired = kill_after_first_call(triton)
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError, match=r"stayed unavailable .* attempts"):
            separate(song(2.0), out, backend, OPTIONS, progress=progress)
        assert fired.is_set()
        assert time.monotonic() - started < 1.5 + 5.0  # gave up at the deadline, not minutes later
        assert not backend.ready()
    assert not out.exists() or list(out.iterdir()) == []  # no stem, finished or partial
    assert list(Path(SHM_DIR).glob(f"{triton.shm_prefix}*")) == []  # the killed server's shared memory is freed


def test_triton_back_within_the_deadline_completes_the_song(tmp_path, triton):
    ensure_running(triton)
    config = TritonClientConfig(url=triton.grpc_url, request_timeout_s=60.0)
    audio = song(2.0, seed=3)
    restarted = threading.Event()

    def restart_soon() -> None:
        def restart() -> None:
            time.sleep(0.3)
            triton.start()  # same ports; the retries see UNAVAILABLE meanwhile
            restarted.set()

        threading.Thread(target=restart, daemon=True).start()

    with TritonBackend("split5", config) as backend:
        progress, fired = kill_after_first_call(triton, then=restart_soon)
        result = separate(audio, tmp_path / "triton", backend, OPTIONS, progress=progress)
    assert fired.is_set() and restarted.is_set()
    reference = LocalBackend(load_model(triton.config.model_repository, "split5"), intra_op_threads=1)
    expected = read_stems(separate(audio, tmp_path / "local", reference, OPTIONS))
    got = read_stems(result)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-5, err_msg=name)


def test_nothing_listening_is_unavailable_with_the_address():
    (port,) = free_ports(1)
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError, match=rf"127\.0\.0\.1:{port} must serve model 'split5' within 1 s"):
        TritonBackend("split5", TritonClientConfig(url=f"127.0.0.1:{port}", connect_timeout_s=1.0))
    assert time.monotonic() - started < 3.0


def test_backend_waits_for_a_starting_triton(triton):
    triton.stop(grace_s=5.0)
    triton.start(wait=False)  # not ready yet: the python backend is still loading the models
    assert not triton.is_ready()
    with TritonBackend("split4", TritonClientConfig(url=triton.grpc_url, connect_timeout_s=60.0)) as backend:
        assert triton.is_ready()
        windows = np.random.default_rng(0).standard_normal((3, 2, 4096)).astype(np.float32)
        stems = backend.infer(windows)
    gains = np.array([0.4, 0.3, 0.2, 0.1], np.float32)[None, :, None, None]  # the fixture's masks
    np.testing.assert_allclose(stems, windows[:, None] * gains, rtol=1e-6, atol=1e-7)
