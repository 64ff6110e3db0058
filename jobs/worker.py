"""A warm worker: models loaded once, jobs pulled from the queue one per slot, each run in
process (or on Triton) by the same pipeline as the sync service.

One delivery: read the record -> finished already: re-emit its final event and ack (a
redelivery after a crash between the result and the ack) -> expired or canceled: settle and
ack -> RUNNING (compare-and-set; a duplicate message of a job another attempt runs is
dropped) -> heartbeats extend the lease and notice a cancel -> fetch the input -> a
complete result for its cache key finishes it without computing -> separate -> stems, then
the marker, to the store -> SUCCEEDED -> event -> ack. A failed attempt that is retryable
goes back to QUEUED and is nak'ed with a doubling delay within the deadline; the last
attempt, or a non-retryable error, is FAILED and dead-lettered. A worker that dies leaves
its delivery un-acked: the queue hands it to another worker after the lease; a delivery of
a job whose last attempt was running is FAILED and dead-lettered. Attempts are counted in
the job record, not by the queue: a job held back by its key's running limit is nak'ed
without using one (the job queue redelivers without a bound; a queue with
``max_attempts`` still reports to :meth:`Worker.dead_letter`).

SIGTERM drains: no new pulls, jobs in flight finish within the grace period; those that do
not are left to their lease.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from stemserve.core.errors import DeadlineExceededError, InvalidOptionError
from stemserve.jobs.broker import Delivery
from stemserve.jobs.errors import error_code, is_retryable
from stemserve.jobs.inputs import fetch_input
from stemserve.jobs.records import JobError, JobRecord, JobStatus
from stemserve.jobs.results import read_result, result_changes, result_key_for, write_result
from stemserve.jobs.state import running_count
from stemserve.jobs.system import JobSystem
from stemserve.pipeline.options import SeparationOptions
from stemserve.pipeline.run import separate
from stemserve.preprocess.decode import DecodeLimits, probe
from stemserve.server.models import ModelPool

log = logging.getLogger(__name__)

PULL_WAIT_S = 1.0
PROGRESS_EVERY_S = 0.5


class JobStopped(Exception):
    """The job was canceled (or the worker is going away) while it ran."""


class Worker:
    def __init__(self, system: JobSystem, pool: ModelPool, limits: DecodeLimits, *, name: str = "",
                 work_dir: Path | None = None, metrics=None) -> None:
        self.system, self.pool, self.limits = system, pool, limits
        self.config = system.config
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.work_dir = work_dir
        self.metrics = metrics
        self.executor = ThreadPoolExecutor(max_workers=self.config.worker_concurrency, thread_name_prefix="job")
        self.busy = 0
        self._draining = asyncio.Event()

    async def announce_models(self) -> None:
        for name, (spec, device) in self.pool.specs().items():
            await self.system.state.publish_model(name, {"version": spec.model_version, "stems": list(spec.stems),
                                                         "device": device})

    async def run(self) -> None:
        """Pull and run jobs until :meth:`drain`; then wait for those in flight."""
        from stemserve.jobs.webhooks import WebhookSender

        await self.system.jobs.on_dead_letter(self.dead_letter)
        await self.announce_models()
        sender = WebhookSender(self.system.hooks, self.config.webhook_secret, self.config.webhook_backoff_s,
                               self.metrics)
        hooks = asyncio.create_task(sender.run(self._draining))
        slots = [asyncio.create_task(self._slot()) for _ in range(self.config.worker_concurrency)]
        await asyncio.gather(*slots, hooks)

    def drain(self) -> None:
        self._draining.set()

    async def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def _slot(self) -> None:
        while not self._draining.is_set():
            delivery = await self.system.jobs.pull(PULL_WAIT_S)
            if delivery is None:
                continue
            self.busy += 1
            try:
                if self.metrics is not None:
                    self.metrics.busy_workers.set(self.busy)
                    self.metrics.job_queue_depth.set(await self.system.jobs.depth())
                await self.handle(delivery)
            except Exception:
                log.exception("job message %s: unexpected error; left to its lease", delivery.message_id)
            finally:
                self.busy -= 1
                if self.metrics is not None:
                    self.metrics.busy_workers.set(self.busy)

    async def handle(self, delivery: Delivery) -> None:
        state, job_id = self.system.state, delivery.data.decode()
        record = await state.get(job_id)
        if record is None:  # deleted
            await delivery.ack()
            return
        if record.status.terminal:
            await self.system.events.emit(record)
            await delivery.ack()
            return
        if record.status is JobStatus.RUNNING and record.sequence not in (0, delivery.sequence):
            await delivery.ack()  # a second message of a job that another attempt runs
            return
        if record.expired():
            await self._settle(delivery, JobStatus.EXPIRED, DeadlineExceededError("the job's deadline passed "
                                                                                   "before it ran"))
            return
        if record.status is JobStatus.RUNNING and record.attempt >= record.max_attempts:
            await self._lost_last_attempt(delivery, record)  # its last attempt's worker died
            return
        running = running_count(await state.active(record.owner), time.time(), exclude=job_id)
        if running >= self.config.max_running_per_key:  # its other jobs and sync songs first
            await delivery.nak(delay_s=self.config.retry_backoff_s)  # not an attempt: the record counts those
            return
        record, changed = await state.transition(job_id, lambda r: r.with_status(
            JobStatus.RUNNING, attempt=r.attempt + 1, started_at=time.time(), worker=self.name,
            sequence=delivery.sequence, progress=0.0))
        if not changed:  # canceled meanwhile
            await self.system.events.emit(record)
            await delivery.ack()
            return
        await self.system.events.emit(record)
        self._observe_start(record)
        stop = threading.Event()
        beat = asyncio.create_task(self._heartbeat(delivery, job_id, stop))
        try:
            changes = await self._execute(record, stop)
        except Exception as exc:  # noqa: BLE001 - each failure settles the job or retries it
            await self._failed(delivery, exc, stop)
            return
        finally:
            beat.cancel()
        record, _ = await state.transition(job_id, lambda r: r.with_status(JobStatus.SUCCEEDED, progress=1.0,
                                                                           **changes))
        self._observe_end(record)
        await self.system.events.emit(record)
        await delivery.ack()

    def _observe_start(self, record: JobRecord) -> None:
        if self.metrics is not None:
            self.metrics.job_attempts.inc()
            self.metrics.jobs.labels(state=JobStatus.RUNNING.value).inc()
            self.metrics.job_queue_wait.observe(max(record.started_at - record.created_at, 0.0))

    def _observe_end(self, record: JobRecord, dead: bool = False) -> None:
        if self.metrics is not None:
            self.metrics.jobs.labels(state=record.status.value).inc()
            if record.started_at:
                self.metrics.job_run_time.labels(state=record.status.value).observe(time.time() - record.started_at)
            if dead:
                self.metrics.jobs_dead_lettered.inc()

    async def _failed(self, delivery: Delivery, exc: Exception, stop: threading.Event) -> None:
        state, job_id = self.system.state, delivery.data.decode()
        record = await state.get(job_id)
        if record is None or record.status.terminal:  # canceled (the stop) or deleted
            await delivery.ack()
            return
        if isinstance(exc, DeadlineExceededError) or record.expired():
            await self._settle(delivery, JobStatus.EXPIRED, exc)
            return
        remaining = record.deadline_at - time.time() if record.deadline_at else float("inf")
        attempt = max(record.attempt, 1)
        delay = min(self.config.retry_backoff_s * 2 ** (attempt - 1), max(remaining, 0.0))
        if is_retryable(exc) and attempt < record.max_attempts and remaining > delay:
            log.warning("job %s attempt %d failed (%s); retrying in %.1f s", job_id, attempt, exc, delay)
            error = JobError(error_code(exc), str(exc), True)
            await state.transition(job_id, lambda r: r.with_status(JobStatus.QUEUED, error=error, progress=0.0))
            await delivery.nak(delay_s=delay)
            return
        log.warning("job %s failed on attempt %d: %s", job_id, attempt, exc)
        await self._settle(delivery, JobStatus.FAILED, exc, dead=True)

    async def _settle(self, delivery: Delivery, status: JobStatus, exc: BaseException, dead: bool = False) -> None:
        error = JobError(error_code(exc), str(exc), is_retryable(exc))
        await self._finish(delivery.data.decode(), status, error, dead)
        await delivery.ack()

    async def _finish(self, job_id: str, status: JobStatus, error: JobError, dead: bool) -> None:
        """The terminal record (once: a job already terminal stays as it is), dead-lettered
        when ``dead``, then its event."""
        record, changed = await self.system.state.transition(job_id, lambda r: r.with_status(status, error=error))
        if changed:
            if dead:
                await self.system.dead.publish(record.id, record.to_bytes())
            self._observe_end(record, dead)
        await self.system.events.emit(record)

    async def _lost_last_attempt(self, delivery: Delivery, record: JobRecord) -> None:
        """The job's last attempt was running when its worker died (or lost its lease)."""
        await self._fail_unfinished(record, record.attempt)
        await delivery.ack()

    async def dead_letter(self, sequence: int, deliveries: int) -> None:
        """A job message ran out of attempts without an answer (its workers died)."""
        found = await self.system.jobs.message(sequence)
        if found is not None:
            record = await self.system.state.get(found[1].decode())
            if record is not None and not record.status.terminal:
                await self._fail_unfinished(record, deliveries)
        await self.system.jobs.remove(sequence)

    async def _fail_unfinished(self, record: JobRecord, attempts: int) -> None:
        """FAILED with the last error, dead-lettered: no worker finished the job in ``attempts``."""
        last = record.error
        error = JobError(last.code if last else "MaxAttempts",
                         f"no worker finished the job in {attempts} attempts (each worker died, lost its "
                         f"lease or failed){'; last error: ' + last.message if last else ''}",
                         last.retryable if last else False)
        await self._finish(record.id, JobStatus.FAILED, error, dead=True)

    async def _heartbeat(self, delivery: Delivery, job_id: str, stop: threading.Event) -> None:
        every = self.config.lease_s / 3
        while True:
            await asyncio.sleep(every)
            try:
                await delivery.in_progress()
                record = await self.system.state.get(job_id)
                if record is None or record.status.terminal:
                    stop.set()
            except Exception:
                log.warning("heartbeat of job %s failed", job_id, exc_info=True)

    async def _execute(self, record: JobRecord, stop: threading.Event) -> dict:
        loop = asyncio.get_running_loop()
        store = self.system.store
        options = SeparationOptions(**record.options)
        backend = self.pool.get(options.model)
        spec = backend.spec
        if record.model_version and record.model_version != spec.model_version:
            raise InvalidOptionError(f"model {spec.name} is served at version {spec.model_version}, "
                                     f"not {record.model_version}")
        with tempfile.TemporaryDirectory(prefix="stemserve-job-", dir=self.work_dir) as folder:
            source = Path(folder) / "input"
            sha = await loop.run_in_executor(self.executor, fetch_input, record.input, store, source,
                                             self.limits.max_bytes)
            key = result_key_for(sha, spec.name, spec.model_version, options)
            found = await self.system.state.result(key)
            if found is None:
                found = await loop.run_in_executor(self.executor, read_result, store, key)
            if found is None:
                await loop.run_in_executor(self.executor, probe, source, self.limits)
                progress = _Progress(self, record, stop, loop)
                result = await loop.run_in_executor(
                    self.executor, lambda: separate(source, Path(folder) / "stems", backend, options,
                                                    limits=self.limits, progress=progress))
                found = await loop.run_in_executor(self.executor, write_result, store, key, result, record.id)
            await self.system.state.put_result(key, found)
        return {**result_changes(found, record.id), "audio_sha256": sha}


class _Progress:
    """The pipeline's progress callback, on the worker thread: stops a canceled or expired
    job between windows, and records the progress every ``PROGRESS_EVERY_S``."""

    def __init__(self, worker: Worker, record: JobRecord, stop: threading.Event, loop) -> None:
        self.worker, self.record, self.stop, self.loop = worker, record, stop, loop
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        if self.stop.is_set():
            raise JobStopped(f"job {self.record.id} stopped after {done}/{total} windows")
        if self.record.expired():
            raise DeadlineExceededError(f"the job's deadline passed after {done}/{total} windows")
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S and total:
            self.last = now
            fraction = done / total
            state = self.worker.system.state

            def change(r: JobRecord) -> JobRecord | None:
                return replace(r, progress=fraction, updated_at=time.time()) if r.status is JobStatus.RUNNING else None

            asyncio.run_coroutine_threadsafe(state.transition(self.record.id, change), self.loop)
