"""The deadline of the song a thread is working on, for backends whose calls leave the process."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator


class ThreadDeadlines:
    """``within(seconds)`` sets the calling thread's deadline for the block; ``until(call_s)``
    is when a call made now must end: its own limit, or the song's deadline if sooner."""

    def __init__(self) -> None:
        self._local = threading.local()

    @contextlib.contextmanager
    def within(self, seconds: float | None) -> Iterator[None]:
        if seconds is None:
            yield
            return
        previous = self.song()
        self._local.deadline = time.monotonic() + seconds
        try:
            yield
        finally:
            self._local.deadline = previous

    def song(self) -> float | None:
        return vars(self._local).get("deadline")

    def until(self, call_s: float) -> float:
        song, call = self.song(), time.monotonic() + call_s
        return call if song is None else min(song, call)
