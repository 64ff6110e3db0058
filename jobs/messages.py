"""Between the ``stemserve.v1.Jobs`` messages and the job records: options in, ``Job`` out
(with presigned stem URLs when the store has them), and the plain-JSON job of webhooks."""

from __future__ import annotations

import dataclasses
import time

from stemserve.client.proto_gen import jobs_pb2 as jpb
from stemserve.client.proto_gen import separation_pb2 as pb
from stemserve.client.wire import DEVICE_TO_WIRE
from stemserve.jobs.records import EVENT_TYPES, JobRecord, JobStatus
from stemserve.jobs.store import ObjectStore
from stemserve.pipeline.options import SeparationOptions
from stemserve.server.messages import REMOVE_VOCALS, SPLIT_STEMS, options_from_proto

STATUS_TO_WIRE = {status: getattr(jpb, f"JOB_STATUS_{status.value}") for status in JobStatus}


def options_from_request(message: pb.SeparateOptions, default_model: str) -> SeparationOptions:
    """Today's separation options: stems 2 is the vocal remover, 0/4/5 the stem splitter."""
    return options_from_proto(REMOVE_VOCALS if message.stems == 2 else SPLIT_STEMS, message, default_model)


def options_to_dict(options: SeparationOptions) -> dict[str, object]:
    return dataclasses.asdict(options)


def job_to_proto(record: JobRecord, store: ObjectStore | None = None, url_ttl_s: int = 3600) -> jpb.Job:
    stems = []
    for stem in record.stems:
        url = store.url_for(stem.key, url_ttl_s) if store is not None else ""
        stems.append(jpb.JobStem(name=stem.name, format=stem.format, sample_rate_hz=stem.sample_rate_hz,
                                 nb_frames=stem.nb_frames, nb_bytes=stem.nb_bytes, sha256=stem.sha256, url=url,
                                 url_expires_at_unix_s=time.time() + url_ttl_s if url else 0.0))
    error = record.error
    return jpb.Job(
        id=record.id, status=STATUS_TO_WIRE[record.status], progress=record.progress, attempt=record.attempt,
        max_attempts=record.max_attempts, created_at_unix_s=record.created_at, started_at_unix_s=record.started_at,
        finished_at_unix_s=record.finished_at, deadline_unix_s=record.deadline_at, updated_at_unix_s=record.updated_at,
        model_name=record.model_name, model_version=record.model_version,
        device=DEVICE_TO_WIRE.get(record.device, pb.DEVICE_UNSPECIFIED), runtime_seconds=record.runtime_seconds,
        audio_seconds=record.audio_seconds, cache_hit=record.cache_hit, warnings=list(record.warnings),
        error=jpb.JobError(code=error.code, message=error.message, retryable=error.retryable) if error else None,
        stems=stems, metadata=dict(record.metadata), audio_sha256=record.audio_sha256,
        idempotency_key=record.idempotency_key,
    )


def event_to_proto(record: JobRecord, revision: int, store: ObjectStore | None, url_ttl_s: int) -> jpb.JobEvent:
    return jpb.JobEvent(event_id=f"{record.id}.{revision}", type=EVENT_TYPES[record.status],
                        job=job_to_proto(record, store, url_ttl_s))


def job_summary(record: JobRecord) -> dict[str, object]:
    """The job as plain JSON (webhook bodies): no URLs, the stems' names, sizes and digests."""
    error = record.error
    return {
        "id": record.id, "status": record.status.value, "attempt": record.attempt,
        "model_name": record.model_name, "model_version": record.model_version, "cache_hit": record.cache_hit,
        "runtime_seconds": record.runtime_seconds, "audio_seconds": record.audio_seconds,
        "error": dataclasses.asdict(error) if error else None, "metadata": dict(record.metadata),
        "stems": [{"name": s.name, "format": s.format, "nb_bytes": s.nb_bytes, "sha256": s.sha256}
                  for s in record.stems],
    }
