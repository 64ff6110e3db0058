"""The light client of the stemserve gRPC service: grpcio and protobuf, nothing else.

``StemserveClient`` (blocking) and ``AsyncStemserveClient`` (asyncio) return a
``SeparationRecord`` with the stems as files or bytes; ``stemserve.client.audio`` decodes
bytes into arrays (the ``audio`` extra: numpy, soundfile).

Names are imported on first use, so the in-process pipeline can use the result record
(``stemserve.client.records``, pure Python) without grpc installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stemserve.client.aio import AsyncStemserveClient
    from stemserve.client.client import RemoteError, StemserveClient
    from stemserve.client.records import SeparationRecord, StemRecord

_WHERE = {
    "AsyncStemserveClient": "stemserve.client.aio",
    "RemoteError": "stemserve.client.client",
    "StemserveClient": "stemserve.client.client",
    "SeparationRecord": "stemserve.client.records",
    "StemRecord": "stemserve.client.records",
}
__all__ = ["AsyncStemserveClient", "RemoteError", "SeparationRecord", "StemRecord", "StemserveClient"]


def __getattr__(name: str) -> object:
    if name not in _WHERE:
        raise AttributeError(f"module 'stemserve.client' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
