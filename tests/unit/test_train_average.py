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


def test_the_command_refuses_checkpoints_of_other_architectures(tmp_path: Path) -> None:
    paths = []
    for width in (4, 8):
        torch.manual_seed(width)
        path = tmp_path / f"w{width}.pt"
        save(path, Separator(ModelConfig(hidden=16, head_rank=4, dilations=(1, 2), local_width=width)), None, 1)
        paths.append(path)
    with pytest.raises(ValueError, match="only checkpoints of one architecture can be averaged"):
        average_main([str(tmp_path / "mix.pt"), *map(str, paths)])
    assert not (tmp_path / "mix.pt").exists()
