"""Training batches from the song cache: random crops, remixed across songs.

Each example takes every stem from a (usually different) random cached song at a random
offset with a random gain, channel swap and stereo width, so a few hundred rendered songs
give a near-endless supply of mixes; the mix is always the exact sum of the stems. With
``shift_semitones`` each stem is also read faster or slower (resampled), which moves its
pitch and its spectral envelope together, as another instrument sample would. A spectral
EQ per stem is applied later in the STFT domain by the training loop.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


class SongCache:
    """Memory-mapped ``(stems, channels, samples)`` float16 songs of one or more cache folders,
    folder by folder in the order given, each in file-name order."""

    def __init__(self, *directories: Path) -> None:
        if not directories:
            raise ValueError("a song cache needs at least one folder, got none")
        self.directories = [Path(directory) for directory in directories]
        self.songs: list[np.ndarray] = []
        self.paths: list[Path] = []
        self.refresh()

    def refresh(self) -> int:
        """Pick up songs rendered since the last call; returns the song count."""
        known = set(self.paths)
        for directory in self.directories:
            for path in sorted(directory.glob("song_*.npy")):
                if path.name.endswith(".tmp.npy") or path in known:
                    continue
                self.songs.append(np.load(path, mmap_mode="r"))
                self.paths.append(path)
        return len(self.songs)

    def __len__(self) -> int:
        return len(self.songs)


class RemixSampler:
    def __init__(self, cache: SongCache, crop_samples: int, *, p_coherent: float = 0.3,
                 gain_db: tuple[float, float] = (-12.0, 3.0), p_drop_stem: float = 0.1,
                 shift_semitones: float = 0.0) -> None:
        self.cache = cache
        self.crop_samples = crop_samples
        self.p_coherent = p_coherent
        self.gain_db = gain_db
        self.p_drop_stem = p_drop_stem
        # shift_semitones: each stem is resampled by 2 ** (u / 12), u uniform in +-shift_semitones
        # (one u for all stems of a coherent example, so they stay in tune and in time)
        self.shift_semitones = shift_semitones

    def _crop(self, song: np.ndarray, stem: int, rng: np.random.Generator, rate: float = 1.0) -> np.ndarray:
        """``crop_samples`` of one stem; ``rate`` > 1 reads faster (higher pitch)."""
        length = song.shape[-1]
        span = self.crop_samples if rate == 1.0 else int(np.ceil(self.crop_samples * rate)) + 1
        start = int(rng.integers(0, max(1, length - span)))
        out = np.zeros((2, span), dtype=np.float32)
        piece = song[stem, :, start:start + span]
        out[:, : piece.shape[-1]] = piece
        return out if rate == 1.0 else resample(out, rate, self.crop_samples)

    def _rates(self, nb_stems: int, coherent: bool, rng: np.random.Generator) -> np.ndarray:
        if not self.shift_semitones:
            return np.ones(nb_stems)
        semitones = rng.uniform(-self.shift_semitones, self.shift_semitones, size=1 if coherent else nb_stems)
        return np.broadcast_to(2.0 ** (semitones / 12), (nb_stems,))

    def example(self, rng: np.random.Generator) -> np.ndarray:
        """One example ``(stems, channels, samples)`` float32."""
        nb_stems = self.cache.songs[0].shape[0]
        coherent = rng.random() < self.p_coherent
        song_ids = np.full(nb_stems, rng.integers(len(self.cache))) if coherent \
            else rng.integers(len(self.cache), size=nb_stems)
        rates = self._rates(nb_stems, coherent, rng)
        stems = np.empty((nb_stems, 2, self.crop_samples), dtype=np.float32)
        for s in range(nb_stems):
            stem = self._crop(self.cache.songs[song_ids[s]], s, rng, float(rates[s]))
            gain = 10 ** (rng.uniform(*self.gain_db) / 20)
            if rng.random() < self.p_drop_stem:
                gain = 0.0
            if rng.random() < 0.5:
                stem = stem[::-1]
            width = rng.uniform(0.5, 1.3)
            mid, side = (stem[0] + stem[1]) / 2, (stem[0] - stem[1]) / 2 * width
            stems[s, 0], stems[s, 1] = mid + side, mid - side
            stems[s] *= gain
        peak = np.abs(stems.sum(axis=0)).max()
        level = 10 ** (rng.uniform(-18, 0) / 20)
        return stems * (level / max(peak, 1e-3))

    def batch(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """``(batch, stems, channels, samples)`` float32."""
        return np.stack([self.example(rng) for _ in range(batch_size)])


def resample(audio: np.ndarray, rate: float, nb_samples: int) -> np.ndarray:
    """``(channels, n)`` read at ``rate`` times the speed by linear interpolation:
    ``(channels, nb_samples)``, every frequency multiplied by ``rate``. Needs
    ``n >= (nb_samples - 1) * rate + 1``."""
    positions = np.arange(nb_samples) * rate
    if positions[-1] > audio.shape[-1] - 1:
        raise ValueError(f"resampling {nb_samples} samples at rate {rate} needs {positions[-1] + 1:.0f} "
                         f"input samples, got {audio.shape[-1]}")
    index = np.arange(audio.shape[-1])
    return np.stack([np.interp(positions, index, channel) for channel in audio]).astype(np.float32)
