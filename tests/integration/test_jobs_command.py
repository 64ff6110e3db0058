"""``stemserve serve --jobs``: one command gives the sync service and the Jobs API, with a
local nats-server (its data under the cache folder), the local store and a worker."""

from __future__ import annotations

import hashlib

import grpc
from stemserve.client.proto_gen import jobs_pb2 as jpb
from stemserve.client.proto_gen import jobs_pb2_grpc as jpb_grpc

from tests.integration.serve_process import free_port, serve_process
from tests.integration.test_jobs_support import read_stem, submit, upload, wait_job
from tests.integration.test_service_support import wav_bytes


def test_serve_jobs_is_one_command(tmp_path, repo):
    port = free_port()
    args = ["--jobs", "--models", "split4", "--cache-dir", str(tmp_path / "cache")]
    with serve_process(repo, port, args, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}), \
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = jpb_grpc.JobsStub(channel)
        song = wav_bytes(1.0, seed=4)
        sha = upload(stub, song)
        job = submit(stub, input=jpb.JobInput(upload_id=sha)).job
        done = wait_job(stub, job.id)
        assert done.status == jpb.JOB_STATUS_SUCCEEDED and [s.name for s in done.stems] == [
            "vocals", "drums", "bass", "other"]
        vocals = read_stem(stub, job.id, "vocals")
        assert hashlib.sha256(vocals).hexdigest() == done.stems[0].sha256 and len(vocals) > 44
    jobs = tmp_path / "cache" / "jobs"
    assert any((jobs / "nats").rglob("*")) and any((jobs / "store").rglob("*"))  # under the cache folder
