"""Nothing lost, nothing leaked: a server killed with SIGKILL while writing cache entries
leaves only complete entries; keys never reach logs or metrics; a caller only gets a
cached result by uploading the same audio."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import soundfile as sf
from prometheus_client import generate_latest
from stemserve.client import StemserveClient
from stemserve.client.client import RemoteError
from stemserve.pipeline.options import SeparationOptions
from stemserve.server.cache import RESULT_NAME, WORK_PREFIX, ResultCache

from tests.integration import test_service_support as support
from tests.integration.serve_process import free_port, serve_process, start_serve_process
from tests.integration.test_service_support import KEYS, client_for, wav_bytes, write_keys

start_server = support.start_server  # the fixture, shared

SPLIT5 = SeparationOptions(stems=4, model="split5")


def start_split5(repo: Path, cache_dir: Path, port: int) -> subprocess.Popen:
    serve_args = ["--models", "split5", "--cache-dir", str(cache_dir)]
    return start_serve_process(repo, port, serve_args, env={**os.environ, "STEMSERVE_INTRA_OP_THREADS": "1"})


def assert_complete_entry(entry: Path) -> None:
    result = json.loads((entry / RESULT_NAME).read_text())
    for stem in result["stems"]:
        audio, rate = sf.read(entry / stem["path"], dtype="float32")
        assert rate == stem["sample_rate_hz"] and len(audio) == stem["nb_frames"], stem
        assert np.isfinite(audio).all()


def test_sigkill_while_writing_cache_entries_loses_nothing_complete(tmp_path, repo):
    cache_dir, port = tmp_path / "cache", free_port()
    songs = [wav_bytes(seconds=2.0 + 0.5 * i, seed=i) for i in range(6)]
    process = start_split5(repo, cache_dir, port)
    finished: list[int] = []

    def send(index: int) -> None:
        try:
            with StemserveClient(f"127.0.0.1:{port}") as client:
                client.separate(songs[index], tmp_path / f"out{index}", **vars(SPLIT5), timeout_s=60)
            finished.append(index)
        except RemoteError:
            pass  # the server died under this song

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(songs))]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while not finished and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    for thread in threads:
        thread.join(30)
    assert finished, "no song finished before the kill"
    assert len(finished) < len(songs), "every song finished before the kill: nothing was in flight"

    process = start_split5(repo, cache_dir, port)  # the cache reopens: leftovers are removed
    try:
        entries = [p for p in cache_dir.iterdir() if not p.name.startswith(".")]
        assert not list(cache_dir.glob(WORK_PREFIX + "*"))
        assert len(entries) >= len(finished)
        for entry in entries:
            assert_complete_entry(entry)
        with StemserveClient(f"127.0.0.1:{port}") as client:
            again = client.separate(songs[finished[0]], tmp_path / "again", **vars(SPLIT5), timeout_s=60)
        assert again.cache_hit
        for name, path in again.paths.items():
            assert path.read_bytes() == (tmp_path / f"out{finished[0]}" / path.name).read_bytes(), name
    finally:
        process.terminate()
        process.wait(30)
    assert ResultCache(cache_dir, 1 << 30).size_bytes > 0


def test_serve_process_answers_then_stops_on_exit(tmp_path, repo):
    port = free_port()
    serve_args = ["--models", "split5", "--cache-dir", str(tmp_path / "cache")]
    with serve_process(repo, port, serve_args) as process, StemserveClient(f"127.0.0.1:{port}") as client:
        assert [model.name for model in client.list_models(timeout_s=10).models] == ["split5"]
    assert process.returncode == 0  # SIGTERM: a graceful shutdown, not a kill


def test_keys_never_reach_logs_or_metrics(tmp_path, start_server, caplog):
    caplog.set_level(logging.DEBUG)
    server = start_server(api_keys_file=write_keys(tmp_path / "keys.txt"))
    with client_for(server, "alice") as client:
        client.separate(wav_bytes(), tmp_path / "a", **vars(SeparationOptions(model="split5")))
    for presented in ("bob-secret-key-typo", "", KEYS["carol"][::-1]):
        with StemserveClient(f"127.0.0.1:{server.port}", api_key=presented or None) as client:
            try:
                client.separate(wav_bytes(), tmp_path / "x", **vars(SeparationOptions(model="split5")))
            except RemoteError as exc:
                assert exc.code == grpc.StatusCode.UNAUTHENTICATED
            else:
                raise AssertionError(f"key {presented!r} was let in")
    exposition = generate_latest(server.metrics.registry).decode()
    logs = caplog.text
    for secret in [*KEYS.values(), "bob-secret-key-typo", KEYS["carol"][::-1]]:
        assert secret not in logs and secret not in exposition


def test_a_cached_result_needs_the_same_audio(tmp_path, start_server):
    server = start_server(api_keys_file=write_keys(tmp_path / "keys.txt"))
    song, other = wav_bytes(seed=1), wav_bytes(seed=2)
    with client_for(server, "alice") as alice, client_for(server, "bob") as bob:
        first = alice.separate(song, tmp_path / "alice", **vars(SPLIT5))
        assert not first.cache_hit
        assert not bob.separate(other, tmp_path / "bob-other", **vars(SPLIT5)).cache_hit
        same = bob.separate(song, tmp_path / "bob-same", **vars(SPLIT5))
    assert same.cache_hit
    assert same.paths["vocals"].read_bytes() == first.paths["vocals"].read_bytes()
