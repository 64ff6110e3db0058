"""Procedural multitrack arrangements: one seeded song as MIDI parts grouped by stem.

A song is a chord progression in a random key, tempo and style, played by a drum kit, a
bass, a piano-family instrument, one to three "other" instruments (guitars, strings, pads,
brass, synths, organs) and a lead vocal line. Stems drop out for whole sections so the
model also learns silence. Everything is drawn from one ``numpy.random.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pretty_midi

STEMS = ("vocals", "drums", "bass", "piano", "other")

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
# progressions as scale degrees (0-based)
PROGRESSIONS = (
    (0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 4, 4), (0, 3, 0, 4),
    (1, 4, 0, 0), (0, 6, 5, 4), (0, 2, 3, 4), (3, 4, 2, 5), (0, 0, 3, 4),
)
PIANO_PROGRAMS = (0, 1, 2, 3, 4, 5, 6, 7)
BASS_PROGRAMS = (32, 33, 34, 35, 36, 37, 38, 39, 43)
OTHER_PROGRAMS = (
    tuple(range(24, 32))  # guitars
    + (40, 41, 42, 44, 45, 46, 48, 49, 50, 51)  # solo strings, ensembles, harp
    + (56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 68, 71, 73)  # brass, reeds, flute
    + tuple(range(80, 88)) + tuple(range(88, 96))  # synth leads, pads
    + (16, 17, 18, 19, 11, 12, 13, 105, 108)  # organs, mallets, plucked
)
CHOIR_PROGRAMS = (52, 53, 54)
DRUM_KITS = (0, 8, 16, 24, 25, 32, 40)
KICK, SNARE, CLAP, HAT_CLOSED, HAT_OPEN, HAT_PEDAL, RIDE, CRASH = 36, 38, 39, 42, 46, 44, 51, 49
TOMS = (41, 43, 45, 47, 48, 50)
PERC = (54, 56, 69, 70, 75, 76, 77)


@dataclass
class Note:
    pitch: int
    start_s: float
    end_s: float
    velocity: int


@dataclass
class Part:
    """One instrument of one stem: a GM program (or a drum kit) and its notes."""

    stem: str
    program: int
    is_drum: bool
    notes: list[Note] = field(default_factory=list)
    volume: int = 100  # MIDI CC7
    pan: int = 64  # MIDI CC10


@dataclass
class Song:
    seed: int
    tempo_bpm: float
    duration_s: float
    parts: list[Part]
    vowels: list[str]  # one vowel per vocal note, for the singer
    # a part-writing song (train.ensemble): its lead vocal always gets a choir layer, half the time dead centre
    ensemble: bool = False
    # every stem rendered with one soundfont, as one ensemble recorded together (train.ensemble's blend)
    one_soundfont: bool = False

    def stem_parts(self, stem: str) -> list[Part]:
        return [p for p in self.parts if p.stem == stem]

    def to_midi(self, stem: str | None = None) -> pretty_midi.PrettyMIDI:
        midi = pretty_midi.PrettyMIDI(initial_tempo=self.tempo_bpm)
        for part in self.parts:
            if stem is not None and part.stem != stem:
                continue
            inst = pretty_midi.Instrument(program=part.program, is_drum=part.is_drum, name=part.stem)
            inst.notes = [pretty_midi.Note(n.velocity, n.pitch, n.start_s, n.end_s) for n in part.notes]
            midi.instruments.append(inst)
        return midi


def diatonic_chord(root_pc: int, scale: tuple[int, ...], degree: int, extensions: int) -> list[int]:
    """Pitch classes (relative to C) of the diatonic chord on ``degree``."""
    tones = [0, 2, 4] + ([6] if extensions else [])
    return [(root_pc + scale[(degree + t) % 7] + 12 * ((degree + t) // 7)) for t in tones]


def _active_mask(rng: np.random.Generator, nb_sections: int, p_on: float) -> np.ndarray:
    mask = rng.random(nb_sections) < p_on
    if not mask.any():
        mask[rng.integers(nb_sections)] = True
    return mask


def song_frame(rng: np.random.Generator, duration_s: float, tempo_range: tuple[float, float],
               ) -> tuple[float, float, int, int, tuple[int, ...]]:
    """A song's tempo (bpm), beat length (s), number of 4/4 bars covering about ``duration_s``
    (at least two), key (pitch class) and scale (major 60 %, else minor)."""
    tempo = float(rng.uniform(*tempo_range))
    beat_s = 60.0 / tempo
    nb_bars = max(2, int(np.ceil(duration_s / (4 * beat_s))))
    key = int(rng.integers(12))
    return tempo, beat_s, nb_bars, key, MAJOR if rng.random() < 0.6 else MINOR


def generate_song(seed: int, duration_s: float = 12.0) -> Song:
    """A seeded random song of about ``duration_s`` seconds (always whole bars)."""
    rng = np.random.default_rng(seed)
    tempo, beat_s, nb_bars, key, scale = song_frame(rng, duration_s, (68, 168))
    bar_s = 4 * beat_s
    progression = PROGRESSIONS[rng.integers(len(PROGRESSIONS))]
    extensions = int(rng.random() < 0.4)
    chords = [diatonic_chord(key, scale, progression[b % len(progression)], extensions) for b in range(nb_bars)]
    swing = rng.random() < 0.2
    sections = max(1, nb_bars // 2)  # two-bar sections switch stems on and off

    def t(bar: int, beat: float) -> float:
        if swing and (beat * 2) % 2 == 1:
            beat += 1 / 6
        return bar * bar_s + beat * beat_s

    def bar_active(mask: np.ndarray, bar: int) -> bool:
        return bool(mask[min(bar // 2, len(mask) - 1)])

    parts: list[Part] = []
    present = {stem: rng.random() < p for stem, p in
               zip(STEMS, (0.85, 0.85, 0.85, 0.7, 0.9))}
    if not any(present.values()):
        present["other"] = True

    # drums
    if present["drums"]:
        drums = Part("drums", int(rng.choice(DRUM_KITS)), True, pan=64)
        style = rng.integers(5)
        mask = _active_mask(rng, sections, 0.8)
        hat = HAT_CLOSED if rng.random() < 0.7 else RIDE
        hat_div = int(rng.choice([2, 2, 4, 1]))
        for bar in range(nb_bars):
            if not bar_active(mask, bar):
                continue
            kicks = {0: [0, 2], 1: [0, 1, 2, 3], 2: [0, 2.5], 3: [0, 1.5, 2.5], 4: [0]}[int(style)]
            snares = {0: [1, 3], 1: [1, 3], 2: [2], 3: [1, 3], 4: [2]}[int(style)]
            for b in kicks:
                drums.notes.append(Note(KICK, t(bar, b), t(bar, b) + 0.1, int(rng.integers(90, 127))))
            for b in snares:
                pitch = CLAP if rng.random() < 0.15 else SNARE
                drums.notes.append(Note(pitch, t(bar, b), t(bar, b) + 0.1, int(rng.integers(85, 127))))
            for i in range(4 * hat_div):
                b = i / hat_div
                drums.notes.append(Note(hat, t(bar, b), t(bar, b) + 0.05, int(rng.integers(50, 100))))
            if rng.random() < 0.25:  # fill on the last beat
                for i, tom in enumerate(rng.choice(TOMS, size=4)):
                    b = 3 + i / 4
                    drums.notes.append(Note(int(tom), t(bar, b), t(bar, b) + 0.1, int(rng.integers(80, 120))))
            if bar % 4 == 0 and rng.random() < 0.5:
                drums.notes.append(Note(CRASH, t(bar, 0), t(bar, 0) + 0.5, 110))
            if rng.random() < 0.3:
                perc = int(rng.choice(PERC))
                for i in range(8):
                    if rng.random() < 0.5:
                        drums.notes.append(Note(perc, t(bar, i / 2), t(bar, i / 2) + 0.05, 70))
        parts.append(drums)

    # bass
    if present["bass"]:
        bass = Part("bass", int(rng.choice(BASS_PROGRAMS)), False, pan=64)
        mask = _active_mask(rng, sections, 0.8)
        pattern = rng.integers(4)
        octave = int(rng.choice([24, 36]))
        for bar in range(nb_bars):
            if not bar_active(mask, bar):
                continue
            root = octave + chords[bar][0] % 12
            fifth = root + 7
            if pattern == 0:
                steps = [(0, 4, root)]
            elif pattern == 1:
                steps = [(i / 2, 0.45, root) for i in range(8)]
            elif pattern == 2:
                steps = [(0, 1.5, root), (1.5, 0.5, fifth), (2, 1.5, root), (3.5, 0.5, root + 12)]
            else:
                walk = [root] + [octave + (c % 12) for c in chords[bar][1:]]
                steps = [(i, 0.95, walk[i % len(walk)]) for i in range(4)]
            for b, d, p in steps:
                bass.notes.append(Note(int(p), t(bar, b), t(bar, b) + d * beat_s, int(rng.integers(80, 120))))
        parts.append(bass)

    # piano
    if present["piano"]:
        piano = Part("piano", int(rng.choice(PIANO_PROGRAMS)), False, pan=int(rng.integers(40, 88)))
        mask = _active_mask(rng, sections, 0.75)
        style = rng.integers(4)
        base = int(rng.choice([48, 60]))
        for bar in range(nb_bars):
            if not bar_active(mask, bar):
                continue
            voicing = [base + (c - key) % 12 + key % 12 for c in chords[bar]]
            if style == 0:  # block chords on each beat or half note
                step = float(rng.choice([1, 2]))
                for b in np.arange(0, 4, step):
                    for p in voicing:
                        piano.notes.append(Note(p, t(bar, b), t(bar, b) + step * beat_s * 0.9, int(rng.integers(60, 105))))
            elif style == 1:  # arpeggio in eighths or sixteenths
                div = int(rng.choice([2, 4]))
                seq = voicing + [v + 12 for v in voicing]
                for i in range(4 * div):
                    p = seq[i % len(seq)]
                    piano.notes.append(Note(p, t(bar, i / div), t(bar, i / div) + beat_s / div * 1.5, int(rng.integers(55, 100))))
            elif style == 2:  # left-hand bass note + right-hand chord
                piano.notes.append(Note(voicing[0] - 12, t(bar, 0), t(bar, 4), 85))
                for b in (1, 2.5, 3):
                    for p in voicing[1:]:
                        piano.notes.append(Note(p + 12, t(bar, b), t(bar, b) + 0.4 * beat_s, 75))
            else:  # sustained whole-bar chord with a melody fill
                for p in voicing:
                    piano.notes.append(Note(p, t(bar, 0), t(bar, 4), 70))
                for i in range(4):
                    p = base + 12 + key % 12 + scale[int(rng.integers(7))]
                    piano.notes.append(Note(p, t(bar, i), t(bar, i) + beat_s * 0.8, 80))
        parts.append(piano)

    # other instruments
    if present["other"]:
        for _ in range(int(rng.integers(1, 4))):
            program = int(rng.choice(OTHER_PROGRAMS))
            other = Part("other", program, False, pan=int(rng.integers(10, 118)), volume=int(rng.integers(70, 110)))
            mask = _active_mask(rng, sections, 0.7)
            style = rng.integers(4)
            base = int(rng.choice([48, 55, 60, 67]))
            for bar in range(nb_bars):
                if not bar_active(mask, bar):
                    continue
                voicing = [base + (c - key) % 12 + key % 12 for c in chords[bar]]
                if style == 0:  # pad / sustained chord
                    for p in voicing:
                        other.notes.append(Note(p, t(bar, 0), t(bar, 4) - 0.02, int(rng.integers(55, 95))))
                elif style == 1:  # strum on a rhythm
                    hits = sorted(set(rng.choice([0, 1, 1.5, 2, 2.5, 3, 3.5], size=4).tolist()))
                    for b in hits:
                        for j, p in enumerate(voicing):
                            st = t(bar, b) + 0.012 * j
                            other.notes.append(Note(p, st, st + 0.45 * beat_s, int(rng.integers(60, 105))))
                elif style == 2:  # counter-melody
                    b = 0.0
                    while b < 4:
                        d = float(rng.choice([0.5, 1, 1, 2]))
                        p = base + 12 + key % 12 + scale[int(rng.integers(7))]
                        other.notes.append(Note(p, t(bar, b), t(bar, min(4, b + d)) - 0.02, int(rng.integers(60, 105))))
                        b += d
                else:  # riff on chord tones
                    for i in range(8):
                        if rng.random() < 0.7:
                            p = voicing[int(rng.integers(len(voicing)))]
                            other.notes.append(Note(p, t(bar, i / 2), t(bar, i / 2) + beat_s * 0.45, int(rng.integers(60, 110))))
            parts.append(other)

    # lead vocal line
    vowels: list[str] = []
    if present["vocals"]:
        vocal = Part("vocals", int(rng.choice(CHOIR_PROGRAMS)), False, pan=64)
        mask = _active_mask(rng, sections, 0.75)
        low = int(rng.choice([52, 55, 57, 60, 64]))
        degree = int(rng.integers(7))
        for bar in range(nb_bars):
            if not bar_active(mask, bar):
                continue
            b = float(rng.choice([0, 0.5, 1]))
            while b < 3.75:
                d = float(rng.choice([0.5, 0.5, 1, 1, 1.5, 2]))
                degree = int(np.clip(degree + rng.integers(-2, 3), 0, 10))
                pitch = low + key % 12 + scale[degree % 7] + 12 * (degree // 7)
                end = min(4.0, b + d)
                vocal.notes.append(Note(int(pitch), t(bar, b), t(bar, end) - 0.03, int(rng.integers(80, 120))))
                vowels.append(str(rng.choice(list("aeiou"))))
                b = end + float(rng.choice([0, 0, 0.5]))
        parts.append(vocal)

    return Song(seed=seed, tempo_bpm=tempo, duration_s=nb_bars * bar_s, parts=parts, vowels=vowels)


# programs a varied bass line may switch to: acoustic bass, cello, contrabass (bowed and
# upright lines, as in chamber music and chorale settings)
VARIED_BASS_PROGRAMS = (32, 42, 43)


def vary_song(song: Song) -> Song:
    """More of what the plain generator rarely makes, for training songs only: bass lines an
    octave higher (tenor register) and on acoustic bass, cello or contrabass; piano lines in
    the singer's register (the vocal line doubled, or the piano's top notes an octave up);
    choir patches as "other" backing. Edits ``song`` in place and returns it. Draws from its
    own generator (seeded by the song's seed), so ``generate_song`` itself, and the
    benchmark's held-out songs, are unchanged."""
    rng = np.random.default_rng([song.seed, 1])
    parts = {stem: song.stem_parts(stem) for stem in STEMS}
    for bass in parts["bass"]:
        if rng.random() < 0.35:
            bass.program = int(rng.choice(VARIED_BASS_PROGRAMS))
        if rng.random() < 0.35 and max(n.pitch for n in bass.notes) <= 52:
            bass.notes = [Note(n.pitch + 12, n.start_s, n.end_s, n.velocity) for n in bass.notes]
    for piano in parts["piano"]:
        if rng.random() >= 0.5:
            continue
        if parts["vocals"] and rng.random() < 0.5:
            line = [Note(n.pitch, n.start_s, n.end_s, max(50, n.velocity - 20)) for n in parts["vocals"][0].notes]
        else:
            tops: dict[float, Note] = {}
            for n in piano.notes:
                if n.start_s not in tops or n.pitch > tops[n.start_s].pitch:
                    tops[n.start_s] = n
            line = [Note(n.pitch + 12, n.start_s, n.end_s, min(127, n.velocity + 10)) for n in tops.values()]
        piano.notes = piano.notes + line
    for other in parts["other"]:
        if rng.random() < 0.12:
            other.program = int(rng.choice(CHOIR_PROGRAMS))
    return song
