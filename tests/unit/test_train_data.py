"""The procedural song generator, the singer, the per-stem renderer and the remix sampler."""

import itertools
from pathlib import Path

import numpy as np
import pytest
from stemserve.train.arrange import CHOIR_PROGRAMS, MAJOR, MINOR, STEMS, VARIED_BASS_PROGRAMS, generate_song, vary_song
from stemserve.train.dataset import RemixSampler, SongCache, resample
from stemserve.train.ensemble import ensemble_song
from stemserve.train.singer import sing

SOUNDFONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")


def test_songs_are_seeded() -> None:
    first, again, other = generate_song(5), generate_song(5), generate_song(6)
    assert first == again
    assert first != other
    assert {part.stem for part in first.parts} <= set(STEMS)
    for part in first.parts:
        for note in part.notes:
            assert 0 <= note.start_s < min(note.end_s, first.duration_s)  # the renderer cuts the tails
            assert 0 <= note.pitch < 128 and 0 < note.velocity < 128


def test_songs_vary_in_tempo_and_length() -> None:
    songs = [generate_song(seed, duration_s=8.0) for seed in range(20)]
    tempos = [song.tempo_bpm for song in songs]
    assert max(tempos) - min(tempos) > 30
    assert all(7.0 < song.duration_s < 8.0 + 4 * 60 / song.tempo_bpm for song in songs)
    assert any(not song.stem_parts("piano") for song in songs)  # stems can be absent


def test_varied_songs_add_high_bass_piano_in_the_vocal_register_and_choir_backing() -> None:
    seeds = range(1000, 1060)
    plain, varied = [generate_song(seed) for seed in seeds], [vary_song(generate_song(seed)) for seed in seeds]
    assert varied[0] == vary_song(generate_song(seeds[0]))  # seeded
    assert generate_song(seeds[0]) == plain[0]  # the plain generator is untouched
    raised = new_bass = doubled = topline = choir = 0
    for before, after in zip(plain, varied):
        for old, new in zip(before.parts, after.parts):
            assert (old.stem, old.is_drum) == (new.stem, new.is_drum)
            if new.stem == "bass":
                new_bass += new.program != old.program
                assert new.program == old.program or new.program in VARIED_BASS_PROGRAMS
                shifts = {b.pitch - a.pitch for a, b in zip(old.notes, new.notes)}
                assert shifts in ({0}, {12})
                raised += shifts == {12}
            elif new.stem == "piano" and len(new.notes) > len(old.notes):
                assert new.notes[: len(old.notes)] == old.notes
                added = new.notes[len(old.notes):]
                vocal = before.stem_parts("vocals")
                if vocal and [n.pitch for n in added] == [n.pitch for n in vocal[0].notes]:
                    doubled += 1
                else:  # the top note of each piano onset, an octave up
                    tops = {}
                    for n in old.notes:
                        tops[n.start_s] = max(tops.get(n.start_s, 0), n.pitch)
                    assert sorted((n.start_s, n.pitch - 12) for n in added) == sorted(tops.items())
                    topline += 1
            elif new.stem == "other" and new.program != old.program:
                assert new.program in CHOIR_PROGRAMS
                choir += 1
            else:
                assert new == old
    assert min(raised, new_bass, doubled, topline, choir) > 0, (raised, new_bass, doubled, topline, choir)


def test_singer_sings_the_requested_pitch() -> None:
    rate = 16000
    voice = sing([(57, 0.1, 1.1, 100)], ["a"], 1.5, rate, np.random.default_rng(0))  # A3 = 220 Hz
    assert np.abs(voice[: int(0.09 * rate)]).max() == 0  # silent before the note
    segment = voice[int(0.4 * rate): int(1.0 * rate)]
    spectrum = np.abs(np.fft.rfft(segment * np.hanning(len(segment))))
    freqs = np.fft.rfftfreq(len(segment), 1 / rate)
    band = (freqs > 150) & (freqs < 300)
    assert freqs[band][np.argmax(spectrum[band])] == pytest.approx(220, rel=0.03)


@pytest.mark.skipif(not SOUNDFONT.exists(), reason="needs the timgm6mb-soundfont Debian package")
def test_rendered_stems_follow_the_arrangement() -> None:
    from stemserve.train.render import open_renderers, render_song

    renderers = open_renderers(("TimGM6mb.sf2",))
    song = generate_song(3, duration_s=4.0)
    stems = render_song(song, renderers)
    assert stems.shape == (len(STEMS), 2, round(song.duration_s * 44100))
    for index, stem in enumerate(STEMS):
        energy = float(np.square(stems[index]).mean())
        assert (energy > 1e-6) == bool(song.stem_parts(stem)), stem
    assert np.array_equal(stems, render_song(song, open_renderers(("TimGM6mb.sf2",))))  # seeded


def _fake_cache(directory: Path, nb_songs: int = 3) -> SongCache:
    rng = np.random.default_rng(0)
    for seed in range(nb_songs):
        np.save(directory / f"song_{seed:07d}.npy",
                (0.1 * rng.standard_normal((len(STEMS), 2, 3000))).astype(np.float16))
    return SongCache(directory)


def test_remix_sampler_is_seeded_and_bounded(tmp_path: Path) -> None:
    sampler = RemixSampler(_fake_cache(tmp_path), crop_samples=1000)
    batch = sampler.batch(4, np.random.default_rng(1))
    assert batch.shape == (4, len(STEMS), 2, 1000)
    assert np.array_equal(batch, sampler.batch(4, np.random.default_rng(1)))
    assert not np.array_equal(batch, sampler.batch(4, np.random.default_rng(2)))
    assert np.abs(batch.sum(axis=1)).max() <= 1.0 + 1e-6


def test_song_cache_picks_up_new_songs(tmp_path: Path) -> None:
    cache = _fake_cache(tmp_path, nb_songs=2)
    assert len(cache) == 2
    np.save(tmp_path / "song_0000009.npy", np.zeros((len(STEMS), 2, 10), dtype=np.float16))
    np.save(tmp_path / "song_0000010.tmp.npy", np.zeros((len(STEMS), 2, 10), dtype=np.float16))
    assert cache.refresh() == 3


@pytest.mark.skipif(not SOUNDFONT.exists(), reason="needs the timgm6mb-soundfont Debian package")
def test_cache_renders_varied_songs_with_the_soundfont_asked_for(tmp_path: Path) -> None:
    from stemserve.train.make_cache import main, song_path
    from stemserve.train.render import open_renderers, render_song

    seed = 1001  # as a 3-s song, varying it changes its bass program and an "other" part
    for name, extra in (("plain", []), ("varied", ["--vary"])):
        main(["--out", str(tmp_path / name), "--first-seed", str(seed), "--count", "1", "--duration-s", "3",
              "--soundfont", SOUNDFONT.name, *extra])
    plain, varied = (np.load(song_path(tmp_path / name, seed)).astype(np.float32) for name in ("plain", "varied"))
    expected = render_song(generate_song(seed, 3.0), open_renderers((SOUNDFONT.name,)))
    assert np.abs(expected).sum(axis=0).max() < 0.9  # so the cache kept the rendered level
    np.testing.assert_allclose(plain, expected, atol=2e-3)  # float16
    changed = [stem for index, stem in enumerate(STEMS) if not np.array_equal(plain[index], varied[index])]
    assert {"bass", "other"} <= set(changed) and "drums" not in changed


def _peak_hz(signal: np.ndarray, sample_rate_hz: int = 44100) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(signal.size), 16 * signal.size))
    return float(spectrum.argmax() * sample_rate_hz / (16 * signal.size))


@pytest.mark.parametrize("semitones", [-3.0, 2.0])
def test_resampling_moves_every_frequency_by_the_rate(semitones: float) -> None:
    time_s = np.arange(6000) / 44100
    tones = np.stack([np.sin(2 * np.pi * 1000 * time_s), np.sin(2 * np.pi * 3000 * time_s)])
    shifted = resample(tones, 2 ** (semitones / 12), 4000)
    assert shifted.shape == (2, 4000)
    assert _peak_hz(shifted[0]) == pytest.approx(1000 * 2 ** (semitones / 12), rel=2e-3)
    assert _peak_hz(shifted[1]) == pytest.approx(3000 * 2 ** (semitones / 12), rel=2e-3)


def test_resampling_refuses_too_short_an_input() -> None:
    with pytest.raises(ValueError, match=r"needs 4490 input samples, got 4000"):
        resample(np.zeros((2, 4000)), 2 ** (2 / 12), 4000)


def _tone_cache(directory: Path) -> SongCache:
    """Every stem of every song is a steady 440 Hz tone."""
    tone = np.sin(2 * np.pi * 440 * np.arange(20000) / 44100)
    for seed in range(4):
        np.save(directory / f"song_{seed:07d}.npy", np.broadcast_to(0.1 * tone, (len(STEMS), 2, tone.size))
                .astype(np.float16))
    return SongCache(directory)


@pytest.mark.parametrize("coherent", [False, True])
def test_sampler_shifts_each_stem_within_the_range_and_a_coherent_example_as_one(
        tmp_path: Path, coherent: bool) -> None:
    sampler = RemixSampler(_tone_cache(tmp_path), crop_samples=8192, p_coherent=float(coherent),
                           p_drop_stem=0.0, shift_semitones=3.0)
    rng = np.random.default_rng(0)
    shifts = np.array([[12 * np.log2(_peak_hz(stem[0]) / 440) for stem in sampler.example(rng)]
                       for _ in range(20)])  # (examples, stems), semitones
    assert np.abs(shifts).max() < 3.05
    assert shifts.max() - shifts.min() > 4  # the range is used
    spread_in_example = (shifts.max(axis=1) - shifts.min(axis=1)).max()
    if coherent:
        assert spread_in_example < 0.05  # the stems stay in tune with each other
    else:
        assert spread_in_example > 1


def test_sampler_without_shift_keeps_the_pitch(tmp_path: Path) -> None:
    sampler = RemixSampler(_tone_cache(tmp_path), crop_samples=8192, p_drop_stem=0.0)
    example = sampler.example(np.random.default_rng(0))
    assert all(_peak_hz(stem[0]) == pytest.approx(440, rel=1e-3) for stem in example)


def _in_one_key(pitches: set[int]) -> bool:
    return any({p % 12 for p in pitches} <= {(key + step) % 12 for step in scale}
               for key in range(12) for scale in (MAJOR, MINOR))


def test_ensemble_songs_write_lines_in_one_key_over_a_bowed_or_upright_bass() -> None:
    songs = [ensemble_song(seed) for seed in range(2000, 2060)]
    assert songs[0] == ensemble_song(2000) and songs[0] != songs[1]  # seeded
    kinds = {"choir": 0, "chamber": 0, "accompanied": 0}
    for song in songs:
        assert song.ensemble and not song.stem_parts("drums")
        (bass,) = song.stem_parts("bass")
        assert bass.program in VARIED_BASS_PROGRAMS
        assert _in_one_key({n.pitch for part in song.parts for n in part.notes}), song.seed
        for part in song.parts:
            low, high = (36, 60) if part.stem == "bass" else (48, 79)
            assert all(low <= n.pitch <= high and 0 <= n.start_s < n.end_s <= song.duration_s for n in part.notes)
        vocals, others = song.stem_parts("vocals"), song.stem_parts("other")
        if vocals:
            assert len(song.vowels) == len(vocals[0].notes)
        if song.stem_parts("piano"):
            kinds["accompanied"] += 1
        elif vocals and any(part.program in CHOIR_PROGRAMS for part in others):
            kinds["choir"] += 1
        elif not vocals:
            kinds["chamber"] += 1
            assert len(others) >= 2  # the lines above the bass
    assert min(kinds.values()) >= 5, kinds
    assert len({song.stem_parts("bass")[0].pan for song in songs}) > 10  # the bass is placed like a player
    assert len({round(song.tempo_bpm) for song in songs}) > 20


def test_crossing_ensemble_songs_share_registers_and_keep_the_plain_songs_frame_and_top_line() -> None:
    plain = [ensemble_song(seed) for seed in range(3000, 3060)]
    crossing = [ensemble_song(seed, crossing=True) for seed in range(3000, 3060)]
    assert crossing[0] == ensemble_song(3000, crossing=True) and crossing[0] != plain[0]
    high_bass = left_hand = piano_with_lines = 0
    for song, same_seed in zip(crossing, plain):
        assert (song.tempo_bpm, song.duration_s, song.parts[0].notes) == (same_seed.tempo_bpm, same_seed.duration_s,
                                                                            same_seed.parts[0].notes)
        assert _in_one_key({n.pitch for part in song.parts for n in part.notes}), song.seed
        (bass,) = song.stem_parts("bass")
        assert bass.program in VARIED_BASS_PROGRAMS and all(36 <= n.pitch <= 64 for n in bass.notes)
        high_bass += max(n.pitch for n in bass.notes) > 60  # above any plain song's bass line
        pianos = song.stem_parts("piano")
        if pianos:
            assert all(36 <= n.pitch <= 76 for n in pianos[0].notes)
            left_hand += min(n.pitch for n in pianos[0].notes) < 52  # below any plain song's piano
            piano_with_lines += len(song.stem_parts("other")) >= 2  # a piano trio or quartet
    assert all(max(n.pitch for n in song.stem_parts("bass")[0].notes) <= 60 for song in plain)
    assert all(min(n.pitch for n in part.notes) >= 52 for song in plain for part in song.stem_parts("piano"))
    assert min(high_bass, left_hand, piano_with_lines) >= 5, (high_bass, left_hand, piano_with_lines)


def test_unison_songs_double_a_quick_bass_figure_in_octaves_above_it() -> None:
    crossing = [ensemble_song(seed, crossing=True) for seed in range(5000, 5040)]
    unison = [ensemble_song(seed, crossing=True, unison=True) for seed in range(5000, 5040)]
    assert unison[0] == ensemble_song(5000, crossing=True, unison=True) and unison[0] != crossing[0]
    doubled_songs = 0
    for song, same_seed in zip(unison, crossing):
        assert (song.tempo_bpm, song.duration_s) == (same_seed.tempo_bpm, same_seed.duration_s)
        assert _in_one_key({n.pitch for part in song.parts for n in part.notes}), song.seed
        (bass,) = song.stem_parts("bass")
        assert all(36 <= n.pitch <= 64 for n in bass.notes)
        beat_s = 60.0 / song.tempo_bpm
        quick = [n for n in bass.notes if n.end_s - n.start_s < 0.9 * beat_s]  # no plain bass note is under a beat
        assert quick, song.seed
        lines = [part for part in song.parts if part.stem in ("vocals", "other")]
        for part in lines + [bass]:  # each line still plays one note at a time
            notes = sorted(part.notes, key=lambda n: n.start_s)
            assert all(a.start_s < b.start_s and a.end_s <= b.start_s + 1e-6 for a, b in itertools.pairwise(notes))
        assert all(48 <= n.pitch <= 79 for part in lines for n in part.notes)
        above: dict[float, list[int]] = {}
        for part in lines:
            for note in part.notes:
                above.setdefault(round(note.start_s, 6), []).append(note.pitch)
        doubled = [n for n in quick if any(p - n.pitch in (12, 24) for p in above.get(round(n.start_s, 6), []))]
        doubled_songs += len(doubled) >= len(quick) / 2
    assert doubled_songs >= 28, doubled_songs
    assert all(min(n.end_s - n.start_s for n in song.stem_parts("bass")[0].notes) >= 0.9 * 60.0 / song.tempo_bpm
               for song in crossing)


class _RecordingRenderer:
    """Stands in for a soundfont synth: every rendered part is a constant 0.01 on both channels."""

    def __init__(self) -> None:
        self.stems: list[str] = []

    def render_parts(self, parts, nb_samples: int) -> np.ndarray:
        self.stems += [part.stem for part in parts]
        return np.full((2, nb_samples), 0.01, dtype=np.float32)


def test_every_ensemble_lead_vocal_gets_a_choir_layer_and_band_songs_only_some() -> None:
    from stemserve.train.render import render_song

    def layered(song) -> bool:
        renderer = _RecordingRenderer()
        render_song(song, [renderer])
        return "vocals" in renderer.stems

    ensemble = [song for song in (ensemble_song(seed, 2.0) for seed in range(2000, 2030)) if song.stem_parts("vocals")]
    band = [song for song in (generate_song(seed, 2.0) for seed in range(30)) if song.stem_parts("vocals")]
    assert len(ensemble) >= 10 and all(layered(song) for song in ensemble)
    assert 0 < sum(layered(song) for song in band) < len(band)


def test_blend_songs_render_every_stem_with_one_soundfont_and_sing_inner_voices_with_the_leads_patch() -> None:
    from stemserve.train.render import render_song

    seeds = range(4000, 4030)
    blend = [ensemble_song(seed, 2.0, crossing=True, blend=True) for seed in seeds]
    crossing = [ensemble_song(seed, 2.0, crossing=True) for seed in seeds]
    assert blend[0] == ensemble_song(4000, 2.0, crossing=True, blend=True)
    shared_patch = several_soundfonts = 0
    for song, same_seed in zip(blend, crossing):
        assert song.one_soundfont and not same_seed.one_soundfont
        # the same song as the crossing song of its seed but for the inner choir voices' patch
        assert [(p.stem, p.notes, p.pan, p.volume) for p in song.parts] == \
            [(p.stem, p.notes, p.pan, p.volume) for p in same_seed.parts]
        (lead,) = song.stem_parts("vocals") or (None,)
        for part, plain_part in zip(song.parts, same_seed.parts):
            if lead is not None and part.stem == "other" and plain_part.program in CHOIR_PROGRAMS:
                assert part.program == lead.program
                shared_patch += plain_part.program != lead.program
            else:
                assert part.program == plain_part.program
        used = {}
        for which, one in ((song, True), (same_seed, False)):
            renderers = [_RecordingRenderer() for _ in range(3)]
            render_song(which, renderers)
            used[one] = [renderer for renderer in renderers if renderer.stems]
        assert len(used[True]) == 1 and len(used[True][0].stems) == len(song.parts) - len(song.stem_parts("drums"))
        several_soundfonts += len(used[False]) > 1
    assert shared_patch >= 3 and several_soundfonts >= 10, (shared_patch, several_soundfonts)


def test_song_cache_reads_several_folders_in_order(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    for directory, seeds in ((first, (7, 3)), (second, (1,))):
        for seed in seeds:
            np.save(directory / f"song_{seed:07d}.npy", np.full((len(STEMS), 2, 10), seed, dtype=np.float16))
    cache = SongCache(first, second)
    assert [int(song[0, 0, 0]) for song in cache.songs] == [3, 7, 1]
    np.save(second / "song_0000000.npy", np.zeros((len(STEMS), 2, 10), dtype=np.float16))
    assert cache.refresh() == 4 and int(cache.songs[-1][0, 0, 0]) == 0
    with pytest.raises(ValueError, match="at least one folder"):
        SongCache()


@pytest.mark.skipif(not SOUNDFONT.exists(), reason="needs the timgm6mb-soundfont Debian package")
def test_cache_renders_ensemble_songs_and_refuses_two_kinds_or_an_unknown_one(tmp_path: Path) -> None:
    from stemserve.train.make_cache import build_cache, main, song_path
    from stemserve.train.render import open_renderers, render_song

    main(["--out", str(tmp_path), "--first-seed", "2000", "--count", "1", "--duration-s", "3",
          "--soundfont", SOUNDFONT.name, "--ensemble"])
    expected = render_song(ensemble_song(2000, 3.0), open_renderers((SOUNDFONT.name,)))
    np.testing.assert_allclose(np.load(song_path(tmp_path, 2000)).astype(np.float32), expected, atol=2e-3)
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--count", "1", "--vary", "--ensemble"])
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--count", "1", "--ensemble", "--crossing"])
    main(["--out", str(tmp_path / "crossing"), "--first-seed", "3000", "--count", "1", "--duration-s", "3",
          "--soundfont", SOUNDFONT.name, "--crossing"])
    expected = render_song(ensemble_song(3000, 3.0, crossing=True), open_renderers((SOUNDFONT.name,)))
    np.testing.assert_allclose(np.load(song_path(tmp_path / "crossing", 3000)).astype(np.float32), expected,
                               atol=2e-3)
    main(["--out", str(tmp_path / "blend"), "--first-seed", "4000", "--count", "1", "--duration-s", "3",
          "--soundfont", SOUNDFONT.name, "--blend"])
    expected = render_song(ensemble_song(4000, 3.0, crossing=True, blend=True), open_renderers((SOUNDFONT.name,)))
    np.testing.assert_allclose(np.load(song_path(tmp_path / "blend", 4000)).astype(np.float32), expected, atol=2e-3)
    main(["--out", str(tmp_path / "unison"), "--first-seed", "5000", "--count", "1", "--duration-s", "3",
          "--soundfont", SOUNDFONT.name, "--unison"])
    expected = render_song(ensemble_song(5000, 3.0, crossing=True, unison=True), open_renderers((SOUNDFONT.name,)))
    np.testing.assert_allclose(np.load(song_path(tmp_path / "unison", 5000)).astype(np.float32), expected, atol=2e-3)
    with pytest.raises(ValueError, match="song kind must be one of .*got 'chorale'"):
        build_cache(tmp_path, range(1), kind="chorale")
