"""Turn decoded blocks into the model's input: stereo, at the model's rate, in one
float32 buffer, with its peak. Only this buffer is ever whole: each decoded block is
converted and dropped as it comes."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from preprocess.channels import to_stereo
from preprocess.resample import StreamResampler


def ingest(
    blocks: Iterable[np.ndarray], from_hz: int, to_hz: int, expected_frames: int
) -> tuple[np.ndarray, float, list[str]]:
    """``blocks`` of ``(n, channels)`` at ``from_hz`` -> ``(samples, 2)`` at ``to_hz``,
    the peak absolute sample, and channel warnings (once). ``expected_frames`` (input
    frames the header declares) sizes the buffer; it grows when the header was short."""
    resampler = StreamResampler(from_hz, to_hz, 2)
    signal = np.empty((max(round(expected_frames * to_hz / from_hz), 1), 2), np.float32)
    position = 0
    peak = 0.0
    warnings: list[str] = []
    for block in blocks:
        stereo, block_warnings = to_stereo(block)
        if not warnings:
            warnings = block_warnings
        peak = max(peak, float(stereo.max()), -float(stereo.min()))
        signal, position = _append(signal, position, resampler.push(stereo))
    signal, position = _append(signal, position, resampler.push(np.zeros((0, 2), np.float32), last=True))
    return signal[:position], peak, warnings


def _append(signal: np.ndarray, position: int, block: np.ndarray) -> tuple[np.ndarray, int]:
    end = position + len(block)
    if end > len(signal):
        grown = np.empty((max(end, len(signal) + len(signal) // 4), 2), np.float32)
        grown[:position] = signal[:position]
        signal = grown
    signal[position:end] = block
    return signal, end
