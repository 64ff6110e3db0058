"""Sample rate conversion with soxr, whole arrays or streamed block by block."""

from __future__ import annotations

import numpy as np
import soxr

QUALITY = "HQ"


def resample(audio: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """``(nb_frames, nb_channels)`` float32 at ``from_hz`` -> the same at ``to_hz``.

    Equal rates return the input unchanged (bit-exact)."""
    if from_hz == to_hz:
        return audio
    out = soxr.resample(audio, from_hz, to_hz, quality=QUALITY)
    return np.ascontiguousarray(out, dtype=np.float32)


class StreamResampler:
    """Resample consecutive blocks of one signal. Once the block marked ``last`` is pushed,
    the output has exactly ``nb_out_frames`` frames (default ``round(total_in * to_hz /
    from_hz)``): trimmed or zero-padded at the end."""

    def __init__(self, from_hz: int, to_hz: int, nb_channels: int, nb_out_frames: int | None = None) -> None:
        self.from_hz, self.to_hz = from_hz, to_hz
        self.nb_out_frames = nb_out_frames
        self._stream = (
            None if from_hz == to_hz else soxr.ResampleStream(from_hz, to_hz, nb_channels, "float32", QUALITY)
        )
        self._nb_in = 0
        self._nb_out = 0

    def push(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        self._nb_in += len(block)
        if self._stream is None:
            out = block
        else:
            out = self._stream.resample_chunk(np.ascontiguousarray(block, dtype=np.float32), last=last)
        target = round(self._nb_in * self.to_hz / self.from_hz)
        if self.nb_out_frames is not None:
            target = self.nb_out_frames if last else min(target, self.nb_out_frames)
        if not last:
            out = out[: max(target - self._nb_out, 0)]
        elif len(out) + self._nb_out < target:  # pad the final block to the exact length
            pad = np.zeros((target - self._nb_out - len(out), out.shape[1]), dtype=np.float32)
            out = np.concatenate([out, pad])
        else:
            out = out[: target - self._nb_out]
        self._nb_out += len(out)
        return out
