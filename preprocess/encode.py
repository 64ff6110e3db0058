"""Encode stems block by block: wav (16/24-bit, float), flac (16/24-bit) or mp3, at
exactly the requested rate and length."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np
import soundfile as sf

FORMATS = ("wav", "flac", "mp3")
BIT_DEPTHS = ("16", "24", "float")
OUTPUT_SAMPLE_RATES_HZ = (44_100, 48_000)

_SUBTYPES = {
    ("wav", "16"): "PCM_16",
    ("wav", "24"): "PCM_24",
    ("wav", "float"): "FLOAT",
    ("flac", "16"): "PCM_16",
    ("flac", "24"): "PCM_24",
    ("mp3", "16"): "MPEG_LAYER_III",  # mp3 has no bit depth of its own: 16 (the default) stands for it
}
_CONTAINERS = {"wav": "WAV", "flac": "FLAC", "mp3": "MP3"}
# mp3 quality: a constant bitrate in kbps (MPEG-1 layer III rates) or a VBR quality v0 (best) - v9
MP3_CBR_KBPS = (64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
MP3_VBR_QUALITIES = tuple(f"v{q}" for q in range(10))
MP3_BITRATES = tuple(str(kbps) for kbps in MP3_CBR_KBPS) + MP3_VBR_QUALITIES
# full-scale value of the integer written for each PCM subtype (24-bit goes through int32)
_INT_SCALES = {"PCM_16": 2.0**15, "PCM_24": 2.0**23}


@dataclass(frozen=True, kw_only=True)
class EncodeOptions:
    format: str = "wav"
    bit_depth: str = "16"
    mp3_bitrate: str = "320"  # kbps (constant bitrate) or v0-v9 (variable); mp3 only

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, not {self.format!r}")
        if (self.format, self.bit_depth) not in _SUBTYPES:
            allowed = [d for f, d in _SUBTYPES if f == self.format]
            raise ValueError(f"bit_depth for {self.format} must be one of {allowed}, not {self.bit_depth!r}")
        if self.mp3_bitrate not in MP3_BITRATES:
            raise ValueError(
                f"mp3_bitrate must be a constant bitrate in kbps {list(MP3_CBR_KBPS)} or a VBR quality "
                f"v0 (best) - v9, not {self.mp3_bitrate!r}"
            )

    def mp3_settings(self) -> dict[str, object]:
        """libsndfile's compression level and bitrate mode for ``mp3_bitrate``: for a
        constant bitrate it encodes ``int(320 - level * 288)`` kbps (rates of 32 kHz and up),
        for VBR the LAME quality ``level * 10``."""
        if self.mp3_bitrate in MP3_VBR_QUALITIES:
            return {"bitrate_mode": "VARIABLE", "compression_level": int(self.mp3_bitrate[1]) / 10}
        kbps = int(self.mp3_bitrate)
        level = 0.0 if kbps == 320 else (320 - kbps - 0.5) / 288  # + 0.5 kbps against truncation
        return {"bitrate_mode": "CONSTANT", "compression_level": level}

    @property
    def extension(self) -> str:
        return self.format

    @property
    def clips(self) -> bool:
        """Integer and mp3 outputs cannot hold samples beyond full scale."""
        return _SUBTYPES[(self.format, self.bit_depth)] != "FLOAT"


_SFC_SET_ADD_PEAK_CHUNK = 0x1050  # libsndfile's command; soundfile does not name it


def _without_peak_chunk(handle: sf.SoundFile) -> None:
    """Float wav: no PEAK chunk, whose time stamp would make equal stems differ in bytes."""
    sf._snd.sf_command(handle._file, _SFC_SET_ADD_PEAK_CHUNK, sf._ffi.NULL, 0)


class StemWriter:
    """Append ``(frames, channels)`` float32 blocks to one encoded file."""

    def __init__(self, path: Path, sample_rate_hz: int, nb_channels: int, options: EncodeOptions) -> None:
        self.path = Path(path)
        self.options = options
        self.nb_frames = 0
        self.peak = 0.0
        self._file = sf.SoundFile(
            self.path,
            mode="w",
            samplerate=sample_rate_hz,
            channels=nb_channels,
            format=_CONTAINERS[options.format],
            subtype=_SUBTYPES[(options.format, options.bit_depth)],
            **(options.mp3_settings() if options.format == "mp3" else {}),
        )
        if options.format == "wav" and options.bit_depth == "float":
            _without_peak_chunk(self._file)

    def write(self, block: np.ndarray) -> None:
        """Append ``(frames, channels)`` float32 samples (any memory layout)."""
        if len(block) == 0:
            return
        self.peak = max(self.peak, float(block.max()), -float(block.min()))
        self._file.write(self._converted(block))
        self.nb_frames += len(block)

    def _converted(self, block: np.ndarray) -> np.ndarray:
        """Interleaved samples in the file's own sample type where that is an integer
        (clipped at full scale, rounded), else contiguous float32."""
        scale = _INT_SCALES.get(_SUBTYPES[(self.options.format, self.options.bit_depth)])
        wide = scale is not None and scale > 2**15  # 24-bit needs float64 to stay exact
        buffer = np.empty(block.shape, np.float64 if wide else np.float32)  # C order
        if scale is None:
            buffer[...] = block
            if self.options.clips:
                np.clip(buffer, -1.0, 1.0, out=buffer)
            return buffer
        np.multiply(block, scale, out=buffer)
        np.rint(buffer, out=buffer)
        np.clip(buffer, -scale, scale - 1, out=buffer)
        if wide:  # libsndfile keeps the top 24 bits of an int32
            return buffer.astype(np.int32) << 8
        return buffer.astype(np.int16)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
