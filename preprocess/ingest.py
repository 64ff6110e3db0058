"""Turn decoded blocks into the model's input, block by block: stereo, at the model's
rate. A first pass (``scan``) finds the input's peak and length; the second streams."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
from stemserve.preprocess.channels import to_stereo
from stemserve.preprocess.resample import StreamResampler


def scan(blocks: Iterable[np.ndarray]) -> tuple[float, list[str]]:
    """The peak absolute sample of decoded ``blocks`` ``(n, channels)``, and the channel
    warnings (given once)."""
    peak = 0.0
    warnings: list[str] | None = None
    for block in blocks:
        if warnings is None:
            warnings = to_stereo(block[:1])[1]
        peak = max(peak, float(block.max()), -float(block.min()))
    return peak, warnings or []


def model_rate_blocks(blocks: Iterable[np.ndarray], from_hz: int, to_hz: int) -> Iterator[np.ndarray]:
    """``blocks`` of ``(n, channels)`` at ``from_hz`` -> stereo ``(n', 2)`` blocks at
    ``to_hz``, ``round(total * to_hz / from_hz)`` frames in all."""
    resampler = StreamResampler(from_hz, to_hz, 2)
    for block in blocks:
        out = resampler.push(to_stereo(block)[0])
        if len(out):
            yield out
    last = resampler.push(np.zeros((0, 2), np.float32), last=True)
    if len(last):
        yield last
