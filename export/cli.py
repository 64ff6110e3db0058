"""``stemserve models available`` and ``stemserve models pull NAME``.

``stemserve.cli`` registers these under its ``models`` command with
:func:`add_models_commands` and runs them with :func:`run_models_command`. Listing the
catalogue needs nothing heavy; ``pull`` imports the export path (torch, onnx) when it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from stemserve.core.errors import StemserveError
from stemserve.core.settings import Settings
from stemserve.export.catalogue import CATALOGUE, describe, get_entry

HELP = argparse.ArgumentDefaultsHelpFormatter


def add_models_commands(models_subparsers: argparse._SubParsersAction) -> None:
    """Register ``available`` and ``pull`` on the ``models`` command's subparsers."""
    models_subparsers.add_parser(
        "available", formatter_class=HELP, help="the published models `pull` installs, with sources and licences"
    )
    pull = models_subparsers.add_parser(
        "pull", help="download, verify, export (parity-checked) and install a published model"
    )
    pull.add_argument("name", choices=sorted(CATALOGUE), metavar="NAME", help=f"one of {', '.join(sorted(CATALOGUE))}")
    pull.add_argument("--from", dest="source", default="", metavar="FILE_OR_URL",
                      help="a mirror or offline copy: a file or URL (one-file models), or a folder or URL ending "
                           "in '/' holding the files under their upstream names (default: the upstream URLs)")
    pull.add_argument("--sha256", action="append", default=[], metavar="[FILE=]HEX",
                      help="pin the full sha256 of the file (FILE=HEX for a model of several files; repeatable)")
    pull.add_argument("--out", type=Path, default=None,
                      help="model repository to install into (default: the first of the search path)")
    pull.add_argument("--download-dir", type=Path, default=None,
                      help="where files are downloaded and partial downloads kept for resuming "
                           "(default: ~/.cache/stemserve/downloads)")
    pull.add_argument("--force", action="store_true", help="replace an installed model of that name")
    pull.add_argument("--keep-download", action="store_true", help="keep the downloaded files after installing")
    pull.add_argument("--max-batch-size", type=int, default=8, help="Triton dynamic batching limit (default: 8)")
    pull.add_argument("--threads", type=int, default=0,
                      help="ONNX Runtime threads of the parity check (default: 0, every core)")
    pull.add_argument("--no-progress", action="store_true", help="no progress line on stderr")


def parse_pins(values: list[str], file_names: list[str]) -> dict[str, str]:
    """``--sha256`` values -> {file name: hex}; a bare HEX pins the only file."""
    pins: dict[str, str] = {}
    for value in values:
        name, sep, digest = value.rpartition("=")
        if not sep:
            if len(file_names) != 1:
                raise StemserveError(f"--sha256 must be FILE=HEX for a model of several files: {file_names}")
            name = file_names[0]
        pins[name] = digest.strip().lower()
    return pins


class DownloadProgress:
    """``<file> 12.0/80.4 MB (15%)`` on stderr, redrawn at most ten times a second."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.last = 0.0

    def __call__(self, name: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        finished = total is not None and done >= total
        if not self.enabled or (now - self.last < 0.1 and not finished):
            return
        self.last = now
        of = f"/{total / 1e6:.1f} MB ({100 * done // max(total, 1)}%)" if total else " MB"
        sys.stderr.write(f"\r{name} {done / 1e6:.1f}{of}" + ("\n" if finished else ""))
        sys.stderr.flush()


def run_models_command(args: argparse.Namespace, settings: Settings) -> int:
    """``available`` or ``pull``; JSON on stdout, errors on stderr (exit status 2)."""
    try:
        if args.models_command == "available":
            output: object = [describe(entry) for entry in CATALOGUE.values()]
        elif args.models_command == "pull":
            output = _pull(args, settings)
        else:
            raise StemserveError(f"unknown models command {args.models_command!r}")
    except StemserveError as exc:
        sys.stderr.write(f"stemserve: error: {exc}\n")
        return 2
    json.dump(output, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _pull(args: argparse.Namespace, settings: Settings) -> dict[str, object]:
    try:
        from stemserve.export.pull import DEFAULT_DOWNLOAD_DIR, PullConfig, pull, servable_from
    except ImportError as exc:
        raise StemserveError(f"stemserve models pull needs the export extra and export/requirements-install.sh "
                             f"({exc})") from exc
    entry = get_entry(args.name)
    repository = args.out or settings.model_repository[0]
    config = PullConfig(
        entry=entry,
        repository=repository,
        download_dir=args.download_dir or DEFAULT_DOWNLOAD_DIR,
        source=args.source,
        sha256=parse_pins(args.sha256, [f.name for f in entry.files]),
        max_batch_size=args.max_batch_size,
        threads=args.threads,
        force=args.force,
        keep_download=args.keep_download,
        progress=DownloadProgress(enabled=not args.no_progress),
    )
    result = pull(config)
    sys.stderr.write(result.parity.line(entry.name) + "\n")
    for warning in result.warnings:
        sys.stderr.write(f"stemserve: warning: {warning}\n")
    problem = servable_from(settings.model_repository, entry.name, result.folder)
    if problem:
        sys.stderr.write(f"stemserve: warning: {entry.name} is installed in {result.folder} but {problem}\n")
    return {
        "name": entry.name,
        "folder": str(result.folder),
        "servable": not problem,
        "parity_max_abs_error": result.parity.max_abs_error,
        "files": [
            {"name": f.path.name, "source": f.source, "size_bytes": f.size_bytes, "sha256": f.sha256,
             "verified": f.verdict, "resumed_from_byte": f.resumed_from}
            for f in result.files
        ],
        "license": entry.license,
        "warnings": list(result.warnings),
    }
