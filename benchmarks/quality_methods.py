"""The three separators the quality benchmark compares on the same audio.

- ``model``: the served ONNX model, run window by window with the front end's chunking
  and overlap-add (``stemserve.preprocess.chunk``).
- ``oracle``: the ideal ratio mask |S_i| / sum_j |S_j| on the model's own STFT (1024-point
  sqrt-Hann, hop 512): the best any mask of that STFT can do, computed from the true stems.
- ``baseline``: DSP without learning. Bass: everything below ~150 Hz. Drums: the percussive
  part of harmonic/percussive median filtering of the rest. Vocals: the centre-panned part
  (inter-channel coherence) of the remaining harmonic part within 150 Hz-8 kHz. Piano and
  other: nothing tells them apart without a model, so each gets half of what remains.
  The five stems sum to the mix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import median_filter
from stemserve.backends.local import LocalBackend
from stemserve.core.model_config import load_model
from stemserve.preprocess.chunk import WindowPlan, separate_windows
from stemserve.train.stft import FactorizedSTFT

N_FFT, HOP = 1024, 512
_STFT = FactorizedSTFT(N_FFT, HOP)


def _stft(signal: np.ndarray) -> np.ndarray:
    """``(..., samples)`` -> complex ``(..., bins, frames)``."""
    flat = torch.from_numpy(np.ascontiguousarray(signal, dtype=np.float32).reshape(-1, signal.shape[-1]))
    spec = _STFT(flat).numpy()  # (n, 2 * bins, frames)
    bins = N_FFT // 2 + 1
    out = spec[:, :bins] + 1j * spec[:, bins:]
    return out.reshape(*signal.shape[:-1], bins, spec.shape[-1])


def _istft(spec: np.ndarray, nb_samples: int) -> np.ndarray:
    """complex ``(..., bins, frames)`` -> ``(..., samples)``."""
    flat = spec.reshape(-1, *spec.shape[-2:])
    real = np.concatenate([flat.real, flat.imag], axis=1).astype(np.float32)  # (n, 2 * bins, frames)
    out = _STFT.inverse(torch.from_numpy(real), nb_samples).numpy()
    return out.reshape(*spec.shape[:-2], nb_samples)


class ModelSeparator:
    def __init__(self, repository: Path, name: str = "stemserve-small", threads: int = 2) -> None:
        self.backend = LocalBackend(load_model(repository, name), intra_op_threads=threads)
        self.spec = self.backend.spec

    def __call__(self, mix: np.ndarray, stems: np.ndarray | None = None) -> np.ndarray:
        """``(channels, samples)`` -> ``(stems, channels, samples)``."""
        plan = WindowPlan.for_fraction(mix.shape[1], self.spec.segment_samples, self.spec.default_overlap)
        blocks = list(separate_windows(np.ascontiguousarray(mix.T), plan, self.backend.infer))
        return np.concatenate(blocks, axis=2)


def oracle_ratio_mask(mix: np.ndarray, stems: np.ndarray) -> np.ndarray:
    spec = _stft(stems)  # (stems, channels, bins, frames)
    magnitude = np.abs(spec)
    masks = magnitude / np.maximum(magnitude.sum(axis=0, keepdims=True), 1e-10)
    return _istft(masks * _stft(mix)[None], mix.shape[1])


def dsp_baseline(mix: np.ndarray, stems: np.ndarray | None = None, sample_rate_hz: int = 44100) -> np.ndarray:
    spec = _stft(mix)  # (channels, bins, frames)
    freqs = np.arange(spec.shape[1]) * sample_rate_hz / N_FFT
    low = np.clip((200.0 - freqs) / 100.0, 0.0, 1.0)[None, :, None]  # 1 below 100 Hz, 0 above 200 Hz
    bass = low * spec
    rest = spec - bass
    power = np.abs(rest).mean(axis=0) ** 2  # (bins, frames)
    harmonic = median_filter(power, size=(1, 17))
    percussive = median_filter(power, size=(17, 1))
    drum_mask = (percussive ** 2 / np.maximum(percussive ** 2 + harmonic ** 2, 1e-20))[None]
    drums = drum_mask * rest
    tonal = rest - drums
    left, right = tonal[0], tonal[1]
    coherence = 2 * np.abs(left * np.conj(right)) / np.maximum(np.abs(left) ** 2 + np.abs(right) ** 2, 1e-20)
    band = ((freqs > 150) & (freqs < 8000)).astype(float)[:, None]
    vocal_mask = (coherence ** 8 * band)[None]  # (1, bins, frames)
    vocals = vocal_mask * tonal
    remainder = tonal - vocals
    estimates = np.stack([vocals, drums, bass, remainder / 2, remainder / 2])  # (stems, channels, bins, frames)
    return _istft(estimates, mix.shape[1])
