"""Mask calibration: a temperature and per-stem offsets folded exactly into the weights."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from stemserve.train.arrange import STEMS
from stemserve.train.calibrate import SelectionLogits, calibrated, fold_calibration, search
from stemserve.train.calibrate import main as calibrate_main
from stemserve.train.model import ModelConfig, Separator
from stemserve.train.score import score, score_model
from stemserve.train.train import load_separator, save

CONFIG = ModelConfig(hidden=16, head_rank=4, dilations=(1, 2), local_width=2, stereo_cues=True, phase_cues=True)


def _model() -> Separator:
    torch.manual_seed(0)
    model = Separator(CONFIG).eval()
    with torch.no_grad():  # the branches that start at zero get weights, so each term of the logits counts
        for weight in (model.masknet.skip_scale, model.masknet.stereo.signed_scale, model.masknet.stereo.size_scale,
                       model.masknet.phase.cosine_scale, model.masknet.phase.centre_scale,
                       model.masknet.local.out.weight, model.masknet.local.out.bias, model.masknet.head_bias):
            weight.normal_(0.0, 0.5)
    return model


def _masks(model: Separator, magnitude: torch.Tensor) -> torch.Tensor:
    """The masks for ``magnitude``, with the same phase features (cosines, then centre
    coherences) every call."""
    generator = torch.Generator().manual_seed(3)
    shape = (1, CONFIG.nb_bins, magnitude.shape[-1])
    phase = torch.cat([2 * torch.rand(shape, generator=generator) - 1, torch.rand(shape, generator=generator)], dim=1)
    with torch.no_grad():
        return model.masknet(magnitude, phase)


def test_folded_calibration_gives_the_softmax_of_scaled_and_offset_logits() -> None:
    model = _model()
    magnitude = torch.rand(1, 2 * CONFIG.nb_bins, 12) + 0.01
    masks = _masks(model, magnitude)
    offsets = {"piano": 0.7, "vocals": -0.4}
    expected = masks.log() * 0.6 + torch.tensor([offsets.get(s, 0.0) for s in STEMS]).view(1, 5, 1, 1)
    expected = torch.softmax(expected, dim=1)
    got = _masks(calibrated(model, 0.6, offsets), magnitude)
    assert torch.allclose(got, expected, atol=1e-5)
    assert torch.allclose(_masks(model, magnitude), masks)  # the source model is left as it was
    assert (got[:, STEMS.index("piano")].mean() > masks[:, STEMS.index("piano")].mean())
    assert torch.allclose(_masks(calibrated(model, 1.0, {}), magnitude), masks, atol=1e-6)


def test_calibration_refuses_a_non_positive_temperature_and_unknown_stems() -> None:
    with pytest.raises(ValueError, match="temperature must be positive, got 0.0"):
        fold_calibration(_model().masknet, 0.0, {})
    with pytest.raises(ValueError, match=r"unknown stems \['guitar'\]"):
        fold_calibration(_model().masknet, 1.0, {"guitar": 1.0})


def test_search_finds_the_wiener_share_and_temperature_then_the_offsets_that_score_best() -> None:
    calls = []

    def evaluate(share: float, temperature: float, offsets: dict[str, float]) -> float:
        calls.append((share, temperature, dict(offsets)))
        piano, bass = offsets.get("piano", 0.0), offsets.get("bass", 0.0)
        return -(share - 0.5) ** 2 - (temperature - 0.8) ** 2 - (piano - 0.5) ** 2 - (bass + 0.25) ** 2

    share, temperature, offsets, figure = search(evaluate, [0.6, 0.8, 1.0], 0.25, rounds=3, wiener_shares=[0.0, 0.5])
    assert (share, temperature) == (0.5, 0.8)
    assert offsets == {"vocals": 0.0, "drums": 0.0, "bass": -0.25, "piano": 0.5, "other": 0.0}
    assert figure == pytest.approx(0.0)
    assert calls[:6] == [(s, t, {}) for s in (0.0, 0.5) for t in (0.6, 0.8, 1.0)]
    assert all(call[:2] == (0.5, 0.8) for call in calls[6:])


def test_the_command_writes_a_checkpoint_that_scores_what_it_reports(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    cache = tmp_path / "cache"
    cache.mkdir()
    for seed in range(3):
        np.save(cache / f"song_{seed:07d}.npy", (0.1 * rng.standard_normal((len(STEMS), 2, 8000))).astype(np.float16))
    source = tmp_path / "source.pt"
    save(source, _model(), None, 7)
    out = tmp_path / "calibrated.pt"
    sets = ["--valid-cache", str(cache), "--first-song", "1", "--unseen-cache", str(cache)]
    share, temperature, offsets, figure = calibrate_main([str(source), "--out", str(out), "--temperatures", "0.5",
                                                          "1.0", "--wiener-shares", "0", "0.5", "--rounds", "1", *sets])
    assert score(out, {"valid": [np.load(cache / f"song_{i:07d}.npy") for i in (1, 2)],
                       "unseen": [np.load(cache / f"song_{i:07d}.npy") for i in (0, 1, 2)]})["selection"]["mean"] \
        == pytest.approx(figure, abs=1e-4)
    model, state = load_separator(out)
    assert state["step"] == 7 and state["calibration"]["temperature"] == temperature
    assert state["calibration"]["offsets"] == offsets and state["calibration"]["wiener_share"] == share
    assert model.config == replace(CONFIG, spatial_wiener=share)
    assert state["calibration"]["metric"] == "sdr"
    assert capsys.readouterr().out.startswith(f"{out}: wiener share {share:.2f}, temperature {temperature:.2f}, "
                                              "offsets vocals ")
    with_filter = tmp_path / "with_filter.pt"
    save(with_filter, calibrated(_model(), 1.0, {}, wiener_share=0.3), None, 7)
    again = calibrate_main([str(with_filter), "--out", str(tmp_path / "again.pt"), "--temperatures", "1.0",
                            "--rounds", "0", *sets])
    assert again.wiener_share == 0.3  # without --wiener-shares the checkpoint keeps its own
    assert load_separator(tmp_path / "again.pt")[0].config.spatial_wiener == 0.3
    with pytest.raises(SystemExit, match=r"--wiener-shares must lie from 0 to 1, got \[1.5\]"):
        calibrate_main([str(source), "--out", str(tmp_path / "bad.pt"), "--wiener-shares", "0.5", "1.5", *sets])
    assert not (tmp_path / "bad.pt").exists()


@pytest.mark.parametrize("metric", ["sdr", "bss"])
def test_scores_from_logits_computed_once_are_those_of_the_calibrated_model(metric: str) -> None:
    rng = np.random.default_rng(1)
    sets = {name: [(0.1 * rng.standard_normal((len(STEMS), 2, 44100 + 2000 * i))).astype(np.float32)
                   for i in range(2)] for name in ("first", "second")}
    sets["second"][1][STEMS.index("drums")] = 0.0  # a silent stem does not count
    model = _model()
    cached = SelectionLogits(model, sets)
    for temperature, offsets, share in ((1.0, {}, None), (0.6, {"bass": 0.5, "other": -0.25}, 0.0),
                                        (1.2, {"bass": -1.0}, 0.5)):
        expected = score_model(calibrated(model, temperature, offsets, share), sets, metric)
        got = cached.score(temperature, offsets, metric, share)
        assert got.keys() == expected.keys()
        for name in expected:
            assert got[name] == pytest.approx(expected[name], abs=1e-3)
    assert cached.score(0.6, {"bass": 0.5}, metric)["first"]["bass"] != pytest.approx(cached.score(1.0, {}, metric)["first"]["bass"])
    with pytest.raises(ValueError, match="metric must be one of"):
        cached.score(1.0, {}, "snr")
    in_two_processes = SelectionLogits(model, sets, workers=2).score(0.6, {"bass": 0.5}, metric)
    assert in_two_processes == cached.score(0.6, {"bass": 0.5}, metric)
