"""Render a procedural Song with real recorded sources, stem by stem, with production effects.

The notes come from ``stemserve.train.arrange`` (or any Song); the sounds from the
recordings that ``stemserve.train.real_sources`` indexes:

- vocals: a real voice (klettres letters and syllables) re-synthesised by the WORLD vocoder
  (``pyworld``) on each note's pitch and length: the speaker's spectral envelope and
  aperiodicity, the melody's pitch with a little vibrato;
- drums: a Hydrogen kit (or sonic-pi one-shots) sequenced from the drum part's GM notes, each
  mapped to the kit's instrument by name (kick, snare, hat, ride, crash, tom, clap, percussion),
  or a recorded drum loop tiled;
- bass, piano, other: sampled instruments (freepats GUS patches, read here) or pitched
  sonic-pi one-shots, played by resampling the nearest sample;
- effects per stem through ``pedalboard``: distortion or an amp-like chain on guitars,
  compression, EQ, chorus, reverb, and a random level and stereo placement.

Each stem is rendered alone, so the mix is exactly the sum of the stems.
"""

from __future__ import annotations

import functools
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from stemserve.train.arrange import STEMS, Note, Song
from stemserve.train.real_sources import ReservedSourceError, Source, reserved_name

SAMPLE_RATE_HZ = 44100


# ---------------------------------------------------------------------------- audio files

@functools.lru_cache(maxsize=512)
def load_audio(path: Path, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """A recording as ``(2, samples)`` float32 at ``sample_rate_hz`` (mono duplicated)."""
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    data = data.T[:2]
    if rate != sample_rate_hz:
        import soxr

        data = soxr.resample(data.T, rate, sample_rate_hz).T
    if data.shape[0] == 1:
        data = np.concatenate([data, data])
    return np.ascontiguousarray(data, dtype=np.float32)


def _read_at(signal: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``(..., n)`` at fractional ``positions`` (0 outside)."""
    index = np.floor(positions).astype(np.int64)
    frac = (positions - index).astype(np.float32)
    valid = (index >= 0) & (index < signal.shape[-1] - 1)
    index = np.where(valid, index, 0)
    out = signal[..., index] * (1 - frac) + signal[..., index + 1] * frac
    return np.where(valid, out, 0.0).astype(np.float32)


# ---------------------------------------------------------------------------- GUS patches

@dataclass
class PatchSample:
    data: np.ndarray  # mono float32
    rate_hz: int
    low_hz: float
    high_hz: float
    root_hz: float
    loop: tuple[int, int] | None  # sample positions


@functools.lru_cache(maxsize=128)
def read_patch(path: Path) -> list[PatchSample]:
    """The samples of a Gravis Ultrasound patch (``.pat``, GF1PATCH110)."""
    raw = path.read_bytes()
    if not raw.startswith(b"GF1PATCH"):
        raise ValueError(f"a GUS patch starts with GF1PATCH, got {raw[:8]!r} in {path}")
    nb_samples = raw[198]
    pos = 239
    samples = []
    for _ in range(nb_samples):
        (length, loop_start, loop_end, rate, low, high, root) = struct.unpack_from("<IIIHIII", raw, pos + 8)
        modes = raw[pos + 55]
        pos += 96
        chunk = raw[pos:pos + length]
        pos += length
        sixteen, unsigned = modes & 1, modes & 2
        if sixteen:
            data = np.frombuffer(chunk[: len(chunk) // 2 * 2], dtype="<u2" if unsigned else "<i2").astype(np.float32)
            data = (data - 32768.0 if unsigned else data) / 32768.0
            loop_start, loop_end = loop_start // 2, loop_end // 2
        else:
            data = np.frombuffer(chunk, dtype=np.uint8 if unsigned else np.int8).astype(np.float32)
            data = (data - 128.0 if unsigned else data) / 128.0
        looped = bool(modes & 4) and loop_end - loop_start > 8 and loop_end <= len(data)
        samples.append(PatchSample(data, rate, low / 1000, high / 1000, root / 1000,
                                   (loop_start, loop_end) if looped else None))
    if not samples:
        raise ValueError(f"no samples in patch {path}")
    return samples


def midi_hz(pitch: float) -> float:
    return 440.0 * 2 ** ((pitch - 69) / 12)


_DECAYING = set(range(16)) | set(range(24, 40)) | {45, 46, 47, 104, 105, 106, 107, 108}


def play_patch(path: Path, program: int | None, pitch: int, length_s: float, velocity: int,
               sample_rate_hz: int = SAMPLE_RATE_HZ, release_s: float = 0.2) -> np.ndarray:
    """One note of a patch: mono float32 of ``length_s + release_s``."""
    freq = midi_hz(pitch)
    samples = read_patch(path)
    sample = min(samples, key=lambda s: 0 if s.low_hz <= freq <= s.high_hz else abs(np.log(freq / max(s.root_hz, 1))))
    step = freq / max(sample.root_hz, 1.0) * sample.rate_hz / sample_rate_hz
    nb = int((length_s + release_s) * sample_rate_hz)
    positions = np.arange(nb) * step
    if sample.loop is not None:
        start, end = sample.loop
        beyond = positions >= end
        positions[beyond] = start + np.mod(positions[beyond] - start, end - start)
    note = _read_at(sample.data, positions)
    t = np.arange(nb) / sample_rate_hz
    envelope = np.minimum(1.0, t / 0.004)
    if program is not None and program in _DECAYING:
        envelope *= np.exp(-t / (1.5 if program < 8 else 0.9))
    off = int(length_s * sample_rate_hz)
    envelope[off:] *= np.exp(-np.arange(nb - off) / (0.06 * sample_rate_hz))
    return note * envelope.astype(np.float32) * (velocity / 127) ** 1.5


# ---------------------------------------------------------------------------- pitched one-shots

@functools.lru_cache(maxsize=128)
def root_pitch(path: Path) -> float:
    """The median pitch of a recording (MIDI number, fractional) by WORLD's DIO + StoneMask."""
    import pyworld

    mono = load_audio(path).mean(axis=0).astype(np.float64)[: 3 * SAMPLE_RATE_HZ]
    f0, times = pyworld.dio(mono, SAMPLE_RATE_HZ, f0_floor=30.0, f0_ceil=1200.0)
    f0 = pyworld.stonemask(mono, f0, times, SAMPLE_RATE_HZ)
    voiced = f0[f0 > 0]
    return 69 + 12 * np.log2(np.median(voiced) / 440) if len(voiced) else 48.0


def play_one_shot(path: Path, pitch: int, length_s: float, velocity: int,
                  sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """A recorded one-shot read faster or slower to sound at ``pitch``: ``(2, samples)``."""
    audio = load_audio(path, sample_rate_hz)
    step = 2 ** ((pitch - root_pitch(path)) / 12)
    nb = int((length_s + 0.2) * sample_rate_hz)
    note = _read_at(audio, np.arange(nb) * step)
    off = int(length_s * sample_rate_hz)
    note[:, off:] *= np.exp(-np.arange(nb - off) / (0.06 * sample_rate_hz))
    return note * (velocity / 127) ** 1.5


# ---------------------------------------------------------------------------- drums

_ROLES = (  # (role, name pattern), first match wins
    ("kick", r"kick|bass ?drum|\bbd\b|^bd|bassdrum|djembe.*bass|cajon thump"),
    ("clap", r"clap|snap"),
    ("snare", r"snare|\bsd\b|^sn|rim|stick|djembe.*slap|cajon slap"),
    ("hat_open", r"open|ohh|op\b"),
    ("hat_pedal", r"pedal|pd\b"),
    ("hat", r"hat|hh|hi-?hat|cymbal_closed|maraca|shaker|tambourine"),
    ("ride", r"ride|bell"),
    ("crash", r"crash|splash|china|cymbal"),
    ("tom", r"tom|bongo|conga|djembe.*tone"),
    ("perc", r"."),
)
_GM_ROLE = {35: "kick", 36: "kick", 37: "snare", 38: "snare", 40: "snare", 39: "clap", 42: "hat", 44: "hat_pedal",
            46: "hat_open", 49: "crash", 57: "crash", 51: "ride", 59: "ride", 53: "ride",
            41: "tom", 43: "tom", 45: "tom", 47: "tom", 48: "tom", 50: "tom"}
_FALLBACK = {"clap": "snare", "hat_open": "hat", "hat_pedal": "hat", "ride": "hat", "crash": "ride",
             "tom": "snare", "perc": "hat", "hat": "perc", "snare": "perc", "kick": "tom"}


def drum_roles(source: Source) -> dict[str, list[Path]]:
    """A kit's (or one-shot family's) recordings by drum role."""
    roles: dict[str, list[Path]] = {}
    for recording in source.recordings:
        label = recording.label.lower().replace("_", " ")
        role = next(r for r, pattern in _ROLES if re.search(pattern, label))
        roles.setdefault(role, []).append(recording.path)
    return roles


def play_drums(notes: list[Note], source: Source, nb_samples: int, rng: np.random.Generator,
               sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """A drum part's GM notes on a kit: ``(2, nb_samples)``."""
    roles = drum_roles(source)
    out = np.zeros((2, nb_samples), dtype=np.float32)
    choice: dict[str, Path] = {}
    for note in notes:
        role = _GM_ROLE.get(note.pitch, "perc")
        for _ in range(4):
            if role in roles:
                break
            role = _FALLBACK[role]
        if role not in roles:
            continue
        candidates = roles[role]
        if role not in choice or rng.random() < 0.15:  # mostly one sound per role, like one drum
            choice[role] = candidates[int(rng.integers(len(candidates)))]
        hit = load_audio(choice[role], sample_rate_hz)
        start = int(note.start_s * sample_rate_hz)
        if start >= nb_samples:
            continue
        piece = hit[:, : nb_samples - start]
        out[:, start:start + piece.shape[1]] += piece * (note.velocity / 127) ** 1.5
    return out


def tile_loop(source: Source, nb_samples: int, rng: np.random.Generator,
              sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    loop = load_audio(source.recordings[0].path, sample_rate_hz)
    offset = int(rng.integers(0, max(1, loop.shape[1] // 4)))
    reps = int(np.ceil((nb_samples + offset) / loop.shape[1]))
    return np.ascontiguousarray(np.tile(loop, (1, reps))[:, offset:offset + nb_samples])


# ---------------------------------------------------------------------------- voices

@functools.lru_cache(maxsize=256)
def analyse_voice(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WORLD analysis of a spoken recording, trimmed to its loud part: (f0, sp, ap) at 5-ms frames."""
    import pyworld

    mono = load_audio(path).mean(axis=0).astype(np.float64)
    f0, times = pyworld.dio(mono, SAMPLE_RATE_HZ, f0_floor=60.0, f0_ceil=700.0, frame_period=5.0)
    f0 = pyworld.stonemask(mono, f0, times, SAMPLE_RATE_HZ)
    sp = pyworld.cheaptrick(mono, f0, times, SAMPLE_RATE_HZ)
    ap = pyworld.d4c(mono, f0, times, SAMPLE_RATE_HZ)
    energy = 10 * np.log10(sp.sum(axis=1) + 1e-20)
    loud = np.flatnonzero(energy > energy.max() - 35)
    keep = slice(loud[0], loud[-1] + 1) if len(loud) else slice(None)
    return f0[keep], sp[keep], ap[keep]


def sing_note(path: Path, pitch: float, length_s: float, rng: np.random.Generator,
              sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """A spoken recording re-synthesised on one note: mono float32 of ``length_s``."""
    import pyworld

    f0, sp, ap = analyse_voice(path)
    nb_frames = max(2, round(length_s / 0.005))
    voiced = f0 > 0
    # keep the onset (consonant) at its own speed, stretch the rest over the note
    onset = int(np.argmax(voiced)) if voiced.any() else 0
    onset = min(onset, nb_frames // 3)
    rest = np.linspace(onset, len(f0) - 1, nb_frames - onset)
    index = np.concatenate([np.arange(onset), rest]).round().astype(int)
    t = np.arange(nb_frames) * 0.005
    vibrato = rng.uniform(0.1, 0.5) * np.sin(2 * np.pi * rng.uniform(4.5, 6.5) * t) * np.minimum(1, t / 0.3)
    target = midi_hz(pitch + vibrato + rng.normal(0, 0.05))
    # the vowel carries the pitch: frames after the onset are voiced
    new_f0 = np.where(voiced[index] | (np.arange(nb_frames) >= onset), target, 0.0)
    audio = pyworld.synthesize(np.ascontiguousarray(new_f0), np.ascontiguousarray(sp[index]),
                               np.ascontiguousarray(ap[index]), sample_rate_hz, 5.0)
    nb = int(length_s * sample_rate_hz)
    audio = np.pad(audio, (0, max(0, nb - len(audio))))[:nb].astype(np.float32)
    fade = min(len(audio) // 2, int(0.01 * sample_rate_hz))
    if fade:
        audio[:fade] *= np.linspace(0, 1, fade, dtype=np.float32)
        audio[-fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
    return audio


def sing(notes: list[Note], source: Source, nb_samples: int, rng: np.random.Generator,
         sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """A vocal line sung with a real voice: mono ``(nb_samples,)``; each note a recording of the
    voice (letters or syllables), transposed by octaves into the voice's own range."""
    out = np.zeros(nb_samples, dtype=np.float32)
    register = 12 * int(rng.integers(-1, 1))  # some voices an octave down
    for note in notes:
        start = int(note.start_s * sample_rate_hz)
        if start >= nb_samples:
            continue
        recording = source.recordings[int(rng.integers(len(source.recordings)))]
        length = min(note.end_s - note.start_s, (nb_samples - start) / sample_rate_hz)
        if length < 0.03:
            continue
        voice = sing_note(recording.path, note.pitch + register, length, rng, sample_rate_hz)
        voice *= (note.velocity / 127) / max(float(np.abs(voice).max()), 1e-4)
        out[start:start + len(voice)] += voice[: nb_samples - start]
    return out


# ---------------------------------------------------------------------------- effects

def apply_effects(audio: np.ndarray, stem: str, rng: np.random.Generator, *, guitar: bool = False,
                  sample_rate_hz: int = SAMPLE_RATE_HZ) -> tuple[np.ndarray, list[str]]:
    """Production effects on one stem ``(2, samples)``: returns the processed stem (same length)
    and the names of the effects applied."""
    import pedalboard as pb

    chain: list = []
    if guitar and rng.random() < 0.7:  # distortion or a crude amp: drive, cabinet band-limit
        chain += [pb.HighpassFilter(float(rng.uniform(80, 200))),
                  pb.Distortion(drive_db=float(rng.uniform(12, 36))),
                  pb.LowpassFilter(float(rng.uniform(2500, 6500))),
                  pb.PeakFilter(float(rng.uniform(600, 2500)), float(rng.uniform(-3, 6)), 1.0)]
    if rng.random() < 0.5:
        chain.append(pb.Compressor(threshold_db=float(rng.uniform(-30, -10)), ratio=float(rng.uniform(2, 8)),
                                   attack_ms=float(rng.uniform(1, 20)), release_ms=float(rng.uniform(50, 300))))
    if rng.random() < 0.5:
        chain.append(pb.PeakFilter(float(np.exp(rng.uniform(np.log(100), np.log(8000)))),
                                   float(rng.uniform(-8, 8)), float(rng.uniform(0.5, 2.0))))
    if stem in ("other", "piano", "vocals") and rng.random() < 0.2:
        chain.append(pb.Chorus(rate_hz=float(rng.uniform(0.3, 2.0)), depth=float(rng.uniform(0.1, 0.4)),
                               mix=float(rng.uniform(0.2, 0.5))))
    if rng.random() < (0.7 if stem == "vocals" else 0.4):
        chain.append(pb.Reverb(room_size=float(rng.uniform(0.1, 0.8)), wet_level=float(rng.uniform(0.05, 0.3)),
                               dry_level=1.0, width=float(rng.uniform(0.5, 1.0))))
    names = [type(effect).__name__ for effect in chain]
    if not chain:
        return audio, names
    processed = pb.Pedalboard(chain)(np.ascontiguousarray(audio, dtype=np.float32), sample_rate_hz)
    return np.ascontiguousarray(processed[:, : audio.shape[1]], dtype=np.float32), names


def _place(mono: np.ndarray, pan: float) -> np.ndarray:
    angle = (pan + 1) * np.pi / 4
    return np.stack([np.cos(angle) * mono, np.sin(angle) * mono]).astype(np.float32)


# ---------------------------------------------------------------------------- a song

def _pick(pool: list[Source], rng: np.random.Generator, kinds: tuple[str, ...] | None = None) -> Source | None:
    candidates = [s for s in pool if kinds is None or s.kind in kinds]
    return candidates[int(rng.integers(len(candidates)))] if candidates else None


def render_real_song(song: Song, pool: dict[str, list[Source]], rng: np.random.Generator, *,
                     effects: bool = True, sample_rate_hz: int = SAMPLE_RATE_HZ,
                     log: list | None = None) -> np.ndarray:
    """The song's stems ``(stems, channels, samples)`` float32 in the order of STEMS, every part
    played by a source drawn from ``pool[stem]``; a stem without sources in the pool is silent.
    ``log`` (a list) receives one ``(stem, identities of its parts, effects)`` per rendered stem."""
    for sources in pool.values():
        for source in sources:
            if reserved_name(source.package) or any(reserved_name(p) for p in source.name.split("+")):
                raise ReservedSourceError(f"{source.identity} is reserved for evaluation")
    nb_samples = round(song.duration_s * sample_rate_hz)
    stems = np.zeros((len(STEMS), 2, nb_samples), dtype=np.float32)
    for index, stem in enumerate(STEMS):
        parts = song.stem_parts(stem)
        if not parts or not pool.get(stem):
            continue
        audio = np.zeros((2, nb_samples), dtype=np.float32)
        identities, guitar = [], False
        for part in parts:
            if stem == "vocals":
                source = _pick(pool[stem], rng)
                part_audio = _place(sing(part.notes, source, nb_samples, rng, sample_rate_hz),
                                    float(rng.uniform(-0.15, 0.15)))
            elif stem == "drums":
                source = _pick(pool[stem], rng)
                if source.kind == "loop":
                    part_audio = tile_loop(source, nb_samples, rng, sample_rate_hz)
                else:
                    part_audio = play_drums(part.notes, source, nb_samples, rng, sample_rate_hz)
            else:
                source = _pick(pool[stem], rng)
                part_audio = np.zeros((2, nb_samples), dtype=np.float32)
                pan = float(rng.uniform(-0.6, 0.6)) if stem != "bass" else float(rng.uniform(-0.1, 0.1))
                guitar = guitar or (source.program is not None and 24 <= source.program < 32) or \
                    source.name.startswith("guit")
                recording = source.recordings[int(rng.integers(len(source.recordings)))]
                for note in part.notes:
                    start = int(note.start_s * sample_rate_hz)
                    if start >= nb_samples:
                        continue
                    length = note.end_s - note.start_s
                    if source.kind == "patch":
                        sound = _place(play_patch(recording.path, source.program, note.pitch, length,
                                                  note.velocity, sample_rate_hz), pan)
                    else:
                        sound = play_one_shot(recording.path, note.pitch, length, note.velocity, sample_rate_hz)
                    piece = sound[:, : nb_samples - start]
                    part_audio[:, start:start + piece.shape[1]] += piece
            peak = float(np.abs(part_audio).max())
            if peak > 0:
                audio += part_audio * (10 ** (rng.uniform(-6, 0) / 20) / peak)
            identities.append(source.identity)
        applied: list[str] = []
        if effects:
            audio, applied = apply_effects(audio, stem, rng, guitar=guitar, sample_rate_hz=sample_rate_hz)
        rms = float(np.sqrt(np.mean(audio ** 2)))
        if rms > 0:  # a level per stem: -20 dBFS RMS, then -9 to +3 dB
            audio *= 0.1 / rms * 10 ** (rng.uniform(-9, 3) / 20)
        stems[index] = audio
        if log is not None:
            log.append((stem, tuple(identities), applied))
    return stems
