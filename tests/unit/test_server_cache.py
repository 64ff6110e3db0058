import os
import time

import pytest
from stemserve.client.records import SeparationRecord, StemRecord
from stemserve.core.errors import InvalidOptionError
from stemserve.pipeline.options import SeparationOptions
from stemserve.server.cache import RESULT_NAME, WORK_PREFIX, ResultCache, cache_key


def finished(cache: ResultCache, payload: bytes, names=("vocals", "other")) -> tuple:
    """A work folder holding stems as a separation leaves them, and its record."""
    stems_dir = cache.new_work_dir() / "stems"
    stems_dir.mkdir()
    stems = []
    for index, name in enumerate(names):
        (stems_dir / f"{name}.wav").write_bytes(payload + bytes([index]))
        stems.append(StemRecord(name, f"{name}.wav", 44_100, 10, "wav", len(payload) + 1))
    record = SeparationRecord(model_name="m", model_version="v1", runtime_seconds=1.5, device="cpu",
                              audio_seconds=2.0, input={"duration_s": 2.0}, warnings=("w",), stems=tuple(stems))
    return stems_dir, record


def key(n: int) -> str:
    return cache_key(f"{n:064x}", "m", "v1", SeparationOptions())


def read_all(entry) -> dict[str, bytes]:
    try:
        return {name: handle.read() for name, handle in entry.files.items()}
    finally:
        entry.close()


def test_key_changes_with_every_part():
    base = cache_key("a" * 64, "m", "v1", SeparationOptions(stems=4))
    variants = [
        cache_key("b" * 64, "m", "v1", SeparationOptions(stems=4)),
        cache_key("a" * 64, "n", "v1", SeparationOptions(stems=4)),
        cache_key("a" * 64, "m", "v2", SeparationOptions(stems=4)),
        cache_key("a" * 64, "m", "v1", SeparationOptions(stems=5)),
        cache_key("a" * 64, "m", "v1", SeparationOptions(stems=4, format="flac")),
        cache_key("a" * 64, "m", "v1", SeparationOptions(stems=4, sample_rate_hz=48_000)),
        cache_key("a" * 64, "m", "v1", SeparationOptions(stems=4, normalize=False)),
    ]
    assert len({base, *variants}) == 1 + len(variants)
    assert base == cache_key("a" * 64, "m", "v1", SeparationOptions(stems=4)) and len(base) == 64


def test_store_then_lookup_returns_the_same_bytes_in_order(tmp_path):
    cache = ResultCache(tmp_path, max_bytes=10_000)
    stems_dir, record = finished(cache, b"x" * 100, names=("vocals", "drums", "bass", "other"))
    stored = read_all(cache.store(key(1), stems_dir, record))
    assert list(stored) == ["vocals", "drums", "bass", "other"] and stored["drums"] == b"x" * 100 + b"\x01"
    again = cache.lookup(key(1))
    assert again.result == record and read_all(again) == stored
    assert cache.lookup(key(2)) is None
    assert cache.size_bytes == sum(p.stat().st_size for p in (tmp_path / key(1)).iterdir())


def test_least_recently_used_entries_are_evicted_to_the_bound(tmp_path):
    cache = ResultCache(tmp_path, max_bytes=2_500)  # each entry is ~1.1 kB
    for n in (1, 2):
        read_all(cache.store(key(n), *finished(cache, b"y" * 300)))
    read_all(cache.lookup(key(1)))  # 1 is now more recent than 2
    read_all(cache.store(key(3), *finished(cache, b"z" * 300)))
    assert (key(1) in cache, key(2) in cache, key(3) in cache) == (True, False, True)
    assert not (tmp_path / key(2)).exists() and cache.size_bytes <= 2_500
    entries = [p.name for p in tmp_path.iterdir() if not p.name.startswith(WORK_PREFIX)]
    assert sorted(entries) == sorted([key(1), key(3)])


def test_an_entry_larger_than_the_cache_is_served_but_not_kept(tmp_path):
    cache = ResultCache(tmp_path, max_bytes=300)
    stems_dir, record = finished(cache, b"w" * 400)
    assert read_all(cache.store(key(1), stems_dir, record))["vocals"] == b"w" * 400 + b"\x00"
    assert key(1) not in cache and not stems_dir.exists()


def test_disabled_cache_serves_once_and_keeps_nothing(tmp_path):
    cache = ResultCache(tmp_path, max_bytes=0)
    stems_dir, record = finished(cache, b"v" * 10)
    assert read_all(cache.store(key(1), stems_dir, record))["other"] == b"v" * 10 + b"\x01"
    assert cache.lookup(key(1)) is None and not stems_dir.exists()


def test_an_entry_being_read_survives_its_eviction(tmp_path):
    cache = ResultCache(tmp_path, max_bytes=1_500)
    read_all(cache.store(key(1), *finished(cache, b"a" * 300)))
    reading = cache.lookup(key(1))
    read_all(cache.store(key(2), *finished(cache, b"b" * 300)))  # evicts 1
    assert key(1) not in cache and not (tmp_path / key(1)).exists()
    assert read_all(reading)["vocals"] == b"a" * 300 + b"\x00"


def test_reopening_keeps_entries_and_recency_and_drops_crash_leftovers(tmp_path):
    cache = ResultCache(tmp_path, max_bytes=10_000)
    for n in (1, 2):
        read_all(cache.store(key(n), *finished(cache, b"c" * 500)))
    past = time.time() - 100
    os.utime(tmp_path / key(2), (past, past))  # 2 is the least recent on disk
    leftover, _ = finished(cache, b"partial")  # a separation that never finished
    half = tmp_path / key(3)  # a folder without result.json is not an entry
    half.mkdir()
    (half / "vocals.wav").write_bytes(b"half")
    reopened = ResultCache(tmp_path, max_bytes=1_500)
    assert not leftover.parent.exists() and not list(tmp_path.glob(WORK_PREFIX + "*"))
    assert reopened.lookup(key(3)) is None
    assert key(1) in reopened and key(2) not in reopened  # the bound evicted the least recent
    assert read_all(reopened.lookup(key(1)))["vocals"] == b"c" * 500 + b"\x00"


def test_the_same_result_stored_twice_keeps_the_first(tmp_path):
    cache = ResultCache(tmp_path, max_bytes=10_000)
    read_all(cache.store(key(1), *finished(cache, b"first")))
    second_dir, record = finished(cache, b"second")
    assert read_all(cache.store(key(1), second_dir, record))["vocals"] == b"first\x00"
    assert not second_dir.exists() and (tmp_path / key(1) / RESULT_NAME).is_file()


@pytest.mark.parametrize("max_bytes", [0, 10_000])
def test_work_dirs_are_hidden_and_unique(tmp_path, max_bytes):
    cache = ResultCache(tmp_path, max_bytes=max_bytes)
    first, second = cache.new_work_dir(), cache.new_work_dir()
    assert first != second and first.name.startswith(WORK_PREFIX) and first.parent == tmp_path


def test_an_unwritable_cache_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(InvalidOptionError, match="cache_dir must be a writable folder, got"):
        ResultCache(blocker / "cache", max_bytes=10)
