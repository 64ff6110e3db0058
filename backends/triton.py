"""Inference on a Triton Inference Server over gRPC (tritonclient.grpc.aio).

``infer`` keeps the Backend interface (a batch of windows in, their stems out, called from
a worker thread) and sends each window as its own request, all of them concurrently, on
one event loop shared by every song: Triton's dynamic batcher then batches windows across
songs and clients. The total of requests in flight is bounded.

Each call has a deadline (``request_timeout_s``, or the song's remaining time set with
``deadline``); every request carries the time left as its gRPC deadline and as Triton's
request ``timeout`` (which Triton applies where the model's queue policy allows it).
UNAVAILABLE is retried with exponential backoff inside the deadline; a call returns every
window's stems or raises, never a partial result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Self, TypeVar

import numpy as np
import tritonclient.grpc.aio as grpcclient
from stemserve.backends.deadline import ThreadDeadlines
from stemserve.core.errors import (
    BackendUnavailableError,
    DeadlineExceededError,
    InvalidOptionError,
    ModelConfigError,
    StemserveError,
)
from stemserve.core.model_config import INPUT_NAME, OUTPUT_NAME, ModelSpec, spec_from_config
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.utils import InferenceServerException

log = logging.getLogger(__name__)
T = TypeVar("T")

UNAVAILABLE = "StatusCode.UNAVAILABLE"
DEADLINE = "StatusCode.DEADLINE_EXCEEDED"
MAX_MESSAGE_BYTES = 2**31 - 1


@dataclass(frozen=True, kw_only=True)
class TritonClientConfig:
    url: str  # Triton's gRPC endpoint, host:port
    request_timeout_s: float = 120.0  # deadline of one infer call when the song sets none
    connect_timeout_s: float = 30.0  # how long the constructor waits for the model to be ready
    max_in_flight: int = 64  # window requests in flight, every song together
    windows_per_call: int | None = None  # windows the pipeline hands over per call; None: max_batch_size
    backoff_initial_s: float = 0.05
    backoff_max_s: float = 1.0

    def __post_init__(self) -> None:
        if ":" not in self.url:
            raise InvalidOptionError(f"Triton url must be host:port, not {self.url!r}")
        if min(self.request_timeout_s, self.connect_timeout_s, self.backoff_initial_s, self.backoff_max_s) <= 0:
            raise InvalidOptionError("Triton client timeouts and backoffs must be > 0")
        if self.max_in_flight < 1 or (self.windows_per_call is not None and self.windows_per_call < 1):
            raise InvalidOptionError(
                f"max_in_flight and windows_per_call must be >= 1, not {self.max_in_flight} and {self.windows_per_call}"
            )


def spec_from_triton(config: dict[str, Any]) -> ModelSpec:
    """ModelSpec from Triton's JSON model config, through the same reader as config.pbtxt."""
    parameters = [
        {"key": [key], "value": [{"string_value": [value.get("string_value", "")]}]}
        for key, value in config.get("parameters", {}).items()
    ]
    as_pbtxt = {
        "name": [config.get("name", "")],
        "max_batch_size": [int(config.get("max_batch_size", 0))],
        "backend": [config.get("backend") or config.get("platform", "")],
        "parameters": parameters,
    }
    return spec_from_config(as_pbtxt)


class TritonBackend:
    """One model served by Triton; safe to call from many worker threads at once."""

    name = "triton"

    def __init__(self, model_name: str, config: TritonClientConfig) -> None:
        self.model_name, self.config = model_name, config
        self._deadlines = ThreadDeadlines()  # per worker thread: the song's deadline
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"triton-{model_name}", daemon=True)
        self._thread.start()
        try:
            self._client, self._slots = self._call(self._open(), timeout_s=5.0)
            model_config = self._call(
                self._wait_ready(config.connect_timeout_s), timeout_s=config.connect_timeout_s + 5
            )
        except BaseException:
            self.close()
            raise
        self.spec = spec_from_triton(model_config)
        kinds = {group.get("kind", "KIND_CPU") for group in model_config.get("instance_group", [])}
        self.device = "gpu" if "KIND_GPU" in kinds else "cpu"
        log.info("Triton model %s (%s) on %s at %s", self.spec.name, self.spec.model_version, self.device, config.url)

    # -- the Backend interface ------------------------------------------------------------

    @property
    def max_batch_size(self) -> int:
        return self.config.windows_per_call or max(self.spec.max_batch_size, 1)

    def infer(self, windows: np.ndarray) -> np.ndarray:
        # (batch, channels, segment) -> (batch, stems, channels, segment)
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        deadline = self._deadline()
        return self._call(self._infer_all(windows, deadline), timeout_s=deadline - time.monotonic() + 5.0)

    def warm_up(self) -> None:
        self.infer(np.zeros((1, 2, self.spec.segment_samples), dtype=np.float32))

    def ready(self, timeout_s: float = 2.0) -> bool:
        """Triton is up and this model is ready (for health checks)."""
        try:
            return self._call(self._is_ready(timeout_s), timeout_s=timeout_s + 1.0)
        except (StemserveError, InferenceServerException):
            return False

    checks_readiness = True  # Triton can go away after warm-up

    def deadline(self, seconds: float | None) -> AbstractContextManager[None]:
        """Calls made by this thread inside the block finish within ``seconds`` from now."""
        return self._deadlines.within(seconds)

    def close(self) -> None:
        if self._loop.is_closed():
            return
        client = getattr(self, "_client", None)
        if client is not None and self._thread.is_alive():
            with contextlib.suppress(Exception):
                self._call(client.close(), timeout_s=5.0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5.0)
        self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- on the event loop ----------------------------------------------------------------

    def _call(self, coroutine: Awaitable[T], *, timeout_s: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)  # type: ignore[arg-type]
        try:
            return future.result(timeout=max(timeout_s, 0.1))
        except TimeoutError:
            future.cancel()
            raise DeadlineExceededError(f"Triton call to {self.model_name!r} took over {timeout_s:.1f} s") from None

    async def _open(self) -> tuple[grpcclient.InferenceServerClient, asyncio.Semaphore]:
        options = [
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            # reconnect fast once Triton is back: the default backoff grows to minutes
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
        ]
        client = grpcclient.InferenceServerClient(self.config.url, channel_args=options)
        return client, asyncio.Semaphore(self.config.max_in_flight)

    async def _is_ready(self, timeout_s: float) -> bool:
        return bool(
            await self._client.is_server_ready(client_timeout=timeout_s)
            and await self._client.is_model_ready(self.model_name, client_timeout=timeout_s)
        )

    async def _wait_ready(self, timeout_s: float) -> dict[str, Any]:
        started = time.monotonic()
        delay, last = self.config.backoff_initial_s, "no answer"
        while True:
            try:
                if await self._is_ready(min(timeout_s, 5.0)):
                    response = await self._client.get_model_config(self.model_name, as_json=True, client_timeout=5.0)
                    return response["config"]
                last = f"model {self.model_name!r} is not ready"
            except InferenceServerException as exc:
                last = f"{exc.status()}: {exc.message()}"
            waited = time.monotonic() - started
            if waited + delay > timeout_s:
                raise BackendUnavailableError(
                    f"Triton at {self.config.url} must serve model {self.model_name!r} within {timeout_s:g} s; "
                    f"after {waited:.1f} s: {last}"
                )
            await asyncio.sleep(delay)
            delay = min(2 * delay, self.config.backoff_max_s)

    async def _infer_all(self, windows: np.ndarray, deadline: float) -> np.ndarray:
        tasks = [asyncio.ensure_future(self._infer_one(windows[i : i + 1], deadline)) for i in range(len(windows))]
        try:
            outputs = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:  # one window failed: the others' results are of no use
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        stems = np.concatenate(outputs)  # (batch, stems, channels, segment)
        expected = (len(windows), len(self.spec.stems), *windows.shape[1:])
        if stems.shape != expected:
            raise ModelConfigError(
                f"model {self.model_name!r} on Triton must return {expected}, returned {stems.shape}"
            )
        return stems

    async def _infer_one(self, window: np.ndarray, deadline: float) -> np.ndarray:
        """One window ``(1, channels, segment)``, retried while Triton is UNAVAILABLE."""
        mix = InferInput(INPUT_NAME, list(window.shape), "FP32")
        mix.set_data_from_numpy(window)
        outputs = [InferRequestedOutput(OUTPUT_NAME)]
        delay, started, attempts = self.config.backoff_initial_s, time.monotonic(), 0
        async with self._slots:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DeadlineExceededError(
                        f"Triton model {self.model_name!r}: the deadline passed before a window was sent"
                    )
                attempts += 1
                try:
                    result = await self._client.infer(
                        self.model_name,
                        [mix],
                        outputs=outputs,
                        client_timeout=remaining,
                        timeout=int(remaining * 1e6),  # Triton drops it from its queue once expired
                    )
                    return result.as_numpy(OUTPUT_NAME)
                except InferenceServerException as exc:
                    if exc.status() == DEADLINE:
                        raise DeadlineExceededError(
                            f"Triton model {self.model_name!r} did not answer within the deadline "
                            f"({time.monotonic() - started:.1f} s, {attempts} attempts)"
                        ) from exc
                    if exc.status() != UNAVAILABLE:
                        raise BackendUnavailableError(
                            f"Triton at {self.config.url} failed on model {self.model_name!r}: "
                            f"{exc.status()}: {exc.message()}"
                        ) from exc
                    if time.monotonic() + delay >= deadline:
                        raise BackendUnavailableError(
                            f"Triton at {self.config.url} stayed unavailable for "
                            f"{time.monotonic() - started:.1f} s ({attempts} attempts, within the deadline): "
                            f"{exc.message()}"
                        ) from exc
                    log.debug("Triton unavailable (%s), retrying in %.2f s", exc.message(), delay)
                    await asyncio.sleep(delay)
                    delay = min(2 * delay, self.config.backoff_max_s)

    def _deadline(self) -> float:
        return self._deadlines.until(self.config.request_timeout_s)
