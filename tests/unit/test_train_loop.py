"""The training loop: a resumed run continues exactly where it stopped."""

from pathlib import Path

import numpy as np
import pytest
import torch
from stemserve.train.arrange import STEMS
from stemserve.train.model import ModelConfig
from stemserve.train.train import learning_rate, load_separator, main, random_eq, validate


def _cache(directory: Path) -> Path:
    directory.mkdir()
    rng = np.random.default_rng(0)
    for seed in range(3):
        np.save(directory / f"song_{seed:07d}.npy",
                (0.1 * rng.standard_normal((len(STEMS), 2, 8000))).astype(np.float16))
    return directory


def _args(run_dir: Path, cache: Path, steps: int) -> list[str]:
    return ["--run-dir", str(run_dir), "--cache", str(cache), "--valid-cache", str(cache),
            "--steps", str(steps), "--batch-size", "2", "--crop-s", "0.05", "--hidden", "8",
            "--head-rank", "4", "--eval-every", "2", "--save-every", "1", "--valid-songs", "1"]


def test_resumed_run_matches_uninterrupted_run(tmp_path: Path) -> None:
    cache = _cache(tmp_path / "cache")
    main(_args(tmp_path / "straight", cache, 3))
    main(_args(tmp_path / "resumed", cache, 2))
    main(_args(tmp_path / "resumed", cache, 3))
    straight, state = load_separator(tmp_path / "straight" / "latest.pt")
    resumed, resumed_state = load_separator(tmp_path / "resumed" / "latest.pt")
    assert state["step"] == resumed_state["step"] == 3
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name
    log = (tmp_path / "resumed" / "train.log").read_text()
    assert "resuming from" in log and "valid step 2 SDR vocals" in log


def test_a_run_keeps_the_weights_of_every_nth_step(tmp_path: Path) -> None:
    cache = _cache(tmp_path / "cache")
    main([*_args(tmp_path / "run", cache, 4), "--keep-every", "2"])
    kept = sorted(path.name for path in (tmp_path / "run").glob("step_*.pt"))
    assert kept == ["step_000002.pt", "step_000004.pt"]
    last, state = load_separator(tmp_path / "run" / "step_000004.pt")
    final, _ = load_separator(tmp_path / "run" / "latest.pt")
    assert state["step"] == 4 and "optimizer" not in state
    for (name, a), b in zip(last.state_dict().items(), final.state_dict().values()):
        assert torch.equal(a, b), name


def test_the_share_of_single_song_crops_reaches_the_sampler_and_must_be_a_probability(tmp_path: Path) -> None:
    cache = _cache(tmp_path / "cache")
    for share in ("0", "1"):
        main([*_args(tmp_path / share, cache, 1), "--p-coherent", share])
    remixed, _ = load_separator(tmp_path / "0" / "latest.pt")
    coherent, _ = load_separator(tmp_path / "1" / "latest.pt")
    assert not all(torch.equal(a, b) for a, b in zip(remixed.state_dict().values(), coherent.state_dict().values()))
    with pytest.raises(ValueError, match=r"--p-coherent must be a probability in \[0, 1\], got 1.5"):
        main([*_args(tmp_path / "bad", cache, 1), "--p-coherent", "1.5"])


def test_learning_rate_warms_up_then_halves() -> None:
    assert learning_rate(0, 1e-3, 10, 100) == pytest.approx(1e-4)
    assert learning_rate(9, 1e-3, 10, 100) == pytest.approx(1e-3 * 0.5 ** 0.09)
    assert learning_rate(100, 1e-3, 10, 100) == pytest.approx(5e-4)


def test_a_checkpoint_gains_a_local_branch_that_starts_silent(tmp_path: Path) -> None:
    cache = _cache(tmp_path / "cache")
    main(_args(tmp_path / "plain", cache, 2))
    checkpoint = tmp_path / "plain" / "latest.pt"
    plain, _ = load_separator(checkpoint)
    extended, _ = load_separator(checkpoint, local_width=3)
    assert plain.masknet.local is None and extended.masknet.local is not None
    mix = torch.from_numpy(np.random.default_rng(1).standard_normal((1, 2, 4000)).astype(np.float32))
    with torch.no_grad():
        assert torch.equal(plain(mix), extended(mix))
    with pytest.raises(ValueError, match="only gain a local branch"):
        load_separator(checkpoint, hidden=4)


def test_fine_tuning_with_a_local_branch_trains_it(tmp_path: Path) -> None:
    cache = _cache(tmp_path / "cache")
    main(_args(tmp_path / "plain", cache, 1))
    main([*_args(tmp_path / "tuned", cache, 2), "--init", str(tmp_path / "plain" / "latest.pt"),
          "--local-width", "3"])
    tuned, _ = load_separator(tmp_path / "tuned" / "latest.pt")
    assert tuned.config.local_width == 3
    assert tuned.masknet.local.out.weight.abs().max() > 0  # it moved away from its zero start
    with pytest.raises(ValueError, match="only gain a local branch"):
        load_separator(tmp_path / "tuned" / "latest.pt", local_width=5)


def test_runs_adding_a_local_branch_to_one_checkpoint_start_alike_whatever_their_seed(tmp_path: Path) -> None:
    # the branch's inner convolutions start random: equal starts let the runs be averaged
    cache = _cache(tmp_path / "cache")
    main(_args(tmp_path / "plain", cache, 1))
    for seed in ("1", "2"):
        main([*_args(tmp_path / f"local{seed}", cache, 1), "--init", str(tmp_path / "plain" / "latest.pt"),
              "--local-width", "3", "--seed", seed, "--lr", "0"])
    first, second = (dict(load_separator(tmp_path / f"local{seed}" / "latest.pt")[0].named_parameters())
                     for seed in ("1", "2"))
    assert first["masknet.local.conv1.weight"].abs().max() > 0
    for name, value in first.items():
        torch.testing.assert_close(second[name], value, rtol=0, atol=0, msg=name)


@pytest.mark.parametrize(("field", "value", "flags", "weights"), [
    ("stereo_cues", True, ["--stereo-cues"], ("stereo.encoder.weight", "stereo.size_scale")),
    ("phase_cues", True, ["--phase-cues"], ("phase.encoder.weight", "phase.centre_scale", "phase.cosine_scale")),
])
def test_a_checkpoint_gains_cues_that_start_silent_and_then_train(tmp_path: Path, field: str, value: bool | int,
                                                                   flags: list[str], weights: tuple[str, ...]) -> None:
    cache = _cache(tmp_path / "cache")
    main(_args(tmp_path / "plain", cache, 1))
    checkpoint = tmp_path / "plain" / "latest.pt"
    plain, _ = load_separator(checkpoint)
    extended, _ = load_separator(checkpoint, **{field: value})
    module = weights[0].split(".")[0]
    assert getattr(plain.masknet, module) is None and getattr(extended.masknet, module) is not None
    mix = torch.from_numpy(np.random.default_rng(1).standard_normal((1, 2, 4000)).astype(np.float32))
    mix[:, 1] = 0.2 * mix[:, 1] + 0.1 * mix[:, 0]  # panned left, partly correlated: the cues are far from zero
    with torch.no_grad():
        assert torch.equal(plain(mix), extended(mix))
    main([*_args(tmp_path / "tuned", cache, 2), "--init", str(checkpoint), *flags])
    tuned, _ = load_separator(tmp_path / "tuned" / "latest.pt")
    assert getattr(tuned.config, field) == value
    parameters = dict(tuned.masknet.named_parameters())
    for name in weights:
        assert parameters[name].abs().max() > 0, name  # it moved away from its zero start
    with pytest.raises(ValueError, match="only gain a local branch or stereo or phase cues it lacks"):
        load_separator(tmp_path / "tuned" / "latest.pt", **{field: type(value)(0)})


def test_lr_scale_sets_how_fast_the_named_parameters_learn(tmp_path: Path) -> None:
    cache = _cache(tmp_path / "cache")
    main(_args(tmp_path / "plain", cache, 1))
    checkpoint = tmp_path / "plain" / "latest.pt"
    start = dict(load_separator(checkpoint, phase_cues=True)[0].named_parameters())

    def moved(run: str, *scales: str) -> dict[str, float]:
        args = [*_args(tmp_path / run, cache, 2), "--init", str(checkpoint), "--phase-cues"]
        main([*args, *(f"--lr-scale={scale}" for scale in scales)])
        tuned = dict(load_separator(tmp_path / run / "latest.pt")[0].named_parameters())
        return {name: float((tuned[name] - start[name]).detach().abs().max()) for name in tuned}

    frozen = moved("frozen", "masknet.phase.=0", "masknet.encoder.=0")
    assert all(value == 0.0 for name, value in frozen.items() if name.startswith(("masknet.phase.", "masknet.encoder.")))
    assert frozen["masknet.head_out"] > 0  # the rest learn at the base rate
    plain, fast = moved("plain-rate"), moved("fast", "masknet.phase.=10")
    # Adam moves a weight about lr per step whatever its gradient's size: ten times the rate, ten times the move
    assert fast["masknet.phase.centre_scale"] == pytest.approx(10 * plain["masknet.phase.centre_scale"], rel=0.2)
    assert fast["masknet.head_out"] == pytest.approx(plain["masknet.head_out"], rel=0.2)
    for bad, message in (("masknet.phase.", "PREFIX=FACTOR with a number"), ("=2", "with a prefix"),
                         ("masknet.phase.=-1", "FACTOR >= 0"), ("nothing.=2", r"\['nothing.'\] match no parameter")):
        with pytest.raises(ValueError, match=message):
            main([*_args(tmp_path / "bad", cache, 1), "--lr-scale", bad])


def _eq_db(bump_db: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """EQ gains in dB ``(examples, stems, bins)`` and log2 of the bin frequencies, within 60 Hz-16 kHz
    (where a tilt stays inside the +-18 dB clip)."""
    config = ModelConfig()
    gains = random_eq((8, len(STEMS)), config, np.random.default_rng(seed), bump_db)
    db = 20 * np.log10(gains.numpy()[:, :, 0, :, 0])
    freqs = np.arange(config.nb_bins) * 44100 / config.n_fft
    band = (freqs > 60) & (freqs < 16000)
    return db[..., band], np.log2(freqs[band])


def _straight_line_residual(db: np.ndarray, octave: np.ndarray) -> np.ndarray:
    """Largest distance (dB) of each EQ curve from its best straight line in octaves."""
    design = np.stack([np.ones_like(octave), octave], axis=1)
    flat = db.reshape(-1, octave.size).T
    fit = design @ np.linalg.lstsq(design, flat, rcond=None)[0]
    return np.abs(flat - fit).max(axis=0)


def test_plain_eq_is_a_tilt_in_octaves_and_bumps_add_resonances() -> None:
    db, octave = _eq_db(0.0)
    assert _straight_line_residual(db, octave).max() < 0.01  # a tilt: a straight line (or flat)
    assert 0.2 < np.mean(np.abs(db).max(axis=-1) > 0.1) < 0.8  # about half of the stems are tilted
    bumped, _ = _eq_db(6.0)
    residual = _straight_line_residual(bumped, octave)
    assert np.mean(residual > 1.0) > 0.8  # nearly every stem gets a resonance or notch
    assert np.abs(bumped).max() <= 18.0 + 1e-3  # clipped to +-18 dB
    assert not np.allclose(bumped[:, 0], bumped[:, 1])  # each stem its own


def test_score_ranks_checkpoints_by_the_mean_of_the_sets(tmp_path: Path, capsys) -> None:
    from stemserve.train.score import main as score_main
    from stemserve.train.score import score

    cache = _cache(tmp_path / "cache")
    unseen = tmp_path / "unseen"
    unseen.mkdir()
    (unseen / "song_0000000.npy").write_bytes((cache / "song_0000002.npy").read_bytes())
    main([*_args(tmp_path / "run", cache, 2), "--keep-every", "1"])
    checkpoints = [tmp_path / "run" / "step_000001.pt", tmp_path / "run" / "step_000002.pt"]
    results = score_main([*map(str, checkpoints), "--valid-cache", str(cache), "--first-song", "2",
                          "--unseen-cache", str(unseen)])
    for checkpoint in checkpoints:
        scores = results[checkpoint]
        # songs from --first-song on: here only song 2, the same song as the unseen set's
        assert scores["valid"] == pytest.approx(scores["unseen"], nan_ok=True)
        assert scores["selection"]["mean"] == pytest.approx(scores["valid"]["mean"])
    songs = [np.load(cache / f"song_{seed:07d}.npy") for seed in (0, 2)]
    mixed = score(checkpoints[0], {"first": songs[:1], "last": songs[1:]})
    assert mixed["first"]["mean"] != pytest.approx(mixed["last"]["mean"])
    assert mixed["selection"]["mean"] == pytest.approx((mixed["first"]["mean"] + mixed["last"]["mean"]) / 2)
    best = max(checkpoints, key=lambda c: results[c]["selection"]["mean"])
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"best: {best} (")
    with pytest.raises(SystemExit, match="--first-song 3 needs more than 3 songs"):
        score_main([str(checkpoints[0]), "--valid-cache", str(cache), "--first-song", "3", "--unseen-cache", str(unseen)])
    ensemble = tmp_path / "ensemble"
    ensemble.mkdir()
    sets = ["--valid-cache", str(cache), "--first-song", "2", "--unseen-cache", str(unseen), "--ensemble-cache", str(ensemble)]
    with pytest.raises(SystemExit, match="no cached songs"):
        score_main([str(checkpoints[0]), *sets])
    (ensemble / "song_0000000.npy").write_bytes((cache / "song_0000000.npy").read_bytes())
    three = score_main([str(checkpoints[0]), *sets])[checkpoints[0]]
    assert three["ensemble"]["mean"] == pytest.approx(mixed["first"]["mean"])
    assert three["selection"]["mean"] == pytest.approx(
        (three["valid"]["mean"] + three["unseen"]["mean"] + three["ensemble"]["mean"]) / 3)
    unison = tmp_path / "unison"
    unison.mkdir()
    (unison / "song_0000000.npy").write_bytes((cache / "song_0000002.npy").read_bytes())
    four = score_main([str(checkpoints[0]), *sets, "--unison-cache", str(unison)])[checkpoints[0]]
    assert four["unison"]["mean"] == pytest.approx(mixed["last"]["mean"])
    assert four["selection"]["mean"] == pytest.approx(
        (three["valid"]["mean"] + three["unseen"]["mean"] + three["ensemble"]["mean"] + four["unison"]["mean"]) / 4)
    sampled = tmp_path / "sampled"
    sampled.mkdir()
    (sampled / "song_0000000.npy").write_bytes((cache / "song_0000000.npy").read_bytes())
    five = score_main([str(checkpoints[0]), *sets, "--unison-cache", str(unison), "--sampled-ensemble-cache",
                       str(sampled)])[checkpoints[0]]
    assert five["sampled-ensemble"]["mean"] == pytest.approx(mixed["first"]["mean"])
    model = load_separator(checkpoints[0])[0]
    bss = score_main([str(checkpoints[0]), "--valid-cache", str(cache), "--first-song", "2", "--unseen-cache", str(unseen),
                      "--metric", "bss"])[checkpoints[0]]
    assert bss["valid"] == pytest.approx(validate(model, songs[1:], "bss"), nan_ok=True)
    assert bss["valid"]["mean"] != pytest.approx(scores["valid"]["mean"])


def test_a_run_with_init_keeps_the_checkpoints_size(tmp_path: Path) -> None:
    cache = _cache(tmp_path / "cache")
    main(_args(tmp_path / "plain", cache, 1))
    main([*_args(tmp_path / "same", cache, 1), "--init", str(tmp_path / "plain" / "latest.pt")])
    assert load_separator(tmp_path / "same" / "latest.pt")[0].config.hidden == 8
    with pytest.raises(ValueError, match="keeps the checkpoint's hidden 8 and head_rank 4, got {'hidden': 12}"):
        main([*_args(tmp_path / "wide", cache, 1), "--init", str(tmp_path / "plain" / "latest.pt"),
              "--hidden", "12"])


def test_checkpoints_that_store_the_retired_low_band_setting_load_only_with_it_off(tmp_path: Path) -> None:
    # the committed checkpoint was written while ModelConfig had low_band_bins, and stores it at 0
    cache = _cache(tmp_path / "cache")
    main(_args(tmp_path / "plain", cache, 1))
    state = torch.load(tmp_path / "plain" / "latest.pt", weights_only=False)
    for value in (0, 48):
        path = tmp_path / f"low_band_{value}.pt"
        torch.save({**state, "config": {**state["config"], "low_band_bins": value}}, path)
    model, _ = load_separator(tmp_path / "low_band_0.pt")
    assert model.config == ModelConfig(**{**state["config"], "dilations": tuple(state["config"]["dilations"])})
    with pytest.raises(ValueError, match="uses low_band_bins=48, an option this model no longer has"):
        load_separator(tmp_path / "low_band_48.pt")


class _Filtered(torch.nn.Module):
    """Separates one song into its stems through a causal 3-tap moving average: a fixed filtering."""

    def __init__(self, stems: np.ndarray) -> None:
        super().__init__()
        kernel = np.ones(3) / 3
        self.estimate = np.apply_along_axis(lambda x: np.convolve(x, kernel)[: x.size], -1, stems)

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.estimate.astype(np.float32))[None]


def test_validation_scores_plain_sdr_or_bss_eval_sdr_that_forgives_a_fixed_filter() -> None:
    stems = np.random.default_rng(0).standard_normal((len(STEMS), 2, 2 * 44100)).astype(np.float32)
    stems[STEMS.index("piano")] = 0.0
    model = _Filtered(stems)
    plain = validate(model, [stems])
    # white noise minus its 3-tap mean keeps (2/3)^2 + 2 (1/3)^2 = 2/3 of its energy
    expected = 10 * np.log10(3 / 2)
    assert [plain[s] for s in ("vocals", "drums", "bass", "other")] == pytest.approx([expected] * 4, abs=0.05)
    assert np.isnan(plain["piano"]) and plain["mean"] == pytest.approx(expected, abs=0.05)
    bss = validate(model, [stems], "bss")
    assert np.isnan(bss["piano"]) and all(bss[s] > 30 for s in ("vocals", "drums", "bass", "other"))
    with pytest.raises(ValueError, match="metric must be one of \\('sdr', 'bss'\\), got 'snr'"):
        validate(model, [stems], "snr")
