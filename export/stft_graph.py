"""STFT and inverse STFT as a factorised real-valued DFT: small matrix products, no complex
tensors (TensorRT and several ONNX runtimes cannot take them), no dense DFT basis.

A length-``n_fft`` DFT with ``n_fft = p * q`` (``p`` and ``q`` close to ``sqrt(n_fft)``) is
split Cooley-Tukey style. With sample ``n = q a + b`` (``a < p``, ``b < q``) and bin
``k = k1 + p k2`` (``k1 < p``)::

    X[k1 + p k2] = sum_b e^{-2 pi i b (k1 + p k2) / n_fft} sum_a x[q a + b] e^{-2 pi i k1 a / p}

because ``(k1 + p k2)(q a + b) / n_fft = k1 a / p + b (k1 + p k2) / n_fft + k2 a``. The
inner sum is a ``p``-point DFT of every column ``b``: one matrix ``(2 p, p)`` (real and
imaginary rows). The outer sum, twiddle factor included, is one ``(2 nb_k2, 2 q)`` matrix
per ``k1``. That is ``2 n_fft (p + q)`` multiply-adds per frame instead of the
``2 n_fft nb_bins`` of a dense DFT (16 times fewer for 4096 = 64 * 64) and constants of
about ``4 q nb_bins`` values instead of ``2 n_fft nb_bins``. The inverse runs the same
stages backwards: the per-``k1`` matrices (with the Hermitian weights of a one-sided
spectrum) first, then a ``(p, 2 p)`` matrix that keeps only the real part.

Frames are carried with the frame axis innermost, ``(signals, n_fft, frames)``, so both
stages are plain matrix products over contiguous blocks and no large transpose is needed.
Framing and overlap-add use hop-sized blocks (a frame is ``ceil(n_fft / hop)`` blocks,
the last one cut or zero-padded), so any hop works.

Conventions follow ``torch.stft`` / ``torch.istft`` (``onesided=True``): a spectrogram is
carried as a real tensor ``(..., 2, nb_bins, nb_frames)`` where axis ``-3`` is
(real, imaginary). Bins above ``nb_bins`` are treated as zero, so a model that drops the
Nyquist bin (HT-Demucs) passes ``nb_bins = n_fft // 2``.

The inverse divides by the window envelope (the sum of the squared, shifted windows) as
``torch.istft`` does. Given ``nb_frames`` and ``length`` it is a constant of the graph (the
exported graphs of the published architectures, one fixed window each). Without them the
inverse takes any frame count and length, which needs an envelope that is one constant
wherever the output lies: a window whose squares overlap-add to a constant at this hop
(a sqrt-Hann window at half overlap, as the default model's) and a hop of at least half a
window, so that every output sample is covered by all the frames it can be.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

REAL_IMAG = 2  # size of the (real, imaginary) axis


def split_size(n_fft: int) -> tuple[int, int]:
    """``n_fft = p * q`` with ``p`` the largest divisor not above ``sqrt(n_fft)``."""
    p = next(d for d in range(math.isqrt(n_fft), 0, -1) if n_fft % d == 0)
    return p, n_fft // p


def _phasor(exponent: np.ndarray, period: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of ``2 pi exponent / period`` in float64, the integer exponent reduced
    modulo the period first so that large products lose no precision."""
    phase = np.remainder(exponent, period) * (2.0 * math.pi / period)
    return np.cos(phase), np.sin(phase)


def _validated(window: torch.Tensor, nb_bins: int) -> np.ndarray:
    window_np = window.detach().double().cpu().numpy()
    n_fft = window_np.shape[0]
    if not 1 <= nb_bins <= n_fft // 2 + 1:
        raise ValueError(f"nb_bins must be within 1-{n_fft // 2 + 1}, got {nb_bins}")
    return window_np


def _buffer(module: nn.Module, name: str, value: np.ndarray) -> None:
    module.register_buffer(name, torch.from_numpy(value).float(), persistent=False)


class FactorizedSTFT(nn.Module):
    """``torch.stft(..., center=False, onesided=True)`` of an already padded signal.

    Input ``(batch, nb_signals, nb_samples)``; output
    ``(batch, nb_signals, 2, nb_bins, nb_frames)`` with
    ``nb_frames = (nb_samples - n_fft) // hop_length + 1``.
    """

    def __init__(self, *, window: torch.Tensor, hop_length: int, nb_bins: int, normalized: bool) -> None:
        super().__init__()
        window_np = _validated(window, nb_bins)
        n_fft = window_np.shape[0]
        p, q = split_size(n_fft)
        nb_k2 = -(-nb_bins // p)  # bins k = k1 + p k2 < p * nb_k2 cover 0 .. nb_bins - 1
        scale = 1.0 / math.sqrt(n_fft) if normalized else 1.0
        k1, a, b, k2 = np.arange(p), np.arange(p), np.arange(q), np.arange(nb_k2)
        # inner p-point DFT, rows (k1, real / imaginary): u[k1] = sum_a x[q a + b] e^{-i k1 a / p}
        cos, sin = _phasor(np.outer(k1, a), p)
        inner = np.stack([cos, -sin], axis=1).reshape(REAL_IMAG * p, p) * scale
        # outer sum with the twiddle, per k1: rows (real / imaginary, k2), columns (real / imaginary, b)
        cos, sin = _phasor((k1[:, None, None] + p * k2[None, :, None]) * b[None, None, :], n_fft)  # (k1, k2, b)
        # (re + i im) e^{-i phi} = (re cos + im sin) + i (im cos - re sin)
        outer = np.concatenate([np.concatenate([cos, sin], 2), np.concatenate([-sin, cos], 2)], 1)
        _buffer(self, "window", window_np[:, None])  # (n_fft, 1)
        _buffer(self, "inner", inner)  # (2 p, p)
        _buffer(self, "outer", outer)  # (p, 2 nb_k2, 2 q)
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.nb_bins = nb_bins
        self.p, self.q, self.nb_k2 = p, q, nb_k2

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        nb_signals, nb_samples = signal.shape[1], signal.shape[2]
        nb_frames = (nb_samples - self.n_fft) // self.hop_length + 1
        frames = self._frames(signal.reshape(-1, nb_samples), nb_frames) * self.window  # (n, n_fft, frames)
        # (n, n_fft, frames) -> (n, a, b * frames): the inner DFT over a
        u = self.inner @ frames.reshape(-1, self.p, self.q * nb_frames)  # (n, 2 p, q * frames)
        # (n, (k1, re/im), (b, frames)) -> (n, k1, (re/im, b), frames): the outer sum per k1
        spec = self.outer @ u.reshape(-1, self.p, REAL_IMAG * self.q, nb_frames)  # (n, k1, 2 nb_k2, frames)
        # (n, k1, re/im, k2, frames) -> (n, re/im, k2, k1, frames): bin k = k1 + p k2
        spec = spec.reshape(-1, self.p, REAL_IMAG, self.nb_k2, nb_frames).permute(0, 2, 3, 1, 4)
        spec = spec.reshape(-1, REAL_IMAG, self.nb_k2 * self.p, nb_frames)
        if self.nb_k2 * self.p > self.nb_bins:
            spec = spec[:, :, : self.nb_bins]
        return spec.reshape(-1, nb_signals, REAL_IMAG, self.nb_bins, nb_frames)

    def _frames(self, flat: torch.Tensor, nb_frames: int) -> torch.Tensor:
        """``(n, samples)`` -> ``(n, n_fft, frames)``: frame ``t`` is samples from ``t * hop``."""
        hop = self.hop_length
        blocks_per_frame = -(-self.n_fft // hop)
        nb_blocks = nb_frames + blocks_per_frame - 1
        extra = nb_blocks * hop - flat.shape[-1]  # zeros the last frame's cut block reads
        if extra:
            flat = F.pad(flat, (0, extra)) if extra > 0 else flat[:, : nb_blocks * hop]
        blocks = flat.reshape(-1, nb_blocks, hop).transpose(1, 2)  # (n, hop, blocks)
        # block k of frame t is signal block t + k
        frames = torch.cat([blocks[:, :, k : k + nb_frames] for k in range(blocks_per_frame)], dim=1)
        return frames[:, : self.n_fft] if blocks_per_frame * hop > self.n_fft else frames  # (n, n_fft, frames)


def overlap_gain(window: np.ndarray, hop_length: int) -> float | None:
    """The constant that the squared window, shifted by every multiple of ``hop_length``,
    sums to; None where that sum is not constant (to float32 precision)."""
    squares = window.astype(np.float64) ** 2
    envelope = np.zeros(hop_length)
    for offset in range(0, squares.shape[0], hop_length):
        block = squares[offset : offset + hop_length]
        envelope[: block.shape[0]] += block
    if envelope.min() < 1e-11 or envelope.max() - envelope.min() > 1e-6 * envelope.max():
        return None
    return float(envelope.mean())


class FactorizedISTFT(nn.Module):
    """``torch.istft(..., center=True, onesided=True)``.

    Input ``(batch, nb_signals, 2, nb_bins, nb_frames)``; output
    ``(batch, nb_signals, length)``. With ``nb_frames`` and ``length`` the window envelope
    (sum of squared, shifted windows) is a constant of the graph; without them, frames and
    ``length`` come with each call and the envelope must be one constant (see the module
    docstring).
    """

    def __init__(
        self,
        *,
        window: torch.Tensor,
        hop_length: int,
        nb_bins: int,
        normalized: bool,
        nb_frames: int | None = None,
        length: int | None = None,
    ) -> None:
        super().__init__()
        window_np = _validated(window, nb_bins)
        n_fft = window_np.shape[0]
        start = n_fft // 2  # center=True trims half a window on the left
        if (nb_frames is None) != (length is None):
            raise ValueError("give both nb_frames and length, or neither")
        gain = 1.0
        if nb_frames is None:
            gain = overlap_gain(window_np, hop_length)
            if gain is None or start < n_fft - hop_length:
                raise ValueError(
                    "an inverse for any frame count needs a window whose squares overlap-add to a "
                    f"constant and a hop of at least n_fft / 2, got n_fft {n_fft} and hop {hop_length}"
                )
        else:
            full_length = (nb_frames - 1) * hop_length + n_fft
            if start + length > full_length:
                raise ValueError(f"length must be <= {full_length - start} for {nb_frames} frames, got {length}")
        p, q = split_size(n_fft)
        nb_k2 = -(-nb_bins // p)
        k1, a, b, k2 = np.arange(p), np.arange(p), np.arange(q), np.arange(nb_k2)
        # Hermitian symmetry: bins strictly between DC and Nyquist count twice, missing bins 0.
        bins = k1[:, None] + p * k2[None, :]  # (k1, k2)
        weight = np.where(bins < nb_bins, 2.0, 0.0)
        weight[bins == 0] = 1.0
        if n_fft % 2 == 0 and nb_bins == n_fft // 2 + 1:
            weight[bins == n_fft // 2] = 1.0  # Nyquist
        # per k1, the sum over k2 with the twiddle: w[b] = sum_k2 Y[k1 + p k2] e^{+i b k / n_fft}
        cos, sin = _phasor(bins[:, None, :] * b[None, :, None], n_fft)  # (k1, b, k2)
        cos, sin = cos * weight[:, None, :], sin * weight[:, None, :]
        # rows (real / imaginary, b), columns (real / imaginary, k2)
        outer = np.concatenate([np.concatenate([cos, -sin], 2), np.concatenate([sin, cos], 2)], 1)
        # then the real part of the p-point inverse DFT: y[q a + b] = Re sum_k1 e^{+i k1 a / p} w[k1, b]
        cos, sin = _phasor(np.outer(a, k1), p)  # (a, k1)
        scale = (1.0 / math.sqrt(n_fft) if normalized else 1.0 / n_fft) / gain  # a constant envelope folds in
        inner = np.stack([cos, -sin], axis=2).reshape(p, REAL_IMAG * p) * scale  # columns (k1, re/im)
        _buffer(self, "outer", outer)  # (p, 2 q, 2 nb_k2)
        _buffer(self, "inner", inner)  # (p, 2 p)
        _buffer(self, "window", window_np[:, None])  # (n_fft, 1)
        if nb_frames is not None:
            envelope = np.zeros(full_length)
            for frame in range(nb_frames):
                envelope[frame * hop_length : frame * hop_length + n_fft] += window_np**2
            envelope = envelope[start : start + length]
            if envelope.min() < 1e-11:
                raise ValueError("window envelope vanishes inside the output: not invertible")
            _buffer(self, "inverse_envelope", 1.0 / envelope)  # (length,)
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.nb_bins = nb_bins
        self.nb_frames = nb_frames
        self.start = start
        self.length = length
        self.p, self.q, self.nb_k2 = p, q, nb_k2

    def forward(self, spec: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """``length``: the output samples, given with each call where the module has none."""
        nb_signals = spec.shape[1]
        nb_frames = spec.shape[-1] if self.nb_frames is None else self.nb_frames
        length = self._length(length, nb_frames)
        # (batch, signals, 2, bins, frames) -> (n, 2, k2 * k1, frames), missing bins zero
        flat = spec.reshape(-1, REAL_IMAG, self.nb_bins, nb_frames)
        if self.p * self.nb_k2 > self.nb_bins:
            flat = F.pad(flat, (0, 0, 0, self.p * self.nb_k2 - self.nb_bins))
        # (n, re/im, k2, k1, frames) -> (n, k1, (re/im, k2), frames)
        flat = flat.reshape(-1, REAL_IMAG * self.nb_k2, self.p, nb_frames).transpose(1, 2)
        w = self.outer @ flat  # (n, k1, (re/im, b), frames)
        # (n, k1, re/im, b, frames) -> (n, (k1, re/im), (b, frames)): the inner inverse DFT
        frames = self.inner @ w.reshape(-1, REAL_IMAG * self.p, self.q * nb_frames)  # (n, a, b * frames)
        frames = frames.reshape(-1, self.n_fft, nb_frames) * self.window  # n = q a + b
        signal = self._overlap_add(frames, nb_frames)[:, self.start : self.start + length]
        if self.nb_frames is not None:
            signal = signal * self.inverse_envelope
        return signal.reshape(-1, nb_signals, length)  # (batch, signals, samples)

    def _length(self, length: int | None, nb_frames: int) -> int:
        if self.length is not None:
            if length not in (None, self.length):
                raise ValueError(f"this inverse gives {self.length} samples, not {length}")
            return self.length
        if length is None:
            raise ValueError("length must be given with each call to an inverse for any frame count")
        if self.start + length > nb_frames * self.hop_length:  # the last samples lack a frame
            raise ValueError(f"length must be <= {nb_frames * self.hop_length - self.start} "
                             f"for {nb_frames} frames, got {length}")
        return length

    def _overlap_add(self, frames: torch.Tensor, nb_frames: int) -> torch.Tensor:
        """``(n, n_fft, frames)`` -> ``(n, samples)``: frame ``t``'s ``k``-th hop-sized block
        (the last one zero-padded) is added at block ``t + k``."""
        hop = self.hop_length
        blocks_per_frame = -(-self.n_fft // hop)
        if blocks_per_frame * hop > self.n_fft:
            frames = F.pad(frames, (0, 0, 0, blocks_per_frame * hop - self.n_fft))
        blocks = frames.reshape(-1, blocks_per_frame, hop, nb_frames)  # (n, k, hop, frames)
        total = None
        for k in range(blocks_per_frame):
            shifted = F.pad(blocks[:, k], (k, blocks_per_frame - 1 - k))  # (n, hop, blocks)
            total = shifted if total is None else total + shifted
        # (n, hop, blocks) -> (n, blocks * hop)
        return total.transpose(1, 2).reshape(-1, (nb_frames + blocks_per_frame - 1) * hop)
