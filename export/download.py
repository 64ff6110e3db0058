"""Fetch one file over HTTP(S) with progress and resume, and verify its sha256.

A transfer writes ``<file>.part`` in the download folder. When it stops early (the
connection drops, the body is shorter than its ``Content-Length``) the part stays, and the
next attempt asks for the rest with ``Range: bytes=<have>-``; a server that answers with the
whole file (200) restarts it. The file gets its final name only once complete and verified:
a full sha256 pin (``--sha256``) or, where upstream publishes only that, the sha256 prefix
of its name. A file that fails verification is deleted (a resume would only extend it).

Standard library only (``urllib``): no download dependency.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stemserve.export.errors import ChecksumMismatchError, DownloadError

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60.0
USER_AGENT = "stemserve-models-pull"
PART_SUFFIX = ".part"

Progress = Callable[[str, int, int | None], None]  # (file name, bytes so far, total or None)


@dataclass(frozen=True, kw_only=True)
class Expected:
    """What a file must hash to: a full sha256 and / or a sha256 prefix (lowercase hex)."""

    sha256: str = ""
    sha256_prefix: str = ""

    def check(self, name: str, actual: str) -> str:
        """The verdict line; ChecksumMismatchError when the file is not the one expected."""
        if self.sha256_prefix and not actual.startswith(self.sha256_prefix):
            raise ChecksumMismatchError(
                f"{name}: sha256 must start with {self.sha256_prefix} (published in its file name), got {actual}"
            )
        if self.sha256 and actual != self.sha256:
            raise ChecksumMismatchError(f"{name}: sha256 must be {self.sha256} (pinned), got {actual}")
        if self.sha256:
            return "matches the pinned sha256"
        if self.sha256_prefix:
            return f"matches the published prefix {self.sha256_prefix}"
        return "no published hash to check against; pin it with --sha256"


@dataclass(frozen=True, kw_only=True)
class Fetched:
    path: Path
    sha256: str
    size_bytes: int
    source: str
    verdict: str
    resumed_from: int  # bytes already there when this transfer started


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


UVR_KEY_BYTES = 10000 * 1024  # python-audio-separator separator.py get_model_hash: BYTES_TO_HASH


def uvr_settings_key(path: Path) -> str:
    """UVR's settings lookup key: the MD5 of the file's last 10,240,000 bytes (of the whole
    file when it is smaller). A key into ``model_data_new.json``, not an integrity check."""
    size = path.stat().st_size
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        handle.seek(max(0, size - UVR_KEY_BYTES))
        while block := handle.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def is_url(source: str) -> bool:
    return urllib.parse.urlsplit(source).scheme in ("http", "https", "file")


def fetch(
    source: str,
    target: Path,
    expected: Expected,
    *,
    progress: Progress | None = None,
    timeout_s: float = TIMEOUT_S,
) -> Fetched:
    """``source`` (a URL or a local file) as ``target``, verified. A local file is copied."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + PART_SUFFIX)
    resumed_from = 0
    if is_url(source) and urllib.parse.urlsplit(source).scheme != "file":
        resumed_from = _download(source, part, progress, timeout_s)
    else:
        local = Path(urllib.request.url2pathname(urllib.parse.urlsplit(source).path)) if is_url(source) else None
        local = local or Path(source).expanduser()
        if not local.is_file():
            raise DownloadError(f"{source}: no such file")
        shutil.copyfile(local, part)
    actual = sha256_of(part)
    try:
        verdict = expected.check(target.name, actual)
    except ChecksumMismatchError:
        part.unlink(missing_ok=True)  # a wrong file: resuming it could never succeed
        raise
    size = part.stat().st_size
    os.replace(part, target)
    return Fetched(path=target, sha256=actual, size_bytes=size, source=source, verdict=verdict,
                   resumed_from=resumed_from)


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def _download(url: str, part: Path, progress: Progress | None, timeout_s: float) -> int:
    """Append the rest of ``url`` to ``part``; returns the bytes that were already there."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part is already whole (or longer than the file): start over
            part.unlink()
            return _download(url, part, progress, timeout_s)
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise DownloadError(f"{url}: cannot connect ({getattr(exc, 'reason', exc)})") from exc
    with response:
        start = 0
        if response.status == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
            if match is None or int(match.group(1)) != have:
                raise DownloadError(f"{url}: the server resumed at {response.headers.get('Content-Range')!r}, "
                                    f"not at byte {have}")
            start = have
            total = int(match.group(3)) if match.group(3) != "*" else None
        else:  # 200: the whole file again
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None else None
            if have:
                logger.info("%s: the server does not resume; downloading from the start", url)
        received = start
        mode = "ab" if start else "wb"
        name = part.name[: -len(PART_SUFFIX)]
        try:
            with open(part, mode) as handle:
                while block := response.read(CHUNK_BYTES):
                    handle.write(block)
                    received += len(block)
                    if progress is not None:
                        progress(name, received, total)
        except (OSError, http.client.HTTPException) as exc:
            raise _interrupted(url, received, total, part, exc) from exc
    if total is not None and received < total:
        raise _interrupted(url, received, total, part, "connection closed")
    return start


def _interrupted(url: str, received: int, total: int | None, part: Path, why: object) -> DownloadError:
    of = f" of {total}" if total is not None else ""
    return DownloadError(
        f"{url}: transfer interrupted after {received}{of} bytes ({why}); the partial file {part} is kept: "
        "run the same command again to resume"
    )
