"""Describe a served model: read and write its Triton ``config.pbtxt``.

The model contract (README, "Models") keeps a model's metadata in the ``parameters`` of its
``config.pbtxt`` and nowhere else: ordered stem names, sample rate, segment samples,
default overlap, model_version (hash of the model file), architecture and weight licence.
This module parses the subset of protobuf text format that Triton configs use, so the
serving path needs no protobuf schema.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stemserve.core.errors import ModelConfigError, ModelNotFoundError

CONFIG_NAME = "config.pbtxt"
ONNX_NAME = "model.onnx"
INPUT_NAME = "mix"
OUTPUT_NAME = "stems"
KNOWN_STEMS = ("vocals", "drums", "bass", "piano", "other", "guitar")
# the one allowed range of window overlap (a fraction of the segment), a model's default and a request's alike
MIN_OVERLAP, MAX_OVERLAP = 0.25, 0.5

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<comment>\#[^\n]*)
      | (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<punct>[{}\[\]:,])
      | (?P<word>[^\s{}\[\]:,"#]+)
    )""",
    re.VERBOSE,
)


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ModelConfigError(f"config.pbtxt: unexpected text at offset {pos}: {text[pos : pos + 20]!r}")
        pos = match.end()
        if match.group("comment") is None:
            tokens.append(match.group(match.lastgroup or "word"))
    return tokens


def _scalar(token: str) -> Any:
    if token.startswith('"'):
        return bytes(token[1:-1], "utf-8").decode("unicode_escape")
    for kind in (int, float):
        try:
            return kind(token)
        except ValueError:
            pass
    return token  # enum names such as TYPE_FP32, true/false


def parse_pbtxt(text: str) -> dict[str, list[Any]]:
    """Parse protobuf text format into ``{field: [values...]}`` (every field repeated)."""
    tokens = _tokens(text)
    message, end = _parse_message(tokens, 0, closing=None)
    if end != len(tokens):
        raise ModelConfigError(f"config.pbtxt: unexpected {tokens[end]!r} after the last field")
    return message


def _parse_message(tokens: list[str], pos: int, closing: str | None) -> tuple[dict, int]:
    message: dict[str, list[Any]] = {}
    while pos < len(tokens) and tokens[pos] != closing:
        name = tokens[pos]
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ModelConfigError(f"config.pbtxt: expected a field name, got {name!r}")
        pos += 1
        if pos < len(tokens) and tokens[pos] == ":":
            pos += 1
        if pos >= len(tokens):
            raise ModelConfigError(f"config.pbtxt: field {name!r} has no value")
        values, pos = _parse_value(tokens, pos)
        message.setdefault(name, []).extend(values)
        if pos < len(tokens) and tokens[pos] == ",":
            pos += 1
    if closing is not None:
        if pos >= len(tokens):
            raise ModelConfigError(f"config.pbtxt: missing {closing!r}")
        pos += 1
    return message, pos


def _parse_value(tokens: list[str], pos: int) -> tuple[list[Any], int]:
    token = tokens[pos]
    if token == "{":
        sub, pos = _parse_message(tokens, pos + 1, closing="}")
        return [sub], pos
    if token == "[":
        values: list[Any] = []
        pos += 1
        while pos < len(tokens) and tokens[pos] != "]":
            if tokens[pos] == ",":
                pos += 1
                continue
            items, pos = _parse_value(tokens, pos)
            values.extend(items)
        if pos >= len(tokens):
            raise ModelConfigError("config.pbtxt: missing ']'")
        return values, pos + 1
    return [_scalar(token)], pos + 1


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """Everything the front end knows about a model, all of it from config.pbtxt."""

    name: str
    stems: tuple[str, ...]
    sample_rate_hz: int
    segment_samples: int
    default_overlap: float = 0.25
    model_version: str = ""
    architecture: str = ""
    license: str = ""
    max_batch_size: int = 8
    platform: str = "onnxruntime_onnx"
    onnxruntime_config: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.stems or len(set(self.stems)) != len(self.stems):
            raise ModelConfigError(f"model {self.name!r}: stems must be unique names, got {self.stems}")
        if not 8_000 <= self.sample_rate_hz <= 192_000:
            raise ModelConfigError(
                f"model {self.name!r}: sample_rate must be within 8000-192000 Hz, got {self.sample_rate_hz}"
            )
        if self.segment_samples < 256:
            raise ModelConfigError(f"model {self.name!r}: segment_samples must be >= 256, got {self.segment_samples}")
        if not MIN_OVERLAP <= self.default_overlap <= MAX_OVERLAP:
            raise ModelConfigError(
                f"model {self.name!r}: default_overlap must be within {MIN_OVERLAP}-{MAX_OVERLAP}, "
                f"got {self.default_overlap}"
            )
        if self.max_batch_size < 0:
            raise ModelConfigError(f"model {self.name!r}: max_batch_size must be >= 0")

    @property
    def segment_s(self) -> float:
        return self.segment_samples / self.sample_rate_hz


_REQUIRED_PARAMETERS = ("stems", "sample_rate", "segment_samples")


def spec_from_config(config: dict[str, list[Any]]) -> ModelSpec:
    """Build a ModelSpec from a parsed config.pbtxt."""
    name = _one(config, "name", "")
    params: dict[str, str] = {}
    for entry in config.get("parameters", []):
        key = _one(entry, "key", None)
        value = _one(entry, "value", {})
        if key is None or not isinstance(value, dict):
            raise ModelConfigError(f"model {name!r}: a parameters entry needs key and value")
        params[key] = str(_one(value, "string_value", ""))
    missing = [key for key in _REQUIRED_PARAMETERS if key not in params]
    if missing:
        raise ModelConfigError(
            f"model {name!r}: config.pbtxt parameters must include {list(_REQUIRED_PARAMETERS)}, missing {missing}"
        )
    try:
        return ModelSpec(
            name=name,
            stems=tuple(s.strip() for s in params["stems"].split(",") if s.strip()),
            sample_rate_hz=int(params["sample_rate"]),
            segment_samples=int(params["segment_samples"]),
            default_overlap=float(params.get("default_overlap", 0.25)),
            model_version=params.get("model_version", ""),
            architecture=params.get("architecture", ""),
            license=params.get("license", ""),
            max_batch_size=int(_one(config, "max_batch_size", 0)),
            platform=str(_one(config, "platform", _one(config, "backend", ""))),
            onnxruntime_config=_settings(params.get("onnxruntime_session_config", "")),
        )
    except ValueError as exc:
        raise ModelConfigError(f"model {name!r}: bad numeric parameter in config.pbtxt: {exc}") from exc


def _settings(text: str) -> dict[str, str]:
    """``key=value;key=value`` -> dict (onnxruntime session config entries)."""
    pairs = [item.split("=", 1) for item in text.split(";") if item.strip()]
    bad = [pair for pair in pairs if len(pair) != 2]
    if bad:
        raise ModelConfigError(f"onnxruntime_session_config must be key=value;..., got {text!r}")
    return {key.strip(): value.strip() for key, value in pairs}


def _one(message: dict[str, list[Any]], key: str, default: Any) -> Any:
    values = message.get(key)
    return values[-1] if values else default


def file_sha256(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def render_config(spec: ModelSpec, *, instance_count: int = 1, kind: str = "KIND_CPU") -> str:
    """The config.pbtxt text of a model, following the model contract."""
    params = {
        "stems": ",".join(spec.stems),
        "sample_rate": str(spec.sample_rate_hz),
        "segment_samples": str(spec.segment_samples),
        "default_overlap": f"{spec.default_overlap:g}",
        "model_version": spec.model_version,
        "architecture": spec.architecture,
        "license": spec.license,
    }
    if spec.onnxruntime_config:
        params["onnxruntime_session_config"] = ";".join(f"{k}={v}" for k, v in sorted(spec.onnxruntime_config.items()))
    lines = [
        f'name: "{spec.name}"',
        f'platform: "{spec.platform}"',
        f"max_batch_size: {spec.max_batch_size}",
        "input [",
        f'  {{ name: "{INPUT_NAME}" data_type: TYPE_FP32 dims: [ 2, {spec.segment_samples} ] }}',
        "]",
        "output [",
        f'  {{ name: "{OUTPUT_NAME}" data_type: TYPE_FP32 dims: [ {len(spec.stems)}, 2, {spec.segment_samples} ] }}',
        "]",
        "dynamic_batching { max_queue_delay_microseconds: 2000 }",
        f"instance_group [ {{ kind: {kind} count: {instance_count} }} ]",
    ]
    for key, value in params.items():
        lines.append(f'parameters {{ key: "{key}" value: {{ string_value: "{value}" }} }}')
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ModelEntry:
    spec: ModelSpec
    directory: Path

    def model_file(self, version: str = "1") -> Path:
        return self.directory / version / ONNX_NAME


Repository = Path | Sequence[Path]  # one model repository, or a search path of them (first wins)


def _roots(repository: Repository) -> tuple[Path, ...]:
    return (Path(repository),) if isinstance(repository, (str, Path)) else tuple(Path(r) for r in repository)


def load_model(repository: Repository, name: str) -> ModelEntry:
    """Read ``<repository>/<name>/config.pbtxt`` from the first repository that has it;
    ModelNotFoundError when none does."""
    config_path = next((root / name / CONFIG_NAME for root in _roots(repository)
                        if (root / name / CONFIG_NAME).is_file()), None)
    if config_path is None:
        available = require_models(repository)
        raise ModelNotFoundError(f"model must be one of {available}, not {name!r}")
    spec = spec_from_config(parse_pbtxt(config_path.read_text()))
    if spec.name and spec.name != name:
        raise ModelConfigError(f"{config_path}: name {spec.name!r} does not match its folder {name!r}")
    return ModelEntry(spec=spec, directory=config_path.parent)


def list_model_names(repository: Repository) -> list[str]:
    """Every model of the repositories, by name (an absent folder has none)."""
    names = {p.name for root in _roots(repository) if root.is_dir() for p in root.iterdir()
             if (p / CONFIG_NAME).is_file()}
    return sorted(names)


def require_models(repository: Repository) -> list[str]:
    """``list_model_names``, or ModelNotFoundError saying where it looked when there is none."""
    names = list_model_names(repository)
    if not names:
        where = ", ".join(str(root) for root in _roots(repository))
        raise ModelNotFoundError(f"expected models (<name>/{CONFIG_NAME}) in the model repository {where}, found none")
    return names
