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

    async def close(self) -> None:
        self.closed = True


def test_a_dead_worker_loop_ends_the_process_with_its_error():
    worker = FakeWorker(fail_after_s=0.05)
    with pytest.raises(RuntimeError, match="the queue went away"):
        asyncio.run(asyncio.wait_for(supervise(worker, 1.0, asyncio.Event()), 5.0))
    assert worker.closed


def test_a_drain_request_lets_the_loop_finish_then_closes():
    worker = FakeWorker()

    async def body():
        stopping = asyncio.Event()  # what SIGTERM sets
        asyncio.get_running_loop().call_later(0.05, stopping.set)
        await asyncio.wait_for(supervise(worker, 1.0, stopping), 5.0)

    asyncio.run(body())
    assert worker.finished_jobs == 1 and worker.closed


def test_a_slot_survives_a_broker_that_fails_between_pulls():
    """The queue depth (for the metrics) failing while a delivery is held leaves that delivery
    to its lease; the slot keeps pulling and handles the next one."""
    from types import SimpleNamespace

    from stemserve.jobs.broker import BrokerUnavailable
    from stemserve.jobs.worker import Worker

    handled = []

    class Queue:
        def __init__(self) -> None:
            self.deliveries = [SimpleNamespace(message_id="a"), SimpleNamespace(message_id="b")]
            self.depth_calls = 0

        async def pull(self, timeout_s: float):
            if not self.deliveries:
                worker.drain()
                return None
            return self.deliveries.pop(0)

        async def depth(self) -> int:
            self.depth_calls += 1
            if self.depth_calls == 1:
                raise BrokerUnavailable("stream info: NATS did not answer within 20 s")
            return 0

    gauge = SimpleNamespace(set=lambda value: None)
    system = SimpleNamespace(config=SimpleNamespace(worker_concurrency=1), jobs=Queue())
    worker = Worker(system, pool=None, limits=None, name="w",
                    metrics=SimpleNamespace(busy_workers=gauge, job_queue_depth=gauge))

    async def handle(delivery) -> None:
        handled.append(delivery.message_id)

    worker.handle = handle
    asyncio.run(asyncio.wait_for(worker._slot(), 5.0))
    assert handled == ["b"] and worker.busy == 0


def test_a_dead_embedded_worker_stops_the_server_with_its_error():
    from stemserve.jobs.runtime import stop_if_failed

    async def body():
        stopping, failures = asyncio.Event(), []
        dead = asyncio.create_task(FakeWorker(fail_after_s=0.01).run())
        dead.add_done_callback(stop_if_failed(stopping, failures))
        await asyncio.wait_for(stopping.wait(), 5.0)
        assert [str(e) for e in failures] == ["the queue went away"]

        calm_stop, calm_failures = asyncio.Event(), []
        worker = FakeWorker()
        finished = asyncio.create_task(worker.run())
        finished.add_done_callback(stop_if_failed(calm_stop, calm_failures))
        worker.drain()
        await finished
        await asyncio.sleep(0)  # the callback runs
        assert not calm_stop.is_set() and calm_failures == []

    asyncio.run(body())
