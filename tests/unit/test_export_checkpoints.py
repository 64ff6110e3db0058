"""Checkpoints in the packages' own formats: loaded faithfully, or refused clearly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from stemserve.core.errors import StemserveError
from stemserve.export.checkpoints import DemucsCheckpoint, UmxCheckpoint, load_checkpoint
from stemserve.export.errors import ArchitectureMismatchError, CheckpointError, ChecksumMismatchError

from benchmarks.synthetic_checkpoints import random_umx_targets, write_umx_folder
from tests.unit import export_fixtures
from tests.unit.export_fixtures import small_htdemucs, small_umx

one_thread = export_fixtures.one_thread
htdemucs_package = export_fixtures.htdemucs_package
htdemucs_6s_package = export_fixtures.htdemucs_6s_package
htdemucs_ft_bag = export_fixtures.htdemucs_ft_bag
umxhq_folder = export_fixtures.umxhq_folder
pytestmark = pytest.mark.usefixtures("one_thread")


def test_demucs_package_loads_with_its_weights(htdemucs_package: Path) -> None:
    loaded = load_checkpoint("htdemucs", htdemucs_package)
    assert isinstance(loaded, DemucsCheckpoint)
    assert loaded.stems == ("drums", "bass", "other", "vocals")
    original = small_htdemucs().state_dict()
    state = loaded.models[0].state_dict()
    assert all(torch.equal(state[key], original[key]) for key in original)


def test_bag_loads_four_models_with_their_weights(htdemucs_ft_bag: Path) -> None:
    loaded = load_checkpoint("htdemucs_ft", htdemucs_ft_bag)
    assert len(loaded.models) == 4
    assert loaded.weights[2] == (0.0, 0.0, 1.0, 0.0)
    first = loaded.models[0].state_dict()
    second = loaded.models[1].state_dict()
    assert any(not torch.equal(first[k], second[k]) for k in first)  # 4 distinct models


def test_corrupt_file_fails_its_name_hash(htdemucs_package: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / htdemucs_package.name
    data = bytearray(htdemucs_package.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError, match=f"{htdemucs_package.name}: sha256 must start with"):
        load_checkpoint("htdemucs", corrupt)


def test_unhashed_garbage_is_not_a_checkpoint(tmp_path: Path) -> None:
    garbage = tmp_path / "model.th"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_checkpoint("htdemucs", garbage)


def test_six_stem_package_is_not_htdemucs(htdemucs_6s_package: Path) -> None:
    with pytest.raises(ArchitectureMismatchError, match="htdemucs separates"):
        load_checkpoint("htdemucs", htdemucs_6s_package)
    assert len(load_checkpoint("htdemucs_6s", htdemucs_6s_package).stems) == 6


def test_single_model_is_not_a_bag_and_umx_folder_is_not_demucs(htdemucs_package: Path, umxhq_folder: Path) -> None:
    with pytest.raises(ArchitectureMismatchError, match="bag of 4"):
        load_checkpoint("htdemucs_ft", htdemucs_package)
    with pytest.raises(CheckpointError, match="needs a .th package"):
        load_checkpoint("htdemucs", umxhq_folder)


def test_demucs_package_of_another_class_is_refused(tmp_path: Path) -> None:
    package = {"klass": torch.nn.Linear, "args": (), "kwargs": {}, "state": {}}
    path = tmp_path / "other.th"
    torch.save(package, path)
    with pytest.raises(ArchitectureMismatchError, match="needs an HTDemucs package"):
        load_checkpoint("htdemucs", path)


def test_umx_folder_loads_targets_in_stem_order(umxhq_folder: Path) -> None:
    arch = small_umx()
    loaded = load_checkpoint(arch, umxhq_folder)
    assert isinstance(loaded, UmxCheckpoint)
    expected = random_umx_targets(arch)
    for got, want in zip(loaded.targets, expected):
        assert torch.equal(got.fc1.weight, want.fc1.weight)
        assert torch.equal(got.bn3.running_var, want.bn3.running_var)


def test_umxl_weights_are_not_umxhq(tmp_path: Path) -> None:
    large = small_umx("umxl", hidden_size=24)
    folder = write_umx_folder(large, random_umx_targets(large), tmp_path, with_json=False)
    with pytest.raises(ArchitectureMismatchError, match="has hidden_size 16, vocals-.*24"):
        load_checkpoint(small_umx("umxhq"), folder)


def test_umx_folder_missing_a_target_names_it(umxhq_folder: Path, tmp_path: Path) -> None:
    for path in umxhq_folder.iterdir():
        if not path.name.startswith("bass"):
            shutil.copy(path, tmp_path / path.name)
    with pytest.raises(CheckpointError, match=r"exactly one bass\.pth or bass-<sha256>\.pth"):
        load_checkpoint(small_umx(), tmp_path)


def test_renamed_umx_state_fails_its_hash(umxhq_folder: Path, tmp_path: Path) -> None:
    for path in umxhq_folder.iterdir():
        name = path.name
        if name.startswith("drums-"):
            name = "drums-0123abcd.pth"
        shutil.copy(path, tmp_path / name)
    with pytest.raises(ChecksumMismatchError, match="drums-0123abcd.pth"):
        load_checkpoint(small_umx(), tmp_path)


def test_errors_share_the_stemserve_root() -> None:
    assert issubclass(ArchitectureMismatchError, StemserveError)
    assert issubclass(ChecksumMismatchError, CheckpointError)


def test_random_checkpoint_is_a_full_size_release_that_loads(tmp_path: Path) -> None:
    from stemserve.export.architectures import get_architecture

    from benchmarks.synthetic_checkpoints import random_checkpoint

    arch = get_architecture("umxhq")
    checkpoint = load_checkpoint(arch, random_checkpoint(arch, tmp_path / "umxhq"))
    assert isinstance(checkpoint, UmxCheckpoint)
    assert checkpoint.stems == arch.stems and len(checkpoint.targets) == len(arch.stems)
    with pytest.raises(ValueError, match="single models, not the bag htdemucs_ft"):
        random_checkpoint(get_architecture("htdemucs_ft"), tmp_path / "bag")
