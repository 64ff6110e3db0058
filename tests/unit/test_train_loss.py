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

    def masknet(mix_mag: torch.Tensor, phase: torch.Tensor | None, low_band: torch.Tensor | None) -> torch.Tensor:
        assert phase is None and low_band is None  # the stand-in's config has no phase cues and no low band
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


@pytest.mark.parametrize("squared", [False, True])
def test_per_stem_loss_weighs_a_quiet_stem_like_a_loud_one(squared: bool) -> None:
    # stem 0 loud, stem 1 30 or 40 dB quieter, the rest silent; every bin goes to stem 0, so
    # stem 1 is lost whole: the plain loss shrinks with its level, the per-stem loss does not.
    # The floor is far below stem 1 (a level for L1, a power for squared error).
    tilt = torch.ones(2, 5, 1, ModelConfig().nb_bins, 1)
    floor = 1e-7 if squared else 1e-4
    plain, per_stem = [], []
    for quiet_db in (-30, -40):
        stems = _stems(2)
        stems[:, 1] *= 10 ** (quiet_db / 20)
        stems[:, 2:] = 0.0
        plain.append(float(spectral_loss(_model("first"), stems, tilt, squared=squared)))
        per_stem.append(float(spectral_loss(_model("first"), stems, tilt, squared=squared, stem_floor=floor)))
    assert plain[1] < plain[0] / (5 if squared else 2)
    # per stem, the lost stem 1 costs its real, imaginary and magnitude terms over its level: 2 for
    # squared error; for L1 of Gaussian spectra E|re| = E|im| = (2 / pi) E|S|, so 1 + 4 / pi.
    # Stem 0 costs little, the silent stems nothing; the loss is the mean over 5 stems.
    expected = (2 if squared else 1 + 4 / np.pi) / 5
    assert per_stem[0] == pytest.approx(expected, rel=0.05)
    assert per_stem[1] == pytest.approx(expected, rel=0.05)


def test_per_stem_loss_makes_leaking_into_a_silent_stem_costly() -> None:
    stems, tilt = _stems(3), torch.ones(2, 5, 1, ModelConfig().nb_bins, 1)
    stems[:, 1:] = 0.0  # only stem 0 sounds
    leak = _model("first")
    wrong = SimpleNamespace(config=leak.config, masknet=lambda mag, phase, low: leak.masknet(mag, phase, low).roll(1, dims=1))  # all to stem 1
    plain = float(spectral_loss(wrong, stems, tilt, squared=True))
    floor = 0.1
    per_stem = float(spectral_loss(wrong, stems, tilt, squared=True, stem_floor=floor))
    # stem 0 loses its whole level (2 / (1 + floor)); silent stem 1 gets the whole mix (2 / floor)
    assert per_stem == pytest.approx((2 / (1 + floor) + 2 / floor) / 5, rel=0.05)
    assert per_stem > 2 * plain
