"""A spatial (multichannel) Wiener filter on top of a separator's masks.

A mask scales each channel of a time-frequency bin on its own. The stems of a stereo mix
also differ in where they sit in the stereo field, and a filter that reads both channels
together can use that: from the masked mix, each stem gets a power per bin and frame and a
2x2 spatial covariance per bin (over the window's frames), and one expectation-maximization
step of the multichannel Wiener filter (``stemserve.export.wiener_graph.em_step``, Open-Unmix's
post-filter) takes the stem out of both channels at once, so a bass panned left is drawn
from the left channel and a voice in the centre from both.

The filters sum to the identity but for their regularization; the part of the mix they
leave is shared out by the masks, so the stems still sum to the mix exactly. ``share``
blends the filtered stems with the masked mix. The filter has no weights: training fits the
masks alone (``stemserve.train.train.spectral_loss``), and the filter works on whatever masks it gets.
"""

from __future__ import annotations

import torch
from stemserve.export.wiener_graph import channels, em_step, stacked

LOADING = 1e-3  # diagonal loading of the mix covariance, relative to its mean power
MIN_LEVEL = 1e-5  # a window whose mean magnitude is below this (near silence) is not raised further


def spatial_wiener(mix: torch.Tensor, masks: torch.Tensor, share: float) -> torch.Tensor:
    """A mix spectrum ``(batch, 1, channels, 2, bins, frames)`` (axis 3: real, imaginary)
    and masks ``(batch, stems, channels, 1, bins, frames)`` -> stem spectra ``(batch, stems,
    channels, 2, bins, frames)``: ``share`` of the spatial Wiener estimate plus ``1 - share``
    of the masked mix. Stereo only, unless ``share`` is 0."""
    masked = masks * mix
    if share == 0:
        return masked
    if mix.shape[2] != 2:
        raise ValueError(f"a spatial Wiener filter needs 2 channels, got {mix.shape[2]}")
    # at mean magnitude 1, so the filter's absolute floors weigh alike for a quiet and a loud mix
    level = torch.sqrt(mix[:, :, :, 0] ** 2 + mix[:, :, :, 1] ** 2).mean(dim=(1, 2, 3, 4)).clamp(min=MIN_LEVEL)
    level = level.view(-1, 1, 1, 1, 1, 1)
    x = channels(mix[:, 0] / level[:, 0])
    y = [channels(stem) for stem in (masked / level).unbind(dim=1)]
    filtered = stacked(em_step(y, x, LOADING)) * level
    filtered = filtered + masks * (mix - filtered.sum(dim=1, keepdim=True))
    return share * filtered + (1 - share) * masked
