"""Stem bytes onto the wire, as ``StemChunk(stem, data, offset)`` messages.

While a song is separated, its stems are encoded window by window into hidden partial
files (``.NAME.EXT.partial``, see ``pipeline/stem_sink.py``). :class:`StemTailer` sends
what those files already hold, except their first :data:`HEADER_GUARD_BYTES`: encoders
rewrite the header (sizes, stream info) when they close the file. Once the separation is
complete, :func:`finish_stems` sends what is left (:func:`remaining_ranges`: the header
region and the tail) while :func:`changed_early_bytes` checks, in a worker thread, that
the bytes sent early equal the final files (a CRC-32 of both); a stem whose early bytes
differ is sent again whole before the result, so the client always ends with the final
files. Sending during the separation keeps the transfer off the critical path.

Cached results, which are complete from the start, go through :func:`finish_stems` alone.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from stemserve.client.proto_gen import separation_pb2 as pb
from stemserve.server.cache import Entry

CHUNK_BYTES = 1 << 20  # well under gRPC's default 4 MiB message limit
HEADER_GUARD_BYTES = 64 << 10  # never sent early: the encoder may still rewrite it
MIN_EARLY_BYTES = 256 << 10  # smaller increments wait for the next poll


@dataclass
class _Sent:
    """Bytes ``[HEADER_GUARD_BYTES, end)`` of one stem went out early, with this CRC-32."""

    end: int = HEADER_GUARD_BYTES
    crc32: int = 0
    handle: BinaryIO | None = field(default=None, repr=False)


class StemTailer:
    """Sends the finished part of stems that are still being written."""

    def __init__(self, stems_dir: Path, names: tuple[str, ...], extension: str) -> None:
        self._paths = {name: stems_dir / f".{name}.{extension}.partial" for name in names}
        self.sent: dict[str, _Sent] = {name: _Sent() for name in names}

    def poll(self) -> Iterator[pb.SeparateResponse]:
        """Chunks of what the partial files gained since the last poll. Reads hit the
        page cache (the file was just written), which is cheaper than a thread hop."""
        for name, path in self._paths.items():
            sent = self.sent[name]
            if sent.handle is None:
                try:
                    sent.handle = open(path, "rb")  # noqa: SIM115 - closed by close()
                except FileNotFoundError:
                    continue
            size = _size(sent.handle)
            while size - sent.end >= MIN_EARLY_BYTES:
                sent.handle.seek(sent.end)
                data = sent.handle.read(min(CHUNK_BYTES, size - sent.end))
                sent.crc32 = zlib.crc32(data, sent.crc32)
                yield _chunk(name, data, sent.end)
                sent.end += len(data)

    def close(self) -> None:
        for sent in self.sent.values():
            if sent.handle is not None:
                sent.handle.close()
                sent.handle = None


def remaining_ranges(entry: Entry, tailer: StemTailer | None) -> dict[str, list[tuple[int, int]]]:
    """Byte ranges of each stem not sent early: its header region and its tail, or the
    whole file when nothing went out early."""
    ranges: dict[str, list[tuple[int, int]]] = {}
    for name, handle in entry.files.items():
        size = _size(handle)
        sent = tailer.sent.get(name) if tailer is not None else None
        if sent is None or sent.end == HEADER_GUARD_BYTES or sent.end > size:
            ranges[name] = [(0, size)]
        else:
            ranges[name] = [(0, HEADER_GUARD_BYTES), (sent.end, size)]
    return ranges


def changed_early_bytes(entry: Entry, tailer: StemTailer) -> list[str]:
    """Stems whose bytes sent early differ from their final file (to send again whole).
    Blocking, and safe alongside :func:`finish_stems` on the same files: it reads with
    ``os.pread``, which leaves the files' positions alone."""
    changed = []
    for name, handle in entry.files.items():
        sent = tailer.sent.get(name)
        if sent is None or sent.end == HEADER_GUARD_BYTES:
            continue
        crc, position = 0, HEADER_GUARD_BYTES
        while position < sent.end:
            data = os.pread(handle.fileno(), min(CHUNK_BYTES, sent.end - position), position)
            if not data:
                break
            crc, position = zlib.crc32(data, crc), position + len(data)
        if position != sent.end or crc != sent.crc32:
            changed.append(name)
    return changed


def finish_stems(entry: Entry, ranges: dict[str, list[tuple[int, int]]]) -> Iterator[pb.SeparateResponse]:
    """Chunks of ``ranges`` of each stem of ``entry`` named in ``ranges``, in the preset's order."""
    for name, handle in entry.files.items():
        for start, end in ranges.get(name, ()):
            handle.seek(start)
            position = start
            while position < end:
                data = handle.read(min(CHUNK_BYTES, end - position))
                if not data:
                    raise OSError(f"stem {name!r} ended at byte {position}, expected {end}")
                yield _chunk(name, data, position)
                position += len(data)


def _chunk(name: str, data: bytes, offset: int) -> pb.SeparateResponse:
    return pb.SeparateResponse(stem_chunk=pb.StemChunk(stem=name, data=data, offset=offset))


def _size(handle: BinaryIO) -> int:
    return handle.seek(0, 2)
