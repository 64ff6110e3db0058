"""Every status a separation can end with, over a real socket, with its message and what
the server records (metrics, slots, work folders)."""

from __future__ import annotations

import threading

import grpc
import pytest
from stemserve.client import RemoteError
from stemserve.client.proto_gen import separation_pb2 as pb
from stemserve.client.proto_gen import separation_pb2_grpc as pb_grpc
from stemserve.pipeline.options import SeparationOptions

from tests.integration import test_service_support as support
from tests.integration.test_service_support import KEYS, Gate, client_for, sample, wait_until, wav_bytes, write_keys

start_server = support.start_server  # the fixture, shared

SPLIT4 = SeparationOptions(stems=4, model="split5")


def code_of(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(RemoteError) as failure:
        call()
    return failure.value.code, failure.value.details


def test_bad_audio_is_invalid_argument_and_counted_by_reason(tmp_path, start_server):
    server = start_server()
    with client_for(server) as client:
        code, details = code_of(lambda: client.separate(b"not audio at all" * 100, tmp_path, **vars(SPLIT4)))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "could not be parsed as audio" in details
        code, details = code_of(lambda: client.separate(b"", tmp_path, **vars(SPLIT4)))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "got an empty upload" in details
    assert sample(server, "stemserve_rejected_inputs_total", reason="not_audio") == 1
    assert sample(server, "stemserve_rejected_inputs_total", reason="empty") == 1
    # the interceptor counts a call just after its status went out
    wait_until(lambda: sample(server, "stemserve_requests_total", rpc="stemserve.v1.Separation/SplitStems",
                              code="INVALID_ARGUMENT") == 2)
    assert not list((tmp_path / "cache").iterdir())  # work folders removed
    assert not list(tmp_path.glob("*.wav"))


def test_size_and_duration_limits_answer_before_decoding(tmp_path, start_server):
    server = start_server(max_upload_bytes=150_000, max_duration_s=0.5)
    with client_for(server) as client:
        code, details = code_of(lambda: client.separate(wav_bytes(1.0), tmp_path, **vars(SPLIT4)))  # 176 kB
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert "at most 150000 bytes, got more than that" in details
        code, details = code_of(lambda: client.separate(wav_bytes(0.8, 22_050), tmp_path, **vars(SPLIT4)))  # 70 kB
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "at most 0.5 s long, got 0.8 s" in details
    assert sample(server, "stemserve_rejected_inputs_total", reason="too_large") == 1
    assert sample(server, "stemserve_rejected_inputs_total", reason="too_long") == 1
    assert sample(server, "stemserve_window_inference_duration_seconds_count", backend="onnxruntime") == 0


@pytest.mark.parametrize(
    "options,rpc_stems,fragment",
    [
        (pb.SeparateOptions(stems=2, model="split5"), "SplitStems", "SplitStems makes (4, 5) stems, got stems=2"),
        (pb.SeparateOptions(stems=4, model="split5"), "RemoveVocals", "RemoveVocals makes (2,) stems, got stems=4"),
        (pb.SeparateOptions(stems=5, model="split4"), "SplitStems", "the 5-stem preset needs stems"),
        (pb.SeparateOptions(stems=4, model="split5", sample_rate_hz=22_050), "SplitStems",
         "sample_rate must be one of [44100, 48000], not 22050"),
        (pb.SeparateOptions(stems=4, model="split5", format=pb.AUDIO_FORMAT_MP3, bit_depth=pb.BIT_DEPTH_FLOAT),
         "SplitStems", "float"),
        (pb.SeparateOptions(stems=4, model="split5", overlap=0.9), "SplitStems", "overlap must be within"),
    ],
)
def test_bad_options_are_invalid_argument_before_the_upload(start_server, options, rpc_stems, fragment):
    server = start_server()
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        method = getattr(pb_grpc.SeparationStub(channel), rpc_stems)
        requests = iter([pb.SeparateRequest(options=options), pb.SeparateRequest(audio_chunk=wav_bytes(0.2))])
        with pytest.raises(grpc.RpcError) as failure:
            list(method(requests))
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in failure.value.details()
    assert sample(server, "stemserve_rejected_inputs_total", reason="invalid_option") == 1


def test_the_first_message_must_be_options(start_server):
    server = start_server()
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.SeparationStub(channel)
        with pytest.raises(grpc.RpcError) as failure:
            list(stub.SplitStems(iter([pb.SeparateRequest(audio_chunk=b"RIFF")])))
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.value.details() == "the first message must hold options, got audio_chunk"


def test_unknown_model_is_not_found(tmp_path, start_server):
    server = start_server()
    with client_for(server) as client:
        code, details = code_of(lambda: client.separate(wav_bytes(0.2), tmp_path, **vars(SeparationOptions(model="nope"))))
    assert code == grpc.StatusCode.NOT_FOUND
    assert details == "model must be one of ['split5', 'split4'], not 'nope'"


def test_missing_and_wrong_keys_are_unauthenticated(tmp_path, start_server):
    server = start_server(api_keys_file=write_keys(tmp_path / "keys.txt"))
    with client_for(server) as anonymous:
        code, details = code_of(lambda: anonymous.separate(wav_bytes(0.2), tmp_path, **vars(SPLIT4)))
        assert code == grpc.StatusCode.UNAUTHENTICATED and "expected 'authorization: Bearer" in details
        code, _ = code_of(anonymous.list_models)
        assert code == grpc.StatusCode.UNAUTHENTICATED
    with client_for(server) as client:
        client._metadata = (("authorization", "Bearer wrong-key"),)
        code, details = code_of(lambda: client.separate(wav_bytes(0.2), tmp_path, **vars(SPLIT4)))
        assert code == grpc.StatusCode.UNAUTHENTICATED and "not valid" in details
    with client_for(server, "alice") as alice:
        assert alice.separate(wav_bytes(0.2), tmp_path / "ok", **vars(SPLIT4)).summary()["model_name"] == "split5"


def _in_background(call) -> dict:
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except RemoteError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    outcome["thread"] = thread
    return outcome


def test_per_key_and_global_limits_are_resource_exhausted(tmp_path, start_server):
    gate = Gate()
    server = start_server(gate=gate, api_keys_file=write_keys(tmp_path / "keys.txt"),
                          max_songs_per_key=1, max_songs_in_flight=2)
    audio = wav_bytes(0.3)
    clients = {name: client_for(server, name) for name in KEYS}
    first = _in_background(lambda: clients["alice"].separate(audio, tmp_path / "a", **vars(SPLIT4)))
    wait_until(lambda: sample(server, "stemserve_songs_in_flight") == 1)
    code, details = code_of(lambda: clients["alice"].separate(audio, tmp_path / "a2", **vars(SPLIT4)))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "API key 'alice' may have at most 1 songs in flight, got a request while 1 are running" in details
    second = _in_background(lambda: clients["bob"].separate(audio, tmp_path / "b", **vars(SPLIT4)))
    wait_until(lambda: sample(server, "stemserve_songs_in_flight") == 2)
    code, details = code_of(lambda: clients["carol"].separate(audio, tmp_path / "c", **vars(SPLIT4)))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "the server takes at most 2 songs in flight, got a request while 2 are running" in details
    gate.open.set()
    for outcome in (first, second):
        outcome["thread"].join(20)
        assert "error" not in outcome and outcome["result"].summary()["model_name"] == "split5"
    assert sample(server, "stemserve_songs_in_flight") == 0
    carol = clients["carol"].separate(audio, tmp_path / "c", **vars(SPLIT4))  # slots were given back
    assert carol.cache_hit
    for client in clients.values():
        client.close()


def test_deadline_exceeded_stops_the_song_and_frees_its_slot(tmp_path, start_server):
    gate = Gate()
    server = start_server(gate=gate, max_songs_in_flight=1)
    with client_for(server) as client:
        code, _ = code_of(lambda: client.separate(wav_bytes(0.5), tmp_path, **vars(SPLIT4), timeout_s=0.5))
        assert code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert gate.entered.is_set()  # it failed while the model was running
        gate.open.set()
        rpc = "stemserve.v1.Separation/SplitStems"
        wait_until(lambda: sample(server, "stemserve_requests_total", rpc=rpc, code="DEADLINE_EXCEEDED") == 1)
        wait_until(lambda: sample(server, "stemserve_songs_in_flight") == 0)
        wait_until(lambda: not list((tmp_path / "cache").iterdir()))
        assert client.separate(wav_bytes(0.5), tmp_path / "next", **vars(SPLIT4)).summary()["audio_seconds"] == 0.5
    assert not list(tmp_path.glob("*.wav")) and not list(tmp_path.glob(".*partial"))


def test_client_cancel_stops_the_song_and_frees_its_slot(tmp_path, start_server):
    gate = Gate()
    server = start_server(gate=gate, max_songs_in_flight=1)
    audio = wav_bytes(0.5)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.SeparationStub(channel)
        requests = iter([pb.SeparateRequest(options=pb.SeparateOptions(stems=4, model="split5")),
                         pb.SeparateRequest(audio_chunk=audio)])
        call = stub.SplitStems(requests)
        wait_until(gate.entered.is_set)
        call.cancel()
        with pytest.raises(grpc.RpcError) as failure:
            list(call)
        assert failure.value.code() == grpc.StatusCode.CANCELLED
    gate.open.set()
    rpc = "stemserve.v1.Separation/SplitStems"
    wait_until(lambda: sample(server, "stemserve_requests_total", rpc=rpc, code="CANCELLED") == 1)
    wait_until(lambda: sample(server, "stemserve_songs_in_flight") == 0)
    wait_until(lambda: not list((tmp_path / "cache").iterdir()))  # no entry, no work folder
    assert sample(server, "stemserve_cache_misses_total") == 1


def test_requests_before_warm_up_are_unavailable(tmp_path, start_server):
    server = start_server(warm=False)
    with client_for(server) as client:
        code, details = code_of(lambda: client.separate(wav_bytes(0.2), tmp_path, **vars(SPLIT4)))
    assert code == grpc.StatusCode.UNAVAILABLE and "still loading" in details
