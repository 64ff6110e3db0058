"""The ``stemserve.v1.Separation`` handlers: bytes in, stems out, over gRPC.

A separation request: authenticate -> take a song slot (per key and global; with the Jobs
service also a place among the key's running jobs, ``server/limits.py``) -> read the
options -> receive the upload into a work file (hashing it, refusing it as soon as it is
over the size limit) -> cache lookup -> on a miss: read the header (duration limit) and
separate in a worker thread, relaying its progress and the stem bytes already encoded
(``server/streaming.py``) -> store the result -> send the rest of the stems and the final
result. Errors cross to gRPC statuses in ``server/status.py`` only.

The worker thread checks a stop flag and the call's deadline after every window, so a
cancelled or expired call stops using the CPU within one window.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from contextlib import closing
from pathlib import Path

import grpc
from stemserve.client.proto_gen import separation_pb2 as pb
from stemserve.client.proto_gen import separation_pb2_grpc as pb_grpc
from stemserve.client.records import SeparationRecord
from stemserve.core.errors import DeadlineExceededError, InvalidAudioError, InvalidOptionError, StemserveError
from stemserve.core.presets import resolve
from stemserve.pipeline.options import SeparationOptions
from stemserve.pipeline.run import separate
from stemserve.preprocess.decode import DecodeLimits, probe
from stemserve.server.auth import ApiKeys
from stemserve.server.cache import Entry, ResultCache, cache_key
from stemserve.server.limits import ConcurrencyLimits
from stemserve.server.messages import (
    REMOVE_VOCALS,
    SPLIT_STEMS,
    model_info,
    options_from_proto,
    result_to_proto,
)
from stemserve.server.metrics import ServiceMetrics
from stemserve.server.models import ModelPool, TimedBackend
from stemserve.server.status import abort_with_status
from stemserve.server.streaming import StemTailer, changed_early_bytes, finish_stems, remaining_ranges

log = logging.getLogger(__name__)

TAIL_POLL_S = 0.25  # how often stem files are checked for new bytes when no progress event came
_DONE = object()  # the worker finished (or failed)


class StopRequested(Exception):
    """Raised in the worker thread when the call was cancelled: the client is gone."""


class SeparationService(pb_grpc.SeparationServicer):
    def __init__(
        self, *, pool: ModelPool, cache: ResultCache, limits: ConcurrencyLimits, keys: ApiKeys,
        metrics: ServiceMetrics, decode_limits: DecodeLimits, executor: Executor, default_model: str,
    ) -> None:
        self.pool, self.cache, self.limits, self.keys = pool, cache, limits, keys
        self.metrics, self.decode_limits = metrics, decode_limits
        self.executor, self.default_model = executor, default_model

    async def RemoveVocals(self, request_iterator, context):
        async for response in self._guarded(REMOVE_VOCALS, request_iterator, context):
            yield response

    async def SplitStems(self, request_iterator, context):
        async for response in self._guarded(SPLIT_STEMS, request_iterator, context):
            yield response

    async def ListModels(self, request, context):
        try:
            self.keys.authenticate(context.invocation_metadata())
            models = [model_info(spec, device) for spec, device in self.pool.specs().values()]
            return pb.ListModelsResponse(models=models, default_model=self.default_model)
        except StemserveError as exc:
            await abort_with_status(context, exc, self.metrics)

    async def _guarded(self, rpc: str, requests: AsyncIterator, context) -> AsyncIterator[pb.SeparateResponse]:
        try:
            key = self.keys.authenticate(context.invocation_metadata())
            with self.limits.slot(key):
                async with self.limits.shared_slot(key):  # with the key's running jobs, when jobs are served
                    self.metrics.songs_in_flight.inc()
                    try:
                        async for response in self._separate(rpc, requests, context):
                            yield response
                    finally:
                        self.metrics.songs_in_flight.dec()
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - the one boundary: every error gets its status
            await abort_with_status(context, exc, self.metrics)

    async def _separate(self, rpc: str, requests: AsyncIterator, context) -> AsyncIterator[pb.SeparateResponse]:
        started = time.perf_counter()
        first = await anext(aiter(requests), None)
        if first is None or first.WhichOneof("payload") != "options":
            got = "no message" if first is None else "audio_chunk"
            raise InvalidOptionError(f"the first message must hold options, got {got}")
        options = options_from_proto(rpc, first.options, self.default_model)
        backend = self.pool.get(options.model)
        preset = resolve(options.stems, backend.spec.stems, backend.spec.name, options.two_stems)  # before the upload
        work = self.cache.new_work_dir()
        try:
            upload, digest = await self._receive(requests, work / "upload")
            key = cache_key(digest, backend.spec.name, backend.spec.model_version, options)
            entry = self.cache.lookup(key)
            if entry is not None:
                self.metrics.cache_hits.inc()
                runtime = round(time.perf_counter() - started, 3)
                with closing(entry):
                    for response in finish_stems(entry, remaining_ranges(entry, None)):
                        yield response
                    yield _result(entry, cache_hit=True, runtime_s=runtime)
                return
            self.metrics.cache_misses.inc()
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self.executor, probe, upload, self.decode_limits)
            stems_dir = work / "stems"
            tailer = StemTailer(stems_dir, preset.names, options.encode.extension)
            try:
                job = _Job(upload, stems_dir, backend, options, self.decode_limits, context.time_remaining())
                async for response in self._run(job, tailer):
                    yield response
                result = job.result
                self.metrics.observe_separation(result.model_name, result.runtime_seconds, result.audio_seconds)
                entry = await loop.run_in_executor(self.executor, self.cache.store, key, stems_dir, result)
                self.metrics.cache_size.set(self.cache.size_bytes)
                with closing(entry):
                    check = loop.run_in_executor(self.executor, changed_early_bytes, entry, tailer)
                    try:
                        for response in finish_stems(entry, remaining_ranges(entry, tailer)):
                            yield response
                    finally:
                        changed = await check
                    if changed:
                        log.warning("stems %s changed after they were sent early; sending them again", changed)
                    for response in finish_stems(entry, {name: [(0, _size(entry, name))] for name in changed}):
                        yield response
                    yield _result(entry, cache_hit=False)
            finally:
                tailer.close()
        finally:
            shutil.rmtree(work, ignore_errors=True)

    async def _run(self, job: _Job, tailer: StemTailer) -> AsyncIterator[pb.SeparateResponse]:
        """Separate in a worker thread; relay its progress and the stem bytes encoded so far."""
        loop = asyncio.get_running_loop()
        progress: asyncio.Queue = asyncio.Queue()
        job.relay = lambda done, total: loop.call_soon_threadsafe(progress.put_nowait, (done, total))
        future = loop.run_in_executor(self.executor, job.run)
        future.add_done_callback(lambda _: progress.put_nowait(_DONE))
        try:
            async for event in _events(progress, TAIL_POLL_S):
                if event is not None:
                    yield pb.SeparateResponse(progress=pb.Progress(windows_done=event[0], windows_total=event[1]))
                for response in tailer.poll():
                    yield response
            await future
        finally:
            if not future.done():  # the call ended early: stop the worker at its next window
                job.stop.set()
                await asyncio.shield(asyncio.wait([future]))

    async def _receive(self, requests: AsyncIterator, path: Path) -> tuple[Path, str]:
        """Write the upload to ``path`` as it arrives; its sha256. Small sequential writes
        land in the page cache: cheaper here than a thread hop per chunk."""
        digest = hashlib.sha256()
        nb_bytes = 0
        limit = self.decode_limits.max_bytes
        with open(path, "wb") as handle:  # noqa: ASYNC230 - see the docstring
            async for request in requests:
                if request.WhichOneof("payload") != "audio_chunk":
                    raise InvalidOptionError("options must be sent once, as the first message; got them again")
                chunk = request.audio_chunk
                nb_bytes += len(chunk)
                if nb_bytes > limit:
                    raise InvalidAudioError(
                        f"input must be at most {limit} bytes, got more than that ({nb_bytes} so far)",
                        reason="too_large",
                    )
                digest.update(chunk)
                handle.write(chunk)
        return path, digest.hexdigest()


async def _events(queue: asyncio.Queue, poll_s: float) -> AsyncIterator[tuple[int, int] | None]:
    """Progress events until ``_DONE``, skipping those a newer one replaced; ``None`` after
    ``poll_s`` without one (the encoder keeps writing between slow windows)."""
    while True:
        try:
            item = await asyncio.wait_for(queue.get(), poll_s)
        except TimeoutError:
            yield None
            continue
        while item is not _DONE and not queue.empty():
            following = queue.get_nowait()
            if following is _DONE:
                yield item
                return
            item = following
        if item is _DONE:
            return
        yield item


class _Job:
    """One separation in a worker thread, stoppable between windows."""

    def __init__(self, upload: Path, out_dir: Path, backend: TimedBackend, options: SeparationOptions,
                 limits: DecodeLimits, time_remaining_s: float | None) -> None:
        self.upload, self.out_dir, self.backend, self.options = upload, out_dir, backend, options
        self.limits = limits
        self.relay: Callable[[int, int], None] = lambda done, total: None
        self.budget_s = time_remaining_s
        self.deadline = None if time_remaining_s is None else time.monotonic() + time_remaining_s
        self.stop = threading.Event()
        self.result: SeparationRecord | None = None

    def run(self) -> None:
        with self.backend.deadline(self.budget_s):  # a remote backend's requests carry the call's deadline
            self.result = separate(self.upload, self.out_dir, self.backend, self.options, limits=self.limits,
                                   progress=self.progress)

    def progress(self, done: int, total: int) -> None:
        if self.stop.is_set():
            raise StopRequested(f"the call ended after {done}/{total} windows")
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise DeadlineExceededError(
                f"the request's deadline ({self.budget_s:.2f} s) passed after {done}/{total} windows; "
                f"expected a deadline long enough for the song"
            )
        self.relay(done, total)


def _result(entry: Entry, *, cache_hit: bool, runtime_s: float | None = None) -> pb.SeparateResponse:
    return pb.SeparateResponse(result=result_to_proto(entry.result, cache_hit=cache_hit, runtime_seconds=runtime_s))


def _size(entry: Entry, name: str) -> int:
    return os.fstat(entry.files[name].fileno()).st_size
