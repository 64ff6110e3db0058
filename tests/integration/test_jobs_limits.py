"""One key's running jobs and its sync songs (Separation RPCs) count together against
``max_running_per_key``: a sync call of a key at its limit is refused with a retry hint, a
job of a key at its limit waits in the queue without using its attempts, and a sync place
left by a front end that died expires."""

from __future__ import annotations

import time

import grpc
import pytest
from stemserve.client.proto_gen import jobs_pb2 as jpb
from stemserve.client.proto_gen import separation_pb2 as pb
from stemserve.client.proto_gen import separation_pb2_grpc as pb_grpc
from stemserve.jobs.limits import SharedRunningLimit
from stemserve.jobs.state import SYNC, sync_entry

from tests.integration import test_jobs_support as support
from tests.integration.test_jobs_support import submit, upload, wait_job
from tests.integration.test_service_support import KEYS, wav_bytes, write_keys

jobs_server = support.jobs_server  # the fixture, shared


def auth(name: str):
    return (("authorization", f"Bearer {KEYS[name]}"),)


def split_stems(server, key: str, song: bytes) -> list:
    stub = pb_grpc.SeparationStub(server.channel)
    requests = iter([pb.SeparateRequest(options=pb.SeparateOptions(model="split4", stems=4)),
                     pb.SeparateRequest(audio_chunk=song)])
    return list(stub.SplitStems(requests, metadata=auth(key), timeout=30))


def sync_entries(server, key: str) -> list[str]:
    return [e for e, s in server.call(server.system.state.active(key)).items() if s == SYNC]


def test_a_held_sync_place_keeps_the_keys_job_queued_without_using_attempts(jobs_server, tmp_path):
    server = jobs_server(api_keys_file=write_keys(tmp_path / "keys.txt"), max_running_per_key=1)
    stub = server.stub
    limit = SharedRunningLimit(server.system.state, 1)  # what the front end's sync calls hold
    token = server.call(limit.acquire("alice"))
    assert token and sync_entries(server, "alice") == [token]
    alice = submit(stub, auth("alice"), input=jpb.JobInput(upload_id=upload(stub, wav_bytes(1.0, seed=1),
                                                                            call_metadata=auth("alice")))).job
    bob = submit(stub, auth("bob"), input=jpb.JobInput(upload_id=upload(stub, wav_bytes(1.0, seed=2),
                                                                        call_metadata=auth("bob")))).job
    assert wait_job(stub, bob.id, metadata=auth("bob")).status == jpb.JOB_STATUS_SUCCEEDED
    time.sleep(2.0)  # about ten hand-backs at retry_backoff_s = 0.2: more than max_attempts (3)
    waiting = stub.GetJob(jpb.JobRequest(job_id=alice.id), metadata=auth("alice"))
    assert waiting.status == jpb.JOB_STATUS_QUEUED and waiting.attempt == 0
    server.call(limit.release("alice", token))
    done = wait_job(stub, alice.id, metadata=auth("alice"))
    assert done.status == jpb.JOB_STATUS_SUCCEEDED and done.attempt == 1
    assert sync_entries(server, "alice") == []


def test_a_running_job_refuses_the_keys_sync_call_with_a_retry_hint(jobs_server, tmp_path):
    server = jobs_server(api_keys_file=write_keys(tmp_path / "keys.txt"), max_running_per_key=1)
    stub = server.stub
    song = upload(stub, wav_bytes(240.0, seed=3), chunk=1 << 20, call_metadata=auth("alice"))
    job = submit(stub, auth("alice"), input=jpb.JobInput(upload_id=song), model="split5", stems=5).job
    wait_job(stub, job.id, metadata=auth("alice"),
             until=lambda j: j.status == jpb.JOB_STATUS_RUNNING and j.progress > 0)
    short = wav_bytes(1.0, seed=4)
    with pytest.raises(grpc.RpcError) as refused:
        split_stems(server, "alice", short)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "jobs and sync songs running" in refused.value.details()
    assert dict(refused.value.trailing_metadata())["retry-after-s"] == "5"
    assert split_stems(server, "bob", short)[-1].HasField("result")  # another key is not held back
    stub.CancelJob(jpb.JobRequest(job_id=job.id), metadata=auth("alice"))
    assert split_stems(server, "alice", short)[-1].HasField("result")  # the place is free again
    assert sync_entries(server, "alice") == [] and sync_entries(server, "bob") == []


def test_a_sync_place_past_its_expiry_holds_nothing(jobs_server):
    server = jobs_server()  # no keys: every caller is "anonymous", for sync calls and jobs alike
    stub = server.stub
    state = server.system.state
    stale = sync_entry(time.time() - 1, "gone")  # a front end that died mid-song
    server.call(state.set_active("anonymous", stale, SYNC))
    job = submit(stub, input=jpb.JobInput(upload_id=upload(stub, wav_bytes(1.0, seed=5)))).job
    assert wait_job(stub, job.id).status == jpb.JOB_STATUS_SUCCEEDED
    assert split_stems_anonymous(server, wav_bytes(1.0, seed=6))[-1].HasField("result")
    server.call(state.prune_active("anonymous"))
    assert sync_entries(server, "anonymous") == []


def split_stems_anonymous(server, song: bytes) -> list:
    stub = pb_grpc.SeparationStub(server.channel)
    requests = iter([pb.SeparateRequest(options=pb.SeparateOptions(model="split4", stems=4)),
                     pb.SeparateRequest(audio_chunk=song)])
    return list(stub.SplitStems(requests, timeout=30))
