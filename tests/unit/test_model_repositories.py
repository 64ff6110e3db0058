"""Where models are looked up: the bundled repository, replaced or extended."""

from __future__ import annotations

import os

import pytest
from stemserve.core.errors import ModelNotFoundError
from stemserve.core.model_config import list_model_names, load_model, require_models
from stemserve.core.settings import BUNDLED_REPOSITORY, DEFAULT_REPOSITORIES, USER_REPOSITORY, Settings

from stemserve.cli import main
from tests.model_fixtures import write_mask_model


def test_the_bundled_repository_is_the_default_and_holds_the_default_model():
    settings = Settings.load(environ={})
    assert settings.model_repository == DEFAULT_REPOSITORIES == (USER_REPOSITORY, BUNDLED_REPOSITORY)
    assert list_model_names((BUNDLED_REPOSITORY,)) == ["stemserve-small"]


def test_a_path_replaces_and_an_empty_entry_adds_the_bundled_one(repo, tmp_path):
    replaced = Settings.load(environ={"STEMSERVE_MODEL_REPOSITORY": str(repo)})
    assert replaced.model_repository == (repo,)
    added = Settings.load(environ={"STEMSERVE_MODEL_REPOSITORY": f"{repo}{os.pathsep}"})
    assert added.model_repository == (repo, USER_REPOSITORY, BUNDLED_REPOSITORY)
    assert "stemserve-small" in list_model_names(added.model_repository) and "split5" in list_model_names(added.model_repository)
    flag = Settings.load({"model_repository": f"{os.pathsep}{repo}"}, environ={})
    assert flag.model_repository == (USER_REPOSITORY, BUNDLED_REPOSITORY, repo)


def test_the_first_repository_with_a_model_wins(repo, tmp_path):
    other = tmp_path / "other"
    write_mask_model(other, "split5", [0.2, 0.2, 0.2, 0.2, 0.2])
    assert load_model((other, repo), "split5").directory == other / "split5"
    assert load_model((repo, other), "split5").directory == repo / "split5"


def test_a_repository_without_models_is_an_error_naming_where_it_looked(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelNotFoundError, match=f"in the model repository {empty}, {tmp_path / 'absent'}, found none"):
        require_models((empty, tmp_path / "absent"))
    assert main(["--model-repository", str(empty), "models"]) == 2
    assert f"in the model repository {empty}, found none" in capsys.readouterr().err


def test_models_available_lists_the_catalogue_through_the_command_line(capsys):
    import json

    assert main(["models", "available"]) == 0
    names = [entry["name"] for entry in json.loads(capsys.readouterr().out)]
    assert {"htdemucs", "htdemucs_ft", "htdemucs_6s", "umxhq", "umxl"} <= set(names)
