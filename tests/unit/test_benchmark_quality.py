"""The quality benchmark's parts: BSS Eval scoring, the oracle mask, the DSP baseline, the
target check, the corpus part mapping and the listening report."""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import soundfile as sf
from stemserve.train.arrange import STEMS
from stemserve.train.metrics import clip_scores

from benchmarks.quality import check_targets, evaluate
from benchmarks.quality_methods import dsp_baseline, oracle_ratio_mask
from benchmarks.quality_report import spectrogram_png, write_listening_report
from benchmarks.quality_sets import HELD_OUT_FIRST_SEED, Clip, stem_for_part

RATE = 8000


def _noise_stems(rng: np.random.Generator, seconds: int = 4) -> np.ndarray:
    """Independent white noise per stem and channel: ``(stems, channels, samples)``."""
    return (0.1 * rng.standard_normal((len(STEMS), 2, seconds * RATE))).astype(np.float32)


def _with_error(stems: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Uncorrelated noise ``snr_db`` below the level of every active stem (std 0.1)."""
    error = rng.standard_normal(stems.shape) * 0.1 * 10 ** (-snr_db / 20)
    return stems + error.astype(np.float32)


def test_sdr_is_the_signal_to_error_ratio_and_silent_stems_are_not_scored() -> None:
    rng = np.random.default_rng(0)
    stems = _noise_stems(rng, seconds=3)
    stems[1:4] = 0.0  # drums, bass and piano absent from the clip
    stems[4, :, : 2 * RATE] = 0.0  # other silent in the first two frames
    scores = clip_scores(stems, _with_error(stems, 15.0, rng), RATE)
    assert np.isnan(scores["sdr"][1:4]).all()
    for stem in (0, 4):
        assert scores["sdr"][stem] == pytest.approx(15.0, abs=1.0)
        assert scores["sir"][stem] > 20  # no other stem leaks in
        assert scores["sar"][stem] == pytest.approx(scores["sdr"][stem], abs=2.0)
    worse = clip_scores(stems, _with_error(stems, 5.0, rng), RATE)
    assert worse["sdr"][0] == pytest.approx(5.0, abs=1.0)


def test_clip_figures_are_the_median_over_clips() -> None:
    rng = np.random.default_rng(1)
    clips = []
    for i in range(3):
        stems = _noise_stems(rng, seconds=1)
        stems[2:] = 0.0  # only vocals and drums sound
        clips.append(Clip(f"c{i}", "a", "test", stems))
    snr_by_clip = {"c0": 5.0, "c1": 10.0, "c2": 30.0}

    def separator(mix: np.ndarray, stems: np.ndarray) -> np.ndarray:
        name = next(c.name for c in clips if c.stems is stems)
        return _with_error(stems, snr_by_clip[name], rng)

    result = evaluate(clips, {"model": separator, "oracle": separator, "baseline": separator}, RATE)
    sdr = result["summary"]["a"]["model"]["sdr"]
    assert sdr["vocals"] == pytest.approx(10.0, abs=1.0) and sdr["drums"] == pytest.approx(10.0, abs=1.0)
    assert np.isnan([sdr["bass"], sdr["piano"], sdr["other"]]).all()
    assert [c["name"] for c in result["clips"]] == ["c0", "c1", "c2"]


def _tone(freq_hz: float, seconds: float = 2.0, rate: int = 44100) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def test_oracle_mask_recovers_stems_that_do_not_overlap_in_frequency() -> None:
    stems = np.zeros((len(STEMS), 2, 88200), dtype=np.float32)
    stems[0] = _tone(440.0)
    stems[2] = _tone(55.0)
    stems[4] = _tone(5000.0)
    mix = stems.sum(axis=0)
    estimate = oracle_ratio_mask(mix, stems)
    np.testing.assert_allclose(estimate.sum(axis=0), mix, atol=1e-4)
    inner = slice(4410, -4410)
    for index in (0, 2, 4):
        error = np.sqrt(np.mean((estimate[index, :, inner] - stems[index, :, inner]) ** 2))
        assert error < 0.01 * np.sqrt(np.mean(stems[index] ** 2))
    assert np.abs(estimate[[1, 3], :, inner]).max() < 1e-3


def _energy_shares(estimate: np.ndarray) -> np.ndarray:
    energy = np.square(estimate[:, :, 4410:-4410]).sum(axis=(1, 2))
    return energy / energy.sum()


def test_dsp_baseline_splits_by_band_panning_and_onsets() -> None:
    silent = np.zeros(88200, dtype=np.float32)
    centre = np.stack([_tone(1000.0), _tone(1000.0)])
    shares = _energy_shares(dsp_baseline(centre))
    assert shares[0] > 0.9  # a sustained centred tone in the voice band: vocals
    hard_left = np.stack([_tone(1000.0), silent])
    shares = _energy_shares(dsp_baseline(hard_left))
    assert shares[0] < 0.05 and shares[3] == pytest.approx(shares[4]) and shares[3] > 0.4  # piano/other halves
    low = np.stack([_tone(60.0), _tone(60.0)])
    assert _energy_shares(dsp_baseline(low))[2] > 0.9  # below 100 Hz: bass
    clicks = np.zeros((2, 88200), dtype=np.float32)
    clicks[:, ::11025] = 1.0
    assert _energy_shares(dsp_baseline(clicks))[1] > 0.6  # broadband onsets: drums
    mix = centre + hard_left + low + clicks
    np.testing.assert_allclose(dsp_baseline(mix).sum(axis=0), mix, atol=1e-4)


def _summary(model: dict, baseline: dict) -> dict:
    return {"model": {"sdr": model}, "baseline": {"sdr": baseline}}


def test_targets_ask_for_every_stem_above_the_baseline_and_5_db_on_set_a() -> None:
    good = dict(zip(STEMS, (12.0, 8.0, 6.0, 4.0, 3.0)))  # average 6.6
    low = dict(zip(STEMS, (1.0,) * 5))
    assert check_targets({"a": _summary(good, low), "b": _summary(good, low)}) == []
    misses = check_targets({"a": _summary({**good, "bass": 0.5}, low)})
    assert misses == ["set a, bass: model SDR 0.50 dB must beat the baseline's 1.00 dB"]
    misses = check_targets({"b": _summary({**good, "drums": float("nan")}, {**low, "drums": 3.0})})
    assert misses == []  # set b has no drums: a stem that is absent is not scored
    misses = check_targets({"a": _summary(dict(zip(STEMS, (4.0,) * 5)), low)})
    assert misses == ["set a: average model SDR must be >= 5.0 dB, got 4.00 dB"]


@pytest.mark.parametrize(("name", "stem"), [
    ("Soprano", "vocals"), ("Voice", "vocals"), ("Singstimme", "vocals"), ("Piano", "piano"),
    ("Violoncello", "bass"), ("Bass", "bass"), ("Basso continuo", "bass"), ("Alto", "other"),
    ("Viola", "other"), ("Violin I", "other"), ("Tenor", "other")])
def test_corpus_parts_map_to_stems_by_name(name: str, stem: str) -> None:
    assert stem_for_part(name) == stem


def test_held_out_songs_use_seeds_no_training_or_validation_cache_uses() -> None:
    assert HELD_OUT_FIRST_SEED > 900_023  # validation songs are seeds 900000-900023


def test_listening_report_puts_each_reference_stem_beside_its_estimate(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    reference = _noise_stems(rng, seconds=1)
    mix = reference.sum(axis=0)
    estimate = np.stack([mix * w for w in (0.5, 0.2, 0.1, 0.1, 0.1)])
    page = write_listening_report(tmp_path, [{"name": "clip-1", "style": "a <test>", "mix": mix,
                                              "reference": reference, "estimate": estimate,
                                              "sdr": {"vocals": 7.25}}], RATE)
    text = page.read_text()
    assert "a &lt;test&gt;" in text and "SDR 7.2 dB" in text and "SDR nan dB" in text
    for label in ("mix", *STEMS, *(f"{stem}-reference" for stem in STEMS)):
        assert f"src='listening/clip-1-{label}.wav'" in text and f"src='listening/clip-1-{label}.png'" in text
        assert (tmp_path / "listening" / f"clip-1-{label}.png").stat().st_size > 1000
    row = text[text.index("<b>bass</b>"):].split("</tr>")[0]
    assert row.index("clip-1-bass-reference.wav") < row.index("clip-1-bass.wav")  # reference, then estimate
    for stem_file, expected in (("clip-1-vocals", estimate[0]), ("clip-1-vocals-reference", reference[0])):
        audio, rate = sf.read(tmp_path / "listening" / f"{stem_file}.wav", dtype="float32")
        assert rate == RATE
        np.testing.assert_allclose(audio.T, expected, atol=1e-4)


def test_listening_spectrograms_reach_16_khz(tmp_path: Path) -> None:
    """A 12 kHz tone shows on the image (a chart cut at 8 kHz would draw it like silence);
    one at 20 kHz lies above the chart."""
    rate = 44100
    t = np.arange(rate) / rate
    images = {}
    for name, hz in (("silence", None), ("12k", 12_000), ("20k", 20_000)):
        signal = np.zeros((2, rate)) if hz is None else np.tile(0.5 * np.sin(2 * np.pi * hz * t), (2, 1))
        spectrogram_png(signal, rate, tmp_path / f"{name}.png", "same title")
        images[name] = plt.imread(tmp_path / f"{name}.png")
    assert np.abs(images["12k"] - images["silence"]).max() > 0.2
    assert np.abs(images["20k"] - images["silence"]).max() < 0.05


@pytest.mark.parametrize(("soundfont", "message"), [
    ("/usr/share/sounds/sf2/TimGM6mb.sf2", "must be one no training song used"),
    ("/nonexistent/eval.sf3", "must be a readable soundfont file"),
])
def test_quality_refuses_a_training_or_missing_soundfont(soundfont: str, message: str, capsys) -> None:
    from benchmarks.quality import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--soundfont", soundfont])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert message in error and soundfont in error
