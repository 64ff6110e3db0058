"""Set r of the quality benchmark: exact sums of real stems from validation identities only,
no reserved source, and the routing table of a known separator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from stemserve.train.arrange import STEMS
from stemserve.train.real_sources import index, reserved_name, split

from benchmarks.quality_sets import Clip
from benchmarks.real_sets import real_clips, routing, routing_rows, validation_pool
from tests.unit.test_train_real_sources import _patch_file, fake_packages


@pytest.fixture(scope="module")
def real_tree(tmp_path_factory) -> Path:
    pytest.importorskip("pyworld")
    pytest.importorskip("pedalboard")
    data = tmp_path_factory.mktemp("real")
    root = fake_packages(data)
    for pat in (root / "freepats/usr/share/midi/freepats/Tone_000").glob("*.pat"):
        _patch_file(pat, freq=220.0)  # playable patches
    return data


def test_real_clips_are_exact_sums_of_validation_identities(real_tree: Path) -> None:
    clips = real_clips(3, duration_s=4.0, data_dir=real_tree, first_seed=6_000_000)
    train, valid = split(index(real_tree), 0)
    train_ids = {s.identity for s in train}
    valid_ids = {s.identity for s in valid}
    assert [c.set_name for c in clips] == ["r"] * 3
    for clip in clips:
        assert clip.stems.shape[:2] == (len(STEMS), 2) and clip.stems.shape[2] > 3 * 44100  # whole bars
        np.testing.assert_array_equal(clip.mix, clip.stems.sum(axis=0))
        assert np.abs(clip.mix).max() == pytest.approx(0.8, abs=1e-3)
        used = {part.split(" (")[0] for entry in clip.style.split("; ") for part in entry.split(": ", 1)[1:]}
        for identity in used:
            for one in identity.split(", "):
                assert one in valid_ids and one not in train_ids, one
                assert not any(reserved_name(x) for x in one.split("/")[1].split("+")), one
    again = real_clips(3, duration_s=4.0, data_dir=real_tree, first_seed=6_000_000)
    assert all(np.array_equal(a.stems, b.stems) for a, b in zip(clips, again))


def test_the_validation_pool_holds_no_training_or_reserved_source(real_tree: Path) -> None:
    pool, training = validation_pool(real_tree)
    for stem, sources in pool.items():
        for source in sources:
            assert source.stem == stem and source.identity not in training
            assert not any(reserved_name(r.path.stem) for r in source.recordings)
            assert not any("Pearl" in str(r.path) or "Colombo" in str(r.path) or "GMRock" in str(r.path)
                           for r in source.recordings)


def test_routing_gives_the_energy_shares_of_a_known_separator() -> None:
    rng = np.random.default_rng(0)
    stems = np.zeros((len(STEMS), 2, 8000), dtype=np.float32)
    stems[0] = rng.standard_normal((2, 8000))  # vocals
    stems[3] = rng.standard_normal((2, 8000))  # piano; drums, bass and other silent
    clip = Clip("c", "r", "test", stems)
    # the separator sends 70 % of the energy (amplitude sqrt(0.7)) to vocals and 30 % to other,
    # whatever it is fed; the routing does not see the true stems
    fractions = np.array([0.7, 0.0, 0.0, 0.0, 0.3])

    def separate(mix: np.ndarray, true_stems) -> np.ndarray:
        assert true_stems is None
        return np.sqrt(fractions)[:, None, None] * mix[None]

    result = routing([clip, clip], separate)
    assert set(result["summary"]) == {"vocals", "piano"}
    for source in ("vocals", "piano"):
        assert [result["summary"][source][out] for out in STEMS] == pytest.approx(list(fractions), abs=1e-6)
    assert len(result["clips"]) == 4
    rows = routing_rows(result["summary"])
    assert rows[0] == {"real source alone": "vocals", "% in vocals": "70.0", "% in drums": "0.0",
                       "% in bass": "0.0", "% in piano": "0.0", "% in other": "30.0"}


def test_routing_of_a_source_split_by_frequency() -> None:
    """A separator that keeps the low half of the spectrum in bass: a source with equal energy
    below and above gives half to bass."""
    rate, n = 8000, 8000
    t = np.arange(n) / rate
    low, high = np.sin(2 * np.pi * 200 * t), np.sin(2 * np.pi * 3000 * t)
    stems = np.zeros((len(STEMS), 2, n), dtype=np.float32)
    stems[4] = low + high
    clip = Clip("c", "r", "test", stems)

    def separate(mix: np.ndarray, _) -> np.ndarray:
        spectrum = np.fft.rfft(mix)
        cut = np.fft.rfftfreq(n, 1 / rate) < 1000
        out = np.zeros((len(STEMS), *mix.shape))
        out[2] = np.fft.irfft(spectrum * cut, n)
        out[4] = np.fft.irfft(spectrum * ~cut, n)
        return out

    shares = routing([clip], separate)["summary"]["other"]
    assert shares["bass"] == pytest.approx(0.5, abs=0.01) and shares["other"] == pytest.approx(0.5, abs=0.01)
