"""``stemserve models pull NAME``: download a published model, verify it, export it, install it.

1. Each file of the catalogue entry is fetched (``download.fetch``: progress, resume,
   sha256) into ``<download dir>/<name>/`` from its upstream URLs in order, or from
   ``--from`` (a file or URL for a one-file model; a folder or a URL ending in ``/`` holding
   the files by their upstream names, for any model).
2. The files are exported with the parity check (``exporter.run_export``) into a hidden
   staging folder inside the target repository, ``.pull-<name>-*``, which no model listing
   sees (it has no ``config.pbtxt`` of its own).
3. The finished model folder is renamed into place (one ``os.replace`` on one file
   system); ``--force`` replaces an installed model the same way.

Whatever fails (download, hash, a file that is not a checkpoint, the parity check), the
staging folder is removed and the repository is as it was; only a partial download stays,
in the download folder, for the next attempt to resume.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from stemserve.core.errors import ModelConfigError, ModelNotFoundError, StemserveError
from stemserve.core.model_config import CONFIG_NAME, Repository, load_model
from stemserve.export.architectures import Architecture
from stemserve.export.catalogue import CatalogueEntry
from stemserve.export.download import Expected, Fetched, Progress, fetch, is_url, uvr_settings_key
from stemserve.export.errors import DownloadError
from stemserve.export.onnx_export import ParityReport

logger = logging.getLogger(__name__)

DEFAULT_DOWNLOAD_DIR = Path.home() / ".cache" / "stemserve" / "downloads"
STAGING_PREFIX = ".pull-"


@dataclass(frozen=True, kw_only=True)
class PullConfig:
    entry: CatalogueEntry
    repository: Path  # where the model is installed
    download_dir: Path = DEFAULT_DOWNLOAD_DIR
    source: str = ""  # --from: a file, folder or URL; empty: the catalogue's URLs
    sha256: Mapping[str, str] = field(default_factory=dict)  # file name -> full sha256 pin
    architecture: Architecture | None = None  # None: the entry's (tests pass reduced ones)
    max_batch_size: int = 8
    threads: int = 0  # ONNX Runtime threads of the parity check; 0: all cores
    force: bool = False  # replace an installed model
    keep_download: bool = False
    progress: Progress | None = None


@dataclass(frozen=True, kw_only=True)
class PullResult:
    folder: Path
    files: tuple[Fetched, ...]
    parity: ParityReport
    warnings: tuple[str, ...] = ()


def sources_for(entry: CatalogueEntry, source: str) -> dict[str, tuple[str, ...]]:
    """The places to fetch each file from, in order."""
    if not source:
        return {f.name: f.urls for f in entry.files}
    if is_url(source) and source.endswith("/"):
        return {f.name: (source + f.name,) for f in entry.files}
    if not is_url(source) and Path(source).expanduser().is_dir():
        folder = Path(source).expanduser()
        return {f.name: (str(folder / f.name),) for f in entry.files}
    if len(entry.files) != 1:
        raise DownloadError(
            f"{entry.name} has {len(entry.files)} files: --from must be a folder or a URL ending in '/' "
            f"that holds {[f.name for f in entry.files]}"
        )
    return {entry.files[0].name: (source,)}


def expected_hashes(entry: CatalogueEntry, pins: Mapping[str, str]) -> dict[str, Expected]:
    """Per file: the operator's pin, else the catalogue's (a pin or the published prefix)."""
    unknown = sorted(set(pins) - {f.name for f in entry.files})
    if unknown:
        raise DownloadError(f"--sha256 names {unknown}, which {entry.name} does not have; "
                            f"its files are {[f.name for f in entry.files]}")
    bad = {name: value for name, value in pins.items()
           if len(value) != 64 or any(c not in "0123456789abcdef" for c in value.lower())}
    if bad:
        raise DownloadError(f"--sha256 must be 64 hex digits, got {bad}")
    return {f.name: Expected(sha256=pins.get(f.name, "").lower() or f.sha256, sha256_prefix=f.sha256_prefix)
            for f in entry.files}


def fetch_files(config: PullConfig) -> tuple[Fetched, ...]:
    entry = config.entry
    folder = Path(config.download_dir) / entry.name
    places = sources_for(entry, config.source)
    expected = expected_hashes(entry, config.sha256)
    fetched = []
    for file in entry.files:
        errors = []
        for place in places[file.name]:
            try:
                fetched.append(fetch(place, folder / file.name, expected[file.name], progress=config.progress))
                break
            except DownloadError as exc:
                errors.append(str(exc))
                logger.info("%s", exc)
        else:
            raise DownloadError("; ".join(errors) if len(errors) != 1 else errors[0])
    return tuple(fetched)


def settings_warnings(entry: CatalogueEntry, fetched: tuple[Fetched, ...]) -> tuple[str, ...]:
    """Where the catalogue's settings are recorded under a UVR key, the file's own key must be it."""
    keys = {f.name: f.uvr_settings_key for f in entry.files if f.uvr_settings_key}
    found = []
    for item in fetched:
        expected = keys.get(item.path.name)
        if expected and (actual := uvr_settings_key(item.path)) != expected:
            found.append(f"{item.path.name}: its UVR settings key is {actual}, the catalogue's settings are those "
                         f"of key {expected} (sources: stemserve models available); check them before serving")
    return tuple(found)


def checkpoint_path(entry: CatalogueEntry, folder: Path) -> Path:
    """The path ``run_export`` takes for the entry's files in ``folder``."""
    for name, text in entry.generated_files.items():
        (folder / name).write_text(text)
    if entry.layout in ("file", "mdx_onnx"):
        return folder / entry.files[0].name
    if entry.layout == "demucs_bag":
        return folder / next(name for name in entry.generated_files if name.endswith(".yaml"))
    if entry.layout in ("umx_folder", "roformer"):
        return folder
    raise ModelConfigError(f"{entry.name}: layout {entry.layout!r} cannot be exported yet")


def export_entry(config: PullConfig, checkpoint: Path, repository: Path) -> ParityReport:
    """Export the checkpoint as ``<repository>/<name>`` (the parity check included)."""
    if config.entry.layout == "mdx_onnx":
        from stemserve.export.mdx_graph import MdxSettings, export_mdx

        return export_mdx(
            checkpoint,
            MdxSettings.from_mapping(dict(config.entry.settings)),
            repository=repository,
            name=config.entry.name,
            license=config.entry.license,
            max_batch_size=config.max_batch_size,
            threads=config.threads,
        )
    if config.entry.layout == "roformer":
        from stemserve.export.roformer_graph import export_roformer

        checkpoint_file, config_file = (checkpoint / f.name for f in config.entry.files)
        return export_roformer(
            checkpoint_file,
            config_file,
            config.entry.settings["kind"],
            repository=repository,
            name=config.entry.name,
            license=config.entry.license,
            max_batch_size=config.max_batch_size,
            threads=config.threads,
        )
    from stemserve.export.exporter import ExportConfig, run_export

    export = ExportConfig(
        architecture=config.architecture or config.entry.architecture,
        checkpoint=checkpoint,
        repository=repository,
        model_name=config.entry.name,
        max_batch_size=config.max_batch_size,
        threads=config.threads,
    )
    return run_export(export).parity


def pull(config: PullConfig) -> PullResult:
    entry = config.entry
    repository = Path(config.repository)
    target = repository / entry.name
    if target.exists() and not config.force:
        raise StemserveError(f"{target} exists: the model is installed (--force replaces it)")
    fetched = fetch_files(config)
    warnings = settings_warnings(entry, fetched)
    for warning in warnings:
        logger.warning("%s", warning)
    checkpoint = checkpoint_path(entry, Path(config.download_dir) / entry.name)
    created = not repository.exists()
    repository.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{entry.name}-", dir=repository))
    try:
        parity = export_entry(config, checkpoint, staging)
        _install(staging / entry.name, target, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not any(repository.iterdir()):
            repository.rmdir()
    if not config.keep_download:
        for item in fetched:
            item.path.unlink(missing_ok=True)
        for name in entry.generated_files:
            (Path(config.download_dir) / entry.name / name).unlink(missing_ok=True)
    return PullResult(folder=target, files=fetched, parity=parity, warnings=warnings)


def _install(built: Path, target: Path, staging: Path) -> None:
    """Rename the finished folder into place; an installed one is moved aside first."""
    if not (built / CONFIG_NAME).is_file():
        raise ModelConfigError(f"the export wrote no {CONFIG_NAME} in {built}")
    aside = staging / "replaced"
    if target.exists():
        os.replace(target, aside)
    try:
        os.replace(built, target)
    except OSError:
        if aside.exists():
            os.replace(aside, target)
        raise


def servable_from(search_path: Repository, name: str, folder: Path) -> str:
    """Empty when ``name`` resolves to ``folder`` on the search path, else why not."""
    try:
        entry = load_model(search_path, name)
    except (ModelNotFoundError, ModelConfigError) as exc:
        return f"not on the model repository search path ({exc}); add its repository with --model-repository"
    if entry.directory.resolve() != folder.resolve():
        return f"{entry.directory} comes first on the search path and is the one served under this name"
    return ""
