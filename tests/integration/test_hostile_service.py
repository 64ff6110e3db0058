"""The hostile corpus over the wire: every broken or extreme upload gets a clear status,
the server keeps serving, and its memory returns to its baseline."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import soundfile as sf
from stemserve.client import RemoteError
from stemserve.client.proto_gen import separation_pb2 as pb
from stemserve.client.proto_gen import separation_pb2_grpc as pb_grpc
from stemserve.pipeline.options import SeparationOptions

from tests.conftest import tone_mix
from tests.integration import test_service_support as support
from tests.integration.test_service_support import client_for, sample, wait_until, wav_bytes
from tests.unit.test_decode import wav_with_header

start_server = support.start_server  # the fixture, shared

SPLIT = SeparationOptions(stems=4, model="split5")
INVALID, OK = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OK


def encoded(audio: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def corpus() -> list[tuple[str, bytes, SeparationOptions, grpc.StatusCode]]:
    song = tone_mix(22_050)
    nan = song.copy()
    nan[100, 0] = np.nan
    cases = [
        ("empty", b"", SPLIT, INVALID),
        ("not audio", b"<html>not a song</html>" * 50, SPLIT, INVALID),
        ("huge declared length", wav_with_header(2**29, b"\x00" * 400), SPLIT, INVALID),
        ("zero channels", wav_with_header(100, b"\x00" * 400, channels=0), SPLIT, INVALID),
        ("absurd rate", wav_with_header(100, b"\x00" * 400, rate=1), SPLIT, INVALID),
        ("NaN floats", encoded(nan, 44_100, "WAV", "FLOAT"), SPLIT, INVALID),
        ("one sample", encoded(song[:1], 44_100, "WAV", "PCM_16"), SPLIT, OK),
        ("8 kHz", encoded(tone_mix(8_000, 8_000), 8_000, "WAV"), SPLIT, OK),
        ("192 kHz", encoded(tone_mix(96_000, 192_000), 192_000, "FLAC"), SPLIT, OK),
        ("6 channels", encoded(tone_mix(22_050, nb_channels=6), 44_100, "WAV"), SPLIT, OK),
        ("8 channels", encoded(tone_mix(22_050, nb_channels=8), 48_000, "WAV", "PCM_24"), SPLIT, OK),
        ("unknown model", wav_bytes(), SeparationOptions(model="no-such-model"), grpc.StatusCode.NOT_FOUND),
    ]
    for fmt in ("WAV", "FLAC", "MP3"):
        data = encoded(song, 44_100, fmt)
        cases.append((f"truncated {fmt}", data[: len(data) // 2], SPLIT, INVALID))
    return cases


def status_of(server, data: bytes, options: SeparationOptions, out: Path) -> grpc.StatusCode:
    with client_for(server) as client:
        try:
            client.separate(data, out, **vars(options), timeout_s=30)
        except RemoteError as exc:
            assert exc.details, "an error status must say what went wrong"
            return exc.code
    return OK


def rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")) / 1024


def test_every_hostile_upload_gets_its_status_and_memory_returns_to_baseline(tmp_path, start_server):
    server = start_server()
    cases = corpus()
    baseline = None
    for round_ in range(3):
        for name, data, options, expected in cases:
            assert status_of(server, data, options, tmp_path / "out") == expected, name
        if round_ == 0:
            baseline = rss_mb()  # after one round every code path has made its allocations
    assert rss_mb() - baseline < 40, f"memory grew from {baseline:.0f} MB to {rss_mb():.0f} MB"
    assert status_of(server, wav_bytes(), SPLIT, tmp_path / "good") == OK  # still serving
    assert sample(server, "stemserve_songs_in_flight") == 0


def test_a_stream_that_stops_mid_upload_frees_its_slot(tmp_path, start_server):
    server = start_server()
    data = wav_bytes(seconds=5.0)
    sent_half = threading.Event()

    def requests():
        yield pb.SeparateRequest(options=pb.SeparateOptions(stems=4, model="split5"))
        yield pb.SeparateRequest(audio_chunk=data[: len(data) // 2])
        sent_half.set()
        time.sleep(30)  # the client goes quiet: it never sends the rest

    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = pb_grpc.SeparationStub(channel).SplitStems(requests())
        failure: list[grpc.StatusCode] = []
        reader = threading.Thread(target=lambda: failure.extend(_drain(call)))
        reader.start()
        assert sent_half.wait(10)
        wait_until(lambda: sample(server, "stemserve_songs_in_flight") == 1)
        call.cancel()
        reader.join(10)
    assert failure == [grpc.StatusCode.CANCELLED]
    wait_until(lambda: sample(server, "stemserve_songs_in_flight") == 0)
    with client_for(server) as client:
        assert not client.separate(wav_bytes(), tmp_path / "after", **vars(SPLIT)).cache_hit  # still serving


def _drain(call) -> list[grpc.StatusCode]:
    try:
        for _ in call:
            pass
    except grpc.RpcError as exc:
        return [exc.code()]
    return [OK]
