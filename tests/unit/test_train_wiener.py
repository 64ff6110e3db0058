"""The spatial Wiener filter on top of the masks: stems told apart by where they sit."""

import math

import pytest
import torch
from stemserve.train.wiener import spatial_wiener

BINS, FRAMES = 33, 40


def _spectrum(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Two channels' (real, imaginary) spectra ``(2, bins, frames)`` -> ``(1, 1, 2, 2, bins, frames)``."""
    return torch.stack([left, right])[None, None]


def _noise(seed: int) -> torch.Tensor:
    return torch.randn(2, BINS, FRAMES, generator=torch.Generator().manual_seed(seed))


def _sdr(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    return float(10 * torch.log10((reference ** 2).sum() / ((reference - estimate) ** 2).sum()))


def _rotated(spectrum: torch.Tensor, radians: float) -> torch.Tensor:
    """``(2, bins, frames)`` (real, imaginary) times exp(i radians)."""
    re, im = spectrum
    return torch.stack([re * math.cos(radians) - im * math.sin(radians), re * math.sin(radians) + im * math.cos(radians)])


def _panned_pair() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two stems in every bin, one panned left, the other right with a phase shift between
    its channels, each loud in alternate frames; masks that give the loud stem of a frame 80 %
    of it in both channels, so each stem keeps a fifth of the other where that one is loud."""
    loud = (torch.arange(FRAMES) % 2 == 0).float()
    first, second = _noise(0) * (0.3 + 0.7 * loud), _noise(1) * (1.0 - 0.7 * loud)
    stems = torch.cat([_spectrum(0.9 * first, 0.436 * first), _spectrum(0.436 * second, 0.9 * _rotated(second, 1.0))],
                      dim=1)  # (1, 2 stems, 2 channels, 2, bins, frames)
    share = 0.8 * loud + 0.2 * (1 - loud)
    masks = torch.stack([share, 1 - share]).view(1, 2, 1, 1, 1, FRAMES).expand(1, 2, 2, 1, BINS, FRAMES)
    return stems, stems.sum(dim=1, keepdim=True), masks


def test_stems_panned_apart_are_told_apart_better_than_by_the_masks() -> None:
    stems, mix, masks = _panned_pair()
    masked = spatial_wiener(mix, masks, 0.0)
    filtered = spatial_wiener(mix, masks, 1.0)
    for stem in range(2):
        masked_sdr, filtered_sdr = _sdr(stems[:, stem], masked[:, stem]), _sdr(stems[:, stem], filtered[:, stem])
        assert 6 < masked_sdr < 9  # the masks leave a fifth of the other stem in half the frames
        assert filtered_sdr > masked_sdr + 2.5  # the stereo field takes most of it out
    assert torch.allclose(filtered.sum(dim=1, keepdim=True), mix, atol=1e-5)


def test_the_share_blends_the_filtered_stems_with_the_masked_mix() -> None:
    _, mix, masks = _panned_pair()
    assert torch.equal(spatial_wiener(mix, masks, 0.0), masks * mix)
    half = spatial_wiener(mix, masks, 0.5)
    assert torch.allclose(half, 0.5 * (spatial_wiener(mix, masks, 1.0) + masks * mix), atol=1e-6)
    assert torch.allclose(half.sum(dim=1, keepdim=True), mix, atol=1e-5)


@pytest.mark.parametrize("gain", [1e-3, 1e3])
def test_a_quiet_or_loud_mix_is_filtered_alike(gain: float) -> None:
    _, mix, masks = _panned_pair()
    assert torch.allclose(spatial_wiener(gain * mix, masks, 1.0), gain * spatial_wiener(mix, masks, 1.0),
                          rtol=1e-4, atol=1e-5 * gain)


def test_a_mix_with_both_channels_alike_stays_finite_and_sums_to_the_mix() -> None:
    # every stem in the centre: the mix covariance is singular but for its loading
    centre = _noise(2)
    mix = _spectrum(centre, centre)
    masks = torch.softmax(torch.randn(1, 3, 1, 1, BINS, FRAMES, generator=torch.Generator().manual_seed(3)), dim=1)
    masks = masks.expand(1, 3, 2, 1, BINS, FRAMES)
    stems = spatial_wiener(mix, masks, 1.0)
    assert torch.isfinite(stems).all()
    assert torch.allclose(stems.sum(dim=1, keepdim=True), mix, atol=1e-4)
    assert torch.allclose(stems[:, :, 0], stems[:, :, 1], atol=1e-4)  # the stems stay in the centre


def test_silence_gives_silent_stems() -> None:
    _, mix, masks = _panned_pair()
    stems = spatial_wiener(torch.zeros_like(mix), masks, 1.0)
    assert torch.equal(stems, torch.zeros_like(stems))


def test_the_filter_is_for_two_channels() -> None:
    mono = torch.ones(1, 1, 1, 2, BINS, FRAMES)
    masks = torch.full((1, 2, 1, 1, BINS, FRAMES), 0.5)
    assert torch.equal(spatial_wiener(mono, masks, 0.0), masks * mono)
    with pytest.raises(ValueError, match="needs 2 channels, got 1"):
        spatial_wiener(mono, masks, 0.5)
