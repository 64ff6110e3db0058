"""A job's input as a local file: from the store (uploads, s3:// URLs, audio by sha256) or
downloaded from an http(s) URL, bounded by the upload limit. A URL that does not answer, or
answers 5xx / 429, is retryable (InputUnavailableError); any other refusal is not."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path

from stemserve.core.errors import InvalidAudioError, InvalidOptionError
from stemserve.jobs.errors import InputUnavailableError
from stemserve.jobs.records import JobInput
from stemserve.jobs.results import file_sha256
from stemserve.jobs.store import ObjectStore

DOWNLOAD_TIMEOUT_S = 30.0


def fetch_input(job_input: JobInput, store: ObjectStore, destination: Path, max_bytes: int) -> str:
    """Blocking: write the input to ``destination``; its sha256."""
    if job_input.kind == "upload":
        store.get_file(job_input.value, destination)
        return file_sha256(destination)
    if job_input.kind != "url":
        raise InvalidOptionError(f"input kind must be upload or url, not {job_input.kind!r}")
    digest, nb_bytes = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(job_input.value, timeout=DOWNLOAD_TIMEOUT_S) as answer, \
                open(destination, "wb") as handle:
            for block in iter(lambda: answer.read(1 << 20), b""):
                nb_bytes += len(block)
                if nb_bytes > max_bytes:
                    raise InvalidAudioError(f"input must be at most {max_bytes} bytes, got more from the URL",
                                            reason="too_large")
                digest.update(block)
                handle.write(block)
    except urllib.error.HTTPError as exc:
        if exc.code >= 500 or exc.code == 429:
            raise InputUnavailableError(f"input URL answered {exc.code}; expected 200") from exc
        raise InvalidOptionError(f"input URL must answer 200, got {exc.code}") from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise InputUnavailableError(f"input URL must be reachable, got {exc}") from exc
    return digest.hexdigest()
