"""Stem bytes sent while the stems are still being written end up as the final files."""

import os
import random

import pytest
from stemserve.server.cache import Entry
from stemserve.server.streaming import (
    HEADER_GUARD_BYTES,
    MIN_EARLY_BYTES,
    StemTailer,
    changed_early_bytes,
    finish_stems,
    remaining_ranges,
)

GUARD = HEADER_GUARD_BYTES


def rebuild(responses, into: dict[str, bytearray]) -> dict[str, bytearray]:
    for response in responses:
        chunk = response.stem_chunk
        data = into.setdefault(chunk.stem, bytearray())
        end = chunk.offset + len(chunk.data)
        data.extend(b"\0" * max(0, end - len(data)))
        data[chunk.offset : end] = chunk.data
    return into


def body(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


@pytest.fixture
def stems_dir(tmp_path):
    folder = tmp_path / "stems"
    folder.mkdir()
    return folder


def grow(path, data: bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(data)


def finalize(stems_dir, name: str, header: bytes, tail: bytes):
    partial, final = stems_dir / f".{name}.wav.partial", stems_dir / f"{name}.wav"
    grow(partial, tail)
    with open(partial, "r+b") as handle:  # the encoder rewrites its header on close
        handle.write(header)
    os.replace(partial, final)
    return final


def entry_of(paths: dict[str, object]) -> Entry:
    return Entry(result={}, files={name: open(path, "rb") for name, path in paths.items()})


def test_early_bytes_plus_header_and_tail_rebuild_the_final_file(stems_dir):
    tailer = StemTailer(stems_dir, ("vocals", "other"), "wav")
    assert list(tailer.poll()) == []  # nothing written yet
    grow(stems_dir / ".vocals.wav.partial", b"h" * GUARD + body(3 * MIN_EARLY_BYTES, 1))
    grow(stems_dir / ".other.wav.partial", b"h" * GUARD + body(MIN_EARLY_BYTES - 1, 2))  # too little yet
    received = rebuild(tailer.poll(), {})
    assert list(received) == ["vocals"] and tailer.sent["vocals"].end == GUARD + 3 * MIN_EARLY_BYTES
    grow(stems_dir / ".vocals.wav.partial", body(1000, 3))  # under the increment: waits
    assert list(tailer.poll()) == []
    finals = {
        "vocals": finalize(stems_dir, "vocals", b"VOCALSHEADER", body(5000, 4)),
        "other": finalize(stems_dir, "other", b"OTHERHEADER", body(10, 5)),
    }
    entry = entry_of(finals)
    ranges = remaining_ranges(entry, tailer)
    vocals_size = finals["vocals"].stat().st_size
    assert ranges["vocals"] == [(0, GUARD), (GUARD + 3 * MIN_EARLY_BYTES, vocals_size)]
    assert ranges["other"] == [(0, finals["other"].stat().st_size)]
    rebuild(finish_stems(entry, ranges), received)
    assert changed_early_bytes(entry, tailer) == []
    entry.close()
    tailer.close()
    for name, path in finals.items():
        assert bytes(received[name]) == path.read_bytes()
    assert received["vocals"][:12] == b"VOCALSHEADER"


def test_early_bytes_that_changed_are_sent_again_whole(stems_dir):
    tailer = StemTailer(stems_dir, ("vocals",), "wav")
    partial = stems_dir / ".vocals.wav.partial"
    grow(partial, b"h" * GUARD + body(2 * MIN_EARLY_BYTES, 1))
    received = rebuild(tailer.poll(), {})
    with open(partial, "r+b") as handle:  # an encoder that rewrote data past the guard
        handle.seek(GUARD + 10)
        handle.write(b"changed")
    final = finalize(stems_dir, "vocals", b"H", b"")
    entry = entry_of({"vocals": final})
    rebuild(finish_stems(entry, remaining_ranges(entry, tailer)), received)
    assert bytes(received["vocals"]) != final.read_bytes()  # the early bytes are stale
    assert changed_early_bytes(entry, tailer) == ["vocals"]
    rebuild(finish_stems(entry, {"vocals": [(0, final.stat().st_size)]}), received)
    entry.close()
    tailer.close()
    assert bytes(received["vocals"]) == final.read_bytes()


def test_complete_files_are_sent_whole_in_order(tmp_path):
    paths = {}
    for index, name in enumerate(("vocals", "drums")):
        paths[name] = tmp_path / f"{name}.wav"
        paths[name].write_bytes(body(2_500_000 + index, index))
    entry = entry_of(paths)
    responses = list(finish_stems(entry, remaining_ranges(entry, None)))
    entry.close()
    assert [r.stem_chunk.stem for r in responses] == ["vocals"] * 3 + ["drums"] * 3
    assert [r.stem_chunk.offset for r in responses[:3]] == [0, 1 << 20, 2 << 20]
    received = rebuild(responses, {})
    assert all(bytes(received[name]) == path.read_bytes() for name, path in paths.items())


def test_client_coverage_is_whole_only_without_gaps():
    from stemserve.client.client import Coverage

    coverage = Coverage()
    coverage.add(GUARD, 1000)
    coverage.add(GUARD + 2000, 10)
    assert coverage.ranges == [(GUARD, GUARD + 1000), (GUARD + 2000, GUARD + 2010)]
    coverage.add(0, GUARD)
    coverage.add(GUARD + 1000, 1000)
    assert coverage.ranges == [(0, GUARD + 2010)]
    coverage.add(0, GUARD + 5000)  # a stem sent again whole
    assert coverage.ranges == [(0, GUARD + 5000)]


def test_client_refuses_a_stem_with_a_gap_and_leaves_no_file(tmp_path):
    import grpc
    from stemserve.client.client import Receiver, RemoteError, StemFiles
    from stemserve.client.proto_gen import separation_pb2 as pb

    def chunk(data: bytes, offset: int) -> pb.SeparateResponse:
        return pb.SeparateResponse(stem_chunk=pb.StemChunk(stem="vocals", data=data, offset=offset))

    result = pb.SeparateResponse(result=pb.SeparationResult(stems=[pb.StemInfo(name="vocals", nb_bytes=GUARD + 4)]))
    files = StemFiles(tmp_path, "wav")
    receiver = Receiver(files, None)
    for response in (chunk(b"tail", GUARD), chunk(b"h" * (GUARD - 1), 0), result):  # one byte short
        receiver.take(response)
    with pytest.raises(RemoteError) as failure:
        receiver.finish()
    files.discard()
    assert failure.value.code == grpc.StatusCode.DATA_LOSS
    assert f"must be bytes [0, {GUARD + 4}), got [(0, {GUARD - 1}), ({GUARD}, {GUARD + 4})]" in str(failure.value)
    assert list(tmp_path.iterdir()) == []
    whole = StemFiles(tmp_path, "wav")
    receiver = Receiver(whole, None)
    for response in (chunk(b"tail", GUARD), chunk(b"h" * GUARD, 0), result):
        receiver.take(response)
    assert receiver.finish().paths == {"vocals": tmp_path / "vocals.wav"}
    whole.discard()
    assert (tmp_path / "vocals.wav").read_bytes() == b"h" * GUARD + b"tail"
