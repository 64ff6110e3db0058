"""Finished results in the object store, keyed by what determines them: (audio sha256, model
name and version, preset and output options), the service's cache key.

A result is ``results/<key>/<stem files>`` and ``results/<key>/result.json``, written last:
the result exists exactly when its marker does, so stems of an attempt that died half-way
are never part of a result (the next attempt overwrites them). The KV index
(``result.<key>``) answers lookups without touching the store; the marker is the truth when
the index was lost (a crash between the two writes).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from stemserve.client.records import SeparationRecord
from stemserve.jobs.errors import JobNotFoundError
from stemserve.jobs.records import JobStem
from stemserve.jobs.store import ObjectStore
from stemserve.pipeline.options import SeparationOptions
from stemserve.server.cache import cache_key

MARKER = "result.json"


def result_key_for(audio_sha256: str, model_name: str, model_version: str, options: SeparationOptions) -> str:
    return cache_key(audio_sha256, model_name, model_version, options)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_result(store: ObjectStore, key: str, record: SeparationRecord, job_id: str) -> dict[str, Any]:
    """Blocking: put every stem, then the marker; the result as the index stores it."""
    stems = []
    for stem in record.stems:
        path = Path(stem.path)
        object_key = f"results/{key}/{path.name}"
        store.put_file(object_key, path)
        stems.append(JobStem(name=stem.name, format=stem.format, sample_rate_hz=stem.sample_rate_hz,
                             nb_frames=stem.nb_frames, nb_bytes=stem.nb_bytes, sha256=file_sha256(path),
                             key=object_key))
    result = {
        "job_id": job_id, "result_key": key, "model_name": record.model_name, "model_version": record.model_version,
        "device": record.device, "runtime_seconds": record.runtime_seconds, "audio_seconds": record.audio_seconds,
        "warnings": list(record.warnings), "stems": [vars(s) for s in stems],
    }
    store.put_bytes(f"results/{key}/{MARKER}", json.dumps(result).encode())
    return result


def read_result(store: ObjectStore, key: str) -> dict[str, Any] | None:
    """Blocking: the result from its marker, None when it is not complete."""
    if store.size(f"results/{key}/{MARKER}") is None:
        return None
    try:
        return json.loads(store.read(f"results/{key}/{MARKER}", 0, 1 << 24))
    except JobNotFoundError:
        return None


def result_changes(result: dict[str, Any], job_id: str) -> dict[str, Any]:
    """The fields of a job record a result fills in; a cache hit unless this job made it."""
    return {
        "model_name": result["model_name"], "model_version": result["model_version"], "device": result["device"],
        "runtime_seconds": result["runtime_seconds"], "audio_seconds": result["audio_seconds"],
        "warnings": tuple(result["warnings"]), "stems": tuple(JobStem(**s) for s in result["stems"]),
        "result_key": result["result_key"], "cache_hit": result["job_id"] != job_id,
    }
