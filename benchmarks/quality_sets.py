"""Evaluation audio for the quality benchmark, rendered per stem with a soundfont that no
training song used.

Set (a): held-out procedural songs (seeds far from the training and validation ranges).
Set (b): real multi-part compositions from the music21 corpus (lieder, chorales, string
quartets, a piano trio, madrigals), each part mapped to a stem by its part name.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from stemserve.train.arrange import STEMS, Note, Part, generate_song
from stemserve.train.render import StemRenderer, render_song
from stemserve.train.singer import sing

log = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 44100
EVAL_SOUNDFONT = Path("/usr/share/sounds/sf3/MuseScore_General.sf3")
HELD_OUT_FIRST_SEED = 5_000_000
# (corpus path, style label); the first movement or the whole piece, its first clip_s seconds
CORPUS_PIECES = (
    ("schubert/Lindenbaum.xml", "lied"),
    ("bach/bwv66.6", "chorale"),
    ("schumann_clara/opus17/movement3.xml", "piano trio"),
    ("beethoven/opus18no1/movement1.mxl", "string quartet"),
    ("monteverdi/madrigal.3.1.mxl", "madrigal"),
    ("bach/bwv4.8", "chorale"),
    ("mozart/k155/movement1.mxl", "string quartet"),
    ("bach/bwv269", "chorale"),
)
_STEM_BY_NAME = (
    (r"sopran|voice|singstimme|canto|cantus|gesang|melod", "vocals"),
    (r"piano|klavier|pianoforte|cembalo|harpsichord|keyboard", "piano"),
    (r"bass|continuo|cello|violoncello|basso|contrabass", "bass"),
)
_OTHER_PROGRAM_BY_NAME = (
    (r"viola", 41), (r"violin|violino", 40), (r"flute|flauto", 73), (r"oboe", 68),
    (r"horn|corno", 60), (r"trumpet|tromba", 56), (r"clarinet", 71), (r"alto|tenor|quint", 52),
)


@dataclass
class Clip:
    name: str
    set_name: str
    style: str
    stems: np.ndarray  # (stems, channels, samples) float32

    @property
    def mix(self) -> np.ndarray:
        return self.stems.sum(axis=0)  # (channels, samples)


def generated_clips(renderer: StemRenderer, nb_songs: int, duration_s: float = 12.0) -> list[Clip]:
    clips = []
    for index in range(nb_songs):
        seed = HELD_OUT_FIRST_SEED + index
        song = generate_song(seed, duration_s)
        stems = render_song(song, [renderer])
        style = f"{song.tempo_bpm:.0f} bpm, stems: " + "+".join(s for s in STEMS if song.stem_parts(s))
        clips.append(Clip(f"generated-{seed}", "a", style, _normalized(stems)))
    return clips


def stem_for_part(name: str) -> str:
    lowered = name.lower()
    for pattern, stem in _STEM_BY_NAME:
        if re.search(pattern, lowered):
            return stem
    return "other"


def _other_program(name: str) -> int:
    for pattern, program in _OTHER_PROGRAM_BY_NAME:
        if re.search(pattern, name.lower()):
            return program
    return 48  # string ensemble


def _part_notes(part, seconds_per_quarter: float, clip_s: float) -> list[Note]:
    notes = []
    for element in part.flatten().notes:
        start = float(element.offset) * seconds_per_quarter
        if start >= clip_s:
            break
        end = min(clip_s, start + max(0.05, float(element.quarterLength) * seconds_per_quarter * 0.95))
        for pitch in element.pitches:
            notes.append(Note(int(pitch.midi), start, end, 85))
    return notes


def corpus_clips(renderer: StemRenderer, nb_pieces: int, clip_s: float = 20.0) -> list[Clip]:
    from music21 import corpus

    clips = []
    for path, style in CORPUS_PIECES[:nb_pieces]:
        rng = np.random.default_rng(len(clips))
        score = corpus.parse(path)
        seconds_per_quarter = 60.0 / 84
        nb_samples = int(clip_s * SAMPLE_RATE_HZ)
        stems = np.zeros((len(STEMS), 2, nb_samples), dtype=np.float32)
        names = []
        for part in score.parts:
            name = str(part.partName or part.id or "")
            stem = stem_for_part(name)
            names.append(f"{name}->{stem}")
            notes = _part_notes(part, seconds_per_quarter, clip_s)
            if not notes:
                continue
            index = STEMS.index(stem)
            if stem == "vocals":
                lead = [(n.pitch, n.start_s, n.end_s, n.velocity) for n in notes]
                voice = sing(lead, [str(rng.choice(list("aeiou"))) for _ in lead], clip_s, SAMPLE_RATE_HZ, rng)
                stems[index] += 0.15 * np.stack([voice, voice]) / np.sqrt(2)
                choir = Part("vocals", 52, False, notes)
                stems[index] += 0.5 * renderer.render_parts([choir], nb_samples)
            else:
                program = {"piano": 0, "bass": 42 if "cello" in name.lower() else 32}.get(stem, _other_program(name))
                pan = int(rng.integers(30, 98))
                stems[index] += renderer.render_parts([Part(stem, program, False, notes, pan=pan)], nb_samples)
        log.info("%s: parts %s", path, ", ".join(names))
        clips.append(Clip(f"corpus-{path.replace('/', '-')}", "b", style, _normalized(stems)))
    return clips


def _normalized(stems: np.ndarray) -> np.ndarray:
    peak = float(np.abs(stems.sum(axis=0)).max())
    return (stems * (0.8 / peak if peak > 0 else 1.0)).astype(np.float32)
