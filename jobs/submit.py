"""Accepting a job: input, options and model checked, then (in this order) the idempotency
key, a finished result (a cache hit answers SUCCEEDED at once), an identical job in flight
to join, the per-key and global queue limits, then the record is written and the job queued.

A job is accepted (the caller gets its id) only once its message is in the queue; a queue
that stays unavailable turns the new record FAILED (retryable) and the call UNAVAILABLE. A
retried submit with the same idempotency key re-queues a job that never started under the
same message id, which the queue's de-dup window drops if it was queued already.
"""

from __future__ import annotations

import re
import time
import uuid

from stemserve.client.proto_gen import jobs_pb2 as jpb
from stemserve.core.errors import InvalidOptionError, ResourceExhaustedError, RetryLaterError
from stemserve.jobs.broker import BrokerUnavailable
from stemserve.jobs.errors import JobNotFoundError, JobStateError
from stemserve.jobs.messages import options_from_request, options_to_dict
from stemserve.jobs.records import JobError, JobInput, JobRecord, JobStatus
from stemserve.jobs.results import result_changes, result_key_for
from stemserve.jobs.state import token
from stemserve.jobs.system import JobSystem
from stemserve.pipeline.options import SeparationOptions

SHA256 = re.compile(r"^[0-9a-f]{64}$")
UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
RETRY_AFTER_S = 5


class Submitter:
    def __init__(self, system: JobSystem, default_model: str) -> None:
        self.system, self.default_model = system, default_model
        self.config = system.config

    async def submit(self, owner: str, request: jpb.SubmitJobRequest) -> tuple[JobRecord, bool]:
        system, state = self.system, self.system.state
        options = options_from_request(request.options, self.default_model)
        job_input, sha = await self._input(request.input)
        now = time.time()
        timeout_s = request.timeout_s if request.timeout_s > 0 else self.config.timeout_s
        record = JobRecord(
            id=uuid.uuid4().hex, owner=owner, input=job_input, options=options_to_dict(options),
            max_attempts=self.config.max_attempts, created_at=now, updated_at=now, deadline_at=now + timeout_s,
            model_name=options.model, model_version=request.model_version, audio_sha256=sha,
            idempotency_key=request.idempotency_key, webhook_url=_webhook_url(request.webhook.url),
            webhook_events=tuple(request.webhook.events), metadata=dict(request.metadata),
        )
        idem_key = f"idem.{token(owner)}.{token(request.idempotency_key)}" if request.idempotency_key else ""
        if idem_key:
            earlier = await state.claim(idem_key, record.id)
            if earlier is not None:
                return await self._answer_again(earlier), False
        try:
            answer = await self._cached_or_joined(record, options)
            if answer is not None:
                if idem_key and answer[0].id != record.id:
                    await state.kv.put(idem_key, answer[0].id.encode())
                return answer
            await self._reserve(record)
            await state.create(record)
            try:
                await system.jobs.publish(record.id, record.id.encode())
            except (BrokerUnavailable, ResourceExhaustedError) as exc:
                failed = record.with_status(JobStatus.FAILED, error=JobError(type(exc).__name__, str(exc), True))
                await state.transition(record.id, lambda _: failed)
                raise
        except BaseException:
            if idem_key:
                await state.release(idem_key)
            raise
        return record, True

    async def _input(self, message: jpb.JobInput) -> tuple[JobInput, str]:
        kind = message.WhichOneof("source")
        store = self.system.store
        if kind == "upload_id":
            value = message.upload_id
            if SHA256.match(value):
                return await self._by_sha(value)
            if not UPLOAD_ID.match(value):
                raise InvalidOptionError(f"upload_id must be an id from UploadAudio or CreateUpload, not {value!r}")
            if await _size(store, f"uploads/{value}") is None:
                raise JobNotFoundError(f"upload {value} has no data yet; PUT the file to its URL first")
            return JobInput("upload", f"uploads/{value}"), ""
        if kind == "audio_sha256":
            return await self._by_sha(message.audio_sha256.lower())
        if kind == "url":
            url = message.url
            if url.startswith("s3://"):
                key = store.key_of_url(url)
                if key is None:
                    raise InvalidOptionError(f"s3:// inputs need an S3 store; got {url!r} with the {store.kind} store")
                return JobInput("upload", key), ""
            if url.startswith(("https://", "http://")):
                return JobInput("url", url), ""
            raise InvalidOptionError(f"input url must start with s3://, https:// or http://, not {url[:40]!r}")
        raise InvalidOptionError("input must hold an upload_id, a url or an audio_sha256, got none")

    async def _by_sha(self, sha: str) -> tuple[JobInput, str]:
        if not SHA256.match(sha):
            raise InvalidOptionError(f"audio_sha256 must be 64 hex digits, not {sha!r}")
        if await _size(self.system.store, f"audio/{sha}") is None:
            raise JobNotFoundError(f"no audio with sha256 {sha} was uploaded")
        return JobInput("upload", f"audio/{sha}"), sha

    async def _answer_again(self, job_id: str) -> JobRecord:
        record = await self.system.state.require(job_id)
        if record.status is JobStatus.QUEUED and record.attempt == 0:
            await self.system.jobs.publish(record.id, record.id.encode())  # lost before? de-dup drops it if not
        return record

    async def _cached_or_joined(self, record: JobRecord, options: SeparationOptions) -> tuple[JobRecord, bool] | None:
        state = self.system.state
        model = await state.model(options.model)
        if model is None:
            return None  # no worker announced the model yet: the worker checks the cache
        if record.model_version and record.model_version != model["version"]:
            raise JobStateError(f"model {options.model} is served at version {model['version']}, "
                                f"not {record.model_version}")
        if not record.audio_sha256:
            return None
        key = result_key_for(record.audio_sha256, options.model, model["version"], options)
        found = await state.result(key)
        if found is not None:
            done = record.with_status(JobStatus.SUCCEEDED, progress=1.0, **result_changes(found, record.id))
            await state.create(done)
            return done, True
        joined = await state.claim(f"inflight.{token(record.owner)}.{key}", record.id)
        if joined is not None:
            other = await state.get(joined)
            if other is not None and not other.status.terminal:
                return other, False
            await state.kv.put(f"inflight.{token(record.owner)}.{key}", record.id.encode())
        return None

    async def _reserve(self, record: JobRecord) -> None:
        config, state = self.config, self.system.state
        depth = await self.system.jobs.depth()
        if depth >= config.max_queued_jobs:
            raise RetryLaterError(f"the queue holds at most {config.max_queued_jobs} jobs, got a submit while "
                                  f"{depth} are queued; retry after {RETRY_AFTER_S} s", retry_after_s=RETRY_AFTER_S)

        def check(active: dict[str, str]) -> None:
            queued = sum(1 for status in active.values() if status == JobStatus.QUEUED.value)
            if queued >= config.max_queued_per_key:
                raise RetryLaterError(
                    f"API key {record.owner!r} may have at most {config.max_queued_per_key} queued jobs, got a "
                    f"submit while {queued} are queued; retry after {RETRY_AFTER_S} s", retry_after_s=RETRY_AFTER_S)

        try:
            await state.set_active(record.owner, record.id, JobStatus.QUEUED, check)
        except ResourceExhaustedError:
            await state.prune_active(record.owner)  # jobs that finished without leaving the set
            await state.set_active(record.owner, record.id, JobStatus.QUEUED, check)


def _webhook_url(url: str) -> str:
    if url and not url.startswith(("https://", "http://")):
        raise InvalidOptionError(f"webhook url must be http(s), not {url[:40]!r}")
    return url


async def _size(store, key: str) -> int | None:
    import asyncio

    return await asyncio.to_thread(store.size, key)


__all__ = ["RETRY_AFTER_S", "Submitter"]
