"""The whole flow in embedded mode (a local nats-server, the local store, a worker in the
server's process): upload, submit, watch, stems identical to an in-process separation, the
cache, idempotency keys, listing, deleting."""

from __future__ import annotations

import hashlib

import grpc
import pytest
from stemserve.client.proto_gen import jobs_pb2 as jpb
from stemserve.core.model_config import load_model
from stemserve.jobs.records import JobStatus
from stemserve.pipeline.options import SeparationOptions
from stemserve.pipeline.run import separate

from tests.integration import test_jobs_support as support
from tests.integration.test_jobs_support import read_stem, submit, upload
from tests.integration.test_service_support import wav_bytes

jobs_server = support.jobs_server  # the fixture, shared


def test_upload_submit_watch_read_and_cache(jobs_server, repo, tmp_path):
    server = jobs_server()
    stub = server.stub
    song = wav_bytes(3.0, seed=1)
    sha = upload(stub, song, chunk=10_000)
    assert sha == hashlib.sha256(song).hexdigest()
    answer = submit(stub, input=jpb.JobInput(upload_id=sha), idempotency_key="first", metadata={"song": "a"})
    assert answer.created and answer.job.status in (jpb.JOB_STATUS_QUEUED, jpb.JOB_STATUS_RUNNING)
    events = list(stub.WatchJob(jpb.JobRequest(job_id=answer.job.id), timeout=30))
    statuses = [e.job.status for e in events]
    assert statuses[-1] == jpb.JOB_STATUS_SUCCEEDED and jpb.JOB_STATUS_RUNNING in statuses
    assert len({e.event_id for e in events}) == len(events)
    job = stub.GetJob(jpb.JobRequest(job_id=answer.job.id))
    assert (job.attempt, job.max_attempts, job.progress, job.cache_hit) == (1, 3, 1.0, False)
    assert job.model_name == "split4" and job.audio_sha256 == sha and dict(job.metadata) == {"song": "a"}
    assert abs(job.audio_seconds - 3.0) < 0.01 and job.started_at_unix_s >= job.created_at_unix_s
    assert [s.name for s in job.stems] == ["vocals", "drums", "bass", "other"]

    (tmp_path / "song.wav").write_bytes(song)
    backend = _local(repo, "split4")
    expected = separate(tmp_path / "song.wav", tmp_path / "direct", backend, SeparationOptions(model="split4"))
    for stem in job.stems:
        data = read_stem(stub, job.id, stem.name)
        assert stem.url == ""  # the local store: read with ReadStem
        assert len(data) == stem.nb_bytes and hashlib.sha256(data).hexdigest() == stem.sha256
        assert data == expected.paths[stem.name].read_bytes()

    again = submit(stub, input=jpb.JobInput(audio_sha256=sha), idempotency_key="second")
    assert again.created and again.job.status == jpb.JOB_STATUS_SUCCEEDED and again.job.cache_hit
    assert [s.sha256 for s in again.job.stems] == [s.sha256 for s in job.stems]
    same = submit(stub, input=jpb.JobInput(upload_id=sha), idempotency_key="first")
    assert not same.created and same.job.id == job.id

    listed = stub.ListJobs(jpb.ListJobsRequest(page_size=1))
    assert [j.id for j in listed.jobs] == [job.id] and listed.next_page_token
    rest = stub.ListJobs(jpb.ListJobsRequest(page_size=5, page_token=listed.next_page_token))
    assert [j.id for j in rest.jobs] == [again.job.id] and rest.next_page_token == ""
    stub.DeleteJob(jpb.JobRequest(job_id=again.job.id))
    with pytest.raises(grpc.RpcError) as missing:
        stub.GetJob(jpb.JobRequest(job_id=again.job.id))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as unfinished:
        read_stem(stub, "0" * 32, "vocals")
    assert unfinished.value.code() == grpc.StatusCode.NOT_FOUND


def test_bad_requests_get_their_status(jobs_server):
    stub = jobs_server(worker=False).stub
    cases = [
        (jpb.JobInput(), grpc.StatusCode.INVALID_ARGUMENT),
        (jpb.JobInput(url="ftp://x/y.wav"), grpc.StatusCode.INVALID_ARGUMENT),
        (jpb.JobInput(audio_sha256="a" * 64), grpc.StatusCode.NOT_FOUND),
        (jpb.JobInput(upload_id="../../etc/passwd"), grpc.StatusCode.INVALID_ARGUMENT),
    ]
    for job_input, code in cases:
        with pytest.raises(grpc.RpcError) as error:
            submit(stub, input=job_input)
        assert error.value.code() == code, job_input
    with pytest.raises(grpc.RpcError) as error:
        stub.CreateUpload(jpb.CreateUploadRequest())
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "S3" in error.value.details()


def test_status_names_match_the_wire():
    assert {s.value for s in JobStatus} == {jpb.JobStatus.Name(v).removeprefix("JOB_STATUS_")
                                            for v in jpb.JobStatus.values() if v}


def _local(repo, name):
    from stemserve.backends.local import LocalBackend

    return LocalBackend(load_model(repo, name), intra_op_threads=1)
