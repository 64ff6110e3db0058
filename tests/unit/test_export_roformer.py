"""BS-RoFormer and Mel-Band RoFormer exports: parity with the BS-RoFormer package's model.

The published checkpoints cannot be fetched here: the package's ``BSRoformer`` /
``MelBandRoformer`` with the viperx hyper-parameters (``benchmarks/synthetic_checkpoints``)
get random weights, reduced for test speed to depth 1, width 64 and 1-second windows
(published: depth 12, width 512 / 384, 8-second windows; the band layout, heads, STFT and
mask estimator depth are the published ones). They are saved as MSST saves them (state dict
``.ckpt`` + YAML config) and exported through the same code as a pulled model. Parity:
ONNX Runtime against the package model's forward with MSST's ``zero_dc``, max abs error
<= 1e-4 on two full windows.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from stemserve.core.model_config import load_model, parse_pbtxt
from stemserve.export.errors import ArchitectureMismatchError, CheckpointError
from stemserve.export.onnx_export import open_session, parity_signal
from stemserve.export.roformer_graph import (
    RoformerGraph,
    export_roformer,
    load_roformer,
    read_config,
    reference,
)

from benchmarks.synthetic_checkpoints import VIPERX_MODELS, msst_config_yaml, random_roformer, write_roformer_checkpoint
from tests.unit import export_fixtures

one_thread = export_fixtures.one_thread
pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"depth": 1, "dim": 64}
SMALL_CHUNK = 44100  # 1 s (published: 352800)
KINDS = ("bs_roformer", "mel_band_roformer")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("roformer")
    return {
        kind: write_roformer_checkpoint(random_roformer(kind, seed=index, **SMALL), folder, kind,
                                        msst_config_yaml(kind, chunk_size=SMALL_CHUNK, **SMALL))
        for index, kind in enumerate(KINDS)
    }


@pytest.fixture(scope="module")
def exported(checkpoints, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    repository = tmp_path_factory.mktemp("repo")
    for kind, (checkpoint, config) in checkpoints.items():
        report = export_roformer(checkpoint, config, kind, repository=repository, name=kind, license="test",
                                 threads=1)
        assert report.passed and report.max_abs_error <= 1e-4
    return repository


@pytest.mark.parametrize("kind", KINDS)
def test_onnx_matches_the_package_model(kind: str, checkpoints, exported: Path) -> None:
    checkpoint, config_path = checkpoints[kind]
    config = read_config(config_path, kind)
    model = load_roformer(config, checkpoint)
    entry = load_model(exported, kind)
    assert entry.spec.stems == ("vocals", "instrumental") and entry.spec.segment_samples == SMALL_CHUNK
    assert entry.spec.default_overlap == 0.5  # MSST's num_overlap 2
    mix = parity_signal(3, SMALL_CHUNK, seed=7)  # batch 3: the batch axis is dynamic
    got = open_session(entry.model_file(), threads=1).run(["stems"], {"mix": mix})[0]
    with torch.no_grad():
        expected = reference(model, zero_dc=True)(torch.from_numpy(mix)).numpy()
        without_dc_step = reference(model, zero_dc=False)(torch.from_numpy(mix)).numpy()
    error = np.abs(got - expected).max()
    print(f"{kind}: max abs error {error:.3g}, vocals peak {np.abs(expected[:, 0]).max():.3g}")
    assert error <= 1e-4
    assert np.abs(expected[:, 0]).max() > 0.01  # the vocals are not trivially silent
    assert np.abs(got - without_dc_step).max() > 10 * 1e-4  # MSST's zero_dc step is in the graph


def test_config_carries_the_chunking(exported: Path) -> None:
    config = parse_pbtxt((exported / "bs_roformer" / "config.pbtxt").read_text())
    params = {p["key"][0]: p["value"][0]["string_value"][0] for p in config["parameters"]}
    assert params["roformer_chunk_size"] == str(SMALL_CHUNK) and params["roformer_num_overlap"] == "2"
    assert params["roformer_stft"] == "n_fft=2048;hop=441;win=2048" and params["roformer_zero_dc"] == "true"
    assert params["architecture"] == "bs_roformer" and "dynamic_batching" in config


def test_graph_in_torch_matches_at_another_length() -> None:
    model = random_roformer("mel_band_roformer", seed=3, **SMALL)
    graph = RoformerGraph(model, 441 * 37)
    mix = torch.from_numpy(parity_signal(1, 441 * 37, seed=2))
    with torch.no_grad():
        assert (graph(mix) - reference(model, True)(mix)).abs().max().item() < 1e-5


# sha256 of the sorted "key shape" lines of MSST's models/bs_roformer (ZFTurbo/Music-Source-
# Separation-Training at ccc011ab) built from the viperx configs at depth 1: 457 and 564 keys
# (at the published depth 12: 699 and 828).
MSST_KEYS = {
    "bs_roformer": (457, "f13211da845b1c3d37e03fd09d4518296d75510a8d14465e0df05b19473ebf4a"),
    "mel_band_roformer": (564, "56b8e24fc4df166c82cbb57982f2c69dae7eb00583039d2477e3159ff0a1c725"),
}


@pytest.mark.parametrize("kind", KINDS)
def test_package_state_dict_is_msst_s(kind: str) -> None:
    """The package model of the published hyper-parameters has MSST's keys and shapes, so an
    MSST checkpoint loads strictly (checked at depth 1 to keep it light)."""
    state = random_roformer(kind, depth=1).state_dict()
    text = "\n".join(f"{k} {tuple(v.shape)}" for k, v in sorted(state.items()))
    assert (len(state), hashlib.sha256(text.encode()).hexdigest()) == MSST_KEYS[kind]


def test_a_checkpoint_of_other_hyper_parameters_is_refused(checkpoints, tmp_path: Path) -> None:
    checkpoint, _ = checkpoints["bs_roformer"]
    config = tmp_path / "wide.yaml"
    config.write_text(msst_config_yaml("bs_roformer", chunk_size=SMALL_CHUNK, depth=1, dim=96))
    with pytest.raises(ArchitectureMismatchError, match="does not fit its config's bs_roformer"):
        export_roformer(checkpoint, config, "bs_roformer", repository=tmp_path / "repo", name="x", license="x")
    assert not (tmp_path / "repo").exists()


def test_config_options_the_package_lacks_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(msst_config_yaml("bs_roformer", linear_transformer_depth=1))
    with pytest.raises(ArchitectureMismatchError, match="linear_transformer_depth must be 0"):
        read_config(config, "bs_roformer")
    config.write_text("model: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(CheckpointError, match="not a readable YAML config"):
        read_config(config, "bs_roformer")


def test_viperx_hyper_parameters_are_the_published_ones() -> None:
    bs, mel = VIPERX_MODELS["bs_roformer"], VIPERX_MODELS["mel_band_roformer"]
    assert (bs["dim"], bs["depth"], len(bs["freqs_per_bands"]), sum(bs["freqs_per_bands"])) == (512, 12, 62, 1025)
    assert (mel["dim"], mel["depth"], mel["num_bands"]) == (384, 12, 60)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_full_size_export_parity(kind: str, tmp_path: Path) -> None:
    """The published sizes (depth 12, width 512 / 384, 8-second windows), random weights:
    ``pytest -m slow tests/unit/test_export_roformer.py``."""
    torch.set_num_threads(os.cpu_count() or 1)  # the module's one-thread fixture is restored afterwards
    checkpoint, config = write_roformer_checkpoint(random_roformer(kind), tmp_path, kind, msst_config_yaml(kind))
    report = export_roformer(checkpoint, config, kind, repository=tmp_path / "repo", name=kind, license="test")
    print(report.line(kind))
    assert report.passed
