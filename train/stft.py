"""STFT and inverse STFT as real-valued matrix products, exportable to ONNX without complex
tensors and cheap on a CPU.

A length-``n_fft`` DFT with ``n_fft = P * Q`` is split Cooley-Tukey style into a P-point
DFT, a twiddle product and a Q-point DFT (for 1024 = 32 * 32 about 8 times fewer
multiplications than one dense DFT matrix, and no 4 MB basis in the exported file). Frames
use a periodic sqrt-Hann window at hop ``n_fft / 2``: its square overlap-adds to exactly 1,
so ``inverse(forward(x)) == x``. The output matches ``torch.stft(pad(x, (hop, hop)),
n_fft, hop, window=sqrt_hann, center=False)`` laid out as ``(batch, 2 * bins, frames)``,
real parts first.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def sqrt_hann(n_fft: int) -> torch.Tensor:
    """Periodic sqrt-Hann: its square overlap-adds to exactly 1 at hop n_fft/2."""
    n = torch.arange(n_fft, dtype=torch.float64)
    return torch.sin(math.pi * n / n_fft)


def _split(n_fft: int) -> tuple[int, int]:
    """n_fft = p * q with p, q as close as possible (powers of two: p == q or p == 2 q)."""
    p = 2 ** math.ceil(math.log2(n_fft) / 2)
    if n_fft % p:
        raise ValueError(f"n_fft must be a power of two, got {n_fft}")
    return p, n_fft // p


def _phasor(rows: torch.Tensor, cols: torch.Tensor, period: int, sign: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of ``sign * 2 pi * rows x cols / period`` in float64, reduced mod period."""
    phase = torch.remainder(torch.outer(rows, cols), period).double() * (2 * math.pi / period)
    return torch.cos(phase), sign * torch.sin(phase)


class FactorizedSTFT(nn.Module):
    def __init__(self, n_fft: int, hop: int) -> None:
        super().__init__()
        if n_fft != 2 * hop:
            raise ValueError(f"hop must be n_fft / 2, got n_fft {n_fft} and hop {hop}")
        self.n_fft, self.hop = n_fft, hop
        self.nb_bins = n_fft // 2 + 1
        p, q = self.p, self.q = _split(n_fft)
        self.nb_k2 = self.nb_bins // p + 1  # bins k = k1 + p * k2, k2 < nb_k2 covers 0..n_fft/2
        ip, iq, ik2 = torch.arange(p), torch.arange(q), torch.arange(self.nb_k2)
        buffers = {
            "window": sqrt_hann(n_fft).view(p, q),  # (a, b) with n = q * a + b
            # forward: X[k1 + p k2] = sum_b e^{-i k2 b/q} e^{-i k1 b/n} sum_a x[q a + b] e^{-i k1 a/p}
            **dict(zip(("f1_re", "f1_im"), _phasor(ip, ip, p, -1.0))),  # (k1, a)
            **dict(zip(("f2_re", "f2_im"), _phasor(ip, iq, n_fft, -1.0))),  # (k1, b)
            **dict(zip(("f3_re", "f3_im"), _phasor(iq, ik2, q, -1.0))),  # (b, k2)
            # inverse: y[q a + b] = Re sum_k1 e^{i k1 a/p} e^{i k1 b/n} sum_k2 Y[k1 + p k2] e^{i k2 b/q}
            **dict(zip(("i1_re", "i1_im"), _phasor(ik2, iq, q, 1.0))),  # (k2, b)
            **dict(zip(("i2_re", "i2_im"), _phasor(ip, iq, n_fft, 1.0))),  # (k1, b)
            **dict(zip(("i3_re", "i3_im"), _phasor(ip, ip, p, 1.0))),  # (a, k1)
        }
        for name, value in buffers.items():
            self.register_buffer(name, value.float(), persistent=False)
        scale = torch.full((self.nb_bins,), 2.0 / n_fft)
        scale[0] = scale[-1] = 1.0 / n_fft  # inverse real DFT weights
        self.register_buffer("inverse_scale", scale.view(1, -1, 1), persistent=False)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` -> ``(batch, 2 * bins, frames)`` (real rows, then imaginary)."""
        batch, samples = signal.shape
        extra = -samples % self.hop  # complete the last frame
        padded = F.pad(signal, (self.hop, self.hop + extra))
        blocks = padded.view(batch, -1, self.hop)  # (batch, frames + 1, hop)
        frames = torch.cat([blocks[:, :-1], blocks[:, 1:]], dim=2)  # (batch, frames, n_fft)
        nb_frames = frames.shape[1]
        x = frames.view(batch, nb_frames, self.p, self.q) * self.window  # (batch, frames, a, b)
        u_re, u_im = torch.matmul(self.f1_re, x), torch.matmul(self.f1_im, x)  # (batch, frames, k1, b)
        v_re = u_re * self.f2_re - u_im * self.f2_im
        v_im = u_re * self.f2_im + u_im * self.f2_re
        x_re = torch.matmul(v_re, self.f3_re) - torch.matmul(v_im, self.f3_im)  # (batch, frames, k1, k2)
        x_im = torch.matmul(v_re, self.f3_im) + torch.matmul(v_im, self.f3_re)
        spec = torch.stack([x_re, x_im], dim=1)  # (batch, 2, frames, k1, k2)
        spec = spec.transpose(3, 4).reshape(batch, 2, nb_frames, self.p * self.nb_k2)  # k = k1 + p k2
        spec = spec[..., : self.nb_bins].transpose(2, 3)  # (batch, 2, bins, frames)
        return spec.reshape(batch, 2 * self.nb_bins, nb_frames)

    def inverse(self, spec: torch.Tensor, nb_samples: int) -> torch.Tensor:
        """``(batch, 2 * bins, frames)`` -> ``(batch, samples)``."""
        batch, _, nb_frames = spec.shape
        spec = (spec.view(batch, 2, self.nb_bins, nb_frames) * self.inverse_scale.unsqueeze(1))
        spec = F.pad(spec.transpose(2, 3), (0, self.p * self.nb_k2 - self.nb_bins))  # (batch, 2, frames, k)
        spec = spec.reshape(batch, 2, nb_frames, self.nb_k2, self.p).transpose(3, 4)  # (batch, 2, frames, k1, k2)
        y_re, y_im = spec[:, 0], spec[:, 1]
        w_re = torch.matmul(y_re, self.i1_re) - torch.matmul(y_im, self.i1_im)  # (batch, frames, k1, b)
        w_im = torch.matmul(y_re, self.i1_im) + torch.matmul(y_im, self.i1_re)
        t_re = w_re * self.i2_re - w_im * self.i2_im
        t_im = w_re * self.i2_im + w_im * self.i2_re
        frames = torch.matmul(self.i3_re, t_re) - torch.matmul(self.i3_im, t_im)  # (batch, frames, a, b)
        frames = (frames * self.window).reshape(batch, nb_frames, self.n_fft)  # n = q * a + b
        first, second = frames[..., : self.hop], frames[..., self.hop:]  # (batch, frames, hop)
        blocks = F.pad(first, (0, 0, 0, 1)) + F.pad(second, (0, 0, 1, 0))  # (batch, frames + 1, hop)
        return blocks.reshape(batch, -1)[:, self.hop: self.hop + nb_samples]

