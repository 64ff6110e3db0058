"""An asyncio client of ``stemserve.v1.Separation`` (``grpc.aio``), the same calls and results
as :class:`stemserve.client.StemserveClient`:

    async with AsyncStemserveClient("localhost:50051") as client:
        record, data = await client.separate_bytes(song_bytes, stems=2)

The upload is read in the caller's thread chunk by chunk (files) and stems written as they
arrive, as in the blocking client. Needs grpcio and protobuf only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Self

import grpc
from stemserve.client.client import (
    EXTENSIONS,
    Receiver,
    RemoteError,
    Source,
    StemBuffers,
    StemFiles,
    requests,
)
from stemserve.client.proto_gen import separation_pb2 as pb
from stemserve.client.proto_gen import separation_pb2_grpc as pb_grpc
from stemserve.client.records import ProgressFn, SeparationRecord


class AsyncStemserveClient:
    def __init__(self, target: str, *, api_key: str | None = None, root_certificates: bytes | None = None,
                 secure: bool = False) -> None:
        if secure or root_certificates is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self._channel = grpc.aio.secure_channel(target, credentials)
        else:
            self._channel = grpc.aio.insecure_channel(target)
        self._stub = pb_grpc.SeparationStub(self._channel)
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def list_models(self, timeout_s: float | None = None) -> pb.ListModelsResponse:
        try:
            return await self._stub.ListModels(pb.ListModelsRequest(), metadata=self._metadata, timeout=timeout_s)
        except grpc.RpcError as exc:
            raise RemoteError(exc.code(), exc.details()) from exc

    async def separate(self, source: Source, out_dir: str | os.PathLike, *, progress: ProgressFn | None = None,
                       timeout_s: float | None = None, **options: object) -> SeparationRecord:
        sink = StemFiles(Path(out_dir), EXTENSIONS[str(options.get("format") or "wav")])
        return await self._call(source, options, sink, progress, timeout_s)

    async def separate_bytes(self, source: Source, *, progress: ProgressFn | None = None,
                             timeout_s: float | None = None, **options: object
                             ) -> tuple[SeparationRecord, dict[str, bytes]]:
        sink = StemBuffers()
        record = await self._call(source, options, sink, progress, timeout_s)
        return record, sink.data

    async def _call(self, source: Source, options: dict[str, object], sink: StemFiles | StemBuffers,
                    progress: ProgressFn | None, timeout_s: float | None) -> SeparationRecord:
        method = self._stub.RemoveVocals if options.get("stems") == 2 else self._stub.SplitStems
        receiver = Receiver(sink, progress)
        try:
            call = method(requests(source, options), metadata=self._metadata, timeout=timeout_s)
            async for response in call:
                receiver.take(response)
            return receiver.finish()
        except grpc.RpcError as exc:
            raise RemoteError(exc.code(), exc.details()) from exc
        finally:
            sink.discard()
