"""The jobs system's configuration, built once from ``Settings`` and validated: queues, the
store, leases, attempts, limits; and the connections it implies (:func:`open_backends`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stemserve.core.errors import InvalidOptionError
from stemserve.core.settings import Settings
from stemserve.jobs.broker import QueueConfig
from stemserve.jobs.s3 import S3Config

JOBS_STREAM, JOBS_SUBJECT = "STEMSERVE_JOBS", "stemserve.jobs.run"
DEAD_STREAM, DEAD_SUBJECT = "STEMSERVE_DEAD", "stemserve.jobs.dead"
HOOKS_STREAM, HOOKS_SUBJECT = "STEMSERVE_WEBHOOKS", "stemserve.webhooks.send"
KV_BUCKET = "stemserve-jobs"
WEBHOOK_ATTEMPTS = 50  # with backoff capped at WEBHOOK_MAX_BACKOFF_S: about a day of retries
WEBHOOK_MAX_BACKOFF_S = 1800.0


@dataclass(frozen=True, kw_only=True)
class JobsConfig:
    nats_url: str  # empty: embedded nats-server
    replicas: int
    s3: S3Config | None  # None: the local store
    data_dir: Path  # embedded nats-server data and the local store
    lease_s: float
    max_attempts: int
    timeout_s: float
    max_queued_per_key: int
    max_running_per_key: int
    max_queued_jobs: int
    worker_concurrency: int
    webhook_secret: str
    stem_url_ttl_s: int
    retry_backoff_s: float = 1.0  # first retry delay of a failed attempt, doubled each time
    webhook_backoff_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("lease_s", "timeout_s", "retry_backoff_s", "webhook_backoff_s"):
            if getattr(self, name) <= 0:
                raise InvalidOptionError(f"{name} must be > 0, not {getattr(self, name)}")
        for name in ("max_attempts", "max_queued_per_key", "max_running_per_key", "max_queued_jobs",
                     "worker_concurrency", "stem_url_ttl_s", "replicas"):
            if getattr(self, name) < 1:
                raise InvalidOptionError(f"{name} must be >= 1, not {getattr(self, name)}")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> JobsConfig:
        s3 = None
        if settings.s3_endpoint:
            s3 = S3Config(endpoint_url=settings.s3_endpoint, bucket=settings.s3_bucket,
                          access_key=settings.s3_access_key, secret_key=settings.s3_secret_key,
                          region=settings.s3_region)
        values: dict[str, object] = {
            "nats_url": settings.nats_url, "replicas": settings.nats_replicas, "s3": s3,
            "data_dir": Path(settings.cache_dir) / "jobs", "lease_s": settings.job_lease_s,
            "max_attempts": settings.job_max_attempts, "timeout_s": settings.job_timeout_s,
            "max_queued_per_key": settings.max_queued_per_key, "max_running_per_key": settings.max_running_per_key,
            "max_queued_jobs": settings.max_queued_jobs, "worker_concurrency": settings.worker_concurrency,
            "webhook_secret": settings.webhook_secret, "stem_url_ttl_s": settings.stem_url_ttl_s,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    @property
    def jobs_queue(self) -> QueueConfig:
        # attempts are counted in the job record (jobs/worker.py): a job nak'ed while its key is at its
        # running limit has not used one, so the queue itself redelivers without a bound (-1)
        return QueueConfig(stream=JOBS_STREAM, subject=JOBS_SUBJECT, consumer="workers", lease_s=self.lease_s,
                           max_attempts=-1, max_messages=self.max_queued_jobs,
                           replicas=self.replicas)

    @property
    def dead_queue(self) -> QueueConfig:
        return QueueConfig(stream=DEAD_STREAM, subject=DEAD_SUBJECT, consumer="dead-letters", lease_s=60.0,
                           max_attempts=1, replicas=self.replicas)

    @property
    def hooks_queue(self) -> QueueConfig:
        return QueueConfig(stream=HOOKS_STREAM, subject=HOOKS_SUBJECT, consumer="webhooks", lease_s=30.0,
                           max_attempts=WEBHOOK_ATTEMPTS, replicas=self.replicas)

    def open_store(self):
        from stemserve.jobs.store import LocalStore

        if self.s3 is None:
            return LocalStore(self.data_dir / "store")
        from stemserve.jobs.s3 import S3Store

        return S3Store(self.s3)
