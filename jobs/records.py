"""The job record: what a job is at one moment, stored as JSON in the KV bucket (one key per
job, replaced by compare-and-set) and turned into the API's ``Job`` message by
``jobs/messages.py``. Pure data; the transitions are made by ``jobs/state.py``.

QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELED | EXPIRED; a retried attempt goes back
to QUEUED with the last error kept. Terminal states never change again.
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any


class JobStatus(enum.StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"

    @property
    def terminal(self) -> bool:
        return self not in (JobStatus.QUEUED, JobStatus.RUNNING)


EVENT_TYPES = {status: f"job.{status.value.lower()}" for status in JobStatus}  # webhook event types


@dataclass(frozen=True)
class JobError:
    code: str
    message: str
    retryable: bool


@dataclass(frozen=True)
class JobStem:
    name: str
    format: str
    sample_rate_hz: int
    nb_frames: int
    nb_bytes: int
    sha256: str
    key: str  # object key in the store


@dataclass(frozen=True)
class JobInput:
    kind: str  # upload (an object key in the store), url (https://, s3://), sha256
    value: str


@dataclass(frozen=True)
class JobRecord:
    id: str
    owner: str  # the API key's name ("anonymous" without auth)
    input: JobInput
    options: Mapping[str, Any]  # SeparationOptions fields
    status: JobStatus = JobStatus.QUEUED
    progress: float = 0.0
    attempt: int = 0
    max_attempts: int = 3
    created_at: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    updated_at: float = 0.0
    deadline_at: float = 0.0  # 0: none
    model_name: str = ""
    model_version: str = ""  # requested (may be empty) until a worker runs it
    device: str = ""
    runtime_seconds: float = 0.0
    audio_seconds: float = 0.0
    cache_hit: bool = False
    warnings: tuple[str, ...] = ()
    error: JobError | None = None
    stems: tuple[JobStem, ...] = ()
    audio_sha256: str = ""
    result_key: str = ""  # the cache key the stems live under
    idempotency_key: str = ""
    webhook_url: str = ""
    webhook_events: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    worker: str = ""
    sequence: int = 0  # the queue message the current attempt runs from

    def with_status(self, status: JobStatus, **changes: Any) -> JobRecord:
        now = time.time()
        if status.terminal:
            changes.setdefault("finished_at", now)
        return replace(self, status=status, updated_at=now, **changes)

    def expired(self, now: float | None = None) -> bool:
        return bool(self.deadline_at) and (time.time() if now is None else now) > self.deadline_at

    def to_bytes(self) -> bytes:
        data = asdict(self)
        data["status"] = self.status.value
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> JobRecord:
        data = json.loads(raw)
        data["status"] = JobStatus(data["status"])
        data["input"] = JobInput(**data["input"])
        data["error"] = JobError(**data["error"]) if data.get("error") else None
        data["stems"] = tuple(JobStem(**s) for s in data.get("stems", ()))
        data["warnings"] = tuple(data.get("warnings", ()))
        data["webhook_events"] = tuple(data.get("webhook_events", ()))
        return cls(**data)
