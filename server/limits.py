"""Concurrency limits on songs in flight: one global, one per API key.

A request over either limit is refused at once with ResourceExhaustedError (gRPC
RESOURCE_EXHAUSTED) instead of queueing: the caller decides whether to retry, and a slow
song never holds a connection waiting behind others. Without authentication every caller
is anonymous and only the global limit applies.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from stemserve.core.errors import InvalidOptionError, ResourceExhaustedError


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
