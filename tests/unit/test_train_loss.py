"""The training loss: L1 or squared error between masked-mix and stem spectra."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from stemserve.train.model import ModelConfig
from stemserve.train.train import spectral_loss, stem_spectra


def _stems(seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.standard_normal((2, 5, 2, 8 * 512)).astype(np.float32) * 0.1)


def _model(masks: str) -> SimpleNamespace:
    """A stand-in whose mask net gives every bin to stem 0, or to no stem at all."""
    config = ModelConfig()

    def masknet(mix_mag: torch.Tensor, phase: torch.Tensor | None) -> torch.Tensor:
        assert phase is None  # the stand-in's config has no phase cues
        batch, _, frames = mix_mag.shape
        out = torch.zeros(batch, config.nb_stems, config.nb_channels * config.nb_bins, frames)
        if masks == "first":
            out[:, 0] = 1.0
        return out

    return SimpleNamespace(config=config, masknet=masknet)


@pytest.mark.parametrize("squared", [False, True])
def test_loss_is_zero_when_the_masks_give_each_stem_its_own_bins(squared: bool) -> None:
    stems = _stems()
    stems[:, 1:] = 0.0  # only stem 0 sounds: mask 1 for it and 0 for the rest is exact
    tilt = torch.ones(2, 5, 1, ModelConfig().nb_bins, 1)
    assert float(spectral_loss(_model("first"), stems, tilt, squared=squared)) == pytest.approx(0.0, abs=1e-5)


def test_squared_error_of_silent_masks_is_twice_the_mean_power() -> None:
    # with every mask 0 each term is the mean of the target's own square: re^2 + im^2 = |X|^2
    stems, tilt = _stems(1), torch.ones(2, 5, 1, ModelConfig().nb_bins, 1)
    squared = float(spectral_loss(_model("none"), stems, tilt, squared=True))
    absolute = float(spectral_loss(_model("none"), stems, tilt, squared=False))
    real, imag = stem_spectra(stems, ModelConfig())
    mix_mag = torch.sqrt(real.sum(1).square() + imag.sum(1).square())
    level = mix_mag.mean(dim=(1, 2, 3)).view(2, 1, 1, 1, 1)  # each example's mix level
    power = ((real.square() + imag.square()) / level.square()).mean()
    assert squared == pytest.approx(2 * float(power), rel=1e-4)
    assert absolute != pytest.approx(squared, rel=1e-2)

