"""The JetStream broker against a real nats-server: de-dup of submits, leases, heartbeats,
nak with delay, dead-lettering after max attempts, KV compare-and-set, listing and watching."""

from __future__ import annotations

import asyncio
import time

import pytest
from stemserve.jobs.broker import Conflict, QueueConfig
from stemserve.jobs.jetstream import JetStream

from tests.integration import test_jobs_support as support
from tests.integration.test_jobs_support import run, unique

nats_server = support.nats_server  # the fixture, shared


def config(name: str, **overrides) -> QueueConfig:
    values = {"stream": name, "subject": f"{name.lower()}.run", "consumer": "workers", "lease_s": 1.0,
              "max_attempts": 3}
    values.update(overrides)
    return QueueConfig(**values)


def test_publish_is_deduplicated_and_ack_removes(nats_server):
    async def body():
        broker = await JetStream.connect(nats_server.url)
        queue = await broker.queue(config(unique("Q")))
        assert await queue.publish("job-1", b"a") is True
        assert await queue.publish("job-1", b"a") is False
        assert await queue.depth() == 1
        delivery = await queue.pull(2.0)
        assert (delivery.message_id, delivery.data, delivery.attempt) == ("job-1", b"a", 1)
        assert await queue.message(delivery.sequence) == ("job-1", b"a")
        await delivery.ack()
        assert await queue.depth() == 0
        assert await queue.pull(0.3) is None
        await broker.close()

    run(body())


def test_lease_expiry_redelivers_and_heartbeats_keep_it(nats_server):
    async def body():
        broker = await JetStream.connect(nats_server.url)
        queue = await broker.queue(config(unique("L")))
        await queue.publish("a", b"1")
        first = await queue.pull(2.0)
        for _ in range(4):  # 2 s of heartbeats with a 1 s lease: never redelivered meanwhile
            await asyncio.sleep(0.5)
            await first.in_progress()
        assert await queue.pull(0.3) is None
        started = time.monotonic()
        second = await queue.pull(3.0)  # no more heartbeats: back after the lease
        assert second.attempt == 2 and second.sequence == first.sequence
        assert 0.5 < time.monotonic() - started < 2.5
        await second.nak(delay_s=1.0)
        assert await queue.pull(0.5) is None
        third = await queue.pull(2.0)
        assert third.attempt == 3
        await third.ack()
        await broker.close()

    run(body())


def test_max_attempts_reach_the_dead_letter_handler_once(nats_server):
    async def body():
        broker = await JetStream.connect(nats_server.url)
        queue = await broker.queue(config(unique("D"), lease_s=0.5, max_attempts=2))
        dead: asyncio.Queue = asyncio.Queue()

        async def handler(sequence: int, deliveries: int) -> None:
            await dead.put((sequence, deliveries, await queue.message(sequence)))
            await queue.remove(sequence)

        await queue.on_dead_letter(handler)
        await queue.publish("poison", b"x")
        attempts = [(await queue.pull(3.0)).attempt for _ in range(2)]  # never acked
        assert attempts == [1, 2]
        assert await queue.pull(1.5) is None  # a pending pull lets the server send the advisory
        _, deliveries, message = await asyncio.wait_for(dead.get(), 5.0)
        assert deliveries == 2 and message == ("poison", b"x")
        assert await queue.depth() == 0
        assert dead.empty()
        await broker.close()

    run(body())


def test_kv_compare_and_set_keys_and_watch(nats_server):
    async def body():
        broker = await JetStream.connect(nats_server.url)
        kv = await broker.kv(unique("kv"))
        first = await kv.create("job.a", b"queued")
        with pytest.raises(Conflict):
            await kv.create("job.a", b"again")
        second = await kv.update("job.a", b"running", first)
        with pytest.raises(Conflict):
            await kv.update("job.a", b"stale", first)
        assert await kv.get("job.a") == (b"running", second)
        assert await kv.get("job.b") is None
        await kv.put("index.k1.1", b"")
        await kv.put("index.k1.2", b"")
        await kv.put("index.k2.1", b"")
        assert sorted(await kv.keys("index.k1.")) == ["index.k1.1", "index.k1.2"]
        assert await kv.keys("index.k3.") == []
        seen = []

        async def follow():
            async for value in kv.watch("job.a"):
                seen.append(None if value is None else value[0])
                if value is None:
                    return

        task = asyncio.create_task(follow())
        await asyncio.sleep(0.2)
        await kv.put("job.a", b"done")
        await kv.delete("job.a")
        await asyncio.wait_for(task, 5.0)
        assert seen == [b"running", b"done", None]
        await broker.close()

    run(body())


def test_pull_outlives_a_consumer_without_a_leader(nats_server):
    """A consumer that cannot answer (here: its stream gone, as while a cluster elects a
    leader) makes a pull wait out its timeout and return None, not raise into the worker."""

    async def body():
        broker = await JetStream.connect(nats_server.url)
        name = unique("G")
        queue = await broker.queue(config(name))
        await broker.js.delete_stream(name)
        started = time.monotonic()
        assert await queue.pull(0.5) is None
        assert 0.4 < time.monotonic() - started < 3.0
        await broker.close()

    run(body())
