"""The batched, real-valued Wiener filter against openunmix.filtering.wiener."""

from __future__ import annotations

import pytest
import torch

from export.packages import openunmix_model
from export.wiener_graph import wiener_excerpt, wiener_windows
from tests.unit import export_fixtures

one_thread = export_fixtures.one_thread
pytestmark = pytest.mark.usefixtures("one_thread")

BATCH, FRAMES, BINS, CHANNELS, SOURCES = 2, 12, 33, 2, 4


def _inputs(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    mix = torch.randn(BATCH, FRAMES, BINS, CHANNELS, 2, generator=generator) * 30
    mix[0, 3, 5] = 0.0  # silent bins take openunmix's atan2(0, 0) = 0 path
    magnitudes = torch.rand(BATCH, FRAMES, BINS, CHANNELS, SOURCES, generator=generator) * 20
    return mix[..., 0], mix[..., 1], magnitudes


def _reference(mix_re, mix_im, magnitudes, niter):
    openunmix_model()  # imports openunmix without torchaudio
    from openunmix.filtering import wiener

    outs = [wiener(magnitudes[b], torch.stack([mix_re[b], mix_im[b]], -1).clone(), niter) for b in range(BATCH)]
    # (frames, bins, channels, 2, sources) -> (frames, bins, sources, channels, 2)
    return torch.stack(outs).permute(0, 1, 2, 5, 3, 4)


@pytest.mark.parametrize("niter", [0, 1, 2])
def test_wiener_excerpt_matches_openunmix(niter: int) -> None:
    mix_re, mix_im, magnitudes = _inputs(niter)
    expected = _reference(mix_re, mix_im, magnitudes, niter)
    got_re, got_im = wiener_excerpt(mix_re, mix_im, magnitudes, niter)
    got = torch.stack([got_re, got_im], -1)
    scale = expected.abs().max().item()
    assert (got - expected).abs().max().item() <= 1e-5 * scale
    if niter:
        initial = _reference(mix_re, mix_im, magnitudes, 0)
        assert (expected - initial).abs().max().item() > 1e-2 * scale  # EM did change things


def test_windows_filter_each_excerpt_on_its_own() -> None:
    mix_re, mix_im, magnitudes = _inputs(7)
    got_re, _ = wiener_windows(mix_re, mix_im, magnitudes, niter=1, window_frames=5, nb_frames=FRAMES)
    tail_re, _ = wiener_excerpt(mix_re[:, 10:], mix_im[:, 10:], magnitudes[:, 10:], 1)
    whole_re, _ = wiener_excerpt(mix_re, mix_im, magnitudes, 1)
    assert torch.allclose(got_re[:, 10:], tail_re, atol=1e-5)
    assert not torch.allclose(got_re, whole_re, atol=1e-3)


def test_wiener_graph_is_stereo_only() -> None:
    mix_re, mix_im, magnitudes = _inputs(1)
    with pytest.raises(ValueError, match="for 2 channels, got 1"):
        wiener_windows(
            mix_re[..., :1], mix_im[..., :1], magnitudes[..., :1, :], niter=1, window_frames=5, nb_frames=FRAMES
        )
