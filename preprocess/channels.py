"""Channel handling: every model takes stereo."""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


def to_stereo(audio: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """``(nb_frames, nb_channels)`` -> ``(nb_frames, 2)`` float32, plus warnings.

    Mono becomes dual-mono; more than two channels are downmixed: channel 0 to the left,
    channel 1 to the right and the rest shared equally by both, scaled so a full-scale
    signal on every channel stays at full scale.
    """
    if audio.ndim != 2 or audio.shape[1] < 1:
        raise ValueError(f"audio must be (frames, channels), got shape {audio.shape}")
    nb_channels = audio.shape[1]
    if nb_channels == 2:
        return np.ascontiguousarray(audio, dtype=np.float32), []
    if nb_channels == 1:
        return np.repeat(audio.astype(np.float32, copy=False), 2, axis=1), []
    rest = audio[:, 2:].sum(axis=1, keepdims=True) / (nb_channels - 2)
    stereo = (audio[:, :2] + rest) * 0.5  # (frames, 2)
    warning = f"input has {nb_channels} channels; downmixed to stereo"
    log.warning(warning)
    return stereo.astype(np.float32), [warning]
