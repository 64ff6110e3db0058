"""Checkpoint averaging: every floating-point weight and statistic is the mean."""

from pathlib import Path

import pytest
import torch
from stemserve.train.average import average_models
from stemserve.train.average import main as average_main
from stemserve.train.model import ModelConfig, Separator
from stemserve.train.train import load_separator, save

CONFIG = ModelConfig(hidden=16, head_rank=4, dilations=(1, 2), stereo_cues=True)


def _model(seed: int, config: ModelConfig = CONFIG) -> Separator:
    torch.manual_seed(seed)
    model = Separator(config).eval()
    with torch.no_grad():
        model.masknet.input_norm.running_mean.normal_()
        model.masknet.input_norm.running_var.uniform_(0.5, 2.0)
    return model


def test_each_weight_and_running_statistic_is_the_mean_of_the_checkpoints() -> None:
    a, b, c = _model(0), _model(1), _model(2)
    out = average_models([a, b, c]).state_dict()
    for name in ("masknet.head_out", "masknet.encoder.weight", "masknet.input_norm.running_mean",
                 "masknet.input_norm.running_var"):
        values = [m.state_dict()[name] for m in (a, b, c)]
        expected = (values[0] + values[1] + values[2]) / 3
        assert torch.allclose(out[name], expected, atol=1e-7), name
    assert not torch.allclose(out["masknet.head_out"], a.state_dict()["masknet.head_out"])


def test_the_average_of_one_model_with_itself_separates_like_it() -> None:
    model = _model(3)
    mix = torch.randn(1, 2, 4096) * 0.1
    with torch.no_grad():
        assert torch.allclose(average_models([model, model])(mix), model(mix), atol=1e-6)


def test_checkpoints_of_other_architectures_or_too_few_are_refused() -> None:
    with pytest.raises(ValueError, match="one architecture"):
        average_models([_model(0), _model(1, ModelConfig(hidden=8, head_rank=4, dilations=(1, 2)))])
    with pytest.raises(ValueError, match="at least 2 checkpoints, got 1"):
        average_models([_model(0)])


def test_the_command_writes_a_loadable_checkpoint_of_the_mean(tmp_path: Path) -> None:
    paths = []
    for seed, step in ((4, 100), (5, 300)):
        path = tmp_path / f"step_{step}.pt"
        save(path, _model(seed), None, step)
        paths.append(path)
    out = average_main([str(tmp_path / "mean.pt"), *map(str, paths)])
    model, state = load_separator(out)
    expected = (_model(4).state_dict()["masknet.encoder.weight"] + _model(5).state_dict()["masknet.encoder.weight"]) / 2
    assert torch.allclose(model.state_dict()["masknet.encoder.weight"], expected)
    assert state["step"] == 300 and state["averaged"] == ["step_100.pt", "step_300.pt"]


def test_weights_give_each_checkpoint_its_share_normalized_to_one() -> None:
    a, b = _model(6), _model(7)
    out = average_models([a, b], [3.0, 1.0]).state_dict()
    name = "masknet.encoder.weight"
    expected = 0.75 * a.state_dict()[name] + 0.25 * b.state_dict()[name]
    assert torch.allclose(out[name], expected, atol=1e-7)
    assert torch.allclose(average_models([a, b], [0.0, 2.0]).state_dict()[name], b.state_dict()[name])


@pytest.mark.parametrize("weights", [[1.0], [1.0, -0.5], [0.0, 0.0], [1.0, 1.0, 1.0]])
def test_weights_that_are_not_one_non_negative_share_per_checkpoint_are_refused(weights: list[float]) -> None:
    with pytest.raises(ValueError, match=r"--weights needs 2 non-negative numbers, one per checkpoint.*got"):
        average_models([_model(0), _model(1)], weights)


def test_a_checkpoint_lacking_the_local_branch_is_mixed_as_the_fine_tune_extending_it_started(tmp_path: Path) -> None:
    base = tmp_path / "base.pt"
    save(base, _model(8), None, 100)
    started, _ = load_separator(base, local_width=4)  # a run adding the branch starts from this
    torch.manual_seed(9)
    tuned = Separator(started.config).eval()  # stands in for that run's snapshot
    tuned_path = tmp_path / "tuned.pt"
    save(tuned_path, tuned, None, 500)
    out = average_main([str(tmp_path / "mix.pt"), str(base), str(tuned_path), "--weights", "1", "3"])
    model, state = load_separator(out)
    assert model.config.local_width == 4 and state["weights"] == [0.25, 0.75] and state["step"] == 500
    for name, value in model.state_dict().items():
        if value.is_floating_point():
            expected = 0.25 * started.state_dict()[name] + 0.75 * tuned.state_dict()[name]
            assert torch.allclose(value, expected, atol=1e-6), name
    with torch.no_grad():  # with no share for the fine-tune, the mix separates exactly as the base did
        mix = torch.randn(1, 2, 4096) * 0.1
        only_base = load_separator(average_main([str(tmp_path / "b.pt"), str(base), str(tuned_path),
                                                 "--weights", "1", "0"]))[0]
        assert torch.allclose(only_base(mix), load_separator(base)[0](mix), atol=1e-5)


def test_a_lacking_checkpoint_borrows_a_part_silenced_so_the_mix_scales_the_trained_part(tmp_path: Path) -> None:
    base = tmp_path / "base.pt"
    save(base, _model(8), None, 100)
    config = load_separator(base, low_band_bins=12)[0].config
    torch.manual_seed(9)
    tuned = Separator(config).eval()
    with torch.no_grad():
        for parameter in tuned.masknet.low_band.parameters():  # trained-looking: nothing at zero
            parameter.normal_(0.0, 0.3)
        tuned.masknet.low_band.norm.running_mean.normal_(-2.0, 0.5)
    tuned_path = tmp_path / "tuned.pt"
    save(tuned_path, tuned, None, 500)
    out = average_main([str(tmp_path / "mix.pt"), str(base), str(tuned_path), "--weights", "1", "3",
                        "--lend-parts"])
    model, state = load_separator(out)
    assert state["lent_parts"] and model.config.low_band_bins == 12
    mixed, trained, plain = model.state_dict(), tuned.state_dict(), load_separator(base)[0].state_dict()
    for name, value in mixed.items():
        if not value.is_floating_point():
            continue
        part = name.removeprefix("masknet.low_band.")
        if part in ("encoder.weight", "out.weight", "out.bias"):  # the base lent them at zero
            expected = 0.75 * trained[name]
        elif part != name:  # the rest of the band is the trained one
            expected = trained[name]
        else:
            expected = 0.25 * plain[name] + 0.75 * trained[name]
        assert torch.allclose(value, expected, atol=1e-6), name
    with torch.no_grad():  # with no share for the fine-tune, the mix separates exactly as the base did
        mix = torch.randn(1, 2, 4096) * 0.1
        only_base = load_separator(average_main([str(tmp_path / "b.pt"), str(base), str(tuned_path),
                                                 "--weights", "1", "0", "--lend-parts"]))[0]
        assert torch.allclose(only_base(mix), load_separator(base)[0](mix), atol=1e-5)


def test_checkpoints_with_different_local_branches_are_refused(tmp_path: Path) -> None:
    paths = []
    for width in (4, 8):
        torch.manual_seed(width)
        path = tmp_path / f"w{width}.pt"
        save(path, Separator(ModelConfig(hidden=16, head_rank=4, dilations=(1, 2), local_width=width)), None, 1)
        paths.append(path)
    with pytest.raises(ValueError, match=r"different local_width: \[4, 8\]"):
        average_main([str(tmp_path / "mix.pt"), *map(str, paths)])
