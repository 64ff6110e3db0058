"""One model on a fleet of Triton servers (``--triton a:8001,b:8001``): the windows of each
call are spread over the servers that are ready; a server that fails is skipped, its
windows go to the others within the call's deadline, and it is tried again later.

A member is one :class:`~stemserve.backends.triton.TritonBackend` per address. A background
thread revives members: one that could not be reached at start is connected once it answers,
one marked down comes back once it reports ready, each with a doubling back-off
(``retry_initial_s`` to ``retry_max_s``). A member gets at most ``member_try_s`` per call,
so a server that hangs is given up on while the deadline still leaves time for the others.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import numpy as np
from stemserve.backends.base import Backend
from stemserve.backends.deadline import ThreadDeadlines
from stemserve.core.errors import BackendUnavailableError, DeadlineExceededError, InvalidOptionError
from stemserve.core.model_config import ModelSpec

log = logging.getLogger(__name__)

DEFAULT_DEADLINE_S = 120.0  # a call's deadline when the song sets none (TritonClientConfig's default)


def parse_addresses(urls: str) -> list[str]:
    """``host:port[,host:port...]`` -> the addresses, each once, in order."""
    addresses = list(dict.fromkeys(a.strip() for a in urls.split(",") if a.strip()))
    if not addresses or any(":" not in a for a in addresses):
        raise InvalidOptionError(f"Triton addresses must be host:port, comma-separated, not {urls!r}")
    return addresses


@dataclass
class Member:
    address: str
    backend: Backend | None = None
    up: bool = False
    retry_at: float = 0.0
    failures: int = 0
    windows: int = 0  # windows this member answered (for tests and logs)
    last_error: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)


class TritonFleet:
    """The Backend contract over several Triton servers serving the same model."""

    name = "triton"
    checks_readiness = True

    def __init__(self, model_name: str, addresses: Sequence[str], make_member: Callable[[str, bool], Backend], *,
                 member_try_s: float = 10.0, retry_initial_s: float = 0.5, retry_max_s: float = 15.0,
                 revive_every_s: float = 0.25, deadline_s: float = DEFAULT_DEADLINE_S) -> None:
        """``make_member(address, first)`` connects to one server (``first``: at start, when
        it may wait for the model to load; later a short try); raises when it cannot."""
        if not addresses:
            raise InvalidOptionError("a Triton fleet needs at least one address, got none")
        self.model_name, self.make_member = model_name, make_member
        self.member_try_s, self.retry_initial_s, self.retry_max_s = member_try_s, retry_initial_s, retry_max_s
        self.deadline_s = deadline_s
        self.members = [Member(a) for a in addresses]
        self._deadlines = ThreadDeadlines()  # per worker thread: the song's deadline
        self._turn = itertools.count()
        self._stop = threading.Event()
        errors = []
        for member in self.members:
            try:
                member.backend, member.up = make_member(member.address, True), True
            except Exception as exc:  # noqa: BLE001 - a server down at start is retried later
                self._mark_down(member, exc)
                errors.append(f"{member.address}: {exc}")
        first = next((m.backend for m in self.members if m.backend is not None), None)
        if first is None:
            raise BackendUnavailableError(f"no Triton server of the fleet serves model {model_name!r}: {errors}")
        self.spec: ModelSpec = first.spec
        self.device = first.device
        for member in self.members:
            if member.backend is not None:
                self._check_spec(member)
        self._executor = ThreadPoolExecutor(max_workers=max(2 * len(self.members), 4),
                                            thread_name_prefix=f"fleet-{model_name}")
        self._reviver = threading.Thread(target=self._revive_loop, args=(revive_every_s,), daemon=True,
                                         name=f"fleet-revive-{model_name}")
        self._reviver.start()
        log.info("Triton fleet for %s: %d of %d servers up", model_name, len(self.ready_members()), len(self.members))

    # -- the Backend interface ------------------------------------------------------------

    @property
    def max_batch_size(self) -> int:
        first = next((m.backend for m in self.members if m.backend is not None), None)
        per_member = first.max_batch_size if first is not None else max(self.spec.max_batch_size, 1)
        return per_member * max(len(self.ready_members()), 1)

    def infer(self, windows: np.ndarray) -> np.ndarray:
        deadline = self._deadline()
        outputs: list[np.ndarray | None] = [None] * len(windows)
        pending = list(range(len(windows)))
        while pending:
            members = self._wait_for_members(deadline)
            start = next(self._turn)
            shares: dict[int, list[int]] = {}
            for n, index in enumerate(pending):
                shares.setdefault((start + n) % len(members), []).append(index)
            futures = {self._executor.submit(self._infer_on, members[k], windows[idx], deadline): (k, idx)
                       for k, idx in shares.items()}
            pending = []
            for future, (k, idx) in futures.items():
                try:
                    result = future.result()
                except (BackendUnavailableError, DeadlineExceededError) as exc:
                    if time.monotonic() >= deadline:
                        raise DeadlineExceededError(f"Triton fleet for {self.model_name!r}: the deadline passed "
                                                    f"with {len(idx)} windows unanswered ({exc})") from exc
                    self._mark_down(members[k], exc)
                    pending += idx
                    continue
                for i, index in enumerate(idx):
                    outputs[index] = result[i]
        return np.stack(outputs) if len(windows) else np.zeros((0, len(self.spec.stems), *windows.shape[1:]),
                                                               np.float32)

    def warm_up(self) -> None:
        for member in self.ready_members():
            member.backend.warm_up()  # type: ignore[union-attr]

    def ready(self) -> bool:
        return bool(self.ready_members())

    def deadline(self, seconds: float | None) -> AbstractContextManager[None]:
        """Calls made by this thread inside the block finish within ``seconds`` from now."""
        return self._deadlines.within(seconds)

    def close(self) -> None:
        self._stop.set()
        self._reviver.join(timeout=5.0)
        self._executor.shutdown(wait=False, cancel_futures=True)
        for member in self.members:
            if member.backend is not None:
                with contextlib.suppress(Exception):
                    member.backend.close()

    def _deadline(self) -> float:
        return self._deadlines.until(self.deadline_s)

    # -- members --------------------------------------------------------------------------

    def ready_members(self) -> list[Member]:
        return [m for m in self.members if m.up and m.backend is not None]

    def _infer_on(self, member: Member, windows: np.ndarray, deadline: float) -> np.ndarray:
        backend = member.backend
        assert backend is not None
        budget = min(deadline - time.monotonic(), self.member_try_s)
        if budget <= 0:
            raise DeadlineExceededError(f"Triton fleet for {self.model_name!r}: no time left for {member.address}")
        with backend.deadline(budget):
            result = backend.infer(windows)
        with member.lock:
            member.windows += len(windows)
            member.failures = 0
        return result

    def _wait_for_members(self, deadline: float) -> list[Member]:
        """The members up now; while none is, wait (for the reviver) until the deadline."""
        while True:
            members = self.ready_members()
            if members:
                return members
            if time.monotonic() >= deadline:
                states = "; ".join(f"{m.address}: {m.last_error or 'down'}" for m in self.members)
                raise BackendUnavailableError(f"no Triton server of the fleet answered for model "
                                              f"{self.model_name!r} within the deadline ({states})")
            time.sleep(min(0.05, max(deadline - time.monotonic(), 0.0)))

    def _mark_down(self, member: Member, exc: BaseException) -> None:
        with member.lock:
            member.up = False
            member.failures += 1
            member.last_error = str(exc)[:300]
            delay = min(self.retry_initial_s * 2 ** (member.failures - 1), self.retry_max_s)
            member.retry_at = time.monotonic() + delay
        log.warning("Triton server %s skipped for %.1f s (model %s): %s", member.address, delay, self.model_name,
                    member.last_error)

    def _check_spec(self, member: Member) -> bool:
        """Whether the member serves the fleet's model; one that does not is left out for good."""
        spec = member.backend.spec  # type: ignore[union-attr]
        if (spec.model_version, spec.stems, spec.segment_samples) == (
                self.spec.model_version, self.spec.stems, self.spec.segment_samples):
            return True
        member.up = False
        member.retry_at = float("inf")
        member.last_error = (f"serves {spec.name} {spec.model_version}, the fleet serves "
                             f"{self.spec.name} {self.spec.model_version}")
        log.error("Triton server %s left out: %s", member.address, member.last_error)
        return False

    def _revive_loop(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            for member in self.members:
                if member.up or time.monotonic() < member.retry_at:
                    continue
                try:
                    self._revive(member)
                except Exception as exc:  # noqa: BLE001 - still down: try again later
                    self._mark_down(member, exc)

    def _revive(self, member: Member) -> None:
        if member.backend is None:
            member.backend = self.make_member(member.address, False)
            if not self._check_spec(member):
                return
        elif not member.backend.ready():
            raise BackendUnavailableError(f"Triton at {member.address} is not ready")
        with member.lock:
            member.up, member.last_error = True, ""
        log.info("Triton server %s is back for model %s", member.address, self.model_name)


def triton_fleet_backends(urls: str) -> Callable[[str], Backend]:
    """A ModelPool factory: each model on the fleet of ``urls`` (one address: that server)."""
    from stemserve.backends.triton import TritonBackend, TritonClientConfig

    addresses = parse_addresses(urls)

    def member(model: str) -> Callable[[str, bool], Backend]:
        def make(address: str, first: bool) -> Backend:
            return TritonBackend(model, TritonClientConfig(url=address, connect_timeout_s=30.0 if first else 2.0))

        return make

    def make(model: str) -> Backend:
        if len(addresses) == 1:
            return TritonBackend(model, TritonClientConfig(url=addresses[0]))
        return TritonFleet(model, addresses, member(model))

    return make
