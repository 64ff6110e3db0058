"""Cluster mode on real engines: a 3-node NATS cluster (streams and KV replicated 3 times),
SeaweedFS's S3, two API front ends, two worker processes. Jobs flow through any front end
and worker; presigned URLs upload and download; one NATS node SIGKILLed while clients submit
loses no accepted job; S3 killed during a job is retried and the job completes when S3 is
back within its attempts, else FAILED with a retryable error and no stems. About 60 s."""

from __future__ import annotations

import hashlib
import threading
import time
import urllib.request

import grpc
import pytest
from stemserve.client.proto_gen import jobs_pb2 as jpb
from stemserve.jobs.config import JOBS_STREAM

from tests.integration import test_jobs_support as support
from tests.integration.engines import ACCESS_KEY, SECRET_KEY
from tests.integration.test_jobs_support import stop_process, submit, upload, wait_job, worker_process
from tests.integration.test_service_support import wav_bytes

jobs_server, nats_cluster, seaweed = support.jobs_server, support.nats_cluster, support.seaweed  # the fixtures


@pytest.fixture
def cluster(jobs_server, nats_cluster, seaweed, repo, tmp_path):
    s3 = {"s3_endpoint": seaweed.endpoint_url, "s3_bucket": "stemserve-cluster", "s3_access_key": ACCESS_KEY,
          "s3_secret_key": SECRET_KEY}
    urls = ",".join(nats_cluster.urls)
    fronts = [jobs_server(worker=False, nats_url=urls, nats_replicas=3, job_max_attempts=5, **s3) for _ in range(2)]
    env = {"STEMSERVE_S3_ACCESS_KEY": ACCESS_KEY, "STEMSERVE_S3_SECRET_KEY": SECRET_KEY}
    extra = ("--nats-replicas", "3", "--s3-endpoint", seaweed.endpoint_url, "--s3-bucket", "stemserve-cluster",
             "--job-max-attempts", "5")
    workers = [worker_process(tmp_path, repo, urls, cache_dir=tmp_path / f"w{i}", extra=extra, env_extra=env)
               for i in range(2)]
    yield fronts, workers
    for worker in workers:
        stop_process(worker)


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.read()


def test_cluster_flow_node_kill_and_s3_outage(cluster, nats_cluster, seaweed):
    (front_a, front_b), _ = cluster
    a, b = front_a.stub, front_b.stub

    # the whole flow across front ends and workers, stems by presigned URL
    sha = upload(a, wav_bytes(2.0, seed=11))
    job = wait_job(b, submit(b, input=jpb.JobInput(upload_id=sha)).job.id)
    assert job.status == jpb.JOB_STATUS_SUCCEEDED
    for stem in job.stems:
        assert stem.url.startswith(seaweed.endpoint_url) and stem.url_expires_at_unix_s > time.time()
        assert hashlib.sha256(fetch(stem.url)).hexdigest() == stem.sha256
    presigned = a.CreateUpload(jpb.CreateUploadRequest())
    request = urllib.request.Request(presigned.put_url, data=wav_bytes(1.0, seed=12), method="PUT")
    assert urllib.request.urlopen(request, timeout=10).status == 200
    direct = wait_job(a, submit(a, input=jpb.JobInput(upload_id=presigned.upload_id)).job.id)
    assert direct.status == jpb.JOB_STATUS_SUCCEEDED and direct.audio_sha256

    # SIGKILL the job stream's leader while two clients submit: every accepted job finishes
    leader = front_a.call(_stream_leader(front_a))
    accepted, refused = [], []

    def client(stub, seed: int) -> None:
        song = upload(stub, wav_bytes(0.5, seed=seed))
        for i in range(6):
            try:
                answer = submit(stub, input=jpb.JobInput(upload_id=song), model=("split4", "split5")[i % 2],
                                stems=(4, 2, 5)[i % 3] if i % 2 else (4, 2)[i % 2], idempotency_key=f"{seed}-{i}")
                accepted.append(answer.job.id)
            except grpc.RpcError as exc:
                refused.append(exc.code())
            time.sleep(0.3)

    threads = [threading.Thread(target=client, args=(stub, seed)) for stub, seed in ((a, 100), (b, 200))]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    nats_cluster.kill([n.name for n in nats_cluster.nodes].index(leader))
    for thread in threads:
        thread.join(90)
    assert len(accepted) >= 8 and set(refused) <= {grpc.StatusCode.UNAVAILABLE}
    for job_id in accepted:
        assert wait_job(a, job_id, timeout_s=60).status == jpb.JOB_STATUS_SUCCEEDED
    nats_cluster.restart([n.name for n in nats_cluster.nodes].index(leader))

    # S3 stopped mid-job and back within the deadline: retried, completed, every stem there
    long_song = upload(a, wav_bytes(120.0, seed=13), chunk=1 << 20)
    slow = submit(a, input=jpb.JobInput(upload_id=long_song), model="split5", stems=5).job
    wait_job(a, slow.id, until=lambda j: j.status == jpb.JOB_STATUS_RUNNING and j.progress > 0)
    seaweed.kill()  # a crash: a graceful stop of weed mini can itself take 20 s
    failed_once = wait_job(a, slow.id, until=lambda j: j.error.code == "StoreUnavailable")
    assert failed_once.error.retryable and failed_once.status != jpb.JOB_STATUS_FAILED
    seaweed.spawn()
    done = wait_job(a, slow.id, timeout_s=60)
    assert done.status == jpb.JOB_STATUS_SUCCEEDED and len(done.stems) == 5 and done.attempt >= 2
    for stem in done.stems:
        assert hashlib.sha256(fetch(stem.url)).hexdigest() == stem.sha256

    # ... and gone past the attempts: FAILED, retryable, no stems
    other = submit(a, input=jpb.JobInput(upload_id=long_song), model="split4", stems=4).job
    wait_job(a, other.id, until=lambda j: j.status == jpb.JOB_STATUS_RUNNING and j.progress > 0)
    seaweed.kill()
    try:
        failed = wait_job(a, other.id, timeout_s=90)
        assert failed.status == jpb.JOB_STATUS_FAILED and failed.error.retryable
        assert failed.error.code == "StoreUnavailable" and "S3" in failed.error.message and len(failed.stems) == 0
    finally:
        seaweed.spawn()


async def _stream_leader(front) -> str:
    info = await front.system.broker.js.stream_info(JOBS_STREAM)
    return info.cluster.leader
