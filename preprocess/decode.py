"""Decode an upload (path or bytes) into float32 frames, validating as early as possible.

Checks run in order of cost: size and emptiness before parsing, the header (format,
channels, rate, declared duration) before decoding, then the decoded samples (length,
truncation, NaN/Inf). Every failure is an ``InvalidAudioError`` with its own ``reason``.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np
import soundfile as sf
from stemserve.core.errors import InvalidAudioError
from stemserve.preprocess.mp3_frames import walk

log = logging.getLogger(__name__)

SUPPORTED_FORMATS = ("WAV", "WAVEX", "RF64", "W64", "FLAC", "OGG", "MP3", "AIFF")
MIN_SAMPLE_RATE_HZ = 8_000
MAX_SAMPLE_RATE_HZ = 192_000
_BLOCK_FRAMES = 1 << 16


@dataclass(frozen=True, kw_only=True)
class DecodeLimits:
    max_bytes: int = 2 * 1024**3
    max_duration_s: float = 3 * 3600.0

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or self.max_duration_s <= 0:
            raise ValueError("decode limits must be positive")


@dataclass(frozen=True, kw_only=True)
class AudioInfo:
    format: str
    subtype: str
    sample_rate_hz: int
    nb_channels: int
    nb_frames: int
    nb_bytes: int

    @property
    def duration_s(self) -> float:
        return self.nb_frames / self.sample_rate_hz

    def as_log_dict(self) -> dict[str, object]:
        return {
            "duration_s": round(self.duration_s, 3),
            "sample_rate_hz": self.sample_rate_hz,
            "channels": self.nb_channels,
            "format": self.format,
            "subtype": self.subtype,
            "bytes": self.nb_bytes,
        }


def _open(source: bytes | Path, limits: DecodeLimits) -> tuple[sf.SoundFile, int]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        nb_bytes = len(source)
        handle: object = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise InvalidAudioError(f"input must be an existing file, got {str(path)!r}", reason="missing")
        nb_bytes = path.stat().st_size
        handle = path
    if nb_bytes == 0:
        raise InvalidAudioError("input must hold audio bytes, got an empty upload (0 bytes)", reason="empty")
    if nb_bytes > limits.max_bytes:
        raise InvalidAudioError(f"input must be at most {limits.max_bytes} bytes, got {nb_bytes}", reason="too_large")
    try:
        return sf.SoundFile(handle), nb_bytes
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise InvalidAudioError(
            f"input must be audio in one of wav, flac, ogg/vorbis, mp3; got bytes that could not be "
            f"parsed as audio ({exc})",
            reason="not_audio",
        ) from exc


def probe(source: bytes | Path, limits: DecodeLimits = DecodeLimits()) -> AudioInfo:
    """Read only the header and check what can be checked without decoding."""
    handle, nb_bytes = _open(source, limits)
    with handle:
        return _checked_info(handle, nb_bytes, limits)


def _checked_info(handle: sf.SoundFile, nb_bytes: int, limits: DecodeLimits) -> AudioInfo:
    info = AudioInfo(
        format=handle.format,
        subtype=handle.subtype or "",
        sample_rate_hz=int(handle.samplerate),
        nb_channels=int(handle.channels),
        nb_frames=max(int(handle.frames), 0),
        nb_bytes=nb_bytes,
    )
    if info.format not in SUPPORTED_FORMATS:
        raise InvalidAudioError(
            f"input format must be one of wav, flac, ogg, mp3; got {info.format}", reason="unsupported_format"
        )
    if not MIN_SAMPLE_RATE_HZ <= info.sample_rate_hz <= MAX_SAMPLE_RATE_HZ:
        raise InvalidAudioError(
            f"sample rate must be within {MIN_SAMPLE_RATE_HZ}-{MAX_SAMPLE_RATE_HZ} Hz, got {info.sample_rate_hz}",
            reason="bad_sample_rate",
        )
    if info.nb_channels < 1:
        raise InvalidAudioError(f"input must have at least 1 channel, got {info.nb_channels}", reason="no_channels")
    declared = _declared_wav_frames(handle)
    if declared is not None and declared > info.nb_frames:
        raise InvalidAudioError(
            f"input is truncated: its header declares {declared} frames, got {info.nb_frames}",
            reason="truncated",
        )
    if info.duration_s > limits.max_duration_s:
        raise InvalidAudioError(
            f"input must be at most {limits.max_duration_s:g} s long, got {info.duration_s:.1f} s",
            reason="too_long",
        )
    return info


_WAV_DATA_SIZE = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_UNKNOWN_LENGTHS = (0, 0xFFFFFFFF)  # written by streaming encoders that do not know the length


def _declared_wav_frames(handle: sf.SoundFile) -> int | None:
    """Frames a wav header declares when libsndfile found fewer bytes than that."""
    match = _WAV_DATA_SIZE.search(handle.extra_info or "")
    if match is None:
        return None
    declared_bytes, actual_bytes = int(match.group(1)), int(match.group(2))
    if declared_bytes in _UNKNOWN_LENGTHS or actual_bytes == 0 or declared_bytes <= actual_bytes:
        return None
    return round(int(handle.frames) * declared_bytes / actual_bytes)


_FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")
_MP3_LENGTH_TOLERANCE = 0.01


class AudioReader:
    """Decode an input block by block, validating each block as it comes, so a long file
    never has to be held whole at its own rate. ``info`` is the checked header;
    ``nb_frames`` counts what was decoded so far."""

    def __init__(
        self, source: bytes | Path, limits: DecodeLimits = DecodeLimits(), *, log_properties: bool = True
    ) -> None:
        self._log_properties = log_properties  # once per request: a second pass over a file says nothing
        self._handle, nb_bytes = _open(source, limits)
        try:
            self.info = _checked_info(self._handle, nb_bytes, limits)
        except BaseException:
            self._handle.close()
            raise
        self._limits = limits
        self._max_frames = int(limits.max_duration_s * self.info.sample_rate_hz) + 1
        self._check_finite = self.info.subtype in _FLOAT_SUBTYPES or self.info.format in ("OGG", "MP3")
        self.nb_frames = 0

    def blocks(self, block_frames: int = _BLOCK_FRAMES) -> Iterator[np.ndarray]:
        """Yield float32 ``(n, nb_channels)`` blocks; raise InvalidAudioError on the first
        problem (corrupt data, NaN/Inf, too long, truncated, no frames at all)."""
        info = self.info
        while True:
            try:
                block = self._handle.read(block_frames, dtype="float32", always_2d=True)
            except sf.LibsndfileError as exc:
                raise InvalidAudioError(
                    f"input must be a complete {info.format} file; decoding failed after {self.nb_frames} "
                    f"frames of {info.nb_frames} declared ({exc})",
                    reason="corrupt",
                ) from exc
            if len(block) == 0:
                break
            if self._check_finite:  # integer PCM is always finite
                self._raise_if_not_finite(block)
            self.nb_frames += len(block)
            if self.nb_frames > self._max_frames:
                raise InvalidAudioError(
                    f"input must be at most {self._limits.max_duration_s:g} s long, got more than that "
                    f"(its header declared {info.duration_s:.1f} s)",
                    reason="too_long",
                )
            yield block
        if self.nb_frames == 0:
            raise InvalidAudioError(
                f"input must contain at least 1 audio frame, got 0 (header declared {info.nb_frames})",
                reason="no_frames",
            )
        # an mp3 header's length is exact with a Xing/LAME tag, an estimate without one
        tolerance = int(info.nb_frames * _MP3_LENGTH_TOLERANCE) + 2 * 1152 if info.format == "MP3" else 0
        if info.nb_frames and self.nb_frames < info.nb_frames - tolerance:
            raise InvalidAudioError(
                f"input is truncated: its header declares {info.nb_frames} frames, got {self.nb_frames}",
                reason="truncated",
            )
        self.info = AudioInfo(**{**info.__dict__, "nb_frames": self.nb_frames})
        if self._log_properties:
            log.info("input_audio %s", json.dumps(self.info.as_log_dict(), sort_keys=True))

    def _raise_if_not_finite(self, block: np.ndarray) -> None:
        bad = ~np.isfinite(block)
        if bad.any():
            first = self.nb_frames + int(np.argwhere(bad)[0][0])
            raise InvalidAudioError(
                f"input samples must be finite numbers, got NaN/Inf at frame {first} "
                f"({int(bad.sum())} in frames {self.nb_frames}-{self.nb_frames + len(block) - 1})",
                reason="non_finite",
            )

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stream_warnings(source: bytes | Path, info: AudioInfo) -> list[str]:
    """What the decoder passes over in silence: an mp3 cut inside its last frame (one
    without a Xing/LAME frame count states no length to check the decode against)."""
    if info.format != "MP3":
        return []
    with io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else open(source, "rb") as stream:
        frames = walk(stream, info.nb_bytes)
    if not frames.cut_mid_frame:
        return []
    message = (
        f"input is cut short: the mp3 stream ends inside a frame at byte {frames.nb_bytes} "
        f"(its last whole frame ends at byte {frames.end_of_frames}); stems cover the "
        f"{info.duration_s:.3f} s that were decoded"
    )
    return [message]


def decode(source: bytes | Path, limits: DecodeLimits = DecodeLimits()) -> tuple[np.ndarray, AudioInfo]:
    """Decode to float32 ``(nb_frames, nb_channels)`` and the checked header info.
    Logs the input's properties once, as one structured line."""
    with AudioReader(source, limits) as reader:
        blocks = list(reader.blocks())
        audio = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
        return audio, reader.info
