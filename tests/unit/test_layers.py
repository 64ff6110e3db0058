"""The import graph runs one way, bottom up (README, "Layout"): a module imports only from
its own folder and the folders below it, lazy imports inside functions included. The light
client imports nothing of stemserve but itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# folder -> the folders it may import from (besides itself); ``client`` is a leaf anyone may use
ALLOWED = {
    "core": set(),
    "client": set(),
    "preprocess": {"core", "client"},
    "backends": {"core"},
    "pipeline": {"core", "client", "preprocess", "backends"},
    "export": {"core", "backends"},
    "server": {"core", "client", "preprocess", "backends", "pipeline"},
    "jobs": {"core", "client", "preprocess", "backends", "pipeline", "server"},
    "train": {"core", "preprocess", "backends", "export"},
    "stemserve": {"core", "client", "preprocess", "backends", "pipeline", "server", "export", "train", "jobs"},
}
SUBPACKAGES = set(ALLOWED) - {"stemserve"}


def imported_folders(path: Path) -> set[str]:
    """The folders a module imports from: ``stemserve.core.x`` -> core, ``stemserve`` -> stemserve."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
        for name in names:
            parts = name.split(".")
            if parts[0] != "stemserve":
                if parts[0] in SUBPACKAGES | {"benchmarks", "tests"}:
                    found.add(f"top-level {parts[0]}")  # an import name the wheel does not have
                continue
            found.add(parts[1] if len(parts) > 1 and parts[1] in SUBPACKAGES else "stemserve")
    return found


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_no_import_runs_back_up(folder):
    wrong = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        if "build" in path.parts:
            continue
        bad = imported_folders(path) - ALLOWED[folder] - {folder}
        if bad:
            wrong[str(path.relative_to(ROOT))] = sorted(bad)
    assert wrong == {}, f"{folder}/ may import from {sorted(ALLOWED[folder])} only"


def test_the_checker_sees_lazy_and_top_level_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import stemserve.core.errors\ndef f():\n    from stemserve.server.app import x\n    import preprocess.decode\n")
    assert imported_folders(module) == {"core", "server", "top-level preprocess"}
