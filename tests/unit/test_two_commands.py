"""The README's two commands exist, and CI runs the second one verbatim."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    section = ROOT.joinpath("README.md").read_text().split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n\s*```", section, re.DOTALL)


def test_readme_has_the_two_commands_and_their_scripts_exist():
    commands = [c.strip() for c in readme_commands()]
    assert commands == ["bash scripts/separate-example.sh", "bash scripts/setup-dev.sh && .venv/bin/python -m pytest -q -p no:cacheprovider"]
    for command in commands:
        assert (ROOT / command.split()[1]).is_file()


def test_ci_runs_the_readme_test_command_and_nothing_else():
    lines = ROOT.joinpath(".ci/run").read_text().splitlines()
    assert lines == ["#!/usr/bin/env bash", readme_commands()[1].strip()]


def test_every_test_run_in_the_docs_goes_through_the_test_command():
    readmes = [ROOT / "README.md", *sorted(ROOT.glob("*/README.md"))]
    inline = [code for path in readmes for code in re.findall(r"(?<!`)`([^`\n]+)`(?!`)", path.read_text())]
    runs = [code for code in inline if "pytest" in code or "scripts/test.sh" in code]
    assert runs, "the READMEs name no test run"
    test_command = readme_commands()[1].strip()
    assert all(run.startswith("bash scripts/test.sh") or run == test_command for run in runs), runs


def test_every_setting_is_listed_once_in_the_readme_settings_table():
    from dataclasses import fields

    from stemserve.core.settings import ENV_PREFIX, Settings

    table = ROOT.joinpath("README.md").read_text().split("## Settings", 1)[1].split("\n## ", 1)[0]
    for field in fields(Settings):
        variable = f"`{ENV_PREFIX}{field.name.upper()}`"
        assert table.count(variable) == 1, variable
    assert "http://" not in ROOT.joinpath("README.md").read_text() and "https://" not in ROOT.joinpath("README.md").read_text()
