"""The reproduction's stage files and the command that runs them (never training here)."""

import importlib
import os
import shlex
import sys
import tomllib
from pathlib import Path

import pytest
from stemserve.train.reproduce import STAGES_DIR, StageError, load_stage, main, run_stage, stage_names

SHIPPED = [f"stage{index:02d}" for index in range(1, 13)]


def _dry_run(name: str, stages_dir: Path = STAGES_DIR) -> list[str]:
    lines: list[str] = []
    run_stage(load_stage(name, stages_dir), dry_run=True, stages_dir=stages_dir, out=lines.append)
    return lines


def _same(parsed: object, written: object) -> bool:
    """Whether a value the command's parser read equals the one the stage file wrote."""
    if isinstance(written, list):
        return isinstance(parsed, list) and len(parsed) == len(written) and all(map(_same, parsed, written))
    if isinstance(written, bool):
        return parsed is written
    if isinstance(written, int | float):
        return float(parsed) == float(written)
    return str(parsed) == written


def test_the_twelve_stages_chain_from_the_first_run_to_the_committed_checkpoint() -> None:
    assert stage_names() == SHIPPED
    stages = [load_stage(name) for name in SHIPPED]
    assert stages[0].init is None
    assert [stage.init for stage in stages[1:]] == SHIPPED[:-1]
    assert stages[-1].checkpoint == "train/checkpoints/stemserve-small.pt"
    assert stages[-1].steps[-1].command == "export_onnx"


@pytest.mark.parametrize("name", SHIPPED)
def test_the_dry_run_prints_each_step_with_the_values_its_stage_file_writes(name: str) -> None:
    written = tomllib.loads((STAGES_DIR / f"{name}.toml").read_text())
    lines = _dry_run(name)
    assert lines[0] == f"# {name}: {written['summary']}"
    assert len(lines) == 1 + len(written["steps"])
    for line, step in zip(lines[1:], written["steps"]):
        python, flag, module, *argv = shlex.split(line)
        assert (python, flag, module) == ("python", "-m", f"stemserve.train.{step['command']}")
        parsed = vars(importlib.import_module(module).get_parser().parse_args(argv))
        for key, value in step.items():
            if key != "command":
                assert _same(parsed[key.replace("-", "_")], value), (name, module, key, parsed[key.replace("-", "_")])


def test_the_dry_run_of_stage02_is_its_commands() -> None:
    assert _dry_run("stage02") == [
        "# stage02: squared error on all 800 plain songs, the piano head restarted from other's",
        "python -m stemserve.train.make_cache --out train/cache/songs --count 800",
        ("python -m stemserve.train.train --run-dir train/runs/l2-g --init train/runs/small-v1/best.pt "
         "--copy-head other:piano --loss l2 --lr 0.0005 --lr-half-life 1500 --steps 2550 --eval-every 250 --threads 1"),
    ]


def test_positional_arguments_come_first_and_globs_stay_for_the_shell() -> None:
    lines = _dry_run("stage09")
    assert ("python -m stemserve.train.score train/runs/phase-a/step_*.pt train/runs/phase-b/step_*.pt "
            "train/runs/phase-c/step_*.pt --ensemble-cache train/cache/valid-ensemble") in lines
    assert ("python -m stemserve.train.calibrate train/runs/mean9.pt --out train/runs/stage9.pt "
            "--ensemble-cache train/cache/valid-ensemble --rounds 3") in lines


FIRST = """stage = "stage01"
summary = "first"
checkpoint = "runs/a/latest.pt"

[[steps]]
command = "train"
run-dir = "runs/a"
steps = 2
"""

SECOND = """stage = "stage02"
summary = "second"
init = "stage01"
checkpoint = "runs/mean.pt"

[[steps]]
command = "train"
run-dir = "runs/b"
init = "runs/a/latest.pt"
keep-every = 1

[[steps]]
command = "average"
out = "runs/mean.pt"
checkpoints = ["runs/a/latest.pt", "runs/b/step_*.pt"]
"""


def _stages(tmp_path: Path, first: str = FIRST, second: str = SECOND) -> Path:
    folder = tmp_path / "stages"
    folder.mkdir()
    (folder / "stage01.toml").write_text(first)
    (folder / "stage02.toml").write_text(second)
    return folder


@pytest.mark.parametrize(("old", "new", "message"), [
    ('checkpoint = "runs/a/latest.pt"', 'checkpiont = "runs/a/latest.pt"',
     "stage01.toml: expected key 'checkpoint', got 'checkpiont'"),
    ('summary = "first"\n', "", "stage01.toml: expected key 'summary', got none"),
    ('stage = "stage01"', 'stage = "stage1"', r"stage01.toml: expected stage = 'stage01' \(the file's name\), got 'stage1'"),
    ("steps = 2", "stepz = 2", r"stage01.toml, step 1 \(train\): expected key 'steps', got 'stepz'"),
    ('run-dir = "runs/a"', 'run-dir = "runs/a"\nlr-halflife = 10',
     r"stage01.toml, step 1 \(train\): expected key 'lr-half-life', got 'lr-halflife'"),
    ('run-dir = "runs/a"\n', "", r"step 1 \(train\): expected key 'run-dir', got none"),
    ('command = "train"', 'command = "fit"', "expected key 'command' to be one of make_cache, train, .*, got 'fit'"),
    ("steps = 2", 'steps = "many"', "argument --steps: invalid int value: 'many'"),
    ("steps = 2", "steps = 2\nstereo-cues = 1", "expected true or false for 'stereo-cues', got 1"),
    ("steps = 2", "steps = [2, 3]", "expected one value for 'steps', got the list"),
    ("steps = 2", "steps = 2\nloss = \"l3\"", "argument --loss: invalid choice: 'l3'"),
    ("[[steps]]", "[steps]", r"stage01.toml: expected 'steps' to be an array of tables \(\[\[steps\]\]\)"),
    ("steps = 2", "steps = 2 2", "stage01.toml: not valid TOML"),
])
def test_a_bad_stage_file_is_an_error_naming_the_key_expected_and_the_one_got(tmp_path: Path, old: str, new: str,
                                                                              message: str) -> None:
    assert old in FIRST
    folder = _stages(tmp_path, FIRST.replace(old, new, 1))
    with pytest.raises(StageError, match=message):
        load_stage("stage01", folder)


def test_a_stage_must_read_the_checkpoint_of_the_stage_it_starts_from(tmp_path: Path) -> None:
    folder = _stages(tmp_path, second=SECOND.replace('init = "runs/a/latest.pt"', 'init = "runs/a/best.pt"')
                     .replace('"runs/a/latest.pt", ', ""))
    with pytest.raises(StageError, match="stage02.toml: init = 'stage01' yields runs/a/latest.pt, which no step of "
                                         "stage02 reads"):
        load_stage("stage02", folder)
    with pytest.raises(StageError, match=r"no stage 'stage03': .* \(the stages are stage01, stage02\)"):
        load_stage("stage03", folder)


def test_the_command_refuses_a_bad_stage_before_running_anything(tmp_path: Path, capsys) -> None:
    folder = _stages(tmp_path, second=SECOND.replace("keep-every", "keep-evry"))
    with pytest.raises(SystemExit, match="bad stage: stage02.toml, step 1 .*expected key 'keep-every', got 'keep-evry'"):
        main(["stage01", "stage02", "--stages-dir", str(folder)])
    assert capsys.readouterr().out == ""
    with pytest.raises(SystemExit, match="name the stages to run"):
        main(["--stages-dir", str(folder)])


def test_the_command_lists_and_dry_runs_every_stage(tmp_path: Path, capsys) -> None:
    folder = _stages(tmp_path)
    main(["--list", "--stages-dir", str(folder)])
    assert capsys.readouterr().out == "stage01: first\nstage02: second\n"
    main(["all", "--dry-run", "--stages-dir", str(folder)])
    assert capsys.readouterr().out.splitlines() == [
        "# stage01: first",
        "python -m stemserve.train.train --run-dir runs/a --steps 2",
        "# stage02: second",
        "python -m stemserve.train.train --run-dir runs/b --init runs/a/latest.pt --keep-every 1",
        "python -m stemserve.train.average runs/mean.pt runs/a/latest.pt runs/b/step_*.pt",
    ]


def test_running_expands_globs_and_skips_an_average_newer_than_its_inputs(tmp_path: Path, monkeypatch) -> None:
    folder = _stages(tmp_path)
    monkeypatch.chdir(tmp_path)
    stage = load_stage("stage02", folder)
    commands: list[list[str]] = []
    with pytest.raises(SystemExit, match="stage02 starts from stage01's runs/a/latest.pt, which does not exist: "
                                         "run stage01 first"):
        run_stage(stage, execute=commands.append, stages_dir=folder, out=lambda line: None)
    assert commands == []
    for path in ("runs/a/latest.pt", "runs/b/step_000002.pt", "runs/b/step_000001.pt"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"")
    run_stage(stage, execute=commands.append, stages_dir=folder, out=lambda line: None)
    assert commands == [
        [sys.executable, "-m", "stemserve.train.train", "--run-dir", "runs/b", "--init", "runs/a/latest.pt",
         "--keep-every", "1"],
        [sys.executable, "-m", "stemserve.train.average", "runs/mean.pt", "runs/a/latest.pt", "runs/b/step_000001.pt",
         "runs/b/step_000002.pt"],
    ]
    (tmp_path / "runs/mean.pt").write_bytes(b"")  # the average, written after its inputs
    commands.clear()
    printed: list[str] = []
    run_stage(stage, execute=commands.append, stages_dir=folder, out=printed.append)
    assert [command[2] for command in commands] == ["stemserve.train.train"]  # train resumes by itself
    assert printed[-1].endswith("  # up to date, skipped")
    later = (tmp_path / "runs/mean.pt").stat().st_mtime + 10
    os.utime(tmp_path / "runs/b/step_000002.pt", (later, later))  # a newer snapshot: average again
    commands.clear()
    run_stage(stage, execute=commands.append, stages_dir=folder, out=lambda line: None)
    assert [command[2] for command in commands] == ["stemserve.train.train", "stemserve.train.average"]
