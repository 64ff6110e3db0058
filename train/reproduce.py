"""Reproduce the committed model stage by stage: ``python -m stemserve.train.reproduce stage01 ... stage12``.

Each stage is a file ``train/stages/NAME.toml``, run from the repository root:

    stage = "stage03"                           # its name: the file's
    summary = "fine-tuned on varied songs"      # one line
    init = "stage02"                            # the stage whose checkpoint it starts from (none for stage01)
    checkpoint = "train/runs/vary-c/step_003000.pt"  # the checkpoint it yields, read by the next stage

    [[steps]]                                   # its commands, in order
    command = "train"                           # make_cache, train, score, average, calibrate or export_onnx
    run-dir = "train/runs/vary-c"               # the command's options by their long names,
    cache = ["train/cache/songs"]               # a list for one given several times or with several values,
    stereo-cues = true                          # true for a flag,
    checkpoints = ["train/runs/vary-c/step_*.pt"]  # and its positional arguments by name (globs expand)

``--dry-run`` prints the commands instead of running them. A run can be repeated after an
interruption: ``make_cache`` skips the songs it has rendered, ``train`` resumes from its run
folder's ``latest.pt``, an ``average`` or ``calibrate`` step whose output is newer than its
inputs is skipped, and ``score`` and ``export_onnx`` run again.
"""

from __future__ import annotations

import argparse
import difflib
import glob
import importlib
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

STAGES_DIR = Path(__file__).resolve().parent / "stages"
# step command -> module (each has get_parser() and main(argv))
COMMANDS = {name: f"stemserve.train.{name}" for name in
            ("make_cache", "train", "score", "average", "calibrate", "export_onnx")}
# steps skipped when their output is newer than their inputs: command -> (output key, input key)
SKIPPABLE = {"average": ("out", "checkpoints"), "calibrate": ("out", "checkpoint")}
STAGE_KEYS, OPTIONAL_STAGE_KEYS = ("stage", "summary", "checkpoint", "steps"), ("init",)


class StageError(ValueError):
    """A stage file that does not say what a stage needs, or says it wrongly."""


@dataclass(frozen=True)
class Step:
    command: str
    argv: tuple[str, ...]  # as the stage file writes them, globs unexpanded
    options: dict  # the step's keys but "command"

    @property
    def module(self) -> str:
        return COMMANDS[self.command]

    def line(self) -> str:
        """The shell command (from the repository root)."""
        return " ".join(["python", "-m", self.module, *map(_quote, self.argv)])


@dataclass(frozen=True)
class Stage:
    name: str
    summary: str
    init: str | None
    checkpoint: str
    steps: tuple[Step, ...]
    path: Path


def _quote(arg: str) -> str:
    """Shell quoting that leaves globs to the shell, as the stage file means them."""
    return arg if re.fullmatch(r"[\w@%+=:,./*-]+", arg) else shlex.quote(arg)


def _check_keys(where: str, table: dict, required: Sequence[str], optional: Sequence[str] = ()) -> None:
    expected = [*required, *optional]
    missing = [key for key in required if key not in table]
    problems = []
    for key in (key for key in table if key not in expected):
        close = difflib.get_close_matches(key, missing or expected, n=1)
        problems.append(f"expected key {close[0]!r}, got {key!r}" if close else f"unexpected key {key!r}")
        if close and close[0] in missing:
            missing.remove(close[0])
    problems += [f"expected key {key!r}, got none" for key in missing]
    if problems:
        raise StageError(f"{where}: {'; '.join(problems)} (the keys are {', '.join(expected)})")


def _value_text(where: str, key: str, value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise StageError(f"{where}: expected a string or a number for {key!r}, got {value!r}")
    return repr(value) if isinstance(value, float) else str(value)


def _parser(command: str) -> argparse.ArgumentParser:
    parser = importlib.import_module(COMMANDS[command]).get_parser()

    def error(message: str) -> None:
        raise StageError(message)

    parser.error = error  # type: ignore[method-assign]
    return parser


def parse_step(where: str, table: object) -> Step:
    """A ``[[steps]]`` table -> its ``Step``, its options checked against the command's parser."""
    if not isinstance(table, dict):
        raise StageError(f"{where}: expected a table, got {table!r}")
    command = table.get("command")
    if command not in COMMANDS:
        raise StageError(f"{where}: expected key 'command' to be one of {', '.join(COMMANDS)}, got {command!r}")
    where = f"{where} ({command})"
    parser = _parser(command)
    actions = {}
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        long = next((flag for flag in action.option_strings if flag.startswith("--")), None)
        actions[long[2:] if long else action.dest] = action
    options = {key: value for key, value in table.items() if key != "command"}
    required = [key for key, action in actions.items() if action.required or not action.option_strings]
    _check_keys(where, options, required, [key for key in actions if key not in required])
    positional, optional = [], []
    for key in (key for key in actions if key in options):  # positionals in the parser's order
        if not actions[key].option_strings:
            values = options[key] if isinstance(options[key], list) else [options[key]]
            positional += [_value_text(where, key, value) for value in values]
    for key, value in options.items():  # options in the file's order
        action = actions[key]
        if not action.option_strings:
            continue
        flag = f"--{key}"
        if action.nargs == 0:  # a flag
            if not isinstance(value, bool):
                raise StageError(f"{where}: expected true or false for {key!r}, got {value!r}")
            optional += [flag] if value else []
        elif isinstance(value, list):
            if isinstance(action, argparse._AppendAction):
                for item in value:
                    optional += [flag, _value_text(where, key, item)]
            elif action.nargs in ("+", "*"):
                optional += [flag, *(_value_text(where, key, item) for item in value)]
            else:
                raise StageError(f"{where}: expected one value for {key!r}, got the list {value!r}")
        else:
            optional += [flag, _value_text(where, key, value)]
    argv = (*positional, *optional)
    parser.parse_args(list(argv))  # the command's own checks: types, choices, required options
    return Step(command, argv, options)


def load_stage(name: str, stages_dir: Path = STAGES_DIR) -> Stage:
    """``stages_dir/NAME.toml`` -> its ``Stage``; a ``StageError`` names what is wrong and where."""
    path = stages_dir / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(stage_names(stages_dir)) or "none"
        raise StageError(f"no stage {name!r}: {path} does not exist (the stages are {known})")
    try:
        table = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise StageError(f"{path.name}: not valid TOML: {error}") from None
    _check_keys(path.name, table, STAGE_KEYS, OPTIONAL_STAGE_KEYS)
    if table["stage"] != name:
        raise StageError(f"{path.name}: expected stage = {name!r} (the file's name), got {table['stage']!r}")
    for key in ("summary", "checkpoint", *(("init",) if "init" in table else ())):
        if not isinstance(table[key], str) or not table[key]:
            raise StageError(f"{path.name}: expected a string for {key!r}, got {table[key]!r}")
    if not isinstance(table["steps"], list) or not table["steps"]:
        raise StageError(f"{path.name}: expected 'steps' to be an array of tables ([[steps]]), got {table['steps']!r}")
    steps = tuple(parse_step(f"{path.name}, step {index}", step) for index, step in enumerate(table["steps"], 1))
    init = table.get("init")
    if init is not None:
        start = load_stage(init, stages_dir).checkpoint
        if not any(start in (value if isinstance(value, list) else [value])
                   for step in steps for value in step.options.values()):
            raise StageError(f"{path.name}: init = {init!r} yields {start}, which no step of {name} reads")
    return Stage(name, table["summary"], init, table["checkpoint"], steps, path)


def stage_names(stages_dir: Path = STAGES_DIR) -> list[str]:
    return sorted(path.stem for path in stages_dir.glob("*.toml"))


def expand(argv: Sequence[str]) -> list[str]:
    """``argv`` with each glob replaced by the files it matches, in name order."""
    out = []
    for arg in argv:
        if glob.has_magic(arg):
            matches = sorted(glob.glob(arg))
            if not matches:
                raise FileNotFoundError(f"no file matches {arg}")
            out += matches
        else:
            out.append(arg)
    return out


def up_to_date(step: Step, argv: Sequence[str]) -> bool:
    """Whether a ``SKIPPABLE`` step's output exists and is newer than each of its inputs."""
    if step.command not in SKIPPABLE:
        return False
    output_key, input_key = SKIPPABLE[step.command]
    output = Path(step.options[output_key])
    inputs = step.options[input_key]
    inputs = expand(inputs if isinstance(inputs, list) else [inputs])
    if not output.exists() or not all(Path(path).exists() for path in inputs):
        return False
    return all(output.stat().st_mtime >= Path(path).stat().st_mtime for path in inputs)


def run_subprocess(command: list[str]) -> None:
    subprocess.run(command, check=True)


def run_stage(stage: Stage, dry_run: bool = False, execute: Callable[[list[str]], None] = run_subprocess,
              stages_dir: Path = STAGES_DIR, out: Callable[[str], None] = print) -> None:
    """Run (``dry_run``: print) ``stage``'s steps in order."""
    out(f"# {stage.name}: {stage.summary}")
    if not dry_run and stage.init is not None:
        start = load_stage(stage.init, stages_dir).checkpoint
        if not Path(start).exists():
            raise SystemExit(f"{stage.name} starts from {stage.init}'s {start}, which does not exist: "
                             f"run {stage.init} first")
    for step in stage.steps:
        if dry_run:
            out(step.line())
            continue
        argv = expand(step.argv)
        if up_to_date(step, argv):
            out(f"{step.line()}  # up to date, skipped")
            continue
        out(step.line())
        execute([sys.executable, "-m", step.module, *argv])


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stages", nargs="*", metavar="STAGE", help="stage names (train/stages/NAME.toml), or all")
    parser.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")
    parser.add_argument("--list", action="store_true", help="list the stages")
    parser.add_argument("--stages-dir", type=Path, default=STAGES_DIR, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    names = stage_names(args.stages_dir) if args.stages == ["all"] else args.stages
    if args.list:
        for name in stage_names(args.stages_dir):
            print(f"{name}: {load_stage(name, args.stages_dir).summary}")
        return
    if not names:
        raise SystemExit("name the stages to run (e.g. stage01 stage02, or all), or --list them")
    try:
        stages = [load_stage(name, args.stages_dir) for name in names]  # every file is checked before any step runs
    except StageError as error:
        raise SystemExit(f"bad stage: {error}") from None
    for stage in stages:
        run_stage(stage, args.dry_run, stages_dir=args.stages_dir)


if __name__ == "__main__":
    main()
