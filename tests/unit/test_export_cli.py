"""``python -m stemserve.export``: clear errors, nothing half-written."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from stemserve.export.__main__ import main

from tests.unit import export_fixtures

one_thread = export_fixtures.one_thread
htdemucs_package = export_fixtures.htdemucs_package
pytestmark = pytest.mark.usefixtures("one_thread")


def test_wrong_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "vocals-0123abcd.pth"
    bad.write_bytes(b"\x00" * 64)
    code = main(["umxhq", "--checkpoint", str(bad), "--out", str(tmp_path / "repo")])
    assert code == 2
    assert "vocals-0123abcd.pth: sha256 must start with 0123abcd" in capsys.readouterr().err
    assert not (tmp_path / "repo").exists()


def test_architecture_mismatch_names_both_sides(
    htdemucs_package: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code = main(["htdemucs_6s", "--checkpoint", str(htdemucs_package), "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "htdemucs_6s separates" in err and "'guitar'" in err
    assert not any(tmp_path.iterdir())


def test_tensorrt_without_tensorrt_fails_first(
    htdemucs_package: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch
) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    code = main(["htdemucs", "--checkpoint", str(htdemucs_package), "--out", str(tmp_path), "--tensorrt"])
    assert code == 2
    assert "--tensorrt needs the tensorrt package" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_unknown_architecture_is_refused_by_the_parser(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["umxse", "--checkpoint", str(tmp_path)])
