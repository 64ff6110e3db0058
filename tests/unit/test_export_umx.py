"""Open-Unmix exports: ONNX parity against openunmix's Separator, fp16, variants."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from stemserve.core.model_config import load_model
from stemserve.export.checkpoints import load_checkpoint
from stemserve.export.exporter import ExportConfig, build_graph, run_export
from stemserve.export.onnx_export import open_session, parity_signal

from tests.unit import export_fixtures
from tests.unit.export_fixtures import small_umx

one_thread = export_fixtures.one_thread
umxhq_folder = export_fixtures.umxhq_folder
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def exported_fp16(umxhq_folder: Path, tmp_path_factory: pytest.TempPathFactory):
    repository = tmp_path_factory.mktemp("repo")
    torch.set_num_threads(1)
    config = ExportConfig(
        architecture=small_umx(), checkpoint=umxhq_folder, repository=repository, precision="fp16", threads=1
    )
    return run_export(config), repository


def test_fp32_parity_and_fp16_sdr(exported_fp16) -> None:
    result, _ = exported_fp16
    assert result.parity.max_abs_error <= 1e-4
    assert result.fp16_sdr_db is not None and len(result.fp16_sdr_db) == 4
    assert min(result.fp16_sdr_db) > 40.0  # fp16 layers stay far below audible error


def test_installed_fp16_model_follows_the_separator(exported_fp16, umxhq_folder: Path) -> None:
    _, repository = exported_fp16
    entry = load_model(repository, "umxhq")
    assert entry.spec.stems == ("vocals", "drums", "bass", "other")
    assert entry.spec.license == "MIT (open-unmix)"
    _, separator, segment = build_graph(load_checkpoint(small_umx(), umxhq_folder))
    mix = parity_signal(3, segment, seed=3)  # batch 3: the batch axis is dynamic
    got = open_session(entry.model_file(), threads=1).run(["stems"], {"mix": mix})[0]
    with torch.no_grad():
        expected = separator(torch.from_numpy(mix)).numpy()
    error = np.abs(got - expected).max() / np.abs(expected).max()
    assert 0 < error < 1e-2


def test_graph_matches_separator_with_a_silent_start(umxhq_folder: Path) -> None:
    graph, separator, segment = build_graph(load_checkpoint(small_umx(), umxhq_folder))
    mix = torch.from_numpy(parity_signal(1, segment, seed=4))
    mix[..., : segment // 3] = 0.0  # exact zeros in the STFT
    with torch.no_grad():
        assert (graph(mix) - separator(mix)).abs().max().item() < 1e-5
