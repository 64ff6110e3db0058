"""The environment tritonserver runs in: the wheel's libraries, the models' own Python."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from stemserve.core.errors import BackendUnavailableError
from stemserve.server.triton.bundle import Bundle, check_python_env, server_environment


def test_models_python_comes_first_on_path_and_libraries_are_found(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    monkeypatch.setenv("LD_LIBRARY_PATH", "/opt/lib")
    bundle = Bundle(tmp_path / "tritonserver", tmp_path / "libs", tmp_path / "python", tmp_path / "stub")
    env = server_environment(bundle, tmp_path / "env")
    assert env["PATH"].split(os.pathsep)[0] == str(tmp_path / "env" / "bin")  # the stub's sys.prefix
    libraries = env["LD_LIBRARY_PATH"].split(os.pathsep)
    assert str(tmp_path / "libs") in libraries and libraries[-1] == "/opt/lib"
    assert "PYTHONPATH" not in env  # the front end's packages never leak into the models' Python


def test_missing_models_python_names_the_install_script(tmp_path):
    with pytest.raises(BackendUnavailableError, match="requirements-install.sh"):
        check_python_env(tmp_path / "absent")
    (tmp_path / "env" / "bin").mkdir(parents=True)
    Path(tmp_path / "env" / "bin" / "python3").touch()
    assert check_python_env(tmp_path / "env") == tmp_path / "env"
