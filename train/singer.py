"""A numpy formant singer: exact-pitch vocal stems for the procedural songs.

Each note is an additive harmonic source (vibrato, jitter, spectral tilt) shaped by the
formants of a vowel, with a consonant noise burst at its onset and some breath noise.
It is fast and its ground truth is exact; it sounds buzzy, which is why the renderer can
layer a GM choir patch on the same line.
"""

from __future__ import annotations

import numpy as np

# vowel -> (formant frequencies Hz, bandwidths Hz, relative gains dB)
VOWELS = {
    "a": ((800, 1150, 2900, 3900), (80, 90, 120, 130), (0, -6, -32, -20)),
    "e": ((400, 1600, 2700, 3300), (60, 80, 120, 150), (0, -24, -30, -35)),
    "i": ((270, 2140, 2950, 3900), (60, 90, 100, 120), (0, -12, -26, -26)),
    "o": ((450, 800, 2830, 3800), (70, 80, 100, 130), (0, -11, -22, -22)),
    "u": ((325, 700, 2530, 3500), (50, 60, 170, 180), (0, -16, -35, -40)),
}


def _formant_gain(freqs_hz: np.ndarray, vowel: str, shift: float) -> np.ndarray:
    centres, widths, gains_db = VOWELS[vowel]
    response = np.zeros_like(freqs_hz)
    for f, bw, g in zip(centres, widths, gains_db):
        f = f * shift
        response += 10 ** (g / 20) / (1 + ((freqs_hz - f) / (bw / 2)) ** 2)
    return response


def sing(
    notes: list[tuple[int, float, float, int]],
    vowels: list[str],
    duration_s: float,
    sample_rate_hz: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Render ``(pitch, start_s, end_s, velocity)`` notes to a mono float32 signal."""
    nb_samples = round(duration_s * sample_rate_hz)
    out = np.zeros(nb_samples, dtype=np.float64)
    vibrato_hz = rng.uniform(4.5, 6.5)
    vibrato_depth = rng.uniform(0.005, 0.025)
    formant_shift = rng.uniform(0.85, 1.2)  # vocal tract length: lower/higher voices
    tilt = rng.uniform(0.6, 1.4)
    breath = rng.uniform(0.0, 0.04)
    for (pitch, start_s, end_s, velocity), vowel in zip(notes, vowels):
        start = int(start_s * sample_rate_hz)
        end = min(nb_samples, int(end_s * sample_rate_hz))
        if end - start < 64:
            continue
        length = end - start
        time_s = np.arange(length) / sample_rate_hz
        f0 = 440.0 * 2 ** ((pitch - 69) / 12)
        onset = np.clip(time_s / 0.25, 0, 1)  # vibrato fades in
        wobble = 1 + vibrato_depth * onset * np.sin(2 * np.pi * vibrato_hz * time_s + rng.uniform(0, 6.3))
        drift = 1 + 0.004 * np.cumsum(rng.standard_normal(length)) / np.sqrt(sample_rate_hz)
        glide = 1 + rng.uniform(-0.03, 0.0) * np.exp(-time_s / 0.04)  # scoop into the note
        f0_t = f0 * wobble * drift * glide
        phase = 2 * np.pi * np.cumsum(f0_t) / sample_rate_hz
        nb_harmonics = int(min(60, 9000 // f0))
        harmonics = np.arange(1, nb_harmonics + 1)
        amps = _formant_gain(harmonics * f0, vowel, formant_shift) * harmonics ** (-tilt)
        amps /= np.abs(amps).max() + 1e-9
        voice = np.zeros(length)
        for h, a in zip(harmonics, amps):
            if a > 1e-3:
                voice += a * np.sin(h * phase + h)
        attack = min(length, int(rng.uniform(0.01, 0.06) * sample_rate_hz))
        release = min(length - attack, int(0.05 * sample_rate_hz))
        env = np.ones(length)
        env[:attack] = np.linspace(0, 1, attack)
        if release > 0:
            env[-release:] = np.linspace(1, 0, release)
        env *= 1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * time_s)  # shimmer
        note = voice * env * (velocity / 127)
        note += breath * rng.standard_normal(length) * env * np.abs(voice).mean()
        if rng.random() < 0.6:  # consonant: a short high-passed noise burst
            burst = min(length, int(rng.uniform(0.02, 0.08) * sample_rate_hz))
            noise = np.diff(rng.standard_normal(burst + 1))
            if rng.random() < 0.5:
                noise = np.diff(np.concatenate([[0], noise]))  # brighter "s"
            note[:burst] += 0.3 * noise * np.linspace(1, 0, burst) * (velocity / 127)
        out[start:end] += note
    return out.astype(np.float32)
