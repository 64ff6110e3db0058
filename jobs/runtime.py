"""The processes of the jobs system:

- ``stemserve serve --jobs`` (:func:`serve_jobs`): the gRPC server with the Jobs service
  beside Separation; without ``nats_url`` it is the embedded mode, one command: a local
  nats-server (data under the cache folder), the local store (unless ``s3_endpoint``) and a
  worker in this process sharing the server's warm models;
- ``stemserve worker`` (:func:`run_worker`): models loaded once, jobs pulled until SIGTERM,
  then drained.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence

from stemserve.client.proto_gen import jobs_pb2_grpc as jpb_grpc
from stemserve.core.settings import Settings
from stemserve.jobs.config import JobsConfig
from stemserve.jobs.limits import SharedRunningLimit
from stemserve.jobs.service import SERVICE_NAME, JobsService
from stemserve.jobs.system import JobSystem
from stemserve.jobs.worker import Worker
from stemserve.preprocess.decode import DecodeLimits
from stemserve.server.app import Extension, ServerParts, StemServer, serve
from stemserve.server.metrics import ServiceMetrics, start_metrics_server
from stemserve.server.models import ModelPool

log = logging.getLogger(__name__)


def decode_limits(settings: Settings) -> DecodeLimits:
    return DecodeLimits(max_bytes=settings.max_upload_bytes, max_duration_s=settings.max_duration_s)


def jobs_extension(system: JobSystem, settings: Settings) -> Extension:
    def register(server, parts: ServerParts) -> Sequence[str]:
        service = JobsService(system, parts.keys, parts.metrics, parts.default_model, settings.max_upload_bytes)
        jpb_grpc.add_JobsServicer_to_server(service, server)
        # a key's sync songs and running jobs count together against max_running_per_key
        parts.limits.shared = SharedRunningLimit(system.state, system.config.max_running_per_key)
        return [SERVICE_NAME]

    return register


async def serve_jobs(settings: Settings, config: JobsConfig) -> None:
    system = await JobSystem.open(config)
    running: list[tuple[Worker, asyncio.Task]] = []
    stopping, failures = asyncio.Event(), []

    async def on_ready(server: StemServer) -> None:
        if system.embedded is not None:
            worker = Worker(system, server.pool, decode_limits(settings), name="embedded")
            task = asyncio.create_task(worker.run())
            task.add_done_callback(stop_if_failed(stopping, failures))
            running.append((worker, task))

    async def on_stop() -> None:
        await drain([w for w, _ in running], [t for _, t in running], settings.shutdown_grace_s)

    try:
        await serve(settings, extensions=[jobs_extension(system, settings)], on_ready=on_ready, on_stop=on_stop,
                    stopping=stopping)
    finally:
        await system.close()
    if failures:
        raise failures[0]


def stop_if_failed(stopping: asyncio.Event, failures: list[BaseException]) -> Callable[[asyncio.Task], None]:
    """A done-callback for a worker's loop: one that died sets ``stopping`` (the server or
    the worker process shuts down) and leaves its error to raise, so the process exits and is
    restarted rather than keeping jobs queued with nobody pulling them."""

    def on_done(task: asyncio.Task) -> None:
        if task.cancelled() or task.exception() is None:
            return
        log.error("the worker loop stopped (%r); shutting down", task.exception())
        failures.append(task.exception())
        stopping.set()

    return on_done


async def drain(workers: Sequence[Worker], tasks: Sequence[asyncio.Task], grace_s: float) -> None:
    """Stop pulling; jobs in flight get ``grace_s`` to finish, the rest go back after their lease."""
    for worker in workers:
        worker.drain()
    if tasks:
        _done, pending = await asyncio.wait(tasks, timeout=grace_s)
        for task in pending:
            task.cancel()
    for worker in workers:
        await worker.close()


async def supervise(worker: Worker, grace_s: float, stopping: asyncio.Event) -> None:
    """Run the worker until ``stopping`` is set, then drain it. A worker loop that dies sets
    it too and raises its error here, so the process exits and is restarted instead of idling."""
    failures: list[BaseException] = []
    task = asyncio.create_task(worker.run())
    task.add_done_callback(stop_if_failed(stopping, failures))
    await stopping.wait()
    await drain([worker], [task], grace_s)
    if failures:
        raise failures[0]


async def run_worker(settings: Settings, config: JobsConfig) -> None:
    metrics = ServiceMetrics()
    httpd, port = start_metrics_server(settings.metrics_port, metrics.registry)
    pool = ModelPool.from_settings(settings, metrics)  # in process, or on Triton (a fleet: several addresses)
    await asyncio.to_thread(pool.load_and_warm)
    system = await JobSystem.open(config, name="stemserve-worker")
    worker = Worker(system, pool, decode_limits(settings), metrics=metrics)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    log.info("worker %s ready (models %s), metrics on port %d", worker.name, pool.names, port)
    try:
        await supervise(worker, settings.shutdown_grace_s, stopping)
    finally:
        await system.close()
        pool.close()
        httpd.shutdown()
