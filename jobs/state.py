"""Job state in the KV store, every change a compare-and-set, so API front ends and workers
on any machine agree:

- ``job.<id>``: the record (``jobs/records.py``); :meth:`JobState.transition` re-reads and
  retries when another writer won, and never changes a terminal record;
- ``idem.<owner>.<sha of key>``: the job an idempotency key made (the first submit wins);
- ``index.<owner>.<created ns>.<id>``: listing per key, in creation order;
- ``active.<owner>``: the owner's queued and running jobs ({id: status}) and songs of the sync
  RPCs in flight (``sync-<expiry>-<n>``: ``SYNC``), for the per-key limits; entries of jobs
  found finished, and sync entries past their expiry (a front end that died), are pruned;
- ``inflight.<owner>.<result key>``: the job computing a result, joined by identical submits;
- ``result.<result key>``: a finished result (stems and record) by its cache key;
- ``model.<name>``: what workers serve (version, stems), published when a worker starts.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from stemserve.jobs.broker import Conflict, KeyValue
from stemserve.jobs.errors import JobNotFoundError
from stemserve.jobs.records import JobRecord, JobStatus

MAX_CAS_TRIES = 50
SYNC = "SYNC"  # the status of a sync song's entry in an owner's active set
SYNC_PREFIX = "sync-"


def sync_entry(expires_at: float, nonce: str) -> str:
    """The active-set id of one sync song, holding its expiry (whole unix seconds)."""
    return f"{SYNC_PREFIX}{int(expires_at)}-{nonce}"


def sync_expired(entry_id: str, now: float) -> bool:
    try:
        return int(entry_id[len(SYNC_PREFIX):].split("-", 1)[0]) <= now
    except ValueError:
        return True


def running_count(active: dict[str, str], now: float, exclude: str = "") -> int:
    """What ``max_running_per_key`` counts: the owner's running jobs (but ``exclude``) and its
    sync songs in flight (unexpired)."""
    return sum(1 for entry, status in active.items() if entry != exclude and (
        status == JobStatus.RUNNING.value or (status == SYNC and not sync_expired(entry, now))))


def token(text: str) -> str:
    """A KV-safe token for a name or key of any characters."""
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class JobState:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def create(self, record: JobRecord) -> None:
        await self.kv.create(f"job.{record.id}", record.to_bytes())
        await self.kv.put(f"index.{token(record.owner)}.{int(record.created_at * 1e9):020d}.{record.id}", b"")

    async def get(self, job_id: str) -> JobRecord | None:
        found = await self.kv.get(f"job.{job_id}")
        return None if found is None else JobRecord.from_bytes(found[0])

    async def require(self, job_id: str, owner: str | None = None) -> JobRecord:
        record = await self.get(job_id) if _valid_id(job_id) else None
        if record is None or (owner is not None and record.owner != owner):
            raise JobNotFoundError(f"job must be one of this key's jobs, got unknown id {job_id!r}")
        return record

    async def transition(self, job_id: str, change: Callable[[JobRecord], JobRecord | None]) -> tuple[JobRecord, bool]:
        """Apply ``change`` at the current revision (None or a terminal record: no change);
        returns the record now stored and whether this call changed it."""
        for _ in range(MAX_CAS_TRIES):
            found = await self.kv.get(f"job.{job_id}")
            if found is None:
                raise JobNotFoundError(f"job {job_id} does not exist (deleted?)")
            record = JobRecord.from_bytes(found[0])
            new = None if record.status.terminal else change(record)
            if new is None:
                return record, False
            try:
                await self.kv.update(f"job.{job_id}", new.to_bytes(), found[1])
            except Conflict:
                continue
            if new.status.terminal or new.status != record.status:
                await self.set_active(new.owner, job_id, None if new.status.terminal else new.status)
            return new, True
        raise Conflict(f"job {job_id} kept changing; gave up after {MAX_CAS_TRIES} tries")

    async def delete(self, record: JobRecord) -> None:
        await self.kv.delete(f"job.{record.id}")
        await self.kv.delete(f"index.{token(record.owner)}.{int(record.created_at * 1e9):020d}.{record.id}")
        await self.set_active(record.owner, record.id, None)

    async def watch(self, job_id: str) -> AsyncIterator[tuple[JobRecord, int] | None]:
        """(record, revision) now and after each change; None when the job is deleted."""
        async for value in self.kv.watch(f"job.{job_id}"):
            yield None if value is None else (JobRecord.from_bytes(value[0]), value[1])

    async def list(self, owner: str, page_size: int, after: str = "") -> tuple[list[JobRecord], str]:
        """A page of the owner's jobs, oldest first, and the token of the next page ("" at the end)."""
        keys = [k for k in sorted(await self.kv.keys(f"index.{token(owner)}.")) if k > after]
        page = keys[:page_size]
        records = [r for r in [await self.get(k.rsplit(".", 1)[1]) for k in page] if r is not None]
        return records, (page[-1] if len(keys) > page_size else "")

    # idempotency keys and joins

    async def claim(self, key: str, job_id: str) -> str | None:
        """Bind ``key`` to ``job_id`` unless it is bound already: the job it is bound to, else None."""
        try:
            await self.kv.create(key, job_id.encode())
            return None
        except Conflict:
            found = await self.kv.get(key)
            return None if found is None else found[0].decode()

    async def release(self, key: str) -> None:
        await self.kv.delete(key)

    # per-key counts of queued and running jobs

    async def active(self, owner: str) -> dict[str, str]:
        found = await self.kv.get(f"active.{token(owner)}")
        return {} if found is None else json.loads(found[0])

    async def set_active(self, owner: str, job_id: str, status: JobStatus | str | None,
                         check: Callable[[dict[str, str]], None] | None = None) -> None:
        """Add, change (``status``) or remove (None) one job (or sync song) of the owner's
        active set; ``check`` sees the set first and may refuse by raising (the limits)."""
        key = f"active.{token(owner)}"
        for _ in range(MAX_CAS_TRIES):
            found = await self.kv.get(key)
            current = {} if found is None else json.loads(found[0])
            if check is not None:
                check(current)
            wanted = dict(current)
            if status is None:
                wanted.pop(job_id, None)
            else:
                wanted[job_id] = status if isinstance(status, str) else status.value
            if wanted == current:
                return
            try:
                raw = json.dumps(wanted).encode()
                await (self.kv.create(key, raw) if found is None else self.kv.update(key, raw, found[1]))
                return
            except Conflict:
                continue
        raise Conflict(f"the active jobs of {owner!r} kept changing")

    async def prune_active(self, owner: str) -> dict[str, str]:
        """Drop jobs that finished (or vanished) without leaving the set (a crash between
        writes), and sync songs past their expiry."""
        now = time.time()
        for job_id, status in list((await self.active(owner)).items()):
            if status == SYNC:
                if sync_expired(job_id, now):
                    await self.set_active(owner, job_id, None)
                continue
            record = await self.get(job_id)
            if record is None or record.status.terminal:
                await self.set_active(owner, job_id, None)
        return await self.active(owner)

    # results and models

    async def result(self, result_key: str) -> dict[str, Any] | None:
        found = await self.kv.get(f"result.{result_key}")
        return None if found is None else json.loads(found[0])

    async def put_result(self, result_key: str, result: dict[str, Any]) -> None:
        await self.kv.put(f"result.{result_key}", json.dumps(result).encode())

    async def drop_result(self, result_key: str) -> None:
        await self.kv.delete(f"result.{result_key}")

    async def publish_model(self, name: str, info: dict[str, Any]) -> None:
        await self.kv.put(f"model.{token(name)}", json.dumps({**info, "name": name, "at": time.time()}).encode())

    async def model(self, name: str) -> dict[str, Any] | None:
        found = await self.kv.get(f"model.{token(name)}")
        return None if found is None else json.loads(found[0])


def _valid_id(job_id: str) -> bool:
    return 0 < len(job_id) <= 64 and all(c.isalnum() or c in "-_" for c in job_id)
