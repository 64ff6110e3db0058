"""Decode stems received as bytes into arrays: the client's optional extra (``audio``:
numpy and soundfile), imported only by those who call it."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf


def decode_stems(data: dict[str, bytes]) -> dict[str, tuple[np.ndarray, int]]:
    """stem name -> (float32 samples ``(channels, samples)``, sample rate in Hz)."""
    decoded = {}
    for name, encoded in data.items():
        samples, rate = sf.read(io.BytesIO(encoded), dtype="float32", always_2d=True)
        decoded[name] = (np.ascontiguousarray(samples.T), int(rate))
    return decoded
