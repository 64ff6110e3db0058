"""The per-key running limit shared by jobs and the sync RPCs (``max_running_per_key``).

A sync song (``Separation.RemoveVocals`` / ``SplitStems``) holds a place in its key's active
set in KV (``jobs/state.py``) while it runs, beside the key's running jobs: a sync call
that finds the key at its limit is refused (RESOURCE_EXHAUSTED with ``retry-after-s``), a
worker that takes a job of a key at its limit hands the job back for later. The entry
carries its expiry (``SYNC_HOLD_S`` from the call's start), so a front end that dies
mid-song frees the place by then at the latest. When the broker cannot be reached, a sync call goes on
under the front end's own limits only (logged): sync separation never depends on the queue.
"""

from __future__ import annotations

import logging
import time
import uuid

from stemserve.core.errors import BackendUnavailableError, RetryLaterError
from stemserve.jobs.broker import Conflict
from stemserve.jobs.state import SYNC, JobState, running_count, sync_entry

log = logging.getLogger(__name__)

SYNC_HOLD_S = 3600.0  # the longest a sync song's place is held when its front end vanished
RETRY_AFTER_S = 5.0


class SharedRunningLimit:
    """:class:`stemserve.server.limits.SharedKeyLimit` on the jobs system's KV state."""

    def __init__(self, state: JobState, max_running_per_key: int, hold_s: float = SYNC_HOLD_S) -> None:
        self.state, self.max_running, self.hold_s = state, max_running_per_key, hold_s

    async def acquire(self, key: str) -> str | None:
        now = time.time()
        entry = sync_entry(now + self.hold_s, uuid.uuid4().hex[:12])

        def check(active: dict[str, str]) -> None:
            running = running_count(active, time.time())
            if running >= self.max_running:
                raise RetryLaterError(
                    f"API key {key!r} may have at most {self.max_running} jobs and sync songs running at once, got "
                    f"a request while {running} are running; retry after {RETRY_AFTER_S:g} s",
                    retry_after_s=RETRY_AFTER_S)

        try:
            await self.state.set_active(key, entry, SYNC, check)
        except (BackendUnavailableError, Conflict, TimeoutError) as exc:
            log.warning("the shared running limit of %r is out of reach (%s); the sync song goes on", key, exc)
            return None
        return entry

    async def release(self, key: str, token: object) -> None:
        if token is None:
            return
        try:
            await self.state.set_active(key, str(token), None)
        except Exception:
            log.warning("could not free the sync place %s of %r; it expires by itself", token, key, exc_info=True)
