"""The record of one separation, the same on every side: the pipeline makes it, the service
caches and sends it, the client rebuilds it from the wire, the CLI prints its summary.

Pure Python (no numpy, no protobuf), so the light client carries it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ProgressFn = Callable[[int, int], None]  # (windows done, windows in all)


@dataclass(frozen=True)
class StemRecord:
    name: str
    path: str  # where the file is; a bare file name inside a cache entry
    sample_rate_hz: int
    nb_frames: int
    format: str  # wav, flac, mp3
    nb_bytes: int = 0


@dataclass(frozen=True)
class SeparationRecord:
    model_name: str
    model_version: str
    runtime_seconds: float
    device: str  # cpu, gpu or unknown
    audio_seconds: float
    input: Mapping[str, Any]  # duration_s, sample_rate_hz, channels, format, subtype, bytes
    warnings: tuple[str, ...] = ()
    stems: tuple[StemRecord, ...] = ()
    cache_hit: bool = False

    def stem(self, name: str) -> StemRecord:
        found = [s for s in self.stems if s.name == name]
        if not found:
            raise KeyError(f"stem must be one of {[s.name for s in self.stems]}, not {name!r}")
        return found[0]

    @property
    def paths(self) -> dict[str, Path]:
        return {stem.name: Path(stem.path) for stem in self.stems}

    def summary(self) -> dict[str, object]:
        """What ``stemserve separate`` prints: plain JSON types, stems by name."""
        return {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "runtime_seconds": round(self.runtime_seconds, 3),
            "device": self.device,
            "audio_seconds": round(self.audio_seconds, 3),
            "cache_hit": self.cache_hit,
            "input": dict(self.input),
            "warnings": list(self.warnings),
            "stems": {
                s.name: {"path": s.path, "sample_rate_hz": s.sample_rate_hz, "nb_frames": s.nb_frames,
                         "format": s.format, "bytes": s.nb_bytes}
                for s in self.stems
            },
        }

    def with_file_names(self) -> SeparationRecord:
        """The same record with bare file names for paths, as a cache entry stores it."""
        return replace(self, stems=tuple(replace(s, path=Path(s.path).name) for s in self.stems))

    def to_json(self) -> dict[str, object]:
        return {**self.summary(), "runtime_seconds": self.runtime_seconds, "audio_seconds": self.audio_seconds,
                "stems": [vars(s) for s in self.stems]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SeparationRecord:
        return cls(
            model_name=data["model_name"], model_version=data["model_version"],
            runtime_seconds=float(data["runtime_seconds"]), device=data["device"],
            audio_seconds=float(data["audio_seconds"]), input=dict(data["input"]),
            warnings=tuple(data.get("warnings", ())), cache_hit=bool(data.get("cache_hit", False)),
            stems=tuple(StemRecord(**s) for s in data["stems"]),
        )


__all__ = ["ProgressFn", "SeparationRecord", "StemRecord"]
