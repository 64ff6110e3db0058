"""Part-writing arrangements: a choir, a chamber ensemble or a singer or soloist with piano.

The band songs of ``stemserve.train.arrange`` are chords, riffs and one tune. Much real music is
instead three to five independent lines over one chord progression, each a voice or a
single instrument: a choir whose top line is the lead vocal and whose inner lines are
sung "aahs" counted as other; string or wind parts over a cello or double bass; a singer
or soloist over a piano. Here the bass stem is the lowest line on a bass, cello or
contrabass, spread across the stereo field like the other players, and two lines that
sound alike (the lead vocal and the inner choir voices) differ only by their place in the
chord and in the stereo field. With ``crossing``, the lines share registers more: the bass
line climbs into the tenor register (a cello under a viola, as in a string quartet), the
piano's left hand plays in the bass line's register, and some chamber songs get a piano (a
piano trio or quartet). With ``blend``, the song sounds like one ensemble recorded
together: every stem is rendered with one soundfont, and the inner choir voices sing with
the lead's choir patch, so the lead is told from them only by its register, its place in
the stereo field and its singer, not by a timbre of its own. With ``unison``, some bars
are a unison passage: the bass plays a quick stepwise figure and the lines above double
it one or two octaves up (the opening of many a string quartet), so the bass stem is told
from its doublings only by its octave and timbre. For training songs only, like
``vary_song``.
"""

from __future__ import annotations

import numpy as np
from stemserve.train.arrange import (
    CHOIR_PROGRAMS,
    PROGRESSIONS,
    VARIED_BASS_PROGRAMS,
    Note,
    Part,
    Song,
    diatonic_chord,
    song_frame,
)

# (lowest, highest) MIDI pitch of each line, top line first
RANGES = {"top": (60, 79), "upper": (55, 74), "inner": (48, 67), "bass": (36, 60), "high bass": (43, 64)}
LEFT_HAND = (36, 55)  # the piano's left hand in crossing songs
# single-line players of the upper lines: violin, viola, flute, oboe, clarinet, horn, trumpet, bassoon,
# string ensemble, organ
LINE_PROGRAMS = (40, 40, 41, 73, 68, 71, 60, 56, 70, 48, 19)
KINDS = ("choir", "chamber", "accompanied")


def _line_pitch(pitch_classes: set[int], previous: int, low: int, high: int, leap: int,
                rng: np.random.Generator) -> int:
    """A chord tone within ``leap`` semitones of ``previous`` (the nearest if none), in range."""
    tones = [p for p in range(low, high + 1) if p % 12 in pitch_classes]
    near = [p for p in tones if abs(p - previous) <= leap]
    return int(rng.choice(near)) if near else min(tones, key=lambda p: abs(p - previous))


def _unison_passages(lines: list[list[Note]], ranges: list[tuple[int, int]], nb_bars: int, beat_s: float,
                     scale_pitch_classes: set[int], rng: np.random.Generator) -> None:
    """Rewrite one- or two-bar passages of ``lines`` (the bass line last) in place: the bass
    plays a stepwise figure in sixteenths to quarters, and each line above doubles it, when
    it fits the line's range one or two octaves up, else keeps silent there."""
    bar = 0
    passages = []
    while bar < nb_bars:
        length = int(rng.integers(1, 3))
        if rng.random() < 0.5 or (not passages and bar + length >= nb_bars):
            passages.append((bar * 4 * beat_s, min(bar + length, nb_bars) * 4 * beat_s))
        bar += length
    low, high = ranges[-1]
    for start_s, end_s in passages:
        centre = int(rng.integers(low + 5, high - 6))
        tones = [p for p in range(centre - 5, centre + 7) if p % 12 in scale_pitch_classes]
        figure: list[Note] = []
        index, at = int(rng.integers(len(tones))), start_s
        while at < end_s - 1e-6:
            length = min(float(rng.choice([0.25, 0.5, 0.5, 1.0])) * beat_s, end_s - at)
            figure.append(Note(tones[index], at, at + length - 0.02, int(rng.integers(80, 110))))
            step = int(rng.choice([-2, -1, -1, 1, 1, 2]))
            index += step if 0 <= index + step < len(tones) else -step  # turn back at the window's edge
            at += length
        for line, (line_low, line_high) in zip(lines, ranges):
            kept = [n if n.end_s <= start_s else Note(n.pitch, n.start_s, start_s - 0.02, n.velocity)
                    for n in line if n.start_s < start_s - 0.05 or n.start_s >= end_s - 1e-6]
            if line is lines[-1]:
                octaves = 0
            else:
                fitting = [k for k in (1, 2) if min(tones) + 12 * k >= line_low and max(tones) + 12 * k <= line_high]
                octaves = int(rng.choice(fitting)) if fitting and rng.random() < 0.85 else -1
            doubled = [Note(n.pitch + 12 * octaves, n.start_s, n.end_s, n.velocity) for n in figure] if octaves >= 0 else []
            line[:] = sorted(kept + doubled, key=lambda n: n.start_s)


def ensemble_song(seed: int, duration_s: float = 12.0, crossing: bool = False, blend: bool = False,
                  unison: bool = False) -> Song:
    """A seeded part-writing song of about ``duration_s`` seconds (always whole bars); its
    ``ensemble`` flag tells the renderer to layer a choir patch on every lead vocal and to
    put half of them dead centre. ``crossing`` draws its extra choices from a second
    stream, so a crossing song keeps the kind, tempo and top line of the plain song of its
    seed; ``blend`` draws nothing, so a blend song is the song of its seed with one
    soundfont and one choir patch; ``unison`` draws from a third stream too."""
    rng = np.random.default_rng([seed, 2])
    extra = np.random.default_rng([seed, 3]) if crossing else None
    high_bass = extra is not None and extra.random() < 0.5
    left_hand = extra is not None and extra.random() < 0.7
    chamber_piano = extra is not None and extra.random() < 0.4
    tempo, beat_s, nb_bars, key, scale = song_frame(rng, duration_s, (56, 132))
    chord_beats = int(rng.choice([1, 2, 2, 4]))
    nb_chords = nb_bars * 4 // chord_beats
    degrees: list[int] = []
    while len(degrees) < nb_chords:
        degrees += PROGRESSIONS[rng.integers(len(PROGRESSIONS))]
    chords = [{pc % 12 for pc in diatonic_chord(key, scale, degrees[i], 0)} for i in range(nb_chords)]
    roots = [(key + scale[degrees[i] % 7]) % 12 for i in range(nb_chords)]
    homophonic = rng.random() < 0.6
    kind = str(rng.choice(KINDS, p=[0.45, 0.35, 0.2]))
    nb_upper = int(rng.integers(2, 5))  # the top line and up to three more above the bass
    names = ["top"] + ["upper", "inner", "inner"][: nb_upper - 1] + ["bass"]

    lines: list[list[Note]] = []
    ranges = [RANGES["high bass" if name == "bass" and high_bass else name] for name in names]
    for name, (low, high) in zip(names, ranges):
        previous = int(rng.integers(low + 4, high - 4))
        notes: list[Note] = []
        beat = 0.0
        while beat < nb_bars * 4:
            chord = min(int(beat) // chord_beats, nb_chords - 1)
            if homophonic:
                length = float(chord_beats) if chord_beats < 4 else float(rng.choice([2, 4]))
                length = min(length, chord_beats - beat % chord_beats)
            else:
                length = float(rng.choice([0.5, 1, 1, 2, 3] if name != "bass" else [1, 2, 2, 4]))
            length = min(length, nb_bars * 4 - beat)
            if name == "bass":
                pitch_classes = {roots[chord]} if rng.random() < 0.7 else chords[chord]
                pitch = _line_pitch(pitch_classes, previous, low, high, 7, rng)
            else:
                pitch = _line_pitch(chords[chord], previous, low, high, 4 if name == "top" else 3, rng)
            rests = not homophonic and name not in ("top", "bass") and rng.random() < 0.08
            if not rests:  # inner lines of a polyphonic song rest now and then
                notes.append(Note(pitch, beat * beat_s, (beat + length) * beat_s - 0.03, int(rng.integers(65, 105))))
            previous = pitch
            beat += length
        lines.append(notes)
    if unison:
        _unison_passages(lines, ranges, nb_bars, beat_s, {(key + step) % 12 for step in scale},
                         np.random.default_rng([seed, 4]))

    parts: list[Part] = []
    vowels: list[str] = []
    top, middle, bass = lines[0], lines[1:-1], lines[-1]
    lead_sings = kind == "choir" or (kind == "accompanied" and rng.random() < 0.6)
    if lead_sings:
        parts.append(Part("vocals", int(rng.choice(CHOIR_PROGRAMS)), False, top))
        vowels = [str(rng.choice(list("aeiou"))) for _ in top]
    else:
        parts.append(Part("other", int(rng.choice(LINE_PROGRAMS)), False, top, pan=int(rng.integers(16, 112))))
    if kind == "accompanied" or (kind == "chamber" and chamber_piano):
        piano = Part("piano", int(rng.choice((0, 1, 2))), False, pan=int(rng.integers(40, 88)))
        for chord in range(nb_chords):
            start, end = chord * chord_beats * beat_s, (chord + 1) * chord_beats * beat_s - 0.03
            voicing = sorted(_line_pitch(chords[chord], 60 + 4 * i, 52, 76, 2, rng) for i in range(3))
            if rng.random() < 0.5:  # block chord
                piano.notes += [Note(p, start, end, 70) for p in voicing]
            else:  # broken chord in eighths
                for i in range(2 * chord_beats):
                    at = start + i * beat_s / 2
                    piano.notes.append(Note(voicing[i % 3], at, at + beat_s * 0.45, 65))
            if left_hand:  # the chord's root, sometimes in octaves
                root = _line_pitch({roots[chord]}, 44, *LEFT_HAND, 12, extra)
                piano.notes.append(Note(root, start, end, 72))
                if root + 12 <= LEFT_HAND[1] and extra.random() < 0.5:
                    piano.notes.append(Note(root + 12, start, end, 66))
        parts.append(piano)
    if kind != "accompanied":
        for line in middle:
            sung = kind == "choir" and rng.random() < 0.8
            program = int(rng.choice(CHOIR_PROGRAMS if sung else LINE_PROGRAMS))
            if blend and sung and lead_sings:
                program = parts[0].program
            parts.append(Part("other", program, False, line, pan=int(rng.integers(16, 112)),
                              volume=int(rng.integers(80, 110))))
    parts.append(Part("bass", int(rng.choice(VARIED_BASS_PROGRAMS)), False, bass, pan=int(rng.integers(28, 100))))
    return Song(seed=seed, tempo_bpm=tempo, duration_s=nb_bars * 4 * beat_s, parts=parts, vowels=vowels, ensemble=True,
                one_soundfont=blend)
