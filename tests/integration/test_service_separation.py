"""Both separation RPCs end to end over a real socket: the stems and summary equal the
in-process pipeline's, for every preset and format; the cache answers repeats."""

from __future__ import annotations

import json

import grpc
import pytest
from stemserve.client import StemserveClient
from stemserve.client.proto_gen import separation_pb2 as pb
from stemserve.client.proto_gen import separation_pb2_grpc as pb_grpc
from stemserve.pipeline.options import SeparationOptions
from stemserve.pipeline.run import separate
from stemserve.server.streaming import HEADER_GUARD_BYTES

from stemserve.cli import main
from tests.integration import test_service_support as support
from tests.integration.test_service_support import Gate, client_for, sample, wait_until, wav_bytes

start_server = support.start_server  # the fixture, shared


RUNTIME_KEYS = ("runtime_seconds", "cache_hit")


def comparable(summary: dict) -> dict:
    """A summary without what differs between two runs: run time, cache hit and output folder."""
    stems = {name: {k: v for k, v in stem.items() if k != "path"} for name, stem in summary["stems"].items()}
    return {**{k: v for k, v in summary.items() if k not in RUNTIME_KEYS}, "stems": stems}


@pytest.mark.parametrize("stems", [2, 4, 5])
@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3"])
def test_stems_and_summary_equal_the_in_process_run(tmp_path, start_server, local_backend, stems, fmt):
    server = start_server()
    audio = wav_bytes(1.3, 48_000)
    options = SeparationOptions(stems=stems, format=fmt, model="split5")
    progress: list[tuple[int, int]] = []
    with client_for(server) as client:
        remote = client.separate(audio, tmp_path / "remote", **vars(options), progress=lambda d, t: progress.append((d, t)))
    local = separate(audio, tmp_path / "local", local_backend("split5"), options).summary()
    assert comparable(remote.summary()) == comparable(local)
    assert list(remote.summary()["stems"]) == list(local["stems"])  # the preset's order
    for name in local["stems"]:
        remote_path, local_path = remote.paths[name], tmp_path / "local" / f"{name}.{fmt}"
        assert remote_path.name == local_path.name
        assert remote_path.read_bytes() == local_path.read_bytes()
    assert not remote.cache_hit
    total = progress[-1][1]
    assert progress[-1] == (total, total) and total > 1
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)
    assert not list((tmp_path / "remote").glob(".*"))  # no partial files left


def test_a_repeat_is_a_cache_hit_with_identical_bytes(tmp_path, start_server):
    server = start_server()
    audio = wav_bytes(1.0)
    options = SeparationOptions(stems=4, model="split4", format="flac")
    with client_for(server) as client:
        first = client.separate(audio, tmp_path / "first", **vars(options))
        windows = sample(server, "stemserve_window_inference_duration_seconds_count", backend="onnxruntime")
        second = client.separate(audio, tmp_path / "second", **vars(options))
        other = client.separate(audio, tmp_path / "other", **vars(SeparationOptions(stems=4, model="split4")))
    assert (first.cache_hit, second.cache_hit, other.cache_hit) == (False, True, False)
    for name, path in first.paths.items():
        assert second.paths[name].read_bytes() == path.read_bytes()
    assert comparable(second.summary()) == comparable(first.summary())
    assert sample(server, "stemserve_cache_hits_total") == 1
    assert sample(server, "stemserve_cache_misses_total") == 2
    after = sample(server, "stemserve_window_inference_duration_seconds_count", backend="onnxruntime")
    assert windows > 0 and after == 2 * windows  # the hit ran no window; the wav miss ran them all again


def test_cli_server_mode_writes_the_same_files_and_summary(tmp_path, start_server, repo, capsys):
    server = start_server()
    song = tmp_path / "song.wav"
    song.write_bytes(wav_bytes(1.5, seed=3))
    common = ["--stems", "2", "--format", "wav", "--bit-depth", "24", "--model", "split5", "--no-progress"]
    assert main(["--model-repository", str(repo), "separate", str(song), "-o", str(tmp_path / "local"), *common]) == 0
    local = json.loads(capsys.readouterr().out)
    remote_args = ["separate", str(song), "-o", str(tmp_path / "remote"), "--server", f"127.0.0.1:{server.port}"]
    assert main([*remote_args, *common]) == 0
    remote = json.loads(capsys.readouterr().out)
    assert comparable(remote) == comparable(local)
    assert remote["stems"]["vocals"]["path"] == str(tmp_path / "remote" / "song" / "vocals.wav")
    for name in ("vocals", "instrumental"):
        assert (tmp_path / "remote" / "song" / f"{name}.wav").read_bytes() == (tmp_path / "local" / "song" / f"{name}.wav").read_bytes()


def test_list_models_describes_the_loaded_models(start_server):
    server = start_server(models=("split4", "split5"))
    with client_for(server) as client:
        listing = client.list_models()
    models = {m.name: m for m in listing.models}
    assert sorted(models) == ["split4", "split5"] and listing.default_model == "split4"
    assert list(models["split5"].stems) == ["vocals", "drums", "bass", "piano", "other"]
    assert list(models["split5"].presets) == [2, 4, 5] and list(models["split4"].presets) == [2, 4]
    assert models["split4"].segment_samples == 4096 and models["split4"].sample_rate_hz == 44_100


def test_client_is_usable_as_a_library_with_a_path(tmp_path, start_server):
    server = start_server()
    song = tmp_path / "song.wav"
    song.write_bytes(wav_bytes(0.5, seed=5))
    with StemserveClient(f"127.0.0.1:{server.port}") as client:
        result = client.separate(song, tmp_path / "out", **vars(SeparationOptions(stems=5, model="split5")))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        f"{n}.wav" for n in ("vocals", "drums", "bass", "piano", "other"))
    assert result.summary()["input"]["bytes"] == song.stat().st_size


def test_stem_bytes_arrive_before_the_song_is_finished(tmp_path, start_server, local_backend):
    gate = Gate(free_windows=60)  # ~4 s of the 6 s song (~700 kB per stem), then the model waits
    server = start_server(gate=gate)
    audio = wav_bytes(6.0, seed=11)
    requests = iter([pb.SeparateRequest(options=pb.SeparateOptions(stems=4, model="split5")),
                     pb.SeparateRequest(audio_chunk=audio)])
    files: dict[str, bytearray] = {}
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        responses = pb_grpc.SeparationStub(channel).SplitStems(requests, timeout=30)
        for response in responses:  # the song cannot finish before the gate opens
            if _apply(response, files) == "stem_chunk":
                break
        assert response.stem_chunk.offset >= HEADER_GUARD_BYTES  # headers come last
        wait_until(gate.entered.is_set)
        gate.open.set()
        kinds = [_apply(response, files) for response in responses]
    assert kinds[-1] == "result" and "progress" in kinds
    separate(audio, tmp_path / "local", local_backend("split5"), SeparationOptions(stems=4, model="split5"))
    for name, data in files.items():
        assert bytes(data) == (tmp_path / "local" / f"{name}.wav").read_bytes()


def _apply(response, files: dict[str, bytearray]) -> str:
    if response.HasField("stem_chunk"):
        chunk = response.stem_chunk
        data = files.setdefault(chunk.stem, bytearray())
        end = chunk.offset + len(chunk.data)
        data.extend(b"\0" * max(0, end - len(data)))
        data[chunk.offset : end] = chunk.data
    return response.WhichOneof("payload")


def test_a_longer_song_streamed_while_separating_equals_the_in_process_files(tmp_path, start_server, local_backend):
    server = start_server()
    audio = wav_bytes(12.0, seed=7)  # ~2 MB per stem: the server sends stem bytes before the song is done
    options = SeparationOptions(stems=4, model="split5", bit_depth="24")
    with client_for(server) as client:
        remote = client.separate(audio, tmp_path / "remote", **vars(options))
    separate(audio, tmp_path / "local", local_backend("split5"), options)
    for path in remote.paths.values():
        assert path.read_bytes() == (tmp_path / "local" / path.name).read_bytes()
