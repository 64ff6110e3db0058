"""Signal-to-distortion ratios for training validation (plain SDR, no projections)."""

from __future__ import annotations

import numpy as np


def sdr_db(reference: np.ndarray, estimate: np.ndarray, eps: float = 1e-9) -> float:
    """10 log10(|s|^2 / |s - s_hat|^2) over the whole signal."""
    signal = float(np.sum(np.square(reference, dtype=np.float64)))
    noise = float(np.sum(np.square(reference - estimate, dtype=np.float64)))
    return 10 * np.log10((signal + eps) / (noise + eps))


def stem_is_active(reference: np.ndarray, mix: np.ndarray, threshold_db: float = -30.0) -> bool:
    """A stem counts for SDR when it is within ``threshold_db`` of the mix energy."""
    ratio = np.sum(np.square(reference, dtype=np.float64)) / (np.sum(np.square(mix, dtype=np.float64)) + 1e-12)
    return bool(ratio > 10 ** (threshold_db / 10))
