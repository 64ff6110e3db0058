import threading
import time

import pytest
from stemserve.preprocess.prefetch import prefetched


def test_items_come_in_order_and_the_producer_runs_ahead():
    produced = []

    def items():
        for i in range(5):
            produced.append(i)
            yield i

    seen = []
    for item in prefetched(items(), depth=2):
        time.sleep(0.02)  # the producer gets ahead while we work
        seen.append((item, len(produced)))
    assert [item for item, _ in seen] == [0, 1, 2, 3, 4]
    assert seen[0][1] >= 2  # item 1 (at least) was produced before item 0 was consumed


def test_producer_exception_is_raised_where_it_happened():
    def items():
        yield "a"
        raise RuntimeError("model failed on batch 2")

    got = []
    with pytest.raises(RuntimeError, match="model failed on batch 2"):
        for item in prefetched(items()):
            got.append(item)  # noqa: PERF402 - what arrived before the error
    assert got == ["a"]


def test_closing_early_stops_the_producer():
    produced = []

    def items():
        for i in range(1_000):
            produced.append(i)
            yield i

    iterator = prefetched(items(), depth=1)
    assert next(iterator) == 0
    iterator.close()
    assert not any(t.name == "prefetch" and t.is_alive() for t in threading.enumerate())
    assert len(produced) <= 3  # the item in hand, one queued, one being made
