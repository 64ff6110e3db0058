"""Render a procedural Song to exact per-stem stereo audio with FluidSynth.

One synthesizer per soundfont stays alive for the whole run (loading a soundfont is the
slow part); each stem is rendered alone by stepping the synth from MIDI event to MIDI event,
so the mix is exactly the sum of the stems.
"""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path

import fluidsynth
import numpy as np
from stemserve.train.arrange import STEMS, Song
from stemserve.train.singer import sing

log = logging.getLogger(__name__)

SOUNDFONT_DIR = Path("/usr/share/sounds/sf2")
TRAIN_SOUNDFONTS = ("FluidR3_GM.sf2", "TimGM6mb.sf2", "sf_GMbank.sf2")

_write_float = fluidsynth.cfunc(
    "fluid_synth_write_float", ctypes.c_int,
    ("synth", ctypes.c_void_p, 1), ("len", ctypes.c_int, 1),
    ("lout", ctypes.c_void_p, 1), ("loff", ctypes.c_int, 1), ("lincr", ctypes.c_int, 1),
    ("rout", ctypes.c_void_p, 1), ("roff", ctypes.c_int, 1), ("rincr", ctypes.c_int, 1),
)


class StemRenderer:
    """A live FluidSynth instance for one soundfont."""

    def __init__(self, soundfont: Path, sample_rate_hz: int = 44100) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.synth = fluidsynth.Synth(samplerate=float(sample_rate_hz), gain=0.4)
        self.sfid = self.synth.sfload(str(soundfont))
        if self.sfid < 0:
            raise FileNotFoundError(f"soundfont must be a readable .sf2 file, got {soundfont}")
        self.name = soundfont.name

    def _samples(self, nb_samples: int) -> np.ndarray:
        buf = np.zeros((nb_samples, 2), dtype=np.float32)  # (samples, channels), interleaved
        ptr = buf.ctypes.data
        _write_float(self.synth.synth, nb_samples, ptr, 0, 2, ptr, 1, 2)
        return buf.T.copy()

    def render_parts(self, parts, nb_samples: int) -> np.ndarray:
        """Render parts (each on its own MIDI channel) to ``(2, nb_samples)`` float32."""
        self.synth.system_reset()
        events: list[tuple[int, int, int, int, int]] = []  # (sample, order, channel, pitch, velocity)
        for channel, part in enumerate(parts):
            chan = 9 if part.is_drum else [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11][channel]
            bank = 128 if part.is_drum else 0
            if self.synth.program_select(chan, self.sfid, bank, part.program) != 0:
                self.synth.program_select(chan, self.sfid, bank, 0)
            self.synth.cc(chan, 7, part.volume)
            self.synth.cc(chan, 10, part.pan)
            for note in part.notes:
                on = int(note.start_s * self.sample_rate_hz)
                off = int(note.end_s * self.sample_rate_hz)
                events.append((on, 1, chan, note.pitch, note.velocity))
                events.append((off, 0, chan, note.pitch, 0))
        events.sort()
        out = np.zeros((2, nb_samples), dtype=np.float32)
        pos = 0
        for sample, _, chan, pitch, velocity in events:
            sample = min(sample, nb_samples)
            if sample > pos:
                out[:, pos:sample] = self._samples(sample - pos)
                pos = sample
            if velocity > 0:
                self.synth.noteon(chan, pitch, velocity)
            else:
                self.synth.noteoff(chan, pitch)
        if pos < nb_samples:
            out[:, pos:] = self._samples(nb_samples - pos)
        for chan in range(16):  # sustain off + all notes off at the cut
            self.synth.cc(chan, 64, 0)
            self.synth.cc(chan, 123, 0)
        self._samples(self.sample_rate_hz // 2)  # let the tails die before the next stem
        return out


def _pan_mono(mono: np.ndarray, pan: float) -> np.ndarray:
    """Constant-power pan of a mono signal; ``pan`` in [-1, 1]."""
    angle = (pan + 1) * np.pi / 4
    return np.stack([np.cos(angle) * mono, np.sin(angle) * mono])  # (channels, samples)


def _reverb(stereo: np.ndarray, sample_rate_hz: int, rng: np.random.Generator) -> np.ndarray:
    """A cheap stereo reverb: convolution with decaying noise, mixed in at random depth."""
    decay_s = rng.uniform(0.2, 1.5)
    length = int(decay_s * sample_rate_hz)
    env = np.exp(-6.9 * np.arange(length) / length)
    wet = np.empty_like(stereo)
    size = stereo.shape[1] + length
    for c in range(2):
        ir = rng.standard_normal(length) * env
        ir /= np.sqrt((ir ** 2).sum())
        wet[c] = np.fft.irfft(np.fft.rfft(stereo[c], size) * np.fft.rfft(ir, size), size)[: stereo.shape[1]]
    return stereo + rng.uniform(0.05, 0.35) * wet


def render_song(song: Song, renderers: list[StemRenderer], sample_rate_hz: int = 44100) -> np.ndarray:
    """All stems of a song as ``(stems, channels, samples)`` float32, stem order STEMS; each
    stem with a soundfont drawn from ``renderers``, or all with one if ``song.one_soundfont``."""
    rng = np.random.default_rng(song.seed + 7919)
    nb_samples = round(song.duration_s * sample_rate_hz)
    stems = np.zeros((len(STEMS), 2, nb_samples), dtype=np.float32)
    song_renderer = renderers[int(rng.integers(len(renderers)))] if song.one_soundfont else None
    for index, stem in enumerate(STEMS):
        parts = song.stem_parts(stem)
        if not parts:
            continue
        renderer = song_renderer or renderers[int(rng.integers(len(renderers)))]
        if stem == "vocals":
            part = parts[0]
            notes = [(n.pitch, n.start_s, n.end_s, n.velocity) for n in part.notes]
            voice = sing(notes, song.vowels, song.duration_s, sample_rate_hz, rng)
            centred = song.ensemble and rng.random() < 0.5
            audio = _pan_mono(voice * 0.15, 0.0 if centred else float(rng.uniform(-0.2, 0.2)))
            if song.ensemble or rng.random() < 0.35:  # layer a GM choir / voice patch on the same line
                choir = renderer.render_parts(parts, nb_samples)
                audio = audio + choir * rng.uniform(0.3, 1.0)
            if rng.random() < 0.7:
                audio = _reverb(audio, sample_rate_hz, rng)
        else:
            audio = renderer.render_parts(parts, nb_samples)
        stems[index] = audio
    return stems


def open_renderers(names: tuple[str, ...] = TRAIN_SOUNDFONTS, directory: Path = SOUNDFONT_DIR,
                   sample_rate_hz: int = 44100) -> list[StemRenderer]:
    return [StemRenderer(directory / name, sample_rate_hz) for name in names]
