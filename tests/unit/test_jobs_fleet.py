"""The Triton fleet (``backends/fleet.py``) against fake servers: windows spread over the
servers that are ready, a server that fails is skipped and its windows answered by the
others, it comes back once ready, one down at start joins later, all down ends within the
deadline, a server serving another model version is left out."""

from __future__ import annotations

import contextlib
import threading
import time

import numpy as np
import pytest
from stemserve.backends.fleet import TritonFleet, parse_addresses
from stemserve.core.errors import BackendUnavailableError, InvalidOptionError
from stemserve.core.model_config import ModelSpec

SPEC = ModelSpec(name="m", stems=("vocals", "other"), sample_rate_hz=44_100, segment_samples=256,
                 model_version="1", max_batch_size=4)
GAINS = np.array([0.75, 0.25], np.float32)


class FakeServer:
    """One Triton server as the fleet sees it: stems = mix * gains; ``down`` makes it fail
    (or hang until its deadline, with ``hang``)."""

    def __init__(self, address: str, spec: ModelSpec = SPEC) -> None:
        self.address, self.spec, self.device = address, spec, "gpu"
        self.down = self.hang = False
        self.windows = 0
        self.max_batch_size = spec.max_batch_size
        self._local = threading.local()

    def infer(self, windows: np.ndarray) -> np.ndarray:
        if self.down:
            if self.hang:
                time.sleep(max(self._local.deadline - time.monotonic(), 0))
            raise BackendUnavailableError(f"{self.address} is down")
        self.windows += len(windows)
        return windows[:, None] * GAINS[None, :, None, None]

    def ready(self) -> bool:
        return not self.down

    def warm_up(self) -> None:
        self.infer(np.zeros((1, 2, 256), np.float32))

    @contextlib.contextmanager
    def deadline(self, seconds):
        self._local.deadline = time.monotonic() + (seconds or 60)
        yield

    def close(self) -> None:
        pass


class Fleet:
    def __init__(self, names: list[str], unreachable: set[str] = frozenset(), specs: dict | None = None, **kwargs):
        self.servers = {n: FakeServer(n, (specs or {}).get(n, SPEC)) for n in names}
        self.unreachable = set(unreachable)

        def connect(address: str, first: bool) -> FakeServer:
            if address in self.unreachable:
                raise BackendUnavailableError(f"{address} does not answer")
            return self.servers[address]

        self.fleet = TritonFleet("m", names, connect, retry_initial_s=0.05, retry_max_s=0.2, revive_every_s=0.02,
                                 **kwargs)


def windows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 2, 256)).astype(np.float32)


def expected(mix: np.ndarray) -> np.ndarray:
    return mix[:, None] * GAINS[None, :, None, None]


def wait_until(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def make():
    made: list[Fleet] = []

    def build(*args, **kwargs) -> Fleet:
        made.append(Fleet(*args, **kwargs))
        return made[-1]

    yield build
    for fleet in made:
        fleet.fleet.close()


def test_parse_addresses():
    assert parse_addresses(" a:1, b:2,a:1 ") == ["a:1", "b:2"]
    for bad in ("", "a", "a:1,b"):
        with pytest.raises(InvalidOptionError):
            parse_addresses(bad)


def test_windows_spread_over_every_ready_server(make):
    f = make(["a:1", "b:1", "c:1"])
    mix = windows(12)
    for _ in range(3):
        np.testing.assert_array_equal(f.fleet.infer(mix), expected(mix))
    counts = [s.windows for s in f.servers.values()]
    assert sum(counts) == 36 and min(counts) >= 10  # 12 each, give or take the rotation
    assert f.fleet.max_batch_size == 3 * SPEC.max_batch_size and f.fleet.spec == SPEC and f.fleet.ready()


def test_a_failing_server_is_skipped_and_comes_back(make):
    f = make(["a:1", "b:1"])
    f.servers["a:1"].down = True
    mix = windows(8, seed=1)
    np.testing.assert_array_equal(f.fleet.infer(mix), expected(mix))  # a's windows went to b
    assert f.servers["a:1"].windows == 0 and f.servers["b:1"].windows == 8
    assert [m.address for m in f.fleet.ready_members()] == ["b:1"]
    np.testing.assert_array_equal(f.fleet.infer(mix), expected(mix))
    assert f.servers["a:1"].windows == 0  # skipped while down, not tried on every call
    f.servers["a:1"].down = False
    wait_until(lambda: len(f.fleet.ready_members()) == 2)
    f.fleet.infer(mix)
    assert f.servers["a:1"].windows > 0


def test_a_hanging_server_is_given_up_on_within_the_deadline(make):
    f = make(["a:1", "b:1"], member_try_s=0.2)
    f.servers["a:1"].down = f.servers["a:1"].hang = True
    mix = windows(4, seed=2)
    started = time.monotonic()
    with f.fleet.deadline(5.0):
        np.testing.assert_array_equal(f.fleet.infer(mix), expected(mix))
    assert time.monotonic() - started < 2.0


def test_a_server_down_at_start_joins_once_it_answers(make):
    f = make(["a:1", "b:1"], unreachable={"a:1"})
    assert [m.address for m in f.fleet.ready_members()] == ["b:1"]
    f.fleet.infer(windows(4))
    f.unreachable.clear()
    wait_until(lambda: len(f.fleet.ready_members()) == 2)
    f.fleet.infer(windows(8))
    assert f.servers["a:1"].windows > 0


def test_every_server_down_fails_within_the_deadline_and_none_at_start_fails_at_once(make):
    f = make(["a:1", "b:1"])
    for server in f.servers.values():
        server.down = True
    started = time.monotonic()
    with f.fleet.deadline(0.5), pytest.raises(BackendUnavailableError) as error:
        f.fleet.infer(windows(4))
    assert 0.4 < time.monotonic() - started < 2.0 and "a:1" in str(error.value) and not f.fleet.ready()
    with pytest.raises(BackendUnavailableError):
        Fleet(["a:1"], unreachable={"a:1"})


def test_a_server_with_another_model_version_is_left_out(make):
    other = ModelSpec(name="m", stems=SPEC.stems, sample_rate_hz=44_100, segment_samples=256, model_version="2")
    f = make(["a:1", "b:1"], specs={"b:1": other})
    assert [m.address for m in f.fleet.ready_members()] == ["a:1"]
    time.sleep(0.1)  # never revived
    assert [m.address for m in f.fleet.ready_members()] == ["a:1"]
    assert "version" not in f.fleet.members[1].last_error or "2" in f.fleet.members[1].last_error


def test_a_threads_song_deadline_bounds_its_calls_and_other_threads_keep_none():
    import threading
    import time

    from stemserve.backends.deadline import ThreadDeadlines

    deadlines = ThreadDeadlines()
    seen = {}
    with deadlines.within(5.0):
        start = time.monotonic()
        assert start + 4.9 < deadlines.until(60.0) <= start + 5.0  # the song's deadline is sooner
        assert deadlines.until(1.0) <= time.monotonic() + 1.0  # the call's own limit is sooner
        other = threading.Thread(target=lambda: seen.update(song=deadlines.song()))
        other.start()
        other.join()
        with deadlines.within(None):
            assert deadlines.song() is not None  # None: no new deadline, the song's stays
    assert seen == {"song": None} and deadlines.song() is None
