"""Open-Unmix as an exportable graph: one fixed-length window in, stems out.

The graph is ``openunmix.model.Separator`` (``niter`` Wiener EM steps on excerpts of
``wiener_win_len`` frames) for a window of ``nb_frames`` STFT frames: the real-valued
STFT of :mod:`stemserve.export.stft_graph`, each target's spectrogram network, the batched Wiener
filter of :mod:`stemserve.export.wiener_graph`, the inverse STFT.

``OpenUnmix.forward`` reads its sizes from ``x.data.shape``; ``.data`` leaves the trace, so
a traced export would freeze the batch size. :func:`target_forward` is the same forward
with the sizes taken from the traced tensor, reusing the module's own layers. The
bidirectional LSTM therefore sees one window, not the whole track: the front end's
overlap-add joins windows, which is the window/overlap trade-off named in the model's
``config.pbtxt`` (segment and default overlap).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from stemserve.export.stft_graph import FactorizedISTFT, FactorizedSTFT
from stemserve.export.wiener_graph import wiener_windows
from torch import nn
from torch.nn import functional as F


def target_forward(net: nn.Module, magnitude: torch.Tensor) -> torch.Tensor:
    """``OpenUnmix.forward`` for ``(batch, channels, bins, frames)`` with a free batch axis."""
    nb_channels, nb_frames = magnitude.shape[1], magnitude.shape[3]
    # (batch, channels, bins, frames) -> (frames, batch, channels, bins)
    x = magnitude.permute(3, 0, 1, 2)
    mix = x
    x = (x[..., : net.nb_bins] + net.input_mean) * net.input_scale
    # (frames, batch, channels, bins) -> (frames * batch, channels * bins)
    x = net.bn1(net.fc1(x.reshape(-1, nb_channels * net.nb_bins)))
    x = torch.tanh(x.reshape(nb_frames, -1, net.hidden_size))  # (frames, batch, hidden)
    x = torch.cat([x, net.lstm(x)[0]], -1)  # (frames, batch, 2 * hidden)
    x = F.relu(net.bn2(net.fc2(x.reshape(-1, 2 * net.hidden_size))))
    x = net.bn3(net.fc3(x))
    # (frames * batch, channels * bins) -> (frames, batch, channels, bins)
    x = x.reshape(nb_frames, -1, nb_channels, net.nb_output_bins)
    x = x * net.output_scale + net.output_mean
    x = F.relu(x) * mix
    return x.permute(1, 2, 3, 0)  # (batch, channels, bins, frames)


class OpenUnmixGraph(nn.Module):
    """``(batch, 2, segment_samples)`` -> ``(batch, nb_stems, 2, segment_samples)``."""

    def __init__(
        self,
        targets: Sequence[nn.Module],
        *,
        n_fft: int,
        n_hop: int,
        nb_frames: int,
        niter: int,
        wiener_win_len: int,
    ) -> None:
        super().__init__()
        self.targets = nn.ModuleList(copy.deepcopy(t).eval() for t in targets)
        self.nb_stems = len(targets)
        self.nb_channels = 2
        self.nb_bins = n_fft // 2 + 1
        self.nb_frames = nb_frames
        self.n_fft = n_fft
        self.niter = niter if self.nb_stems > 1 else 0
        self.wiener_win_len = wiener_win_len
        # torch.stft(center=True) of L samples has 1 + L // hop frames
        self.segment_samples = (nb_frames - 1) * n_hop
        window = torch.hann_window(n_fft)
        self.stft = FactorizedSTFT(window=window, hop_length=n_hop, nb_bins=self.nb_bins, normalized=False)
        self.istft = FactorizedISTFT(
            window=window,
            hop_length=n_hop,
            nb_bins=self.nb_bins,
            normalized=False,
            nb_frames=nb_frames,
            length=self.segment_samples,
        )

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        padded = F.pad(mix, (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        spec = self.stft(padded)  # (batch, channels, 2, bins, frames)
        re, im = spec[:, :, 0], spec[:, :, 1]  # (batch, channels, bins, frames)
        magnitude = torch.sqrt(re * re + im * im)
        estimates = torch.stack([target_forward(t, magnitude) for t in self.targets], dim=1)
        # (batch, sources, channels, bins, frames) -> (batch, sources, channels, 2, bins, frames)
        stems = wiener_windows(spec, estimates, niter=self.niter, window_frames=self.wiener_win_len)
        # (batch, sources, channels, 2, bins, frames) -> (batch, sources * channels, 2, bins, frames)
        stems = stems.reshape(-1, self.nb_stems * self.nb_channels, 2, self.nb_bins, self.nb_frames)
        wave = self.istft(stems)  # (batch, sources * channels, samples)
        # (batch, sources * channels, samples) -> (batch, sources, channels, samples)
        return wave.reshape(-1, self.nb_stems, self.nb_channels, self.segment_samples)
