"""Signal-to-distortion ratios: plain SDR over a whole song (no projections), and BSS Eval
SDR / SIR / SAR per stem with fast_bss_eval, museval-style aggregation.

BSS Eval scores each channel of each 1-second frame with ``fast_bss_eval.bss_eval_sources``
(512-tap distortion filters solved by 10 conjugate-gradient iterations, no permutation)
over the stems that are active in that frame (reference within 40 dB of the mix); the two
channels are averaged, then the median over the frames of a clip is that clip's figure.
Silent frames of a stem do not count, as in museval. It forgives an estimate a fixed
filtering of its stem (a low-pass bass, say) that plain SDR counts as error.
"""

from __future__ import annotations

import fast_bss_eval
import numpy as np
import torch

FRAME_S = 1.0  # BSS Eval frames
ACTIVE_DB = -40.0
METRICS = ("sdr", "sir", "sar")


def sdr_db(reference: np.ndarray, estimate: np.ndarray, eps: float = 1e-9) -> float:
    """10 log10(|s|^2 / |s - s_hat|^2) over the whole signal."""
    signal = float(np.sum(np.square(reference, dtype=np.float64)))
    noise = float(np.sum(np.square(reference - estimate, dtype=np.float64)))
    return 10 * np.log10((signal + eps) / (noise + eps))


def stem_is_active(reference: np.ndarray, mix: np.ndarray, threshold_db: float = -30.0) -> bool:
    """A stem counts for SDR when it is within ``threshold_db`` of the mix energy."""
    ratio = np.sum(np.square(reference, dtype=np.float64)) / (np.sum(np.square(mix, dtype=np.float64)) + 1e-12)
    return bool(ratio > 10 ** (threshold_db / 10))


def framewise_scores(references: np.ndarray, estimates: np.ndarray, sample_rate_hz: int) -> dict[str, np.ndarray]:
    """``(stems, channels, samples)`` twice -> metric -> ``(stems, frames)`` dB (NaN = not scored)."""
    nb_stems, nb_channels, nb_samples = references.shape
    frame = int(FRAME_S * sample_rate_hz)
    nb_frames = nb_samples // frame
    scores = {name: np.full((nb_stems, nb_frames), np.nan) for name in METRICS}
    for f in range(nb_frames):
        ref = references[..., f * frame:(f + 1) * frame].astype(np.float64)
        est = estimates[..., f * frame:(f + 1) * frame].astype(np.float64)
        mix_energy = np.sum(ref.sum(axis=0) ** 2)
        energy = np.sum(ref ** 2, axis=(1, 2))
        active = np.flatnonzero(energy > mix_energy * 10 ** (ACTIVE_DB / 10))
        if mix_energy == 0 or active.size == 0:
            continue
        per_channel = []
        for c in range(nb_channels):
            # the torch backend: the numpy one trips over numpy 2's linalg.solve broadcasting
            values = fast_bss_eval.bss_eval_sources(
                torch.from_numpy(ref[active, c]), torch.from_numpy(est[active, c]),
                compute_permutation=False, clamp_db=60, use_cg_iter=10)
            per_channel.append(np.stack([v.numpy() for v in values[:3]]))  # (metrics, active)
        mean = np.mean(per_channel, axis=0)
        for m, name in enumerate(METRICS):
            scores[name][active, f] = mean[m]
    return scores


def clip_scores(references: np.ndarray, estimates: np.ndarray, sample_rate_hz: int) -> dict[str, np.ndarray]:
    """metric -> ``(stems,)`` median over frames (NaN where the stem is never active)."""
    frames = framewise_scores(references, estimates, sample_rate_hz)
    out = {}
    for name, values in frames.items():
        with np.errstate(all="ignore"):
            out[name] = np.array([np.nanmedian(row) if np.isfinite(row).any() else np.nan for row in values])
    return out
