"""Object storage for uploads and stems, behind one small contract (:class:`ObjectStore`):
the S3 API (``jobs/s3.py``, SeaweedFS in the tests, any S3 in production) or a local
folder (:class:`LocalStore`, the embedded mode's default).

Layout (keys): ``audio/<sha256>`` uploads by content, ``uploads/<id>`` presigned uploads,
``results/<cache key>/<stem>.<ext>`` stems and ``results/<cache key>/result.json`` last,
the marker that the result is complete. Every put is atomic (a reader sees the whole object
or none), so a result is complete exactly when its marker exists.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from stemserve.core.errors import InvalidOptionError
from stemserve.jobs.errors import JobNotFoundError, StoreUnavailableError


class ObjectStore(Protocol):
    kind: str  # "s3" or "local"

    def put_file(self, key: str, path: Path) -> None: ...

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def get_file(self, key: str, destination: Path) -> None:
        """Copy an object into a file; JobNotFoundError when it does not exist."""

    def read(self, key: str, offset: int, length: int) -> bytes: ...

    def size(self, key: str) -> int | None:
        """The object's size, None when it does not exist."""

    def delete(self, key: str) -> None: ...

    def url_for(self, key: str, expires_s: int) -> str:
        """A signed GET URL, or "" when the store has none (read with ReadStem)."""

    def upload_url(self, key: str, expires_s: int) -> str:
        """A signed PUT URL; InvalidOptionError when the store has none."""

    def key_of_url(self, url: str) -> str | None:
        """The key of an ``s3://`` URL into this store, None for any other URL."""


def check_key(key: str) -> str:
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") for p in parts) or "\\" in key:
        raise InvalidOptionError(f"object key must be a relative path without '..', not {key!r}")
    return key


class LocalStore:
    """Objects as files under ``root``; puts go through a hidden temporary file and a rename."""

    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        try:
            (self.root / ".tmp").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidOptionError(f"the job store must be a writable folder, got {str(self.root)!r} ({exc})") from exc

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _put(self, key: str, write: Callable[[Path], object]) -> None:
        """``write`` fills a hidden temporary file, renamed onto the key: a reader sees all or none."""
        target, temporary = self._path(key), self.root / ".tmp" / uuid.uuid4().hex
        try:
            write(temporary)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temporary, target)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise StoreUnavailableError(f"expected to write {key} to {self.root}, got {exc}") from exc

    def put_file(self, key: str, path: Path) -> None:
        self._put(key, lambda temporary: shutil.copyfile(path, temporary))

    def put_bytes(self, key: str, data: bytes) -> None:
        self._put(key, lambda temporary: temporary.write_bytes(data))

    def get_file(self, key: str, destination: Path) -> None:
        try:
            shutil.copyfile(self._path(key), destination)
        except FileNotFoundError as exc:
            raise JobNotFoundError(f"object {key} does not exist in the store") from exc

    def read(self, key: str, offset: int, length: int) -> bytes:
        try:
            with open(self._path(key), "rb") as handle:
                handle.seek(offset)
                return handle.read(length)
        except FileNotFoundError as exc:
            raise JobNotFoundError(f"object {key} does not exist in the store") from exc

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def url_for(self, key: str, expires_s: int) -> str:
        return ""

    def upload_url(self, key: str, expires_s: int) -> str:
        raise InvalidOptionError("CreateUpload needs an S3 store (s3_endpoint); with the local store use UploadAudio")

    def key_of_url(self, url: str) -> str | None:
        return None
