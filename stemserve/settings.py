"""Process-wide settings, built once at the entry point from flags and ``STEMSERVE_*``
environment variables (flags win). Unknown ``STEMSERVE_*`` variables are an error."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from stemserve.errors import InvalidOptionError

ENV_PREFIX = "STEMSERVE_"
PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, kw_only=True)
class Settings:
    model_repository: Path = PROJECT_ROOT / "model_repository"
    max_upload_bytes: int = 500 * 1024 * 1024
    max_duration_s: float = 3 * 3600.0
    intra_op_threads: int = 0  # 0: onnxruntime picks (all cores)

    def __post_init__(self) -> None:
        if self.max_upload_bytes <= 0:
            raise InvalidOptionError(f"max_upload_bytes must be > 0, not {self.max_upload_bytes}")
        if self.max_duration_s <= 0:
            raise InvalidOptionError(f"max_duration_s must be > 0, not {self.max_duration_s}")
        if self.intra_op_threads < 0:
            raise InvalidOptionError(f"intra_op_threads must be >= 0, not {self.intra_op_threads}")

    @classmethod
    def load(
        cls, overrides: Mapping[str, object] | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for key, raw in environ.items():
            if not key.startswith(ENV_PREFIX):
                continue
            name = key[len(ENV_PREFIX) :].lower()
            if name not in _CONVERTERS:
                expected = sorted(ENV_PREFIX + n.upper() for n in _CONVERTERS)
                raise InvalidOptionError(f"unknown setting {key}; expected one of {expected}")
            values[name] = raw
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        converted: dict[str, object] = {}
        for name, value in values.items():
            convert = _CONVERTERS[name]
            try:
                converted[name] = convert(value)
            except (TypeError, ValueError) as exc:
                raise InvalidOptionError(f"setting {name} must be a {convert.__name__}, not {value!r}") from exc
        return cls(**converted)


_CONVERTERS = {f.name: {"Path": Path, "int": int, "float": float}[str(f.type)] for f in fields(Settings)}
