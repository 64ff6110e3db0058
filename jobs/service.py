"""The ``stemserve.v1.Jobs`` handlers: uploads, submits, the job's state and events, stems.

Every call authenticates (the key's name owns the jobs it submits: another key sees none of
them), then works on the shared state (``jobs/state.py``) and store; errors cross to gRPC
statuses at ``server/status.py`` only (RESOURCE_EXHAUSTED carries ``retry-after-s``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import tempfile
import time
import uuid
from pathlib import Path

import grpc
from stemserve.client.proto_gen import jobs_pb2 as jpb
from stemserve.client.proto_gen import jobs_pb2_grpc as jpb_grpc
from stemserve.core.errors import InvalidAudioError
from stemserve.jobs.errors import JobStateError
from stemserve.jobs.messages import event_to_proto, job_to_proto
from stemserve.jobs.records import JobError, JobStatus
from stemserve.jobs.submit import Submitter
from stemserve.jobs.system import JobSystem
from stemserve.server.auth import ApiKeys
from stemserve.server.metrics import ServiceMetrics
from stemserve.server.status import abort_with_status

log = logging.getLogger(__name__)

SERVICE_NAME = jpb.DESCRIPTOR.services_by_name["Jobs"].full_name
CHUNK_BYTES = 1 << 20
DEFAULT_PAGE = 50


def _guard(method):
    """The one error boundary of each unary handler."""

    async def handler(self, request, context):
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - every error gets its status
            await abort_with_status(context, exc, self.metrics)

    handler.__name__ = method.__name__
    return handler


def _guard_stream(method):
    """The same boundary for a server-streaming handler."""

    async def handler(self, request, context):
        try:
            async for item in method(self, request, context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - every error gets its status
            await abort_with_status(context, exc, self.metrics)

    handler.__name__ = method.__name__
    return handler


class JobsService(jpb_grpc.JobsServicer):
    def __init__(self, system: JobSystem, keys: ApiKeys, metrics: ServiceMetrics, default_model: str,
                 max_upload_bytes: int) -> None:
        self.system, self.keys, self.metrics = system, keys, metrics
        self.submitter = Submitter(system, default_model)
        self.max_upload_bytes = max_upload_bytes
        self.url_ttl_s = system.config.stem_url_ttl_s

    def _owner(self, context) -> str:
        return self.keys.authenticate(context.invocation_metadata()) or "anonymous"

    def _job(self, record) -> jpb.Job:
        return job_to_proto(record, self.system.store, self.url_ttl_s)

    @_guard
    async def UploadAudio(self, request_iterator, context):
        self._owner(context)
        digest, nb_bytes = hashlib.sha256(), 0
        with tempfile.TemporaryDirectory(prefix="stemserve-upload-") as folder:
            path = Path(folder) / "upload"
            with open(path, "wb") as handle:  # noqa: ASYNC230 - sequential small writes land in the page cache
                async for request in request_iterator:
                    nb_bytes += len(request.chunk)
                    if nb_bytes > self.max_upload_bytes:
                        raise InvalidAudioError(f"upload must be at most {self.max_upload_bytes} bytes, got more "
                                                f"({nb_bytes} so far)", reason="too_large")
                    digest.update(request.chunk)
                    handle.write(request.chunk)
            if nb_bytes == 0:
                raise InvalidAudioError("upload must hold audio bytes, got none", reason="empty")
            sha = digest.hexdigest()
            key = f"audio/{sha}"
            if await asyncio.to_thread(self.system.store.size, key) != nb_bytes:
                await asyncio.to_thread(self.system.store.put_file, key, path)
        return jpb.UploadAudioResponse(upload_id=sha, audio_sha256=sha, nb_bytes=nb_bytes)

    @_guard
    async def CreateUpload(self, request, context):
        self._owner(context)
        upload_id = uuid.uuid4().hex
        url = await asyncio.to_thread(self.system.store.upload_url, f"uploads/{upload_id}", self.url_ttl_s)
        return jpb.CreateUploadResponse(upload_id=upload_id, put_url=url, expires_at_unix_s=time.time() + self.url_ttl_s)

    @_guard
    async def SubmitJob(self, request, context):
        record, created = await self.submitter.submit(self._owner(context), request)
        if created and record.status.terminal:
            await self.system.events.emit(record)  # a cache hit: its one event
        return jpb.SubmitJobResponse(job=self._job(record), created=created)

    @_guard
    async def GetJob(self, request, context):
        return self._job(await self.system.state.require(request.job_id, self._owner(context)))

    @_guard_stream
    async def WatchJob(self, request, context):
        await self.system.state.require(request.job_id, self._owner(context))
        async for found in self.system.state.watch(request.job_id):
            if found is None:
                return
            record, revision = found
            yield event_to_proto(record, revision, self.system.store, self.url_ttl_s)
            if record.status.terminal:
                return

    @_guard
    async def CancelJob(self, request, context):
        state = self.system.state
        await state.require(request.job_id, self._owner(context))
        error = JobError("Canceled", "canceled by the caller", False)
        record, changed = await state.transition(request.job_id, lambda r: r.with_status(JobStatus.CANCELED,
                                                                                         error=error))
        if changed:
            await self.system.events.emit(record)
        return self._job(record)

    @_guard
    async def ListJobs(self, request, context):
        size = min(request.page_size or DEFAULT_PAGE, 1000)
        records, token = await self.system.state.list(self._owner(context), size, request.page_token)
        return jpb.ListJobsResponse(jobs=[self._job(r) for r in records], next_page_token=token)

    @_guard
    async def DeleteJob(self, request, context):
        state = self.system.state
        record = await state.require(request.job_id, self._owner(context))
        if not record.status.terminal:
            raise JobStateError(f"job {record.id} is {record.status.value}; cancel it before deleting it")
        await state.delete(record)
        return jpb.DeleteJobResponse()

    @_guard_stream
    async def ReadStem(self, request, context):
        record = await self.system.state.require(request.job_id, self._owner(context))
        if record.status is not JobStatus.SUCCEEDED:
            raise JobStateError(f"stems exist once the job SUCCEEDED; job {record.id} is {record.status.value}")
        found = [s for s in record.stems if s.name == request.stem]
        if not found:
            raise JobStateError(f"stem must be one of {[s.name for s in record.stems]}, not {request.stem!r}")
        stem, offset = found[0], request.offset
        while offset < stem.nb_bytes:
            data = await asyncio.to_thread(self.system.store.read, stem.key, offset, CHUNK_BYTES)
            if not data:
                break
            yield jpb.StemData(data=data, offset=offset, total_bytes=stem.nb_bytes)
            offset += len(data)


__all__ = ["SERVICE_NAME", "JobsService"]
