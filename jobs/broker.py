"""The broker contract the jobs system needs, kept small so another broker could be added:
a work queue with leases (:class:`WorkQueue`, :class:`Delivery`) and a key-value store with
compare-and-set (:class:`KeyValue`). ``jobs/jetstream.py`` is the one implementation.

Semantics every implementation keeps:

- ``publish`` is idempotent per message id within the de-dup window (a retried submit
  after a lost acknowledgement does not queue the job twice);
- a delivery is leased for ``lease_s``; ``in_progress`` extends the lease, ``ack`` ends it
  for good, ``nak(delay_s)`` hands it back for a later attempt, ``term`` drops it;
- an un-acked delivery comes back after the lease, at most ``max_attempts`` times; then the
  queue reports it to the dead-letter handler (``on_dead_letter``) once;
- ``KeyValue.update`` succeeds only at the revision the caller read (else ``Conflict``);
  ``create`` only when the key does not exist.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from stemserve.core.errors import BackendUnavailableError


class Conflict(Exception):
    """A compare-and-set lost: the key changed (or exists) since it was read."""


class BrokerUnavailable(BackendUnavailableError):
    """The broker did not answer in time (failover, network); safe to retry (UNAVAILABLE)."""


@dataclass(frozen=True)
class QueueConfig:
    stream: str  # the queue's name
    subject: str
    consumer: str  # one durable consumer shared by every worker of the queue
    lease_s: float  # a delivery not acked or extended within this time is redelivered
    max_attempts: int  # deliveries before the message is dead-lettered; -1: no bound
    dedup_window_s: float = 600.0
    max_messages: int = -1  # -1: unbounded; else publishes beyond it are refused
    replicas: int = 1


class Delivery(Protocol):
    data: bytes
    message_id: str
    attempt: int  # 1 for the first delivery
    sequence: int

    async def ack(self) -> None: ...

    async def nak(self, delay_s: float = 0.0) -> None: ...

    async def in_progress(self) -> None: ...

    async def term(self) -> None: ...


DeadLetterHandler = Callable[[int, int], Awaitable[None]]  # (stream sequence, deliveries)


class WorkQueue(Protocol):
    config: QueueConfig

    async def publish(self, message_id: str, data: bytes) -> bool:
        """Queue ``data``; False when ``message_id`` was already queued (a duplicate)."""

    async def pull(self, timeout_s: float) -> Delivery | None:
        """The next delivery, or None after ``timeout_s`` without one (also while the broker
        recovers: a worker's loop must outlive a leader election)."""

    async def depth(self) -> int:
        """Messages in the queue not yet acknowledged (waiting or leased)."""

    async def message(self, sequence: int) -> tuple[str, bytes] | None:
        """The message id and data of a queued message, None when it is gone."""

    async def remove(self, sequence: int) -> None:
        """Drop a message (after it was dead-lettered)."""

    async def on_dead_letter(self, handler: DeadLetterHandler) -> None:
        """Call ``handler`` for each message that ran out of attempts."""


class KeyValue(Protocol):
    async def get(self, key: str) -> tuple[bytes, int] | None:
        """(value, revision), or None when the key does not exist."""

    async def create(self, key: str, value: bytes) -> int:
        """Set a key that must not exist yet; its revision. ``Conflict`` when it does."""

    async def update(self, key: str, value: bytes, revision: int) -> int:
        """Set a key still at ``revision``; its new revision. ``Conflict`` otherwise."""

    async def put(self, key: str, value: bytes) -> int: ...

    async def delete(self, key: str) -> None: ...

    async def keys(self, prefix: str) -> list[str]:
        """Every key starting with ``prefix`` (a whole number of dot-separated tokens)."""

    def watch(self, key: str) -> AsyncIterator[tuple[bytes, int] | None]:
        """The key's current value, then each change; None when it is deleted."""
