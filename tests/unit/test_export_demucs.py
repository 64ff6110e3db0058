"""HT-Demucs exports: graph equivalence, ONNX parity, dynamic batch, repository entry."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from stemserve.core.model_config import file_sha256, load_model, parse_pbtxt
from stemserve.export.__main__ import main
from stemserve.export.checkpoints import load_checkpoint
from stemserve.export.demucs_graph import BagGraph, HTDemucsGraph
from stemserve.export.exporter import ExportConfig, run_export
from stemserve.export.onnx_export import check_parity, open_session, parity_signal

from tests.unit import export_fixtures
from tests.unit.export_fixtures import (
    SMALL_HTDEMUCS_SAMPLES,
    small_bag_architecture,
    small_htdemucs,
    write_small_bag,
)

one_thread = export_fixtures.one_thread
htdemucs_package = export_fixtures.htdemucs_package
htdemucs_6s_package = export_fixtures.htdemucs_6s_package
htdemucs_ft_bag = export_fixtures.htdemucs_ft_bag
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def exported(htdemucs_package: Path, tmp_path_factory: pytest.TempPathFactory):
    """``python -m stemserve.export htdemucs`` into a fresh repository; (stdout, repository)."""
    repository = tmp_path_factory.mktemp("repo")
    stdout = io.StringIO()
    torch.set_num_threads(1)
    with contextlib.redirect_stdout(stdout):
        code = main(["htdemucs", "--checkpoint", str(htdemucs_package), "--out", str(repository), "--threads", "1"])
    assert code == 0
    return stdout.getvalue(), repository


def test_graph_matches_the_model_in_torch() -> None:
    model = small_htdemucs()
    graph = HTDemucsGraph(model, query_block=16)
    mix = torch.from_numpy(parity_signal(2, SMALL_HTDEMUCS_SAMPLES))
    with torch.no_grad():
        expected, got = model(mix), graph(mix)
    assert graph.segment_samples == SMALL_HTDEMUCS_SAMPLES
    assert (got - expected).abs().max().item() < 1e-5


def test_export_prints_parity_within_tolerance(exported) -> None:
    stdout, _ = exported
    line = next(line for line in stdout.splitlines() if line.startswith("parity htdemucs"))
    error = float(line.split("max abs error ")[1].split(" ")[0])
    assert error <= 1e-4
    assert line.endswith(": ok")


def test_repository_entry_carries_the_contract(exported) -> None:
    _, repository = exported
    entry = load_model(repository, "htdemucs")
    spec = entry.spec
    assert spec.stems == ("drums", "bass", "other", "vocals")
    assert (spec.sample_rate_hz, spec.segment_samples) == (44100, SMALL_HTDEMUCS_SAMPLES)
    assert spec.model_version == file_sha256(entry.model_file())[:12]
    assert (spec.architecture, spec.license, spec.platform) == ("htdemucs", "MIT (demucs)", "onnxruntime_onnx")
    config = parse_pbtxt((entry.directory / "config.pbtxt").read_text())
    assert config["dynamic_batching"] and config["instance_group"]
    warmup = config["model_warmup"][0]
    assert warmup["inputs"][0]["value"][0]["dims"] == [2, SMALL_HTDEMUCS_SAMPLES]


@pytest.mark.parametrize("batch", [1, 3])
def test_batch_axis_is_dynamic(exported, htdemucs_package: Path, batch: int) -> None:
    _, repository = exported
    model = load_checkpoint("htdemucs", htdemucs_package).models[0]
    mix = parity_signal(batch, SMALL_HTDEMUCS_SAMPLES, seed=batch)
    got = open_session(load_model(repository, "htdemucs").model_file(), threads=1).run(["stems"], {"mix": mix})[0]
    with torch.no_grad():
        expected = model(torch.from_numpy(mix)).numpy()
    assert got.shape == (batch, 4, 2, SMALL_HTDEMUCS_SAMPLES)
    assert np.abs(got - expected).max() <= 1e-4


def test_parity_check_catches_a_wrong_graph(exported, htdemucs_package: Path) -> None:
    _, repository = exported
    model = load_checkpoint("htdemucs", htdemucs_package).models[0]
    path = load_model(repository, "htdemucs").model_file()
    report = check_parity(path, lambda mix: model(mix) * 1.01, SMALL_HTDEMUCS_SAMPLES, threads=1)
    assert not report.passed
    assert "FAILED" in report.line("htdemucs")


def test_six_stem_export_in_fp16(htdemucs_6s_package: Path, tmp_path: Path) -> None:
    config = ExportConfig(
        architecture="htdemucs_6s", checkpoint=htdemucs_6s_package, repository=tmp_path, precision="fp16", threads=1
    )
    result = run_export(config)
    assert result.parity.max_abs_error <= 1e-4  # checked on the fp32 graph first
    assert result.fp16_sdr_db is not None and len(result.fp16_sdr_db) == 6
    assert 40.0 < min(result.fp16_sdr_db) < 120.0  # close to fp32, yet not fp32
    entry = load_model(tmp_path, "htdemucs_6s")
    assert entry.spec.stems == ("drums", "bass", "other", "vocals", "guitar", "piano")
    model = onnx.load(str(entry.model_file()))
    kinds = {init.data_type for init in model.graph.initializer}
    assert onnx.TensorProto.FLOAT16 in kinds
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # contract


def _check_bag_export(architecture, bag: Path, repository: Path) -> None:
    result = run_export(ExportConfig(architecture=architecture, checkpoint=bag, repository=repository, threads=1))
    assert result.parity.max_abs_error <= 1e-4
    models = load_checkpoint(architecture, bag).models
    mix = parity_signal(1, SMALL_HTDEMUCS_SAMPLES, seed=5)
    got = open_session(load_model(repository, "htdemucs_ft").model_file(), threads=1).run(["stems"], {"mix": mix})[0]
    with torch.no_grad():
        outputs = [model(torch.from_numpy(mix)).numpy() for model in models]
    for stem in range(4):  # stem k comes from model k (mod the bag size) alone
        expected = outputs[stem % len(models)][:, stem]
        assert np.abs(got[:, stem] - expected).max() <= 1e-4
        others = [out[:, stem] for i, out in enumerate(outputs) if i != stem % len(models)]
        assert all(np.abs(got[:, stem] - other).max() > 1e-3 for other in others)


def test_bag_export_takes_each_stem_from_its_model(tmp_path: Path) -> None:
    bag = write_small_bag(tmp_path / "bag", 2)
    _check_bag_export(small_bag_architecture(2), bag, tmp_path / "repo")


@pytest.mark.slow
def test_four_model_bag_export(htdemucs_ft_bag: Path, tmp_path: Path) -> None:
    _check_bag_export("htdemucs_ft", htdemucs_ft_bag, tmp_path)


def test_bag_needs_a_positive_weight_for_every_stem() -> None:
    models = [small_htdemucs(), small_htdemucs(seed=1)]
    with pytest.raises(ValueError, match="positive total weight"):
        BagGraph(models, [[1, 1, 0, 1], [1, 0, 0, 1]])
