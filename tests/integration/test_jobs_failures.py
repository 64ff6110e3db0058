"""Failures of the jobs system, on real engines: a worker SIGKILLed mid-job, a poison input,
cancel (queued and running), deadlines, per-key and global limits, keys that see only their
own jobs."""

from __future__ import annotations

import hashlib
import http.server
import os
import signal
import threading
import time

import grpc
import pytest
from stemserve.client.proto_gen import jobs_pb2 as jpb

from tests.integration import test_jobs_support as support
from tests.integration.test_jobs_support import (
    read_stem,
    stop_process,
    submit,
    upload,
    wait_job,
    worker_process,
)
from tests.integration.test_service_support import KEYS, wav_bytes, write_keys

jobs_server = support.jobs_server  # the fixture, shared


def auth(name: str):
    return (("authorization", f"Bearer {KEYS[name]}"),)


def test_sigkill_mid_job_completes_exactly_once(jobs_server, repo, tmp_path):
    from tests.integration.test_jobs_webhooks import SECRET, Receiver, wait_for_events

    receiver = Receiver(down_for_s=0.0)
    server = jobs_server(worker=False)
    stub = server.stub
    url = server.system.embedded.url
    workers = [worker_process(tmp_path, repo, url, cache_dir=tmp_path / "cache",
                              env_extra={"STEMSERVE_WEBHOOK_SECRET": SECRET}) for _ in range(2)]
    try:
        song = wav_bytes(240.0, seed=3)
        sha = upload(stub, song, chunk=1 << 20)
        job = submit(stub, input=jpb.JobInput(upload_id=sha), model="split5", stems=5,
                     webhook=jpb.Webhook(url=receiver.url)).job
        wait_job(stub, job.id, until=lambda j: j.status == jpb.JOB_STATUS_RUNNING and j.progress > 0.1)
        victim = next(w for w in workers if running_on(server, job.id).endswith(f"-{w.pid}"))
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        done = wait_job(stub, job.id, timeout_s=60)
        assert done.status == jpb.JOB_STATUS_SUCCEEDED and done.attempt == 2 and not done.cache_hit
        assert running_on(server, job.id).endswith(f"-{next(w for w in workers if w is not victim).pid}")
        for stem in done.stems:
            data = read_stem(stub, job.id, stem.name)
            assert hashlib.sha256(data).hexdigest() == stem.sha256 and len(data) == stem.nb_bytes
        # one job, one result: the queue is empty and nothing comes back after another lease
        time.sleep(2.5)
        assert server.call(server.system.jobs.depth()) == 0
        assert stub.GetJob(jpb.JobRequest(job_id=job.id)).updated_at_unix_s == done.updated_at_unix_s
        # the completed webhook arrived; any repeat has the same event id
        wait_for_events(receiver, {f"{job.id}.succeeded"})
        assert {h["webhook-id"] for h, _ in receiver.accepted} == {f"{job.id}.succeeded"}
    finally:
        for worker in workers:
            stop_process(worker)


def running_on(server, job_id: str) -> str:
    return server.call(server.system.state.get(job_id)).worker


class FailingSource(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self):
        FailingSource.hits += 1
        self.send_error(503, "always down")

    def log_message(self, *args):
        pass


def test_poison_input_fails_after_max_attempts_and_others_go_on(jobs_server):
    server = jobs_server(config_overrides={"max_attempts": 3})
    stub = server.stub
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FailingSource)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        poison = submit(stub, input=jpb.JobInput(url=f"http://127.0.0.1:{httpd.server_port}/song.wav")).job
        garbage = submit(stub, input=jpb.JobInput(upload_id=upload(stub, b"not audio at all" * 100))).job
        good = submit(stub, input=jpb.JobInput(upload_id=upload(stub, wav_bytes(2.0, seed=4)))).job
        failed = wait_job(stub, poison.id)
        assert failed.status == jpb.JOB_STATUS_FAILED and failed.attempt == 3 and FailingSource.hits == 3
        assert failed.error.code == "InputUnavailable" and failed.error.retryable and "503" in failed.error.message
        refused = wait_job(stub, garbage.id)
        assert refused.status == jpb.JOB_STATUS_FAILED and refused.attempt == 1
        assert refused.error.code == "InvalidAudio" and not refused.error.retryable
        assert wait_job(stub, good.id).status == jpb.JOB_STATUS_SUCCEEDED
        dead = server.call(server.system.dead.depth())
        assert dead == 2  # both failures were dead-lettered, the good job was not
    finally:
        httpd.shutdown()


def test_cancel_queued_and_running_and_deadlines(jobs_server):
    server = jobs_server()
    stub = server.stub
    long_song = upload(stub, wav_bytes(240.0, seed=5), chunk=1 << 20)
    running = submit(stub, input=jpb.JobInput(upload_id=long_song), model="split5", stems=5).job
    queued = submit(stub, input=jpb.JobInput(upload_id=upload(stub, wav_bytes(1.0, seed=6)))).job
    wait_job(stub, running.id, until=lambda j: j.status == jpb.JOB_STATUS_RUNNING and j.progress > 0)
    assert stub.CancelJob(jpb.JobRequest(job_id=queued.id)).status == jpb.JOB_STATUS_CANCELED
    canceled = stub.CancelJob(jpb.JobRequest(job_id=running.id))
    assert canceled.status == jpb.JOB_STATUS_CANCELED and canceled.error.code == "Canceled"
    # the worker stops the canceled song within a heartbeat and takes the next job
    after = submit(stub, input=jpb.JobInput(upload_id=upload(stub, wav_bytes(1.0, seed=7)))).job
    assert wait_job(stub, after.id, timeout_s=20).status == jpb.JOB_STATUS_SUCCEEDED
    for job_id in (running.id, queued.id):
        job = stub.GetJob(jpb.JobRequest(job_id=job_id))
        assert job.status == jpb.JOB_STATUS_CANCELED and len(job.stems) == 0
    # a finished job cannot be canceled: the answer is the job as it is
    assert stub.CancelJob(jpb.JobRequest(job_id=after.id)).status == jpb.JOB_STATUS_SUCCEEDED

    late = submit(stub, input=jpb.JobInput(upload_id=long_song), model="split5", stems=5, timeout_s=1.0).job
    expired = wait_job(stub, late.id, timeout_s=20)
    assert expired.status == jpb.JOB_STATUS_EXPIRED and expired.error.code == "DeadlineExceeded"
    assert not expired.error.retryable and len(expired.stems) == 0


def test_per_key_and_global_limits(jobs_server, tmp_path):
    keys = write_keys(tmp_path / "keys.txt")
    server = jobs_server(worker=False, api_keys_file=keys, max_queued_per_key=2, max_queued_jobs=4)
    stub = server.stub
    sha = upload(stub, wav_bytes(1.0), call_metadata=auth("alice"))
    alice = [submit(stub, auth("alice"), input=jpb.JobInput(upload_id=sha), model=m).job for m in ("split4", "split5")]
    with pytest.raises(grpc.RpcError) as per_key:
        submit(stub, auth("alice"), input=jpb.JobInput(upload_id=sha), stems=2)
    assert per_key.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "at most 2 queued" in per_key.value.details()
    assert dict(per_key.value.trailing_metadata())["retry-after-s"] == "5"
    stub.CancelJob(jpb.JobRequest(job_id=alice[0].id), metadata=auth("alice"))  # frees its place for the key
    assert submit(stub, auth("alice"), input=jpb.JobInput(upload_id=sha), stems=2).created
    submit(stub, auth("bob"), input=jpb.JobInput(upload_id=sha))
    with pytest.raises(grpc.RpcError) as overall:
        submit(stub, auth("carol"), input=jpb.JobInput(upload_id=sha))
    assert overall.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "at most 4 jobs" in overall.value.details()
    # a key sees its own jobs only
    with pytest.raises(grpc.RpcError) as hidden:
        stub.GetJob(jpb.JobRequest(job_id=alice[0].id), metadata=auth("bob"))
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
    listed = stub.ListJobs(jpb.ListJobsRequest(), metadata=auth("alice")).jobs
    assert [j.id for j in listed][:2] == [j.id for j in alice] and len(listed) == 3
    with pytest.raises(grpc.RpcError) as unknown:
        stub.ListJobs(jpb.ListJobsRequest(), metadata=(("authorization", "Bearer wrong"),))
    assert unknown.value.code() == grpc.StatusCode.UNAUTHENTICATED
