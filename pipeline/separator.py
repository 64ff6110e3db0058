"""The public Python API: load a model once, separate many songs.

    from stemserve import Separator

    separator = Separator(stems=2)                    # the bundled default model, ONNX Runtime
    stems = separator.separate("song.mp3")            # {"vocals": (channels, samples) float32, ...}
    stems = separator.separate(samples, sample_rate_hz=48_000)  # an array (channels, samples)
    record = separator.separate_to_files("song.mp3", "stems/")  # files, and their record

Options are validated once, when the Separator is built (``SeparationOptions``). The CLI and
the service run the same pipeline (``stemserve.pipeline.run.separate``).
"""

from __future__ import annotations

import dataclasses
import io
import os
import tempfile
from pathlib import Path
from typing import Self

import numpy as np
import soundfile as sf
from stemserve.backends.base import Backend
from stemserve.backends.local import LocalBackend
from stemserve.client.records import ProgressFn, SeparationRecord
from stemserve.core.errors import InvalidAudioError
from stemserve.core.model_config import ModelSpec, load_model
from stemserve.core.settings import Settings
from stemserve.pipeline.options import SeparationOptions
from stemserve.pipeline.run import separate
from stemserve.preprocess.decode import DecodeLimits

Source = str | os.PathLike | bytes | np.ndarray


class Separator:
    """One model loaded for good; ``options`` are :class:`SeparationOptions` fields
    (stems, format, bit_depth, sample_rate_hz, normalize, model, overlap)."""

    def __init__(self, *, settings: Settings | None = None, backend: Backend | None = None, **options: object) -> None:
        self.settings = Settings.load() if settings is None else settings
        self.options = SeparationOptions(**options)  # type: ignore[arg-type]
        if backend is None:
            entry = load_model(self.settings.model_repository, self.options.model)
            backend = LocalBackend(entry, intra_op_threads=self.settings.intra_op_threads)
        self.backend = backend
        self.limits = DecodeLimits(max_bytes=self.settings.max_upload_bytes,
                                   max_duration_s=self.settings.max_duration_s)

    @property
    def spec(self) -> ModelSpec:
        return self.backend.spec

    def separate_to_files(self, source: Source, out_dir: str | os.PathLike, *, sample_rate_hz: int | None = None,
                          progress: ProgressFn | None = None) -> SeparationRecord:
        """Stems as files in ``out_dir`` (format and bit depth of the options)."""
        return self._run(source, Path(out_dir), self.options, sample_rate_hz, progress)

    def separate(self, source: Source, *, sample_rate_hz: int | None = None,
                 progress: ProgressFn | None = None) -> dict[str, np.ndarray]:
        """Stems as float32 arrays ``(channels, samples)`` at the output rate, by name.
        ``source``: a path, the bytes of a file, or samples ``(channels, samples)`` or
        ``(samples,)`` at ``sample_rate_hz``."""
        options = dataclasses.replace(self.options, format="wav", bit_depth="float")
        with tempfile.TemporaryDirectory(prefix="stemserve-") as scratch:
            record = self._run(source, Path(scratch), options, sample_rate_hz, progress)
            return {stem.name: np.ascontiguousarray(sf.read(stem.path, dtype="float32", always_2d=True)[0].T)
                    for stem in record.stems}

    def _run(self, source: Source, out_dir: Path, options: SeparationOptions, sample_rate_hz: int | None,
             progress: ProgressFn | None) -> SeparationRecord:
        if isinstance(source, np.ndarray):
            source = _as_wav(source, sample_rate_hz)
        elif sample_rate_hz is not None:
            raise InvalidAudioError(f"sample_rate_hz is for array input; got it with a {type(source).__name__}")
        if isinstance(source, (str, os.PathLike)):
            source = Path(source)
        return separate(source, out_dir, self.backend, options, limits=self.limits, progress=progress)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _as_wav(samples: np.ndarray, sample_rate_hz: int | None) -> bytes:
    """An array as the bytes of a float wav, so it takes the one decode path."""
    if sample_rate_hz is None:
        raise InvalidAudioError("an array input needs its sample_rate_hz, got none")
    if samples.ndim not in (1, 2) or not np.issubdtype(samples.dtype, np.floating):
        raise InvalidAudioError(
            f"an array input must be float (channels, samples) or (samples,), got {samples.dtype} {samples.shape}"
        )
    frames = samples[:, None] if samples.ndim == 1 else samples.T  # (samples, channels)
    buffer = io.BytesIO()
    sf.write(buffer, frames.astype(np.float32), sample_rate_hz, format="WAV", subtype="FLOAT")
    return buffer.getvalue()
