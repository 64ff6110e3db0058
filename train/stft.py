"""The stemserve-small model's STFT: the factorised transform of
``stemserve.export.stft_graph`` (the one in-graph STFT of every exported model) with this
model's framing.

Frames use a periodic sqrt-Hann window at hop ``n_fft / 2``: its square overlap-adds to
exactly 1, so the inverse needs no envelope and takes any length, and
``inverse(forward(x)) == x``. The signal is zero-padded by ``frame_padding`` (half a
window before, half a window plus what completes the last hop after), so the output
matches ``torch.stft(pad(x, frame_padding(len(x), hop)), n_fft, hop, window=sqrt_hann,
center=False)`` laid out as ``(batch, 2 * bins, frames)``, real parts first.
"""

from __future__ import annotations

import math

import torch
from stemserve.export.stft_graph import FactorizedISTFT
from stemserve.export.stft_graph import FactorizedSTFT as FrameTransform
from torch import nn
from torch.nn import functional as F


def sqrt_hann(n_fft: int) -> torch.Tensor:
    """Periodic sqrt-Hann: its square overlap-adds to exactly 1 at hop n_fft/2."""
    n = torch.arange(n_fft, dtype=torch.float64)
    return torch.sin(math.pi * n / n_fft)


def frame_padding(nb_samples: int, hop: int) -> tuple[int, int]:
    """Zeros before and after a signal: frame 0 centred on its first sample, and every
    sample inside two frames."""
    return hop, hop + (-nb_samples % hop)


class FactorizedSTFT(nn.Module):
    """``(batch, samples)`` -> ``(batch, 2 * bins, frames)`` and back (``inverse``)."""

    def __init__(self, n_fft: int, hop: int) -> None:
        super().__init__()
        if n_fft != 2 * hop:
            raise ValueError(f"hop must be n_fft / 2, got n_fft {n_fft} and hop {hop}")
        self.n_fft, self.hop = n_fft, hop
        self.nb_bins = n_fft // 2 + 1
        window = sqrt_hann(n_fft)
        self.transform = FrameTransform(window=window, hop_length=hop, nb_bins=self.nb_bins, normalized=False)
        self.inverse_transform = FactorizedISTFT(window=window, hop_length=hop, nb_bins=self.nb_bins,
                                                 normalized=False)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` -> ``(batch, 2 * bins, frames)`` (real rows, then imaginary)."""
        batch, samples = signal.shape
        spec = self.transform(F.pad(signal, frame_padding(samples, self.hop)).unsqueeze(1))
        return spec.reshape(batch, 2 * self.nb_bins, spec.shape[-1])  # (batch, 1, 2, bins, frames) flattened

    def inverse(self, spec: torch.Tensor, nb_samples: int) -> torch.Tensor:
        """``(batch, 2 * bins, frames)`` -> ``(batch, samples)``."""
        batch, _, nb_frames = spec.shape
        signal = self.inverse_transform(spec.reshape(batch, 1, 2, self.nb_bins, nb_frames), nb_samples)
        return signal.reshape(batch, nb_samples)
