"""A blocking client of ``stemserve.v1.Separation``: upload a song, get its stems as bytes in
memory or as files.

    with StemserveClient("localhost:50051", api_key="...") as client:
        record = client.separate("song.mp3", "stems/", stems=2)          # files
        record, data = client.separate_bytes(song_bytes, format="flac")  # bytes in memory

Options are sent as given; what is left out is the server's default, and the server
validates them (``RemoteError`` with INVALID_ARGUMENT says what was expected). Files are
written as the bytes stream in (each chunk at its byte offset: the server sends what it
already has while the song is still being separated, headers last) to hidden partial files,
renamed into place once the final result has arrived: a failed call leaves no stem that
looks finished. Needs grpcio and protobuf only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Self

import grpc
from stemserve.client.proto_gen import separation_pb2 as pb
from stemserve.client.proto_gen import separation_pb2_grpc as pb_grpc
from stemserve.client.records import ProgressFn, SeparationRecord, StemRecord
from stemserve.client.wire import BIT_DEPTH_TO_WIRE, DEVICE_FROM_WIRE, FORMAT_TO_WIRE

UPLOAD_CHUNK_BYTES = 1 << 20
EXTENSIONS = {"wav": "wav", "flac": "flac", "mp3": "mp3"}
OPTION_NAMES = ("stems", "format", "bit_depth", "sample_rate_hz", "normalize", "model", "overlap", "mp3_bitrate", "two_stems")
Source = bytes | str | os.PathLike


class RemoteError(Exception):
    """The server answered with an error status (``code``, a grpc.StatusCode), or the call
    could not be made. The light client's one error type."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"server answered {code.name}: {details}")
        self.code, self.details = code, details


def options_to_proto(options: dict[str, object]) -> pb.SeparateOptions:
    """Only the options given; the others stay unset and take the server's defaults."""
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise TypeError(f"options must be among {list(OPTION_NAMES)}, got {unknown}")
    given = {k: v for k, v in options.items() if v is not None}
    message = pb.SeparateOptions()
    for name, value in given.items():
        if name == "format":
            value = _wire(FORMAT_TO_WIRE, "format", value)
        elif name == "bit_depth":
            value = _wire(BIT_DEPTH_TO_WIRE, "bit_depth", str(value))
        setattr(message, name, value)
    return message


def _wire(table: dict[str, int], name: str, value: object) -> int:
    if value not in table:
        raise ValueError(f"{name} must be one of {list(table)}, not {value!r}")
    return table[value]  # type: ignore[index]


class StemserveClient:
    def __init__(self, target: str, *, api_key: str | None = None, root_certificates: bytes | None = None,
                 secure: bool = False) -> None:
        if secure or root_certificates is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self._channel = grpc.secure_channel(target, credentials)
        else:
            self._channel = grpc.insecure_channel(target)
        self._stub = pb_grpc.SeparationStub(self._channel)
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def list_models(self, timeout_s: float | None = None) -> pb.ListModelsResponse:
        try:
            return self._stub.ListModels(pb.ListModelsRequest(), metadata=self._metadata, timeout=timeout_s)
        except grpc.RpcError as exc:
            raise RemoteError(exc.code(), exc.details()) from exc

    def separate(self, source: Source, out_dir: str | os.PathLike, *, progress: ProgressFn | None = None,
                 timeout_s: float | None = None, **options: object) -> SeparationRecord:
        """Separate ``source`` (a file's path or its bytes); stems land in ``out_dir``; the
        record's stem paths name them."""
        sink = StemFiles(Path(out_dir), EXTENSIONS[str(options.get("format") or "wav")])
        return self._call(source, options, sink, progress, timeout_s)

    def separate_bytes(self, source: Source, *, progress: ProgressFn | None = None, timeout_s: float | None = None,
                       **options: object) -> tuple[SeparationRecord, dict[str, bytes]]:
        """Separate ``source``; the stems' encoded files come back in memory, by stem name."""
        sink = StemBuffers()
        record = self._call(source, options, sink, progress, timeout_s)
        return record, sink.data

    def _call(self, source: Source, options: dict[str, object], sink: StemFiles | StemBuffers,
              progress: ProgressFn | None, timeout_s: float | None) -> SeparationRecord:
        method = self._stub.RemoveVocals if options.get("stems") == 2 else self._stub.SplitStems
        receiver = Receiver(sink, progress)
        try:
            for response in method(requests(source, options), metadata=self._metadata, timeout=timeout_s):
                receiver.take(response)
            return receiver.finish()
        except grpc.RpcError as exc:
            raise RemoteError(exc.code(), exc.details()) from exc
        finally:
            sink.discard()


class Receiver:
    """Takes a separation's responses in order: progress to the callback, stem bytes to the
    sink, and the final result, checked whole, as a record."""

    def __init__(self, sink: StemFiles | StemBuffers, progress: ProgressFn | None) -> None:
        self.sink, self.progress = sink, progress
        self.covered: dict[str, Coverage] = {}
        self.result: pb.SeparationResult | None = None

    def take(self, response: pb.SeparateResponse) -> None:
        kind = response.WhichOneof("payload")
        if kind == "progress" and self.progress is not None:
            self.progress(response.progress.windows_done, response.progress.windows_total)
        elif kind == "stem_chunk":
            chunk = response.stem_chunk
            self.sink.write(chunk.stem, chunk.offset, chunk.data)
            self.covered.setdefault(chunk.stem, Coverage()).add(chunk.offset, len(chunk.data))
        elif kind == "result":
            self.result = response.result

    def finish(self) -> SeparationRecord:
        result = self.result
        if result is None:
            raise RemoteError(grpc.StatusCode.DATA_LOSS, "expected a final result message, got none")
        for stem in result.stems:
            got = self.covered[stem.name].ranges if stem.name in self.covered else []
            if got != [(0, stem.nb_bytes)]:
                raise RemoteError(grpc.StatusCode.DATA_LOSS,
                                  f"stem {stem.name!r} must be bytes [0, {stem.nb_bytes}), got {got}")
        paths = self.sink.commit({stem.name: stem.nb_bytes for stem in result.stems})
        return record_from_proto(result, paths)


class StemFiles:
    """Stems received into hidden partial files, renamed into place by ``commit``."""

    def __init__(self, out_dir: Path, extension: str) -> None:
        self.out_dir, self.extension = out_dir, extension
        self._partial: dict[str, Path] = {}
        self._handles: dict[str, BinaryIO] = {}

    def write(self, stem: str, offset: int, data: bytes) -> None:
        handle = self._handles.get(stem)
        if handle is None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._partial[stem] = self.out_dir / f".{stem}.{self.extension}.partial"
            handle = self._handles[stem] = open(self._partial[stem], "wb")  # noqa: SIM115 - discard()
        if handle.tell() != offset:
            handle.seek(offset)
        handle.write(data)

    def commit(self, sizes: dict[str, int]) -> dict[str, str]:
        for name, size in sizes.items():
            self._handles[name].truncate(size)
            self._handles[name].close()
        final = {name: self.out_dir / f"{name}.{self.extension}" for name in sizes}
        for name, path in final.items():
            os.replace(self._partial.pop(name), path)
        return {name: str(path) for name, path in final.items()}

    def discard(self) -> None:
        """Close every file and remove what was not committed."""
        for handle in self._handles.values():
            handle.close()
        for path in self._partial.values():
            path.unlink(missing_ok=True)


class StemBuffers:
    """Stems received into memory."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self._buffers: dict[str, bytearray] = {}

    def write(self, stem: str, offset: int, data: bytes) -> None:
        buffer = self._buffers.setdefault(stem, bytearray())
        if len(buffer) < offset + len(data):
            buffer.extend(bytes(offset + len(data) - len(buffer)))
        buffer[offset : offset + len(data)] = data

    def commit(self, sizes: dict[str, int]) -> dict[str, str]:
        self.data = {name: bytes(self._buffers[name][:size]) for name, size in sizes.items()}
        return {name: "" for name in sizes}

    def discard(self) -> None:
        self._buffers.clear()


class Coverage:
    """The byte ranges of a file received so far, merged: ``[(0, n)]`` once it is whole."""

    def __init__(self) -> None:
        self.ranges: list[tuple[int, int]] = []

    def add(self, offset: int, length: int) -> None:
        merged: list[tuple[int, int]] = []
        start, end = offset, offset + length
        for lo, hi in self.ranges:
            if hi < start or lo > end:
                merged.append((lo, hi))
            else:
                start, end = min(lo, start), max(hi, end)
        self.ranges = sorted([*merged, (start, end)])


def requests(source: Source, options: dict[str, object]) -> Iterator[pb.SeparateRequest]:
    yield pb.SeparateRequest(options=options_to_proto(options))
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = memoryview(source)
        for start in range(0, len(data), UPLOAD_CHUNK_BYTES):
            yield pb.SeparateRequest(audio_chunk=bytes(data[start : start + UPLOAD_CHUNK_BYTES]))
        return
    with open(source, "rb") as handle:
        while chunk := handle.read(UPLOAD_CHUNK_BYTES):
            yield pb.SeparateRequest(audio_chunk=chunk)


def record_from_proto(result: pb.SeparationResult, paths: dict[str, str]) -> SeparationRecord:
    info = result.input
    return SeparationRecord(
        model_name=result.model_name,
        model_version=result.model_version,
        runtime_seconds=result.runtime_seconds,
        device=DEVICE_FROM_WIRE.get(result.device, "unknown"),
        audio_seconds=result.audio_seconds,
        input={"duration_s": round(info.duration_s, 3), "sample_rate_hz": info.sample_rate_hz,
               "channels": info.channels, "format": info.format, "subtype": info.subtype, "bytes": info.bytes},
        warnings=tuple(result.warnings),
        stems=tuple(StemRecord(s.name, paths[s.name], s.sample_rate_hz, s.nb_frames, s.format, s.nb_bytes)
                    for s in result.stems),
        cache_hit=result.cache_hit,
    )
