"""Shared pieces of the jobs tests (no tests here): engines as fixtures, a way to run an
``async def`` body, unique names."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Coroutine
from typing import Any

import grpc
import pytest
from stemserve.client.proto_gen import jobs_pb2 as jpb
from stemserve.client.proto_gen import jobs_pb2_grpc as jpb_grpc
from stemserve.client.proto_gen import separation_pb2 as pb
from stemserve.jobs.nats_process import NatsProcess

from tests.integration.engines import NatsCluster, SeaweedS3
from tests.integration.test_service_support import settings_for


def run(coroutine: Coroutine[Any, Any, Any], timeout_s: float = 60.0) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, timeout_s))


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory):
    server = NatsProcess.start(tmp_path_factory.mktemp("nats"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory):
    s3 = SeaweedS3.start(tmp_path_factory.mktemp("seaweed"))
    yield s3
    s3.stop()


@pytest.fixture(scope="module")
def nats_cluster(tmp_path_factory):
    cluster = NatsCluster.start(tmp_path_factory.mktemp("cluster"))
    yield cluster
    cluster.stop()


class JobsServer:
    """The gRPC server with the Jobs service, and (``worker=True``) a worker sharing its
    models, on their own event loop in a daemon thread: what ``serve --jobs`` runs."""

    def __init__(self, settings, config, *, worker: bool = True) -> None:
        self.settings, self.config, self.with_worker = settings, config, worker
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0
        self.worker = None

    def call(self, coroutine, timeout_s: float = 60.0):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)

    def start(self) -> JobsServer:
        from stemserve.jobs.runtime import decode_limits, jobs_extension
        from stemserve.jobs.system import JobSystem
        from stemserve.jobs.worker import Worker
        from stemserve.server.app import create_server

        self.thread.start()

        async def build():
            self.system = await JobSystem.open(self.config)
            self.server, self.port = create_server(self.settings, extensions=[jobs_extension(self.system, self.settings)])
            await self.server.start()
            await self.server.warm_up()
            if self.with_worker:
                self.worker = Worker(self.system, self.server.pool, decode_limits(self.settings), name="in-process",
                                     metrics=self.server.metrics)
                self.worker_task = asyncio.create_task(self.worker.run())

        self.call(build())
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = jpb_grpc.JobsStub(self.channel)
        return self

    def stop(self) -> None:
        async def down():
            if self.worker is not None:
                self.worker.drain()
                await asyncio.wait([self.worker_task], timeout=10)
                await self.worker.close()
            await self.server.stop(0)
            await self.system.close()

        self.channel.close()
        self.call(down())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def jobs_settings(tmp_path, repo, **overrides):
    values = {"models": "split4,split5", "job_lease_s": 2.0, "max_running_per_key": 4}
    values.update(overrides)
    return settings_for(tmp_path, repo, **values)


@pytest.fixture
def jobs_server(tmp_path, repo):
    """``jobs_server(**settings) -> JobsServer`` (embedded NATS, local store unless s3_endpoint)."""
    from stemserve.jobs.config import JobsConfig

    running: list[JobsServer] = []

    def start(*, worker: bool = True, config_overrides: dict | None = None, **overrides) -> JobsServer:
        settings = jobs_settings(tmp_path, repo, **overrides)
        config = JobsConfig.from_settings(settings, retry_backoff_s=0.2, **(config_overrides or {}))
        server = JobsServer(settings, config, worker=worker).start()
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()


def upload(stub, data: bytes, chunk: int = 64 * 1024, call_metadata=None) -> str:
    chunks = (jpb.UploadAudioRequest(chunk=data[i:i + chunk]) for i in range(0, len(data), chunk))
    return stub.UploadAudio(chunks, metadata=call_metadata).upload_id


def submit(stub, call_metadata=None, *, model: str = "split4", stems: int = 4, **fields):
    request = jpb.SubmitJobRequest(options=pb.SeparateOptions(model=model, stems=stems), **fields)
    return stub.SubmitJob(request, metadata=call_metadata)


def wait_job(stub, job_id: str, timeout_s: float = 30.0, metadata=None, until=None):
    """Poll GetJob until the job is terminal (or ``until(job)``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = stub.GetJob(jpb.JobRequest(job_id=job_id), metadata=metadata)
        if (until(job) if until else job.status in TERMINAL):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {jpb.JobStatus.Name(job.status)} after {timeout_s:g} s")
        time.sleep(0.05)


def read_stem(stub, job_id: str, stem: str, metadata=None) -> bytes:
    parts = list(stub.ReadStem(jpb.ReadStemRequest(job_id=job_id, stem=stem), metadata=metadata))
    return b"".join(p.data for p in parts)


TERMINAL = {jpb.JOB_STATUS_SUCCEEDED, jpb.JOB_STATUS_FAILED, jpb.JOB_STATUS_CANCELED, jpb.JOB_STATUS_EXPIRED}


def worker_process(folder, repo, nats_url: str, *, cache_dir, extra=(), env_extra=None) -> subprocess.Popen:
    """``python -m stemserve.jobs worker`` (what ``stemserve worker`` runs), returned once its
    models are warm and it pulls jobs; its log in ``folder``."""
    log_path = folder / f"worker-{uuid.uuid4().hex[:6]}.log"
    command = [sys.executable, "-m", "stemserve.jobs", "--log-level", "INFO", "--model-repository", str(repo),
               "worker", "--models", "split4,split5", "--nats-url", nats_url, "--cache-dir", str(cache_dir),
               "--metrics-port", "0", "--job-lease-s", "2", *extra]
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEMSERVE_")}
    env.update({"STEMSERVE_INTRA_OP_THREADS": "1", **(env_extra or {})})
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    process.log_path = log_path  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while b" ready (models" not in log_path.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"worker did not start: {log_path.read_text()[-2000:]}")
        time.sleep(0.1)
    return process


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
