"""The batched, real-valued Wiener filter against openunmix.filtering.wiener."""

from __future__ import annotations

import pytest
import torch
from stemserve.export.packages import openunmix_model
from stemserve.export.wiener_graph import wiener_excerpt, wiener_windows

from tests.unit import export_fixtures

one_thread = export_fixtures.one_thread
pytestmark = pytest.mark.usefixtures("one_thread")

BATCH, FRAMES, BINS, CHANNELS, SOURCES = 2, 12, 33, 2, 4


def _inputs(seed: int, nb_sources: int = SOURCES) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixture ``(batch, channels, 2, bins, frames)``, magnitudes ``(batch, sources, channels, bins, frames)``."""
    generator = torch.Generator().manual_seed(seed)
    mix = torch.randn(BATCH, CHANNELS, 2, BINS, FRAMES, generator=generator) * 30
    mix[0, :, :, 5, 3] = 0.0  # silent bins take openunmix's atan2(0, 0) = 0 path
    magnitudes = torch.rand(BATCH, nb_sources, CHANNELS, BINS, FRAMES, generator=generator) * 20
    return mix, magnitudes


def _reference(mix: torch.Tensor, magnitudes: torch.Tensor, niter: int) -> torch.Tensor:
    openunmix_model()  # imports openunmix without torchaudio
    from openunmix.filtering import wiener

    # openunmix: (frames, bins, channels, sources) and (frames, bins, channels, 2)
    outs = [wiener(magnitudes[b].permute(3, 2, 1, 0), mix[b].permute(3, 2, 0, 1).clone(), niter) for b in range(BATCH)]
    # (batch, frames, bins, channels, 2, sources) -> (batch, sources, channels, 2, bins, frames)
    return torch.stack(outs).permute(0, 5, 3, 4, 2, 1)


@pytest.mark.parametrize("niter,nb_sources", [(0, 4), (1, 4), (2, 4), (1, 2), (1, 6)])
def test_wiener_excerpt_matches_openunmix(niter: int, nb_sources: int) -> None:
    mix, magnitudes = _inputs(niter, nb_sources)
    expected = _reference(mix, magnitudes, niter)
    got = wiener_excerpt(mix, magnitudes, niter)
    assert got.shape == expected.shape
    scale = expected.abs().max().item()
    assert (got - expected).abs().max().item() <= 1e-5 * scale
    if niter:
        initial = _reference(mix, magnitudes, 0)
        assert (expected - initial).abs().max().item() > 1e-2 * scale  # EM did change things


def test_windows_filter_each_excerpt_on_its_own() -> None:
    mix, magnitudes = _inputs(7)
    got = wiener_windows(mix, magnitudes, niter=1, window_frames=5)
    tail = wiener_excerpt(mix[..., 10:], magnitudes[..., 10:], 1)
    whole = wiener_excerpt(mix, magnitudes, 1)
    assert torch.allclose(got[..., 10:], tail, atol=1e-5)
    assert not torch.allclose(got, whole, atol=1e-3)


def test_wiener_graph_is_stereo_only() -> None:
    mix, magnitudes = _inputs(1)
    with pytest.raises(ValueError, match="for 2 channels, got 1"):
        wiener_windows(mix[:, :1], magnitudes[:, :, :1], niter=1, window_frames=5)
