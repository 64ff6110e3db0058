"""STFT and inverse STFT as real-valued convolutions.

TensorRT and several ONNX runtimes cannot take complex tensors, so the exported graphs
compute the short-time Fourier transform with a ``conv1d`` whose kernels are the windowed
cosine and sine rows of the DFT matrix, and the inverse with a ``conv_transpose1d`` whose
kernels are the windowed rows of the inverse real DFT (computed as a matmul plus an
overlap-add of hop-sized blocks when the hop divides the window), followed by the same
window-envelope normalisation that ``torch.istft`` applies.

Conventions follow ``torch.stft`` / ``torch.istft`` (``onesided=True``): a spectrogram is
carried as a real tensor ``(..., 2, nb_bins, nb_frames)`` where axis ``-3`` is
(real, imaginary). Bins above ``nb_bins`` are treated as zero, so a model that drops the
Nyquist bin (HT-Demucs) passes ``nb_bins = n_fft // 2``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

REAL_IMAG = 2  # size of the (real, imaginary) axis


def _dft_kernels(window: np.ndarray, nb_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Windowed DFT rows: cos and -sin, each (nb_bins, n_fft), float64."""
    n_fft = window.shape[0]
    phase = 2.0 * math.pi * np.outer(np.arange(nb_bins), np.arange(n_fft)) / n_fft
    return np.cos(phase) * window, -np.sin(phase) * window


class ConvSTFT(nn.Module):
    """``torch.stft(..., center=False, onesided=True)`` of an already padded signal.

    Input ``(batch, nb_signals, nb_samples)``; output
    ``(batch, nb_signals, 2, nb_bins, nb_frames)`` with
    ``nb_frames = (nb_samples - n_fft) // hop_length + 1``.
    """

    def __init__(self, *, window: torch.Tensor, hop_length: int, nb_bins: int, normalized: bool) -> None:
        super().__init__()
        window_np = window.detach().double().cpu().numpy()
        n_fft = window_np.shape[0]
        if not 1 <= nb_bins <= n_fft // 2 + 1:
            raise ValueError(f"nb_bins must be within 1-{n_fft // 2 + 1}, got {nb_bins}")
        cos, sin = _dft_kernels(window_np, nb_bins)
        scale = 1.0 / math.sqrt(n_fft) if normalized else 1.0
        kernel = np.concatenate([cos, sin], axis=0) * scale  # (2 * nb_bins, n_fft)
        self.register_buffer(
            "kernel", torch.from_numpy(kernel[:, None, :]).float(), persistent=False
        )  # (out_channels = 2 * nb_bins, in_channels = 1, n_fft)
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.nb_bins = nb_bins

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        nb_signals, nb_samples = signal.shape[1], signal.shape[2]
        flat = signal.reshape(-1, 1, nb_samples)  # (batch * signals, 1, samples)
        spec = F.conv1d(flat, self.kernel, stride=self.hop_length)
        # (batch * signals, 2 * bins, frames) -> (batch, signals, 2, bins, frames)
        return spec.reshape(-1, nb_signals, REAL_IMAG, self.nb_bins, spec.shape[-1])


class ConvISTFT(nn.Module):
    """``torch.istft(..., center=True, onesided=True)`` for a fixed frame count.

    Input ``(batch, nb_signals, 2, nb_bins, nb_frames)``; output
    ``(batch, nb_signals, length)``. The window envelope (sum of squared, shifted windows)
    depends only on ``nb_frames``, so it is a constant of the graph.
    """

    def __init__(
        self,
        *,
        window: torch.Tensor,
        hop_length: int,
        nb_bins: int,
        normalized: bool,
        nb_frames: int,
        length: int,
    ) -> None:
        super().__init__()
        window_np = window.detach().double().cpu().numpy()
        n_fft = window_np.shape[0]
        if not 1 <= nb_bins <= n_fft // 2 + 1:
            raise ValueError(f"nb_bins must be within 1-{n_fft // 2 + 1}, got {nb_bins}")
        full_length = (nb_frames - 1) * hop_length + n_fft
        start = n_fft // 2  # center=True trims half a window on the left
        if start + length > full_length:
            raise ValueError(f"length must be <= {full_length - start} for {nb_frames} frames, got {length}")
        cos, sin = _dft_kernels(window_np, nb_bins)
        # Hermitian symmetry: bins strictly between DC and Nyquist count twice.
        weight = np.full(nb_bins, 2.0)
        weight[0] = 1.0
        if nb_bins == n_fft // 2 + 1:
            weight[-1] = 1.0
        scale = 1.0 / math.sqrt(n_fft) if normalized else 1.0 / n_fft
        # real part of sum_k X_k e^{+i theta} = re * cos - im * sin  (sin here is -sin)
        kernel = np.concatenate([cos, sin], axis=0) * np.tile(weight, 2)[:, None] * scale
        self.register_buffer(
            "kernel", torch.from_numpy(kernel[:, None, :]).float(), persistent=False
        )  # (in_channels = 2 * nb_bins, out_channels = 1, n_fft)
        envelope = np.zeros(full_length)
        for frame in range(nb_frames):
            envelope[frame * hop_length : frame * hop_length + n_fft] += window_np**2
        envelope = envelope[start : start + length]
        if envelope.min() < 1e-11:
            raise ValueError("window envelope vanishes inside the output: not invertible")
        self.register_buffer(
            "inverse_envelope", torch.from_numpy(1.0 / envelope).float(), persistent=False
        )  # (length,)
        self.hop_length = hop_length
        self.nb_bins = nb_bins
        self.nb_frames = nb_frames
        self.start = start
        self.length = length

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        nb_signals = spec.shape[1]
        # (batch, signals, 2, bins, frames) -> (batch * signals, 2 * bins, frames)
        flat = spec.reshape(-1, REAL_IMAG * self.nb_bins, self.nb_frames)
        n_fft = self.kernel.shape[-1]
        if n_fft % self.hop_length == 0:
            signal = self._matmul_overlap_add(flat, n_fft // self.hop_length)
        else:
            signal = F.conv_transpose1d(flat, self.kernel, stride=self.hop_length)[:, 0]
        signal = signal[:, self.start : self.start + self.length] * self.inverse_envelope
        return signal.reshape(-1, nb_signals, self.length)  # (batch, signals, samples)

    def _matmul_overlap_add(self, flat: torch.Tensor, blocks_per_frame: int) -> torch.Tensor:
        """``conv_transpose1d`` when the hop divides the window: one matmul gives every
        frame's samples, then frame ``t``'s ``k``-th hop-sized block is added at block
        ``t + k``. Same operator, same sums; ONNX Runtime's ConvTranspose takes about twice
        as long for 4096-tap kernels."""
        frames = flat.transpose(1, 2) @ self.kernel[:, 0, :]  # (batch * signals, frames, n_fft)
        # (batch * signals, frames, n_fft) -> (batch * signals, frames, blocks, hop)
        blocks = frames.reshape(-1, self.nb_frames, blocks_per_frame, self.hop_length)
        total = None
        for k in range(blocks_per_frame):
            # frame t's block k lands on output block t + k
            shifted = F.pad(blocks[:, :, k], (0, 0, k, blocks_per_frame - 1 - k))
            total = shifted if total is None else total + shifted
        # (batch * signals, frames + blocks - 1, hop) -> (batch * signals, samples)
        return total.reshape(-1, (self.nb_frames + blocks_per_frame - 1) * self.hop_length)
