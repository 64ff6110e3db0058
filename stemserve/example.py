"""A synthetic example song, generated in code (no recording is shipped): a drum groove,
a bass line, piano-like chords and a sung vowel melody, in stereo.

``python -m stemserve.example OUT.wav [--seconds S] [--seed N]``
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE_HZ = 44_100


def _note_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69) / 12)


def _envelope(nb: int, attack: int, decay_s: float, rate: int) -> np.ndarray:
    env = np.exp(-np.arange(nb) / (decay_s * rate))
    attack = min(attack, nb)  # a note cut short by the song's end keeps the start of its attack
    env[:attack] *= np.linspace(0, 1, attack)
    return env


def make_song(seconds: float = 20.0, seed: int = 0, rate: int = SAMPLE_RATE_HZ) -> dict[str, np.ndarray]:
    """Stems ``name -> (frames, 2)`` float32; the mix is their sum."""
    rng = np.random.default_rng(seed)
    nb = int(seconds * rate)
    beat = int(rate * 60 / rng.uniform(90, 130))
    root = int(rng.integers(40, 47))
    stems = {name: np.zeros((nb, 2), np.float32) for name in ("vocals", "drums", "bass", "piano")}
    chords = [(0, 4, 7), (-3, 0, 4), (5, 9, 12), (7, 11, 14)]
    for index, start in enumerate(range(0, nb, beat)):
        bar, step = divmod(index, 4)
        chord = chords[bar % len(chords)]
        n = min(beat, nb - start)
        t = np.arange(n) / rate
        kick = np.sin(2 * np.pi * (50 + 80 * np.exp(-t * 30)) * t) * _envelope(n, 10, 0.12, rate)
        hat = rng.standard_normal(n) * _envelope(n, 5, 0.03, rate) * 0.3
        drum = (kick if step % 2 == 0 else rng.standard_normal(n) * _envelope(n, 5, 0.08, rate) * 0.6) + hat
        stems["drums"][start : start + n] += (0.5 * drum)[:, None] * [1.0, 0.9]
        bass_hz = _note_hz(root + chord[0] - 12)
        bass = np.sin(2 * np.pi * bass_hz * t) + 0.3 * np.sin(4 * np.pi * bass_hz * t)
        stems["bass"][start : start + n] += (0.35 * bass * _envelope(n, 50, 0.6, rate))[:, None]
        piano = sum(np.sin(2 * np.pi * _note_hz(root + 12 + c) * t) for c in chord) / 3
        stems["piano"][start : start + n] += (0.25 * piano * _envelope(n, 30, 0.4, rate))[:, None] * [0.7, 1.0]
        # sung vowel: a harmonic source through two formants, with vibrato
        pitch = _note_hz(root + 24 + chord[int(rng.integers(0, 3))])
        phase = 2 * np.pi * np.cumsum(pitch * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t))) / rate
        voice = sum(np.sin(k * phase) * _formants(k * pitch) for k in range(1, 16))
        stems["vocals"][start : start + n] += (0.12 * voice * _envelope(n, 800, 1.5, rate))[:, None]
    return stems


def _formants(hz: float, peaks: tuple[tuple[float, float], ...] = ((700.0, 130.0), (1220.0, 70.0))) -> float:
    return float(sum(1.0 / (1.0 + ((hz - f) / bw) ** 2) for f, bw in peaks)) + 0.02


def example_mix(seconds: float = 20.0, seed: int = 0) -> np.ndarray:
    """The sum of the stems, peaking at 0.8: ``(frames, 2)`` float32."""
    mix = sum(make_song(seconds, seed).values())
    return (mix * (0.8 / max(float(np.abs(mix).max()), 1e-9))).astype(np.float32)


def example_wav_bytes(seconds: float = 20.0, seed: int = 0) -> bytes:
    """The example song as a 16-bit wav file's bytes."""
    buffer = io.BytesIO()
    sf.write(buffer, example_mix(seconds, seed), SAMPLE_RATE_HZ, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def write_example(path: Path, seconds: float = 20.0, seed: int = 0) -> Path:
    sf.write(path, example_mix(seconds, seed), SAMPLE_RATE_HZ, subtype="PCM_16")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    write_example(args.out, args.seconds, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
