"""The published architectures stemserve can export, and the facts about each.

One table, referenced by the loaders, the graph builders, the repository writer, the
synthetic checkpoints of the tests and the benchmark: stems, sample rate, licence of the
published weights, and the hyper-parameters of the published full-size models.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
from stemserve.export.errors import ArchitectureMismatchError

DEMUCS_STEMS = ("drums", "bass", "other", "vocals")
UMX_STEMS = ("vocals", "drums", "bass", "other")

# Hyper-parameters of the released HT-Demucs v4 models (the kwargs their packages carry).
_HTDEMUCS_KWARGS: dict[str, Any] = {
    "audio_channels": 2,
    "channels": 48,
    "depth": 4,
    "nfft": 4096,
    "dconv_mode": 3,
    "t_layers": 5,
    "bottom_channels": 512,
    "t_dropout": 0.02,
    "samplerate": 44100,
    "segment": Fraction(39, 5),
}


@dataclass(frozen=True, kw_only=True)
class Architecture:
    """One exportable architecture."""

    name: str
    family: Literal["demucs", "umx", "mdx", "roformer"]
    stems: tuple[str, ...]
    sample_rate_hz: int
    license: str
    default_overlap: float = 0.25
    nb_models: int = 1  # > 1: a bag of sub-models mixed with per-stem weights
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    umx_nb_frames: int = 0  # umx: STFT frames per exported window

    def __post_init__(self) -> None:
        if self.family not in ("demucs", "umx", "mdx", "roformer"):
            raise ValueError(f"family must be demucs, umx, mdx or roformer, not {self.family!r}")
        if self.nb_models < 1:
            raise ValueError(f"nb_models must be >= 1, got {self.nb_models}")
        if self.family == "umx" and self.umx_nb_frames < 2:
            raise ValueError(f"{self.name}: umx_nb_frames must be >= 2")
        object.__setattr__(self, "model_kwargs", MappingProxyType(dict(self.model_kwargs)))


_UMX_COMMON: dict[str, Any] = {
    "nb_channels": 2,
    "n_fft": 4096,
    "n_hop": 1024,
    "bandwidth_hz": 16000,
    "nb_layers": 3,
    "wiener_win_len": 300,  # frames per Wiener excerpt, as openunmix's Separator
    "niter": 1,
}

ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture(
            name="htdemucs",
            family="demucs",
            stems=DEMUCS_STEMS,
            sample_rate_hz=44100,
            license="MIT (demucs)",
            model_kwargs={**_HTDEMUCS_KWARGS, "sources": list(DEMUCS_STEMS)},
        ),
        Architecture(
            name="htdemucs_6s",
            family="demucs",
            stems=DEMUCS_STEMS + ("guitar", "piano"),
            sample_rate_hz=44100,
            license="MIT (demucs)",
            model_kwargs={**_HTDEMUCS_KWARGS, "sources": list(DEMUCS_STEMS + ("guitar", "piano"))},
        ),
        Architecture(
            name="htdemucs_ft",
            family="demucs",
            stems=DEMUCS_STEMS,
            sample_rate_hz=44100,
            license="MIT (demucs)",
            nb_models=4,
            model_kwargs={**_HTDEMUCS_KWARGS, "sources": list(DEMUCS_STEMS)},
        ),
        Architecture(
            name="umxhq",
            family="umx",
            stems=UMX_STEMS,
            sample_rate_hz=44100,
            license="MIT (open-unmix)",
            model_kwargs={**_UMX_COMMON, "hidden_size": 512},
            umx_nb_frames=900,
        ),
        Architecture(
            name="umxl",
            family="umx",
            stems=UMX_STEMS,
            sample_rate_hz=44100,
            license="CC BY-NC-SA 4.0 (open-unmix umxl weights)",
            model_kwargs={**_UMX_COMMON, "hidden_size": 1024},
            umx_nb_frames=900,
        ),
    )
}


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ArchitectureMismatchError(f"architecture must be one of {sorted(ARCHITECTURES)}, not {name!r}") from None


def umx_max_bin(sample_rate_hz: int, n_fft: int, bandwidth_hz: float) -> int:
    """Open-Unmix's ``bandwidth_to_max_bin``: bins up to ``bandwidth_hz`` included."""
    freqs_hz = np.linspace(0, sample_rate_hz / 2, n_fft // 2 + 1, endpoint=True)
    return int(np.max(np.where(freqs_hz <= bandwidth_hz)[0]) + 1)
