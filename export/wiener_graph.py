"""Open-Unmix's multichannel Wiener post-filter, batched and real-valued, for export.

Same algorithm as ``openunmix.filtering.wiener`` (mixture-phase initial estimates, then
``niter`` expectation-maximisation steps with 2x2 complex spatial covariances), applied to
excerpts of ``window_frames`` frames as ``openunmix.model.Separator`` does, but

- over a batch axis (the package loops over batch items in Python),
- with complex numbers as (real, imaginary) tensor pairs and 2x2 inverses written out,
- without in-place slice assignment, so that the graph exports to ONNX and TensorRT.

Shapes: ``mix_re``/``mix_im`` ``(batch, frames, bins, channels)``; ``magnitudes``
``(batch, frames, bins, channels, sources)``; the estimates come back as a pair of
``(batch, frames, bins, sources, channels)`` tensors.
"""

from __future__ import annotations

import math

import torch

EPS = 1e-10
SCALE_FACTOR = 10.0  # openunmix scales the mixture down to |x| <= 10 before EM
STEREO = 2


def _unsilence(mix_re: torch.Tensor, mix_im: torch.Tensor) -> torch.Tensor:
    """openunmix's ``atan2`` adds 1 to the real part of exactly silent bins, in place, so
    that the rest of its filter sees ``1 + 0j`` there; the graph does the same."""
    return mix_re + ((mix_re == 0) & (mix_im == 0)).to(mix_re.dtype)


def _initial_estimates(
    mix_re: torch.Tensor, mix_im: torch.Tensor, magnitudes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each source's magnitude with the mixture's phase."""
    norm = torch.sqrt(mix_re * mix_re + mix_im * mix_im)
    cos, sin = mix_re / norm, mix_im / norm  # (batch, frames, bins, channels)
    # (batch, frames, bins, channels, sources) -> (batch, frames, bins, sources, channels)
    magnitudes = magnitudes.transpose(-1, -2)
    return magnitudes * cos[..., None, :], magnitudes * sin[..., None, :]


def _invert_2x2(m_re: torch.Tensor, m_im: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of complex 2x2 matrices ``(..., 2, 2)``, the formula of openunmix ``_invert``."""
    a_re, b_re, c_re, d_re = m_re[..., 0, 0], m_re[..., 0, 1], m_re[..., 1, 0], m_re[..., 1, 1]
    a_im, b_im, c_im, d_im = m_im[..., 0, 0], m_im[..., 0, 1], m_im[..., 1, 0], m_im[..., 1, 1]
    det_re = (a_re * d_re - a_im * d_im) - (b_re * c_re - b_im * c_im)
    det_im = (a_re * d_im + a_im * d_re) - (b_re * c_im + b_im * c_re)
    det_norm = det_re * det_re + det_im * det_im
    inv_re, inv_im = det_re / det_norm, -det_im / det_norm  # 1 / det

    def times(z_re: torch.Tensor, z_im: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return inv_re * z_re - inv_im * z_im, inv_re * z_im + inv_im * z_re

    e00, e01, e10, e11 = times(d_re, d_im), times(-b_re, -b_im), times(-c_re, -c_im), times(a_re, a_im)
    out_re = torch.stack([torch.stack([e00[0], e01[0]], -1), torch.stack([e10[0], e11[0]], -1)], -2)
    out_im = torch.stack([torch.stack([e00[1], e01[1]], -1), torch.stack([e10[1], e11[1]], -1)], -2)
    return out_re, out_im


def _em_step(
    y_re: torch.Tensor, y_im: torch.Tensor, x_re: torch.Tensor, x_im: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One EM refinement; y: (batch, frames, bins, sources, channels), x without sources."""
    power = (y_re * y_re + y_im * y_im).mean(dim=-1)  # (batch, frames, bins, sources)
    # spatial covariance y_a * conj(y_c), summed over frames: (batch, bins, sources, 2, 2)
    cov_re = y_re[..., :, None] * y_re[..., None, :] + y_im[..., :, None] * y_im[..., None, :]
    cov_im = y_im[..., :, None] * y_re[..., None, :] - y_re[..., :, None] * y_im[..., None, :]
    weight = EPS + power.sum(dim=1)  # (batch, bins, sources)
    r_re = cov_re.sum(dim=1) / weight[..., None, None]
    r_im = cov_im.sum(dim=1) / weight[..., None, None]
    # mixture covariance: (batch, frames, bins, 2, 2)
    eye = torch.eye(STEREO, dtype=y_re.dtype, device=y_re.device) * math.sqrt(EPS)
    cxx_re = eye + (power[..., None, None] * r_re[:, None]).sum(dim=3)
    cxx_im = (power[..., None, None] * r_im[:, None]).sum(dim=3)
    inv_re, inv_im = _invert_2x2(cxx_re, cxx_im)
    inv_re, inv_im = inv_re[:, :, :, None], inv_im[:, :, :, None]  # broadcast over sources
    # gain_j = v_j * R_j inv(Cxx): (batch, frames, bins, sources, 2, 2). The 2x2 products are
    # broadcast multiplies and sums: as MatMul, millions of 2x2 products run ~10x slower.
    rr, ri = r_re[:, None, ..., None], r_im[:, None, ..., None]  # (..., a, c, 1)
    ir, ii = inv_re[..., None, :, :], inv_im[..., None, :, :]  # (..., 1, c, b)
    gain_re = (rr * ir - ri * ii).sum(dim=-2) * power[..., None, None]
    gain_im = (rr * ii + ri * ir).sum(dim=-2) * power[..., None, None]
    # y_j[a] = sum_b gain_j[a, b] x[b]: (batch, frames, bins, sources, 2)
    xr, xi = x_re[:, :, :, None, None, :], x_im[:, :, :, None, None, :]
    out_re = (gain_re * xr - gain_im * xi).sum(dim=-1)
    out_im = (gain_re * xi + gain_im * xr).sum(dim=-1)
    return out_re, out_im


def wiener_excerpt(
    mix_re: torch.Tensor, mix_im: torch.Tensor, magnitudes: torch.Tensor, niter: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``openunmix.filtering.wiener(..., softmask=False, residual=False)`` on a batch."""
    mix_re = _unsilence(mix_re, mix_im)
    y_re, y_im = _initial_estimates(mix_re, mix_im, magnitudes)
    if niter == 0:
        return y_re, y_im
    peak = torch.sqrt((mix_re * mix_re + mix_im * mix_im).amax(dim=(1, 2, 3), keepdim=True))
    scale = torch.clamp(peak / SCALE_FACTOR, min=1.0)  # (batch, 1, 1, 1)
    x_re, x_im = mix_re / scale, mix_im / scale
    y_re, y_im = y_re / scale[..., None], y_im / scale[..., None]
    for _ in range(niter):
        y_re, y_im = _em_step(y_re, y_im, x_re, x_im)
    return y_re * scale[..., None], y_im * scale[..., None]


def wiener_windows(
    mix_re: torch.Tensor,
    mix_im: torch.Tensor,
    magnitudes: torch.Tensor,
    *,
    niter: int,
    window_frames: int,
    nb_frames: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The filter on consecutive excerpts of ``window_frames`` frames, joined again."""
    if mix_re.shape[-1] != STEREO:
        raise ValueError(f"the Wiener graph is for {STEREO} channels, got {mix_re.shape[-1]}")
    parts_re, parts_im = [], []
    for start in range(0, nb_frames, window_frames):
        frames = slice(start, min(nb_frames, start + window_frames))
        y_re, y_im = wiener_excerpt(mix_re[:, frames], mix_im[:, frames], magnitudes[:, frames], niter)
        parts_re.append(y_re)
        parts_im.append(y_im)
    return torch.cat(parts_re, dim=1), torch.cat(parts_im, dim=1)
