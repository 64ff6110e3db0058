"""Real recorded sources: the index by identity, the seeded split, the reserved evaluation
sources never selected, the fetch command, and the players (GUS patches, kits, the voice)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from stemserve.train import real_sources
from stemserve.train.arrange import Note
from stemserve.train.real_sources import Recording, ReservedSourceError, Source, index, reserved_name, split

RATE = 44100


def _wav(path: Path, seed: int, seconds: float = 0.2, freq: float | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * RATE)) / RATE
    rng = np.random.default_rng(seed)
    audio = 0.3 * np.sin(2 * np.pi * freq * t) if freq else 0.3 * rng.standard_normal(len(t))
    sf.write(path, audio.astype(np.float32), RATE)


def _kit(root: Path, package: str, kit: str, instruments: dict[str, str], seeds: dict[str, int]) -> None:
    folder = root / package / "usr/share/hydrogen/data/drumkits" / kit
    xml = ["<drumkit_info><name>x</name><instrumentList>"]
    for name, file in instruments.items():
        _wav(folder / file, seeds[file])
        xml.append(f"<instrument><name>{name}</name><layer><filename>{file}</filename></layer></instrument>")
    xml.append("</instrumentList></drumkit_info>")
    (folder / "drumkit.xml").write_text("".join(xml))


def fake_packages(data_dir: Path) -> Path:
    """A small tree shaped like the unpacked packages, with reserved kits and loops in it."""
    root = data_dir / "pkgs"
    for lang in ("en", "fr", "de", "it", "ru"):
        for letter in "abc":
            _wav(root / "klettres-data/usr/share/klettres" / lang / "alpha" / f"{letter}.ogg", ord(lang[0]))
    kit = {"Kick": "k.wav", "Snare": "s.wav", "Closed HH": "h.wav"}
    _kit(root, "hydrogen-drumkits", "The Black Pearl 1.0", kit, {"k.wav": 1, "s.wav": 2, "h.wav": 3})
    _kit(root, "hydrogen-drumkits", "ColomboAcousticDrumkit", kit, {"k.wav": 4, "s.wav": 5, "h.wav": 6})
    # GMRockKit shares a recording with The Black Pearl: reserved with it
    _kit(root, "hydrogen-data", "GMRockKit", kit, {"k.wav": 1, "s.wav": 8, "h.wav": 9})
    # two kits sharing one recording: one identity
    _kit(root, "hydrogen-drumkits", "KitA", kit, {"k.wav": 10, "s.wav": 11, "h.wav": 12})
    _kit(root, "hydrogen-drumkits", "KitB", kit, {"k.wav": 10, "s.wav": 14, "h.wav": 15})
    _kit(root, "hydrogen-drumkits", "KitC", kit, {"k.wav": 16, "s.wav": 17, "h.wav": 18})
    _kit(root, "hydrogen-drumkits", "KitD", kit, {"k.wav": 19, "s.wav": 20, "h.wav": 21})
    # one author's kits, no recording in common: one identity
    _kit(root, "hydrogen-drumkits", "Millo-Drums_v.1", kit, {"k.wav": 22, "s.wav": 23, "h.wav": 24})
    _kit(root, "hydrogen-drumkits", "Millo_MultiLayered2", kit, {"k.wav": 25, "s.wav": 26, "h.wav": 27})
    samples = root / "sonic-pi-samples/usr/share/sonic-pi/samples"
    for i, name in enumerate(("loop_amen_full", "loop_amen", "loop_compus", "loop_tabla", "tabla_na",
                              "loop_breakbeat", "loop_safari", "bd_haus", "sn_dub", "bass_hit_c")):
        _wav(samples / f"{name}.flac", 100 + i)
    patches = root / "freepats/usr/share/midi/freepats/Tone_000"
    for name in ("000_Acoustic_Grand_Piano", "001_Acoustic_Brite_Piano", "004_Rhodes", "033_Finger_Bass",
                 "034_Pick_Bass", "029_Overdriven_Guitar", "040_Violin", "115_Wood_Block"):
        patches.mkdir(parents=True, exist_ok=True)
        (patches / f"{name}.pat").write_bytes(b"GF1PATCH110\0")
    return root


def _all_names(source: Source) -> list[str]:
    return [source.package, *source.name.split("+"), *(r.path.stem for r in source.recordings),
            *(part for r in source.recordings for part in r.path.parts)]


def test_reserved_kits_loops_and_packages_are_never_indexed_or_selected(tmp_path: Path) -> None:
    fake_packages(tmp_path)
    sources = index(tmp_path)
    identities = {s.identity for s in sources}
    for reserved in ("The Black Pearl", "ColomboAcousticDrumkit", "GMRockKit", "loop_amen", "loop_compus",
                     "loop_tabla", "tabla"):
        assert not any(reserved in identity for identity in identities), reserved
        assert not any(reserved in r.path.name or reserved in str(r.path.parent.name)
                       for s in sources for r in s.recordings), reserved
    for seed in range(25):
        train, valid = split(sources, seed)
        for source in train + valid:
            assert not any(reserved_name(name) for name in _all_names(source)), source.identity


def test_reserved_names_cover_the_evaluation_list() -> None:
    for name in ("csoundqt-examples", "qabcs-data", "hedgewars-data", "fretsonfire-songs-muldjord",
                 "fretsonfire-songs-sectoid", "singularity-music", "simutrans-data", "openttd-openmsx",
                 "planetblupi-music-midi", "freedoom", "ColomboAcousticDrumkit", "The Black Pearl 1.0",
                 "loop_amen_full", "loop_compus", "loop_tabla", "MuseScore_General.sf3", "MuseScore_General_Lite.sf3"):
        assert reserved_name(name), name
    for name in ("klettres-data", "hydrogen-drumkits", "loop_breakbeat", "FluidR3_GM.sf2", "KitA"):
        assert not reserved_name(name), name


def test_a_reserved_source_is_refused_wherever_it_is_offered(tmp_path: Path, monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(real_sources.subprocess, "run", lambda *a, **k: calls.append(a))
    with pytest.raises(ReservedSourceError):
        real_sources.fetch(tmp_path, ("klettres-data", "hedgewars-data"))
    assert calls == []  # nothing fetched at all
    bad = Source("hydrogen-drumkits/The Black Pearl 1.0", "drums", "kit", [Recording(tmp_path / "k.wav")])
    with pytest.raises(ReservedSourceError):
        split([bad])
    loop = Source("sonic-pi-samples/loop_tabla", "drums", "loop", [Recording(tmp_path / "loop_tabla.flac")])
    with pytest.raises(ReservedSourceError):
        split([loop])


def test_kits_sharing_recordings_are_one_identity(tmp_path: Path) -> None:
    fake_packages(tmp_path)
    kits = {s.name: s for s in index(tmp_path) if s.kind == "kit"}
    assert set(kits) == {"KitA+KitB", "KitC", "KitD", "Millo-Drums_v.1+Millo_MultiLayered2"}
    assert {r.label for r in kits["KitC"].recordings} == {"Kick", "Snare", "Closed HH"}


def test_identities_by_speaker_instrument_and_family(tmp_path: Path) -> None:
    fake_packages(tmp_path)
    by_id = {s.identity: s for s in index(tmp_path)}
    assert {i for i in by_id if i.startswith("klettres")} == {f"klettres-data/{x}" for x in ("de", "en", "fr", "it", "ru")}
    assert by_id["freepats/000"].stem == "piano" and len(by_id["freepats/000"].recordings) == 2  # grand + brite
    assert by_id["freepats/033"].stem == "bass" and by_id["freepats/029"].stem == "other"
    assert "freepats/115" not in by_id  # a sound effect, no stem
    assert by_id["sonic-pi-samples/loop_breakbeat"].kind == "loop"
    assert by_id["sonic-pi-samples/bass"].stem == "bass"


def test_split_is_seeded_disjoint_and_keeps_every_group_on_both_sides(tmp_path: Path) -> None:
    fake_packages(tmp_path)
    sources = index(tmp_path)
    train, valid = split(sources, seed=3)
    assert split(sources, seed=3) == (train, valid)
    train_ids, valid_ids = {s.identity for s in train}, {s.identity for s in valid}
    assert not train_ids & valid_ids and train_ids | valid_ids == {s.identity for s in sources}
    train_files = {r.path for s in train for r in s.recordings}
    assert not train_files & {r.path for s in valid for r in s.recordings}
    for stem, kind in (("vocals", "voice"), ("drums", "kit"), ("piano", "patch"), ("bass", "patch")):
        assert any(s.stem == stem and s.kind == kind for s in train), (stem, kind)
        assert any(s.stem == stem and s.kind == kind for s in valid), (stem, kind)
    assert len([s for s in valid if s.kind == "voice"]) == 2  # 30 % of five voices, rounded
    assert any(split(sources, seed=s)[1] != valid for s in range(4, 10))


def test_fetch_downloads_and_unpacks_once(tmp_path: Path, monkeypatch) -> None:
    calls = []

    def run(argv, cwd=None, check=False):
        calls.append(argv[:2])
        if argv[:2] == ["apt-get", "download"]:
            (Path(cwd) / f"{argv[2]}_1.0_all.deb").write_bytes(b"")
        else:
            Path(argv[3]).mkdir(parents=True, exist_ok=True)

    monkeypatch.setattr(real_sources.subprocess, "run", run)
    assert real_sources.fetch(tmp_path, ("freepats",)) == ["freepats"]
    assert calls == [["apt-get", "download"], ["dpkg-deb", "-x"]]
    assert real_sources.fetch(tmp_path, ("freepats",)) == []
    assert len(calls) == 2


def _patch_file(path: Path, freq: float = 440.0, rate: int = 22050) -> None:
    """A one-sample, 16-bit signed, looped GUS patch of a sine at ``freq``."""
    period = rate / freq
    nb = round(period * 200)
    data = (0.5 * 32767 * np.sin(2 * np.pi * np.arange(nb) / period)).astype("<i2").tobytes()
    header = bytearray(239)
    header[:22] = b"GF1PATCH110\0ID#000002\0"
    header[198] = 1
    loop_start = round(period * 100) * 2
    loop_end = loop_start + round(period * 50) * 2
    sample = bytearray(96)
    struct.pack_into("<IIIHIII", sample, 8, len(data), loop_start, loop_end, rate, 20_000, 20_000_000,
                     int(freq * 1000))
    sample[55] = 1 | 4  # 16-bit, looped
    path.write_bytes(bytes(header) + bytes(sample) + data)


def _peak_hz(mono: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(len(mono))))
    return float(np.argmax(spectrum) * RATE / len(mono))


def test_gus_patch_plays_the_asked_pitch_past_its_loop(tmp_path: Path) -> None:
    from stemserve.train.real_render import play_patch, read_patch

    path = tmp_path / "040_Test.pat"
    _patch_file(path)
    (sample,) = read_patch(path)
    assert sample.root_hz == pytest.approx(440.0) and sample.loop is not None
    note = play_patch(path, 40, 81, 1.0, 127)  # A5, 880 Hz, longer than the sample: the loop holds it
    assert len(note) == int(1.2 * RATE)
    assert _peak_hz(note[: RATE]) == pytest.approx(880.0, abs=3.0)
    assert np.abs(note[int(0.8 * RATE): RATE]).max() > 0.3  # sustained by the loop


def test_drum_notes_land_on_the_kit_instruments_by_role(tmp_path: Path) -> None:
    from stemserve.train.real_render import drum_roles, play_drums

    for name, freq in (("kick", 60.0), ("snare", 200.0), ("hat", 5000.0)):
        _wav(tmp_path / f"{name}.wav", 0, seconds=0.1, freq=freq)
    kit = Source("hydrogen-drumkits/K", "drums", "kit", [
        Recording(tmp_path / "kick.wav", "Kick"), Recording(tmp_path / "snare.wav", "Snare Rock"),
        Recording(tmp_path / "hat.wav", "Closed HH")])
    assert {role: [p.stem for p in paths] for role, paths in drum_roles(kit).items()} == {
        "kick": ["kick"], "snare": ["snare"], "hat": ["hat"]}
    notes = [Note(36, 0.0, 0.1, 127), Note(38, 0.5, 0.6, 127), Note(42, 1.0, 1.05, 127), Note(46, 1.5, 1.6, 127)]
    out = play_drums(notes, kit, 2 * RATE, np.random.default_rng(0))
    for start, freq in ((0.0, 60.0), (0.5, 200.0), (1.0, 5000.0), (1.5, 5000.0)):  # open hat falls back to hat
        hit = out[0, int(start * RATE): int((start + 0.1) * RATE)]
        assert _peak_hz(hit) == pytest.approx(freq, rel=0.1)


def test_a_spoken_recording_is_sung_on_the_note(tmp_path: Path) -> None:
    pyworld = pytest.importorskip("pyworld")
    from stemserve.train.real_render import midi_hz, sing_note

    # a buzzy "voice" at 140 Hz with a formant-like tilt
    t = np.arange(int(0.6 * RATE)) / RATE
    voice = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 30)) * np.hanning(len(t))
    _wav(tmp_path / "a.wav", 0, seconds=0.6)
    sf.write(tmp_path / "a.wav", (0.2 * voice).astype(np.float32), RATE)
    sung = sing_note(tmp_path / "a.wav", 62, 0.8, np.random.default_rng(0)).astype(np.float64)
    assert len(sung) == int(0.8 * RATE)
    f0, times = pyworld.dio(sung, RATE, f0_floor=60, f0_ceil=700)
    f0 = pyworld.stonemask(sung, f0, times, RATE)
    assert np.median(f0[f0 > 0]) == pytest.approx(midi_hz(62), rel=0.03)
