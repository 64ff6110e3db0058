"""Result cache: finished separations on local disk, keyed by what determines the output.

Key: sha256 of (sha256 of the uploaded bytes, model name and version, stem preset, output
options). An entry is a directory ``<root>/<key>/`` with the encoded stems and
``result.json``; it is built in a hidden work directory next to it and appears by one
``rename``, so a reader (also after a crash) sees a complete entry or none. Leftover work
directories are removed when the cache opens. Total size is bounded: the least recently
used entries are evicted (recency survives restarts through the entry's mtime).

Readers get open file handles, taken under the lock: an entry evicted while it is being
streamed stays readable to that reader.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from stemserve.client.records import SeparationRecord
from stemserve.core.errors import InvalidOptionError
from stemserve.pipeline.options import SeparationOptions

log = logging.getLogger(__name__)

RESULT_NAME = "result.json"
WORK_PREFIX = ".work-"
_KEY_LENGTH = 64


def cache_key(upload_sha256: str, model_name: str, model_version: str, options: SeparationOptions) -> str:
    parts = f"upload={upload_sha256};model={model_name}@{model_version};{options.cache_key_part()}"
    return hashlib.sha256(parts.encode()).hexdigest()


@dataclass
class Entry:
    """A finished result: its record (stem paths are file names in the entry's folder, in
    streaming order) and its stems opened for reading."""

    result: SeparationRecord
    files: dict[str, BinaryIO]

    def close(self) -> None:
        for handle in self.files.values():
            handle.close()


class ResultCache:
    """``max_bytes == 0`` disables caching: work directories are still made under ``root``."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.new_work_dir()
            probe.rmdir()
        except OSError as exc:
            raise InvalidOptionError(f"cache_dir must be a writable folder, got {str(self.root)!r} ({exc})") from exc
        self._lock = threading.Lock()
        self._sizes: OrderedDict[str, int] = OrderedDict()  # key -> bytes, least recent first
        for stale in self.root.glob(WORK_PREFIX + "*"):
            shutil.rmtree(stale, ignore_errors=True)
        entries = [p for p in self.root.iterdir() if _is_key(p.name) and (p / RESULT_NAME).is_file()]
        for path in sorted(entries, key=lambda p: p.stat().st_mtime):
            self._sizes[path.name] = _dir_bytes(path)
        self._evict()

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    @property
    def size_bytes(self) -> int:
        return sum(self._sizes.values())

    def __contains__(self, key: str) -> bool:
        return key in self._sizes

    def new_work_dir(self) -> Path:
        path = self.root / f"{WORK_PREFIX}{uuid.uuid4().hex}"
        path.mkdir()
        return path

    def lookup(self, key: str) -> Entry | None:
        if not self.enabled:
            return None
        with self._lock:
            if key not in self._sizes:
                return None
            path = self.root / key
            try:
                entry = _open_entry(path)
                os.utime(path)
            except OSError:
                log.warning("cache entry %s vanished; dropping it", key)
                self._sizes.pop(key, None)
                return None
            self._sizes.move_to_end(key)
            return entry

    def store(self, key: str, stems_dir: Path, result: SeparationRecord) -> Entry:
        """Write ``result.json`` into ``stems_dir`` (which holds the record's stem files), make it the entry for ``key`` and open it. When caching is off,
        or the result is larger than the cache, the files are opened and the folder removed."""
        (stems_dir / RESULT_NAME).write_text(json.dumps(result.with_file_names().to_json()))
        size = _dir_bytes(stems_dir)
        if not self.enabled or size > self.max_bytes:
            entry = _open_entry(stems_dir)
            shutil.rmtree(stems_dir, ignore_errors=True)
            return entry
        for path in stems_dir.iterdir():  # on disk before the rename makes them an entry
            _fsync(path)
        with self._lock:
            target = self.root / key
            if key in self._sizes:  # the same song finished twice: keep the first
                shutil.rmtree(stems_dir, ignore_errors=True)
            else:
                os.replace(stems_dir, target)
                _fsync(self.root)
                self._sizes[key] = size
            self._sizes.move_to_end(key)
            entry = _open_entry(target)
            self._evict(keep=key)
            return entry

    def _evict(self, keep: str | None = None) -> None:
        while self._sizes and self.size_bytes > self.max_bytes:
            key = next(iter(self._sizes))
            if key == keep:
                break
            del self._sizes[key]
            doomed = self.root / f"{WORK_PREFIX}evict-{key}"
            try:
                os.replace(self.root / key, doomed)  # disappears from lookups in one step
            except OSError:
                continue
            shutil.rmtree(doomed, ignore_errors=True)
            log.info("evicted cache entry %s", key)


def _open_entry(path: Path) -> Entry:
    result = SeparationRecord.from_json(json.loads((path / RESULT_NAME).read_text()))
    files: dict[str, BinaryIO] = {}
    try:
        for stem in result.stems:
            files[stem.name] = open(path / stem.path, "rb")  # noqa: SIM115 - the Entry closes them
    except OSError:
        for handle in files.values():
            handle.close()
        raise
    return Entry(result=result, files=files)


def _is_key(name: str) -> bool:
    return len(name) == _KEY_LENGTH and all(c in "0123456789abcdef" for c in name)


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
