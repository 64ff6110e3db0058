"""Reduced-size published architectures with random weights, saved as their packages do.

The real ``demucs.htdemucs.HTDemucs`` and ``openunmix.model.OpenUnmix`` classes, shrunk in
depth and width (and STFT size) so that an export plus its ONNX Runtime parity check takes
seconds on one core; the full sizes run in ``benchmarks/reference.py``.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from stemserve.export.architectures import ARCHITECTURES, Architecture

from benchmarks.synthetic_checkpoints import (
    random_htdemucs,
    random_umx_targets,
    write_demucs_bag,
    write_demucs_package,
    write_umx_folder,
)

# HT-Demucs with 3 layers over a 1024-point STFT (the released models: 4 over 4096).
SMALL_HTDEMUCS = {
    "channels": 8,
    "depth": 3,
    "nfft": 1024,
    "t_layers": 2,
    "t_heads": 4,
    "bottom_channels": 16,
    "segment": Fraction(1, 2),
}
SMALL_HTDEMUCS_SAMPLES = 22050
# Open-Unmix with a 1024-point STFT, one LSTM layer of 16 and 40-frame windows.
SMALL_UMX_KWARGS = {
    "n_fft": 1024,
    "n_hop": 256,
    "bandwidth_hz": 11000,
    "hidden_size": 16,
    "nb_layers": 1,
    "wiener_win_len": 16,
}
SMALL_UMX_FRAMES = 40


@pytest.fixture
def one_thread():
    """torch on one core (modules opt in with ``pytestmark``)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def small_umx(name: str = "umxhq", **overrides: object) -> Architecture:
    base = ARCHITECTURES[name]
    kwargs = {**base.model_kwargs, **SMALL_UMX_KWARGS, **overrides}
    return dataclasses.replace(base, model_kwargs=kwargs, umx_nb_frames=SMALL_UMX_FRAMES)


def small_htdemucs(name: str = "htdemucs", seed: int = 0) -> torch.nn.Module:
    return random_htdemucs(ARCHITECTURES[name], seed=seed, **SMALL_HTDEMUCS)


@pytest.fixture(scope="module")
def htdemucs_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("htdemucs")
    return write_demucs_package(small_htdemucs(), folder, "955717e8")


@pytest.fixture(scope="module")
def htdemucs_6s_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("htdemucs_6s")
    return write_demucs_package(small_htdemucs("htdemucs_6s"), folder, "5c90dfd2")


def write_small_bag(folder: Path, nb_models: int) -> Path:
    """A bag whose model k is the only one weighted on stem k (mod nb_models)."""
    models = [small_htdemucs(seed=seed) for seed in range(nb_models)]
    weights = [[1.0 if stem % nb_models == index else 0.0 for stem in range(4)] for index in range(nb_models)]
    return write_demucs_bag(models, weights, folder, "htdemucs_ft")


def small_bag_architecture(nb_models: int) -> Architecture:
    return dataclasses.replace(ARCHITECTURES["htdemucs_ft"], nb_models=nb_models)


@pytest.fixture(scope="module")
def htdemucs_ft_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The four-model bag of htdemucs_ft, reduced in size."""
    return write_small_bag(tmp_path_factory.mktemp("htdemucs_ft"), 4)


@pytest.fixture(scope="module")
def umxhq_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    arch = small_umx()
    return write_umx_folder(arch, random_umx_targets(arch), tmp_path_factory.mktemp("umxhq"))
