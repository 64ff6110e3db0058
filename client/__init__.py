"""Python client of the stemserve gRPC service."""

from client.client import RemoteError, RemoteResult, StemserveClient

__all__ = ["RemoteError", "RemoteResult", "StemserveClient"]
