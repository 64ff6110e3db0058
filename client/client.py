"""A blocking client of ``stemserve.v1.Separation``: upload a song, get its stems as files.

    with StemserveClient("localhost:50051", api_key="...") as client:
        result = client.separate(Path("song.mp3"), Path("stems"), SeparationOptions(stems=2))

Stems are written as they stream in (each chunk at its byte offset: the server sends the
bytes it already has while the song is still being separated, headers last), to hidden
partial files renamed into place once the final result has arrived, like the in-process
pipeline: a failed call leaves no stem that looks finished.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Self

import grpc

from server.proto_gen import separation_pb2 as pb
from server.proto_gen import separation_pb2_grpc as pb_grpc
from stemserve.errors import StemserveError
from stemserve.options import SeparationOptions

UPLOAD_CHUNK_BYTES = 1 << 20
FORMATS = {"wav": pb.AUDIO_FORMAT_WAV, "flac": pb.AUDIO_FORMAT_FLAC, "mp3": pb.AUDIO_FORMAT_MP3}
BIT_DEPTHS = {"16": pb.BIT_DEPTH_16, "24": pb.BIT_DEPTH_24, "float": pb.BIT_DEPTH_FLOAT}
DEVICES = {pb.DEVICE_CPU: "cpu", pb.DEVICE_GPU: "gpu", pb.DEVICE_UNSPECIFIED: "unknown"}

ProgressFn = Callable[[int, int], None]


class RemoteError(StemserveError):
    """The server answered with an error status; ``code`` is the grpc.StatusCode."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"server answered {code.name}: {details}")
        self.code, self.details = code, details


@dataclass(frozen=True)
class RemoteResult:
    summary: dict[str, object]  # the shape of SeparationResult.summary()
    cache_hit: bool
    stems: dict[str, Path] = field(default_factory=dict)


def options_to_proto(options: SeparationOptions) -> pb.SeparateOptions:
    message = pb.SeparateOptions(
        stems=options.stems, format=FORMATS[options.format], bit_depth=BIT_DEPTHS[options.bit_depth],
        sample_rate_hz=options.sample_rate_hz or 0, normalize=options.normalize, model=options.model,
    )
    if options.overlap is not None:
        message.overlap = options.overlap
    return message


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

    def separate(self, source: bytes | Path, out_dir: Path, options: SeparationOptions | None = None, *,
                 progress: ProgressFn | None = None, timeout_s: float | None = None) -> RemoteResult:
        """Separate ``source`` (a file or its bytes) on the server; stems land in ``out_dir``.
        ``options`` None: the defaults (4 stems, wav, the default model)."""
        options = SeparationOptions() if options is None else options
        method = self._stub.RemoveVocals if options.stems == 2 else self._stub.SplitStems
        files = _StemFiles(Path(out_dir), options.encode.extension)
        result = None
        try:
            for response in method(_requests(source, options), metadata=self._metadata, timeout=timeout_s):
                kind = response.WhichOneof("payload")
                if kind == "progress" and progress is not None:
                    progress(response.progress.windows_done, response.progress.windows_total)
                elif kind == "stem_chunk":
                    files.write(response.stem_chunk)
                elif kind == "result":
                    result = response.result
            if result is None:
                raise RemoteError(grpc.StatusCode.DATA_LOSS, "expected a final result message, got none")
            final = files.commit(result.stems)
        except grpc.RpcError as exc:
            raise RemoteError(exc.code(), exc.details()) from exc
        finally:
            files.discard()
        return RemoteResult(summary=_summary(result, final), cache_hit=result.cache_hit, stems=final)


class _StemFiles:
    """Stems being received: hidden partial files written at each chunk's offset, renamed
    into place by ``commit`` once every stem is whole."""

    def __init__(self, out_dir: Path, extension: str) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir, self.extension = out_dir, extension
        self._partial: dict[str, Path] = {}
        self._handles: dict[str, BinaryIO] = {}
        self._covered: dict[str, _Coverage] = {}

    def write(self, chunk: pb.StemChunk) -> None:
        handle = self._handles.get(chunk.stem)
        if handle is None:
            self._partial[chunk.stem] = self.out_dir / f".{chunk.stem}.{self.extension}.partial"
            handle = self._handles[chunk.stem] = open(self._partial[chunk.stem], "wb")  # noqa: SIM115 - discard()
            self._covered[chunk.stem] = _Coverage()
        if handle.tell() != chunk.offset:
            handle.seek(chunk.offset)
        handle.write(chunk.data)
        self._covered[chunk.stem].add(chunk.offset, len(chunk.data))

    def commit(self, stems) -> dict[str, Path]:
        """Check that each stem of the result arrived whole, then rename them all."""
        for stem in stems:
            got = self._covered[stem.name].ranges if stem.name in self._covered else []
            if got != [(0, stem.nb_bytes)]:
                raise RemoteError(grpc.StatusCode.DATA_LOSS,
                                  f"stem {stem.name!r} must be bytes [0, {stem.nb_bytes}), got {got}")
            self._handles[stem.name].truncate(stem.nb_bytes)
            self._handles[stem.name].close()
        final = {stem.name: self.out_dir / f"{stem.name}.{self.extension}" for stem in stems}
        for name, path in final.items():
            os.replace(self._partial[name], path)
        return final

    def discard(self) -> None:
        """Close every file and remove what was not committed."""
        for handle in self._handles.values():
            handle.close()
        for path in self._partial.values():
            path.unlink(missing_ok=True)


class _Coverage:
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


def _requests(source: bytes | Path, options: SeparationOptions) -> Iterator[pb.SeparateRequest]:
    yield pb.SeparateRequest(options=options_to_proto(options))
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = memoryview(source)
        for start in range(0, len(data), UPLOAD_CHUNK_BYTES):
            yield pb.SeparateRequest(audio_chunk=bytes(data[start : start + UPLOAD_CHUNK_BYTES]))
        return
    with open(source, "rb") as handle:
        while chunk := handle.read(UPLOAD_CHUNK_BYTES):
            yield pb.SeparateRequest(audio_chunk=chunk)


def _summary(result: pb.SeparationResult, paths: dict[str, Path]) -> dict[str, object]:
    info = result.input
    return {
        "model_name": result.model_name,
        "model_version": result.model_version,
        "runtime_seconds": round(result.runtime_seconds, 3),
        "device": DEVICES.get(result.device, "unknown"),
        "audio_seconds": round(result.audio_seconds, 3),
        "input": {"duration_s": round(info.duration_s, 3), "sample_rate_hz": info.sample_rate_hz,
                  "channels": info.channels, "format": info.format, "subtype": info.subtype,
                  "bytes": info.bytes},
        "warnings": list(result.warnings),
        "stems": {
            s.name: {"path": str(paths[s.name]), "sample_rate_hz": s.sample_rate_hz,
                     "nb_frames": s.nb_frames, "format": s.format}
            for s in result.stems
        },
    }
