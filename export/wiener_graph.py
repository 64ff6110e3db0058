"""Open-Unmix's multichannel Wiener post-filter, batched and real-valued, for export.

Same algorithm as ``openunmix.filtering.wiener(..., softmask=False, residual=False)``
(mixture-phase initial estimates, then ``niter`` expectation-maximisation steps with 2x2
complex spatial covariances), applied to excerpts of ``window_frames`` frames as
``openunmix.model.Separator`` does, but

- over a batch axis (the package loops over batch items in Python),
- with complex numbers as (real, imaginary) pairs of real tensors,
- without in-place slice assignment, so that the graph exports to ONNX and TensorRT,
- and arranged for speed: every source, channel and 2x2 matrix entry is its own
  ``(batch, bins, frames)`` tensor (Python lists, unrolled: 2 channels, a few sources), so
  no small axis is ever the innermost one of a broadcast; the 2x2 algebra is written out
  and uses that the covariances are Hermitian (real diagonal, real determinant); and the
  mixture is whitened once per bin, ``z = inv(Cxx) x``, so that each source's estimate is
  ``y_j = v_j R_j z`` instead of a per-source 2x2 gain matrix applied to ``x``.

Shapes: the mixture spectrogram ``(batch, channels, 2, bins, frames)`` (axis 2: real,
imaginary, as :mod:`stemserve.export.stft_graph` lays it out); the sources' magnitudes
``(batch, sources, channels, bins, frames)``; the estimates come back as
``(batch, sources, channels, 2, bins, frames)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

EPS = 1e-10
SCALE_FACTOR = 10.0  # openunmix scales the mixture down to |x| <= 10 before EM
STEREO = 2
FRAMES_AXIS = -1


@dataclass(frozen=True)
class Complex:
    """A complex tensor as a (real, imaginary) pair of real tensors."""

    re: torch.Tensor
    im: torch.Tensor

    def __add__(self, other: Complex) -> Complex:
        return Complex(self.re + other.re, self.im + other.im)

    def __sub__(self, other: Complex) -> Complex:
        return Complex(self.re - other.re, self.im - other.im)

    def __mul__(self, other: Complex | torch.Tensor | float) -> Complex:
        if isinstance(other, Complex):
            return Complex(self.re * other.re - self.im * other.im, self.re * other.im + self.im * other.re)
        return Complex(self.re * other, self.im * other)  # a real factor

    def conj_mul(self, other: Complex) -> Complex:
        """``conj(self) * other``."""
        return Complex(self.re * other.re + self.im * other.im, self.re * other.im - self.im * other.re)

    def abs2(self) -> torch.Tensor:
        return self.re * self.re + self.im * self.im

    def frame_sum(self) -> Complex:
        return Complex(self.re.sum(FRAMES_AXIS, keepdim=True), self.im.sum(FRAMES_AXIS, keepdim=True))


Channels = list[Complex]  # one (batch, bins, frames) pair per channel


def _unsilence(x: Complex) -> Complex:
    """openunmix's ``atan2`` adds 1 to the real part of exactly silent bins, in place, so
    that the rest of its filter sees ``1 + 0j`` there; the graph does the same."""
    return Complex(x.re + ((x.re == 0) & (x.im == 0)).to(x.re.dtype), x.im)


def _initial_estimates(mix: Channels, magnitudes: list[list[torch.Tensor]]) -> list[Channels]:
    """Each source's magnitude with the mixture's phase: ``y[source][channel]``."""
    phases = []
    for x in mix:
        inverse_norm = 1.0 / torch.sqrt(x.abs2())
        phases.append(x * inverse_norm)  # (cos, sin) of the mixture's phase
    return [[phase * m for phase, m in zip(phases, source)] for source in magnitudes]


class _SourceModel(NamedTuple):
    """One source's local Gaussian model: power ``v`` (batch, bins, frames) and the
    Hermitian spatial covariance ``R = [[r00, r01], [conj(r01), r11]]``, (batch, bins, 1)."""

    v: torch.Tensor
    r00: torch.Tensor
    r11: torch.Tensor
    r01: Complex


def _source_model(y0: Complex, y1: Complex) -> _SourceModel:
    """``v = mean_c |y_c|^2`` and ``R = sum_t y y^H / (eps + sum_t v)``."""
    a0, a1 = y0.abs2(), y1.abs2()
    v = (a0 + a1) * 0.5
    inverse_weight = 1.0 / (EPS + v.sum(FRAMES_AXIS, keepdim=True))
    r00 = a0.sum(FRAMES_AXIS, keepdim=True) * inverse_weight
    r11 = a1.sum(FRAMES_AXIS, keepdim=True) * inverse_weight
    r01 = y1.conj_mul(y0).frame_sum() * inverse_weight  # sum_t y0 conj(y1)
    return _SourceModel(v, r00, r11, r01)


def em_step(y: list[Channels], x: Channels, loading: float = 0.0) -> list[Channels]:
    """One EM refinement; ``y[source][channel]`` and ``x[channel]`` are (batch, bins, frames).
    ``loading`` adds that fraction of the mixture covariance's mean diagonal to its diagonal,
    which keeps its inverse finite where every source sits at one place in the stereo field
    (openunmix adds none)."""
    x0, x1 = x
    models = [_source_model(y0, y1) for y0, y1 in y]
    # mixture covariance Cxx = sqrt(eps) I + sum_j v_j R_j, Hermitian: (batch, bins, frames)
    c00 = c11 = math.sqrt(EPS)
    c01 = None
    for m in models:
        c00, c11 = c00 + m.v * m.r00, c11 + m.v * m.r11
        c01 = m.r01 * m.v if c01 is None else c01 + m.r01 * m.v
    if loading:
        diagonal = (c00 + c11) * (0.5 * loading)
        c00, c11 = c00 + diagonal, c11 + diagonal
    inverse_det = 1.0 / (c00 * c11 - c01.abs2())  # the determinant of a Hermitian matrix is real
    # z = inv(Cxx) x = [[c11, -c01], [-conj(c01), c00]] x / det, once for all sources
    z0 = (x0 * c11 - c01 * x1) * inverse_det
    z1 = (x1 * c00 - c01.conj_mul(x0)) * inverse_det
    # y_j = v_j R_j z
    return [[(z0 * m.r00 + m.r01 * z1) * m.v, (m.r01.conj_mul(z0) + z1 * m.r11) * m.v] for m in models]


def channels(spec: torch.Tensor) -> Channels:
    """``(batch, channels, 2, bins, frames)`` -> one (batch, bins, frames) pair per channel."""
    return [Complex(spec[:, c, 0], spec[:, c, 1]) for c in range(spec.shape[1])]


def stacked(sources: list[Channels]) -> torch.Tensor:
    """``sources[source][channel]`` pairs -> ``(batch, sources, channels, 2, bins, frames)``."""
    batch, nb_bins, nb_frames = sources[0][0].re.shape
    parts = [part[:, None] for source in sources for c in source for part in (c.re, c.im)]
    # (batch, sources * channels * 2, bins, frames) -> (batch, sources, channels, 2, bins, frames)
    return torch.cat(parts, dim=1).reshape(batch, len(sources), len(sources[0]), 2, nb_bins, nb_frames)


def wiener_excerpt(mix: torch.Tensor, magnitudes: torch.Tensor, niter: int) -> torch.Tensor:
    """``openunmix.filtering.wiener(..., softmask=False, residual=False)`` on a batch:
    ``(batch, channels, 2, bins, frames)`` and ``(batch, sources, channels, bins, frames)``
    -> ``(batch, sources, channels, 2, bins, frames)``."""
    nb_sources, nb_channels = magnitudes.shape[1:3]
    x = [_unsilence(channel) for channel in channels(mix)]
    sources = [[magnitudes[:, j, c] for c in range(nb_channels)] for j in range(nb_sources)]
    y = _initial_estimates(x, sources)
    if niter:
        peak = torch.maximum(*(c.abs2().amax(dim=(1, 2), keepdim=True) for c in x))  # (batch, 1, 1)
        scale = torch.clamp(torch.sqrt(peak) / SCALE_FACTOR, min=1.0)
        inverse_scale = 1.0 / scale
        x = [c * inverse_scale for c in x]
        y = [[c * inverse_scale for c in source] for source in y]
        for _ in range(niter):
            y = em_step(y, x)
        y = [[c * scale for c in source] for source in y]
    return stacked(y)


def wiener_windows(mix: torch.Tensor, magnitudes: torch.Tensor, *, niter: int, window_frames: int) -> torch.Tensor:
    """The filter on consecutive excerpts of ``window_frames`` frames, joined again."""
    if mix.shape[1] != STEREO:
        raise ValueError(f"the Wiener graph is for {STEREO} channels, got {mix.shape[1]}")
    nb_frames = mix.shape[-1]
    parts = []
    for start in range(0, nb_frames, window_frames):
        frames = slice(start, min(nb_frames, start + window_frames))
        parts.append(wiener_excerpt(mix[..., frames], magnitudes[..., frames], niter))
    return torch.cat(parts, dim=-1)
