"""Training songs of real recordings (``make_cache --real``): deterministic per seed, stems that
sum to the mix, training identities only, and production effects applied stem by stem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from stemserve.train import make_cache, real_render
from stemserve.train.arrange import STEMS, generate_song
from stemserve.train.real_sources import index, split

from tests.unit.test_train_real_sources import _patch_file, fake_packages

pytest.importorskip("pyworld")
pytest.importorskip("pedalboard")


@pytest.fixture(scope="module")
def real_tree(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("real")
    root = fake_packages(data)
    for pat in (root / "freepats/usr/share/midi/freepats/Tone_000").glob("*.pat"):
        _patch_file(pat, freq=220.0)
    return data


def _pool(data: Path, side: int = 0) -> dict:
    sources = split(index(data), 0)[side]
    return {stem: [s for s in sources if s.stem == stem] for stem in STEMS}


def test_real_songs_are_deterministic_per_seed_and_cached_as_stems(real_tree: Path, tmp_path: Path) -> None:
    seeds = range(7000, 7002)
    assert make_cache.build_cache(tmp_path / "a", seeds, duration_s=3.0, kind="real", real_data=real_tree) == 2
    assert make_cache.build_cache(tmp_path / "a", seeds, duration_s=3.0, kind="real", real_data=real_tree) == 0
    make_cache.build_cache(tmp_path / "b", seeds, duration_s=3.0, kind="real", real_data=real_tree)
    for seed in seeds:
        a = np.load(make_cache.song_path(tmp_path / "a", seed))
        b = np.load(make_cache.song_path(tmp_path / "b", seed))
        assert a.dtype == np.float16 and a.shape[:2] == (len(STEMS), 2)
        np.testing.assert_array_equal(a, b)
        assert np.abs(a.astype(np.float32).sum(axis=0)).max() <= 0.9 + 1e-3
        assert (np.abs(a).reshape(len(STEMS), -1).max(axis=1) > 0).sum() >= 2  # several stems sound
    other = np.load(make_cache.song_path(tmp_path / "a", 7001))
    assert not np.array_equal(np.load(make_cache.song_path(tmp_path / "a", 7000))[..., :1000], other[..., :1000])


def test_real_songs_use_one_side_of_the_split(real_tree: Path, monkeypatch) -> None:
    seen = []
    original = real_render.render_real_song

    def spy(song, pool, rng, **kwargs):
        seen.append({s.identity for sources in pool.values() for s in sources})
        return original(song, pool, rng, **kwargs)

    monkeypatch.setattr(real_render, "render_real_song", spy)
    train, valid = split(index(real_tree), 0)
    make_cache.real_renderer(real_tree, "train")(7000, 2.0)
    make_cache.real_renderer(real_tree, "valid")(7000, 2.0)
    assert seen == [{s.identity for s in train}, {s.identity for s in valid}]
    with pytest.raises(ValueError, match="train or valid"):
        make_cache.real_renderer(real_tree, "all")


def test_each_stem_is_rendered_alone_so_the_mix_is_their_exact_sum(real_tree: Path) -> None:
    song = generate_song(7003, 4.0)
    full_log: list = []
    stems = real_render.render_real_song(song, _pool(real_tree), np.random.default_rng(1), log=full_log)
    again = real_render.render_real_song(song, _pool(real_tree), np.random.default_rng(1))
    np.testing.assert_array_equal(stems, again)
    rendered = [stem for stem, _, _ in full_log]
    for index_, stem in enumerate(STEMS):
        assert (np.abs(stems[index_]).max() > 0) == (stem in rendered)
    # a pool with one stem only renders that stem and leaves the others silent
    only_bass = {"bass": _pool(real_tree)["bass"]}
    bass = real_render.render_real_song(song, only_bass, np.random.default_rng(1))
    assert np.abs(bass[[0, 1, 3, 4]]).max() == 0
    assert (np.abs(bass[2]).max() > 0) == bool(song.stem_parts("bass"))


def test_effects_apply_per_stem_and_distort_guitars(real_tree: Path) -> None:
    rate = 44100
    t = np.arange(rate) / rate
    tone = np.stack([0.5 * np.sin(2 * np.pi * 220 * t)] * 2).astype(np.float32)
    found = None
    for seed in range(20):
        out, names = real_render.apply_effects(tone, "other", np.random.default_rng(seed), guitar=True)
        if "Distortion" in names:
            found = out
            break
    assert found is not None and found.shape == tone.shape
    spectrum = np.abs(np.fft.rfft(found[0] * np.hanning(rate)))
    # distortion makes odd harmonics the clean sine does not have
    assert spectrum[660] > 100 * np.abs(np.fft.rfft(tone[0] * np.hanning(rate)))[660]
    clean, names = real_render.apply_effects(tone, "bass", np.random.default_rng(0), guitar=False)
    assert "Distortion" not in names and clean.shape == tone.shape
    # effects=False leaves every stem dry
    log: list = []
    real_render.render_real_song(generate_song(7004, 4.0), _pool(real_tree), np.random.default_rng(0),
                                 effects=False, log=log)
    assert log and all(effects == [] for _, _, effects in log)
