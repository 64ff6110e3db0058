"""A job's events for webhooks: each state a job reaches is one event with a stable id
(``<job id>.<status>``), queued on the webhook stream with that id as its message id, so
publishing it again (a worker redelivered after a crash re-emits the final event before it
acks) is dropped by the de-dup window, and the receiver can de-dup by ``webhook-id`` anyway.
``jobs/webhooks.py`` delivers them.
"""

from __future__ import annotations

import json
import logging

from stemserve.jobs.broker import WorkQueue
from stemserve.jobs.records import EVENT_TYPES, JobRecord, JobStatus

log = logging.getLogger(__name__)

DEFAULT_EVENTS = tuple(EVENT_TYPES[s] for s in JobStatus if s.terminal)


def event_id(record: JobRecord) -> str:
    return f"{record.id}.{record.status.value.lower()}"


def wanted(record: JobRecord) -> bool:
    if not record.webhook_url:
        return False
    return EVENT_TYPES[record.status] in (record.webhook_events or DEFAULT_EVENTS)


def payload(record: JobRecord) -> dict[str, object]:
    """The webhook body: the event's type, the time of the change, the job as the API shows it."""
    from stemserve.jobs.messages import job_summary

    return {"type": EVENT_TYPES[record.status], "timestamp": record.updated_at, "data": job_summary(record)}


class JobEvents:
    def __init__(self, queue: WorkQueue) -> None:
        self.queue = queue

    async def emit(self, record: JobRecord) -> None:
        if not wanted(record):
            return
        message = {"id": event_id(record), "url": record.webhook_url, "body": payload(record)}
        await self.queue.publish(event_id(record), json.dumps(message, separators=(",", ":")).encode())
