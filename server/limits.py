"""Concurrency limits on songs in flight: one global, one per API key.

A request over either limit is refused at once with ResourceExhaustedError (gRPC
RESOURCE_EXHAUSTED) instead of queueing: the caller decides whether to retry, and a slow
song never holds a connection waiting behind others. Without authentication every caller
is anonymous and only the global limit applies.

With the Jobs service, a key's running jobs and its sync songs share one more limit
(``max_running_per_key``), kept across processes by the jobs system: it sets
:attr:`ConcurrencyLimits.shared`, and every sync song also holds a place there
(:meth:`ConcurrencyLimits.shared_slot`) while it runs.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Protocol

from stemserve.core.errors import InvalidOptionError, ResourceExhaustedError

ANONYMOUS = "anonymous"  # the owner of calls without a key (the jobs system's name too)


class SharedKeyLimit(Protocol):
    """A per-key limit held across processes (``stemserve.jobs.limits``)."""

    async def acquire(self, key: str) -> object:
        """Hold one place of ``key``; ResourceExhaustedError when it has none free."""

    async def release(self, key: str, token: object) -> None: ...


class ConcurrencyLimits:
    def __init__(self, *, max_in_flight: int, max_per_key: int) -> None:
        if max_in_flight < 1 or max_per_key < 1:
            raise InvalidOptionError(
                f"limits must be >= 1, got max_in_flight={max_in_flight} max_per_key={max_per_key}"
            )
        self.max_in_flight = max_in_flight
        self.max_per_key = max_per_key
        self._lock = threading.Lock()
        self._total = 0
        self._per_key: Counter[str] = Counter()
        self.shared: SharedKeyLimit | None = None

    @property
    def in_flight(self) -> int:
        return self._total

    def in_flight_for(self, key: str) -> int:
        return self._per_key[key]

    @contextmanager
    def slot(self, key: str | None) -> Iterator[None]:
        """Hold one song slot for ``key`` (None: anonymous) while the block runs."""
        with self._lock:
            if key is not None and self._per_key[key] >= self.max_per_key:
                raise ResourceExhaustedError(
                    f"API key {key!r} may have at most {self.max_per_key} songs in flight, "
                    f"got a request while {self._per_key[key]} are running; retry when one finishes"
                )
            if self._total >= self.max_in_flight:
                raise ResourceExhaustedError(
                    f"the server takes at most {self.max_in_flight} songs in flight, "
                    f"got a request while {self._total} are running; retry later"
                )
            self._total += 1
            if key is not None:
                self._per_key[key] += 1
        try:
            yield
        finally:
            with self._lock:
                self._total -= 1
                if key is not None:
                    self._per_key[key] -= 1
                    if not self._per_key[key]:
                        del self._per_key[key]

    @asynccontextmanager
    async def shared_slot(self, key: str | None) -> AsyncIterator[None]:
        """Hold a place of ``key`` (None: anonymous) in the shared limit, if one is set."""
        shared = self.shared
        if shared is None:
            yield
            return
        owner = ANONYMOUS if key is None else key
        token = await shared.acquire(owner)
        try:
            yield
        finally:
            await shared.release(owner, token)
