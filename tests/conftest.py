from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from stemserve.core.model_config import load_model

from tests.model_fixtures import write_mask_model


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A model repository with tiny fixed-gain models."""
    root = tmp_path / "models"
    write_mask_model(root, "identity5", [1.0, 0.0, 0.0, 0.0, 0.0])
    write_mask_model(root, "split5", [0.4, 0.25, 0.15, 0.1, 0.1])
    write_mask_model(root, "split4", [0.4, 0.3, 0.2, 0.1], stems=("vocals", "drums", "bass", "other"))
    write_mask_model(root, "half5", [0.1, 0.1, 0.1, 0.1, 0.1])
    return root


@pytest.fixture
def local_backend(repo: Path):
    from stemserve.backends.local import LocalBackend

    def make(name: str) -> LocalBackend:
        return LocalBackend(load_model(repo, name), intra_op_threads=1)

    return make


def tone_mix(nb_frames: int, sample_rate_hz: int = 44_100, nb_channels: int = 2, seed: int = 0) -> np.ndarray:
    """A deterministic stereo test signal: two tones plus a little noise, (frames, channels)."""
    rng = np.random.default_rng(seed)
    t = np.arange(nb_frames) / sample_rate_hz
    base = 0.3 * np.sin(2 * np.pi * 220.0 * t) + 0.2 * np.sin(2 * np.pi * 1375.0 * t + 0.3)
    channels = [base * (0.8 + 0.2 * c) + 0.02 * rng.standard_normal(nb_frames) for c in range(nb_channels)]
    return np.stack(channels, axis=1).astype(np.float32)
