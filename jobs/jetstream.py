"""NATS JetStream behind the broker contract (``jobs/broker.py``): a work-queue stream with
one durable pull consumer per queue (explicit ack, ``ack_wait`` = the lease, ``max_deliver``
= the attempts, the max-deliveries advisory for dead-lettering), and KV buckets whose
revisions give compare-and-set.

Calls are retried for a bounded time while a clustered stream elects a new leader (a
publish then times out or finds no responder): a publish keeps its message id, so the
de-dup window makes the retry safe; a create or update whose reply was lost is recognised
on the retry by finding its own value in place.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from stemserve.core.errors import RetryLaterError
from stemserve.jobs.broker import BrokerUnavailable, Conflict, DeadLetterHandler, QueueConfig

log = logging.getLogger(__name__)

T = TypeVar("T")
NO_SUITABLE_PEERS = 10005  # JetStream's err_code while a forming cluster has too few peers online
RETRY_FOR_S = 20.0  # a 3-node cluster elects a new stream leader in about 5 s
FULL_RETRY_AFTER_S = 5.0  # the retry hint of a submit to a full queue
TRANSIENT = (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.errors.ConnectionClosedError,
             nats.js.errors.NoStreamResponseError, nats.js.errors.ServiceUnavailableError,
             nats.errors.ConnectionReconnectingError, asyncio.TimeoutError)
MAX_DELIVERIES = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{consumer}"


async def retrying(call: Callable[[], Awaitable[T]], what: str, retry_for_s: float = RETRY_FOR_S) -> T:
    deadline = time.monotonic() + retry_for_s
    while True:
        try:
            return await call()
        except (*TRANSIENT, nats.js.errors.BadRequestError) as exc:
            if isinstance(exc, nats.js.errors.BadRequestError) and getattr(exc, "err_code", None) != NO_SUITABLE_PEERS:
                raise  # a bad request for good; "no suitable peers" passes once a forming cluster has them
            if time.monotonic() > deadline:
                raise BrokerUnavailable(f"{what}: NATS did not answer within {retry_for_s:g} s "
                                        f"({type(exc).__name__}: {exc})") from exc
            await asyncio.sleep(0.2)


class JetStream:
    """One connection to NATS; makes queues and KV buckets (created when missing)."""

    def __init__(self, nc: nats.NATS, replicas: int) -> None:
        self.nc, self.replicas = nc, replicas
        self.js = nc.jetstream(timeout=5.0)

    @classmethod
    async def connect(cls, urls: Sequence[str] | str, *, replicas: int = 1, name: str = "stemserve") -> JetStream:
        servers = [u.strip() for u in urls.split(",")] if isinstance(urls, str) else list(urls)
        nc = await nats.connect(servers=servers, name=name, connect_timeout=2, max_reconnect_attempts=-1,
                                reconnect_time_wait=0.2, allow_reconnect=True)
        return cls(nc, replicas)

    async def close(self) -> None:
        if not self.nc.is_closed:
            await self.nc.close()

    async def queue(self, config: QueueConfig) -> JetStreamQueue:
        stream = StreamConfig(
            name=config.stream, subjects=[config.subject], retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE, duplicate_window=config.dedup_window_s, num_replicas=config.replicas,
            max_msgs=config.max_messages, discard=DiscardPolicy.NEW,
        )
        await retrying(lambda: _ensure_stream(self.js, stream), f"create stream {config.stream}", 60.0)
        consumer = ConsumerConfig(
            durable_name=config.consumer, ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
            ack_wait=config.lease_s, max_deliver=config.max_attempts, filter_subject=config.subject,
            max_ack_pending=-1,
        )
        sub = await retrying(lambda: self.js.pull_subscribe(config.subject, durable=config.consumer,
                                                            stream=config.stream, config=consumer),
                             f"bind consumer {config.consumer}", 60.0)
        return JetStreamQueue(self, config, sub)

    async def kv(self, bucket: str, *, history: int = 1) -> JetStreamKV:
        async def make():
            try:
                return await self.js.key_value(bucket)
            except nats.js.errors.BucketNotFoundError:
                return await self.js.create_key_value(KeyValueConfig(bucket=bucket, history=history,
                                                                     replicas=self.replicas))

        return JetStreamKV(await retrying(make, f"open KV bucket {bucket}", 60.0))


async def _ensure_stream(js: Any, config: StreamConfig) -> None:
    try:
        await js.add_stream(config)
    except nats.js.errors.BadRequestError as exc:
        if getattr(exc, "err_code", None) == NO_SUITABLE_PEERS:
            raise  # retried by the caller
        await js.update_stream(config)  # exists with another config (limits changed): update it


class JetStreamDelivery:
    def __init__(self, msg: Any) -> None:
        self._msg = msg
        self.data: bytes = msg.data
        self.message_id: str = (msg.headers or {}).get("Nats-Msg-Id", "")
        self.attempt: int = msg.metadata.num_delivered
        self.sequence: int = msg.metadata.sequence.stream

    async def ack(self) -> None:
        await retrying(self._msg.ack_sync, "ack", 10.0)

    async def nak(self, delay_s: float = 0.0) -> None:
        await retrying(lambda: self._msg.nak(delay=delay_s or None), "nak", 10.0)

    async def in_progress(self) -> None:
        await retrying(self._msg.in_progress, "in_progress", 5.0)

    async def term(self) -> None:
        await retrying(self._msg.term, "term", 10.0)


class JetStreamQueue:
    def __init__(self, owner: JetStream, config: QueueConfig, sub: Any) -> None:
        self.owner, self.config, self._sub = owner, config, sub
        self._advisory: Any = None

    async def publish(self, message_id: str, data: bytes) -> bool:
        js = self.owner.js

        async def send():
            return await js.publish(self.config.subject, data, timeout=2.0, headers={"Nats-Msg-Id": message_id})

        try:
            ack = await retrying(send, f"publish {message_id}")
        except nats.js.errors.APIError as exc:
            if "maximum" in (exc.description or ""):  # the stream's max_msgs bound
                raise RetryLaterError(f"the queue {self.config.stream} is full ({exc.description}); retry after "
                                      f"{FULL_RETRY_AFTER_S} s", retry_after_s=FULL_RETRY_AFTER_S) from exc
            raise
        return not ack.duplicate

    async def pull(self, timeout_s: float) -> JetStreamDelivery | None:
        """None also while the consumer cannot answer (no leader during a cluster's election:
        "no responders", 503): the next pull asks again."""
        started = time.monotonic()
        try:
            messages = await self._sub.fetch(1, timeout=timeout_s)
        except (TimeoutError, nats.errors.TimeoutError):
            return None
        except TRANSIENT as exc:
            log.warning("pull from %s: no answer while NATS recovers (%r); asking again", self.config.consumer, exc)
            await asyncio.sleep(max(0.0, timeout_s - (time.monotonic() - started)))
            return None
        return JetStreamDelivery(messages[0]) if messages else None

    async def depth(self) -> int:
        info = await retrying(lambda: self.owner.js.stream_info(self.config.stream), "stream info")
        return int(info.state.messages)

    async def message(self, sequence: int) -> tuple[str, bytes] | None:
        try:
            raw = await retrying(lambda: self.owner.js.get_msg(self.config.stream, sequence), "get message", 10.0)
        except nats.js.errors.NotFoundError:
            return None
        return (raw.headers or {}).get("Nats-Msg-Id", ""), raw.data or b""

    async def remove(self, sequence: int) -> None:
        try:
            await retrying(lambda: self.owner.js.delete_msg(self.config.stream, sequence), "delete message", 10.0)
        except nats.js.errors.NotFoundError:
            pass

    async def on_dead_letter(self, handler: DeadLetterHandler) -> None:
        """One process of the queue group gets each advisory (the server sends it once the
        consumer looks for work after the last lease ran out)."""

        async def on_advisory(msg: Any) -> None:
            try:
                data = json.loads(msg.data)
                await handler(int(data["stream_seq"]), int(data["deliveries"]))
            except Exception:
                log.exception("dead-letter handler failed")

        subject = MAX_DELIVERIES.format(stream=self.config.stream, consumer=self.config.consumer)
        self._advisory = await self.owner.nc.subscribe(subject, queue=f"{self.config.consumer}-dead", cb=on_advisory)


class JetStreamKV:
    def __init__(self, kv: Any) -> None:
        self._kv = kv

    async def get(self, key: str) -> tuple[bytes, int] | None:
        try:
            entry = await retrying(lambda: self._kv.get(key), f"get {key}")
        except nats.js.errors.KeyNotFoundError:
            return None
        return entry.value or b"", entry.revision

    async def create(self, key: str, value: bytes) -> int:
        return await self._compare_and_set(key, value, None)

    async def update(self, key: str, value: bytes, revision: int) -> int:
        return await self._compare_and_set(key, value, revision)

    async def _compare_and_set(self, key: str, value: bytes, revision: int | None) -> int:
        attempts = 0

        async def call() -> int:
            nonlocal attempts
            attempts += 1
            return await (self._kv.create(key, value) if revision is None else self._kv.update(key, value, revision))

        try:
            return await retrying(call, f"set {key}")
        except nats.js.errors.KeyWrongLastSequenceError as exc:
            current = await self.get(key) if attempts > 1 else None
            if current is not None and current[0] == value and (revision is None or current[1] > revision):
                return current[1]  # our own write, whose reply was lost before a retry
            raise Conflict(f"{key} changed since revision {revision}") from exc

    async def put(self, key: str, value: bytes) -> int:
        return await retrying(lambda: self._kv.put(key, value), f"put {key}")

    async def delete(self, key: str) -> None:
        await retrying(lambda: self._kv.delete(key), f"delete {key}")

    async def keys(self, prefix: str) -> list[str]:
        watcher = await retrying(lambda: self._kv.watch(f"{prefix}>", meta_only=True, ignore_deletes=True),
                                 f"list {prefix}")
        found = []
        try:
            while True:
                entry = await watcher.updates(timeout=5.0)
                if entry is None:
                    break
                found.append(entry.key)
                if entry.delta == 0:
                    break
        finally:
            await watcher.stop()
        return found

    async def watch(self, key: str) -> AsyncIterator[tuple[bytes, int] | None]:
        watcher = await retrying(lambda: self._kv.watch(key), f"watch {key}")
        try:
            async for entry in watcher:
                if entry is None:
                    continue  # the marker after the current value
                deleted = entry.operation in ("DEL", "PURGE")
                yield None if deleted else (entry.value or b"", entry.revision)
        finally:
            await watcher.stop()
