"""The light client of the stemserve gRPC service: grpcio and protobuf, nothing else.

``StemserveClient`` (blocking) and ``AsyncStemserveClient`` (asyncio) return a
``SeparationRecord`` with the stems as files or bytes; ``stemserve.client.audio`` decodes
bytes into arrays (the ``audio`` extra: numpy, soundfile).
"""

from stemserve.client.aio import AsyncStemserveClient
from stemserve.client.client import RemoteError, StemserveClient
from stemserve.client.records import SeparationRecord, StemRecord

__all__ = ["AsyncStemserveClient", "RemoteError", "SeparationRecord", "StemRecord", "StemserveClient"]
