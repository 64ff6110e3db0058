"""A worker process exits with its loop's error instead of lingering idle, and drains on request."""

from __future__ import annotations

import asyncio

import pytest
from stemserve.jobs.runtime import supervise


class FakeWorker:
    def __init__(self, fail_after_s: float | None = None) -> None:
        self.fail_after_s = fail_after_s
        self._draining = asyncio.Event()
        self.closed = False
        self.finished_jobs = 0

    async def run(self) -> None:
        if self.fail_after_s is not None:
            await asyncio.sleep(self.fail_after_s)
            raise RuntimeError("the queue went away")
        await self._draining.wait()
        self.finished_jobs += 1  # the job in flight completes during the drain

    def drain(self) -> None:
        self._draining.set()

    async def drained(self) -> None:
        await self._draining.wait()

    async def close(self) -> None:
        self.closed = True


def test_a_dead_worker_loop_ends_the_process_with_its_error():
    worker = FakeWorker(fail_after_s=0.05)
    with pytest.raises(RuntimeError, match="the queue went away"):
        asyncio.run(asyncio.wait_for(supervise(worker, grace_s=1.0), 5.0))


def test_a_drain_request_lets_the_loop_finish_then_closes():
    worker = FakeWorker()

    async def body():
        asyncio.get_running_loop().call_later(0.05, worker.drain)
        await asyncio.wait_for(supervise(worker, grace_s=1.0), 5.0)

    asyncio.run(body())
    assert worker.finished_jobs == 1 and worker.closed
