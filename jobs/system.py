"""The connections one process of the jobs system holds: the broker (the job queue, the
dead-letter queue, the webhook queue, the KV state) and the object store. API front ends and
workers open the same :class:`JobSystem`; the embedded mode first starts its own nats-server.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from stemserve.jobs.broker import WorkQueue
from stemserve.jobs.config import KV_BUCKET, JobsConfig
from stemserve.jobs.events import JobEvents
from stemserve.jobs.jetstream import JetStream
from stemserve.jobs.nats_process import NatsProcess
from stemserve.jobs.state import JobState
from stemserve.jobs.store import ObjectStore

log = logging.getLogger(__name__)


@dataclass
class JobSystem:
    config: JobsConfig
    broker: JetStream
    jobs: WorkQueue
    dead: WorkQueue
    hooks: WorkQueue
    state: JobState
    store: ObjectStore
    events: JobEvents
    embedded: NatsProcess | None = None

    @classmethod
    async def open(cls, config: JobsConfig, *, name: str = "stemserve") -> JobSystem:
        embedded = None
        url = config.nats_url
        if not url:
            embedded = await asyncio.to_thread(NatsProcess.start, config.data_dir / "nats")
            url = embedded.url
            log.info("embedded nats-server on %s, data in %s", url, config.data_dir / "nats")
        try:
            broker = await JetStream.connect(url, replicas=config.replicas, name=name)
            jobs = await broker.queue(config.jobs_queue)
            dead = await broker.queue(config.dead_queue)
            hooks = await broker.queue(config.hooks_queue)
            state = JobState(await broker.kv(KV_BUCKET, history=1))
            store = await asyncio.to_thread(config.open_store)
        except BaseException:
            if embedded is not None:
                embedded.stop()
            raise
        return cls(config, broker, jobs, dead, hooks, state, store, JobEvents(hooks), embedded)

    async def close(self) -> None:
        await self.broker.close()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)
