"""Load operator-supplied checkpoints in the formats the published packages use.

- HT-Demucs: a ``.th`` package dict (``klass``, ``args``, ``kwargs``, ``state``, see
  ``demucs.states``), named ``<signature>-<sha256 prefix>.th`` in the releases; or a bag
  ``.yaml`` (``models``: signatures, ``weights``: per-model per-stem weights, optional
  ``segment``) whose packages lie beside it, as ``htdemucs_ft``.
- Open-Unmix: a folder of per-target state dicts ``<target>-<sha256 prefix>.pth`` (or
  ``<target>.pth``), with the optional ``<target>.json`` and ``separator.json`` that
  ``openunmix`` training writes.

Where a file name carries a hash prefix it is checked. Anything that does not match the
architecture asked for is an error; nothing is downloaded.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from stemserve.core.model_config import file_sha256
from stemserve.export.architectures import Architecture, get_architecture, umx_max_bin
from stemserve.export.errors import ArchitectureMismatchError, CheckpointError, ChecksumMismatchError
from stemserve.export.packages import demucs_module, openunmix_model
from torch import nn

logger = logging.getLogger(__name__)

_HASHED_NAME = re.compile(r"^(?P<base>.+)-(?P<hash>[0-9a-f]{8,64})$")


@dataclass(frozen=True, kw_only=True)
class DemucsCheckpoint:
    architecture: Architecture
    models: tuple[nn.Module, ...]
    weights: tuple[tuple[float, ...], ...]  # (models, stems)
    stems: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class UmxCheckpoint:
    architecture: Architecture
    targets: tuple[nn.Module, ...]  # one OpenUnmix per stem, in ``stems`` order
    stems: tuple[str, ...]
    sample_rate_hz: int
    n_fft: int
    n_hop: int


def verify_name_checksum(path: Path) -> None:
    """``name-<hex>.ext``: the file's sha256 must start with ``<hex>``."""
    match = _HASHED_NAME.match(path.stem)
    if match is None:
        return
    expected = match.group("hash")
    actual = file_sha256(path)[: len(expected)]
    if actual != expected:
        raise ChecksumMismatchError(
            f"{path.name}: sha256 must start with {expected} as its name says, got {actual} (corrupt or renamed file)"
        )


def _torch_load(path: Path, *, weights_only: bool) -> Any:
    if not path.is_file():
        raise CheckpointError(f"checkpoint file must exist: {path}")
    verify_name_checksum(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as exc:  # pickle, zip and torch errors all mean "not a checkpoint"
        raise CheckpointError(f"{path.name} is not a readable torch checkpoint: {exc}") from exc


def load_checkpoint(architecture: str | Architecture, path: Path) -> DemucsCheckpoint | UmxCheckpoint:
    """Load the checkpoint at ``path`` as ``architecture`` (a name of the table, or a
    reduced copy of an entry for tests)."""
    arch = architecture if isinstance(architecture, Architecture) else get_architecture(architecture)
    path = Path(path)
    if arch.family == "demucs":
        return _load_demucs(arch, path)
    return _load_umx(arch, path)


def _load_demucs_package(arch: Architecture, path: Path) -> nn.Module:
    package = _torch_load(path, weights_only=False)
    if not isinstance(package, dict) or not {"klass", "args", "kwargs", "state"} <= package.keys():
        raise CheckpointError(f"{path.name}: a demucs package must be a dict with klass, args, kwargs and state")
    klass = package["klass"]
    if getattr(klass, "__name__", None) != "HTDemucs":
        raise ArchitectureMismatchError(f"{arch.name} needs an HTDemucs package, {path.name} holds {klass!r}")
    try:
        sources = tuple(package["kwargs"].get("sources") or package["args"][0])
    except (AttributeError, IndexError, TypeError) as exc:
        raise CheckpointError(f"{path.name}: the package names no sources ({exc})") from exc
    if sorted(sources) != sorted(arch.stems):
        raise ArchitectureMismatchError(
            f"{arch.name} separates {list(arch.stems)}, {path.name} separates {list(sources)}"
        )
    if package["state"].get("__quantized"):
        raise CheckpointError(f"{path.name}: quantized (diffq) packages are not supported")
    try:
        model = demucs_module("states").load_model(package)
    except (RuntimeError, TypeError, KeyError) as exc:
        raise CheckpointError(f"{path.name}: state does not fit its HTDemucs: {exc}") from exc
    return model.eval()


def _base_name(stem: str) -> str:
    match = _HASHED_NAME.match(stem)
    return match.group("base") if match else stem


def _find_one(folder: Path, base: str, suffix: str) -> Path:
    found = sorted(p for p in folder.glob(f"{base}*{suffix}") if _base_name(p.stem) == base)
    if len(found) != 1:
        raise CheckpointError(
            f"{folder} must hold exactly one {base}{suffix} or {base}-<sha256>{suffix}, found {[p.name for p in found]}"
        )
    return found[0]


def _load_demucs(arch: Architecture, path: Path) -> DemucsCheckpoint:
    if path.suffix in (".yaml", ".yml"):
        import yaml  # the bag description format of demucs

        try:
            bag = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise CheckpointError(f"{path}: not a readable bag description: {exc}") from exc
        if not isinstance(bag, dict) or not isinstance(bag.get("models"), list):
            raise CheckpointError(f"{path.name}: a bag must list its models under 'models'")
        files = [_find_one(path.parent, str(sig), ".th") for sig in bag["models"]]
        weights = bag.get("weights") or [[1.0] * len(arch.stems) for _ in files]
        segment = bag.get("segment")
    elif path.suffix == ".th":
        files, weights, segment = [path], [[1.0] * len(arch.stems)], None
    else:
        raise CheckpointError(f"{arch.name} needs a .th package or a bag .yaml, got {path.name}")
    if len(files) != arch.nb_models:
        raise ArchitectureMismatchError(
            f"{arch.name} is a bag of {arch.nb_models} model(s), {path.name} has {len(files)}"
        )
    if len(weights) != len(files) or any(len(row) != len(arch.stems) for row in weights):
        raise CheckpointError(f"{path.name}: weights must be {len(files)} rows of {len(arch.stems)}, got {weights}")
    models = tuple(_load_demucs_package(arch, file) for file in files)
    stems = tuple(models[0].sources)
    if any(tuple(m.sources) != stems for m in models):
        raise CheckpointError(f"{path.name}: sub-models must list their stems in one order")
    if segment is not None:
        for model in models:  # as demucs.apply.BagOfModels: only ever shortened
            model.segment = min(segment, model.segment)
    return DemucsCheckpoint(
        architecture=arch,
        models=models,
        weights=tuple(tuple(float(w) for w in row) for row in weights),
        stems=stems,
    )


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path.name}: not readable json: {exc}") from exc


def _load_umx(arch: Architecture, path: Path) -> UmxCheckpoint:
    folder = path if path.is_dir() else path.parent
    if not folder.is_dir():
        raise CheckpointError(f"{arch.name} needs a folder of per-target .pth files: {path}")
    kwargs = arch.model_kwargs
    separator = _read_json(folder / "separator.json")
    sample_rate_hz = int(separator.get("sample_rate", arch.sample_rate_hz))
    n_fft = int(separator.get("nfft", kwargs["n_fft"]))
    n_hop = int(separator.get("nhop", kwargs["n_hop"]))
    if (sample_rate_hz, n_fft, n_hop) != (arch.sample_rate_hz, kwargs["n_fft"], kwargs["n_hop"]):
        raise ArchitectureMismatchError(
            f"{arch.name} runs at {arch.sample_rate_hz} Hz with nfft {kwargs['n_fft']} and hop "
            f"{kwargs['n_hop']}, separator.json says {sample_rate_hz} Hz, {n_fft}, {n_hop}"
        )
    OpenUnmix = openunmix_model().OpenUnmix
    targets = []
    for stem in arch.stems:
        file = _find_one(folder, stem, ".pth")
        args = _read_json(folder / f"{stem}.json").get("args", {})
        hidden_size = int(args.get("hidden_size", kwargs["hidden_size"]))
        state = _torch_load(file, weights_only=True)
        if not isinstance(state, dict) or "fc1.weight" not in state or "input_mean" not in state:
            raise CheckpointError(f"{file.name}: not an Open-Unmix state dict")
        found_hidden = int(state["fc1.weight"].shape[0])
        if hidden_size != kwargs["hidden_size"] or found_hidden != kwargs["hidden_size"]:
            raise ArchitectureMismatchError(
                f"{arch.name} has hidden_size {kwargs['hidden_size']}, {file.name} has "
                f"{found_hidden} (json: {hidden_size})"
            )
        max_bin = int(state["input_mean"].shape[0])
        expected_bin = umx_max_bin(sample_rate_hz, n_fft, kwargs["bandwidth_hz"])
        if max_bin != expected_bin:
            raise ArchitectureMismatchError(f"{arch.name} uses {expected_bin} input bins, {file.name} has {max_bin}")
        model = OpenUnmix(
            nb_bins=n_fft // 2 + 1,
            nb_channels=kwargs["nb_channels"],
            hidden_size=hidden_size,
            nb_layers=kwargs["nb_layers"],
            max_bin=max_bin,
        )
        try:
            result = model.load_state_dict(state, strict=False)
        except RuntimeError as exc:
            raise CheckpointError(f"{file.name}: state does not fit {arch.name}: {exc}") from exc
        if result.missing_keys:
            raise CheckpointError(f"{file.name}: missing weights {result.missing_keys}")
        if result.unexpected_keys:
            logger.warning("%s: ignoring entries %s", file.name, result.unexpected_keys)
        targets.append(model.eval())
    return UmxCheckpoint(
        architecture=arch,
        targets=tuple(targets),
        stems=arch.stems,
        sample_rate_hz=sample_rate_hz,
        n_fft=n_fft,
        n_hop=n_hop,
    )
