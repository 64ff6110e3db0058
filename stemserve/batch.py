"""``stemserve separate`` over many inputs: each song's stems where a filename template puts
them, one JSON line per input as it finishes, a failing input not stopping the others, and
an exit code that says what failed (README, "Exit codes")."""

from __future__ import annotations

import os
import shutil
import string
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from stemserve.client.records import ProgressFn, SeparationRecord
from stemserve.core.errors import (
    AuthenticationError,
    BackendUnavailableError,
    DeadlineExceededError,
    InvalidAudioError,
    InvalidOptionError,
    ModelConfigError,
    ModelNotFoundError,
    ResourceExhaustedError,
)

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INPUT, EXIT_OUTPUT, EXIT_BACKEND, EXIT_PARTIAL = 0, 1, 2, 3, 4, 5, 6
EXIT_CODES = {
    InvalidAudioError: EXIT_INPUT,
    InvalidOptionError: EXIT_USAGE,
    ModelNotFoundError: EXIT_USAGE,
    ModelConfigError: EXIT_BACKEND,
    BackendUnavailableError: EXIT_BACKEND,
    DeadlineExceededError: EXIT_BACKEND,
    ResourceExhaustedError: EXIT_BACKEND,
    AuthenticationError: EXIT_BACKEND,
}
DEFAULT_TEMPLATE = "{track}/{stem}.{ext}"
FIELDS = ("track", "stem", "ext", "input_ext", "index")
WORK_PREFIX = ".stemserve-work-"

RunOne = Callable[[Path, Path, ProgressFn], SeparationRecord]  # (input, folder for its stems, progress)


def exit_code(exc: BaseException) -> int:
    """The documented exit code of a failure (OSError: the stems could not be written)."""
    for kind, code in EXIT_CODES.items():
        if isinstance(exc, kind):
            return code
    return EXIT_OUTPUT if isinstance(exc, OSError) else EXIT_FAILURE


def describe(exc: BaseException) -> str:
    """One line for a user: what was expected and what was got."""
    if isinstance(exc, (IsADirectoryError, NotADirectoryError, FileExistsError)):
        return f"stems must go into a folder, got a file in the way: {exc.filename}"
    if isinstance(exc, PermissionError):
        return f"stems must go into a writable folder, got no permission for {exc.filename}"
    if isinstance(exc, OSError) and exc.errno == 28:  # ENOSPC
        return f"stems need free disk space, got none left writing {exc.filename or 'the output'}"
    if isinstance(exc, OSError):
        return f"stems could not be written: {exc.strerror or exc} ({exc.filename})"
    return str(exc)


def check_template(template: str) -> None:
    used = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    unknown = sorted(used - set(FIELDS))
    if unknown or "stem" not in used:
        raise InvalidOptionError(
            f"filename must use {{stem}} and only {{{'}, {'.join(FIELDS)}}}, got {template!r}"
            + (f" (unknown {unknown})" if unknown else "")
        )
    if Path(template).is_absolute() or ".." in Path(template).parts:
        raise InvalidOptionError(f"filename must stay inside the output folder, got {template!r}")


def plan(inputs: Sequence[Path], out_dir: Path, template: str, stems: Sequence[str], ext: str
         ) -> list[dict[str, Path]]:
    """Each input's stem paths; two inputs that would write one path are an error up front."""
    check_template(template)
    planned, owners = [], {}
    for index, source in enumerate(inputs, start=1):
        values = {"track": source.stem, "ext": ext, "input_ext": source.suffix.lstrip("."), "index": index}
        paths = {stem: out_dir / template.format(stem=stem, **values) for stem in stems}
        for path in paths.values():
            if path in owners:
                raise InvalidOptionError(
                    f"filename {template!r} must give each song its own files, got {path} for both "
                    f"{owners[path]} and {source}; add {{input_ext}} or {{index}}"
                )
            owners[path] = source
        planned.append(paths)
    return planned


def separate_all(inputs: Sequence[Path], out_dir: Path, targets: Sequence[dict[str, Path]], run_one: RunOne,
                 progress: Callable[[Path], ProgressFn]) -> Iterator[tuple[dict[str, object], int]]:
    """Separate each input in turn; yield its JSON line and exit code (0: done)."""
    for source, paths in zip(inputs, targets):
        work = out_dir / f"{WORK_PREFIX}{uuid.uuid4().hex}"
        try:
            work.mkdir(parents=True)
            record = run_one(source, work, progress(source))
            record = _move_into_place(record, paths)
            yield {"source": str(source), **record.summary()}, EXIT_OK
        except Exception as exc:  # noqa: BLE001 - one input's failure is reported, the others go on
            yield {"source": str(source), "error": describe(exc), "exit_code": exit_code(exc)}, exit_code(exc)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def overall_exit_code(codes: Sequence[int]) -> int:
    failed = [code for code in codes if code != EXIT_OK]
    if not failed:
        return EXIT_OK
    return failed[0] if len(failed) == len(codes) else EXIT_PARTIAL


def _move_into_place(record: SeparationRecord, paths: dict[str, Path]) -> SeparationRecord:
    stems = []
    for stem in record.stems:
        target = paths[stem.name]
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(stem.path, target)
        stems.append(replace(stem, path=str(target)))
    return replace(record, stems=tuple(stems))
