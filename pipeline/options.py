"""A separation request's options, validated once when built."""

from __future__ import annotations

from dataclasses import dataclass

from stemserve.core.errors import InvalidOptionError
from stemserve.core.model_config import MAX_OVERLAP, MIN_OVERLAP
from stemserve.core.presets import PRESETS
from stemserve.preprocess.encode import BIT_DEPTHS, FORMATS, OUTPUT_SAMPLE_RATES_HZ, EncodeOptions

DEFAULT_MODEL = "stemserve-small"


@dataclass(frozen=True, kw_only=True)
class SeparationOptions:
    stems: int = 4
    format: str = "wav"
    bit_depth: str = "16"
    sample_rate_hz: int | None = None  # None: the input's rate when allowed, else 44100
    normalize: bool = True
    model: str = DEFAULT_MODEL
    overlap: float | None = None  # None: the model's default overlap
    mp3_bitrate: str = "320"  # kbps (constant bitrate) or v0-v9 (variable); mp3 only
    two_stems: str | None = None  # one stem of the model and the rest (stems must be 2); None: the preset's

    def __post_init__(self) -> None:
        if self.two_stems is not None and (self.stems != 2 or not self.two_stems.isidentifier()):
            raise InvalidOptionError(
                f"two_stems needs stems=2 and a stem name, got stems={self.stems} and two_stems={self.two_stems!r}"
            )
        if self.stems not in PRESETS:
            raise InvalidOptionError(f"stems must be one of {sorted(PRESETS)}, not {self.stems}")
        if self.format not in FORMATS:
            raise InvalidOptionError(f"format must be one of {list(FORMATS)}, not {self.format!r}")
        try:
            self.encode  # noqa: B018 - validates format, bit depth and mp3 bitrate together
        except ValueError as exc:
            raise InvalidOptionError(str(exc)) from exc
        if self.bit_depth not in BIT_DEPTHS:
            raise InvalidOptionError(f"bit_depth must be one of {list(BIT_DEPTHS)}, not {self.bit_depth!r}")
        if self.sample_rate_hz is not None and self.sample_rate_hz not in OUTPUT_SAMPLE_RATES_HZ:
            raise InvalidOptionError(
                f"sample_rate must be one of {list(OUTPUT_SAMPLE_RATES_HZ)}, not {self.sample_rate_hz}"
            )
        if self.overlap is not None and not MIN_OVERLAP <= self.overlap <= MAX_OVERLAP:
            raise InvalidOptionError(f"overlap must be within {MIN_OVERLAP}-{MAX_OVERLAP}, not {self.overlap}")
        if not self.model or "/" in self.model or self.model.startswith("."):
            raise InvalidOptionError(f"model must be a model name, not {self.model!r}")

    @property
    def encode(self) -> EncodeOptions:
        return EncodeOptions(format=self.format, bit_depth=self.bit_depth, mp3_bitrate=self.mp3_bitrate)

    def output_rate_hz(self, input_rate_hz: int) -> int:
        if self.sample_rate_hz is not None:
            return self.sample_rate_hz
        return input_rate_hz if input_rate_hz in OUTPUT_SAMPLE_RATES_HZ else OUTPUT_SAMPLE_RATES_HZ[0]

    def cache_key_part(self) -> str:
        return (
            f"stems={self.stems};format={self.format};bit_depth={self.bit_depth};"
            f"rate={self.sample_rate_hz};normalize={self.normalize};overlap={self.overlap};"
            f"mp3_bitrate={self.mp3_bitrate if self.format == 'mp3' else ''};two_stems={self.two_stems}"
        )
