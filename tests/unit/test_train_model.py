"""The separation network and its ONNX export, on a tiny configuration."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from stemserve.export.onnx_export import check_parity
from stemserve.train.export_onnx import export_onnx
from stemserve.train.model import STEMS, ModelConfig, Separator, phase_features, stem_softmax

TINY = ModelConfig(n_fft=256, hop=128, hidden=16, head_rank=4, dilations=(1, 2))
TINY_LOCAL = ModelConfig(n_fft=256, hop=128, hidden=16, head_rank=4, dilations=(1, 2), local_width=3)
TINY_STEREO = ModelConfig(n_fft=256, hop=128, hidden=16, head_rank=4, dilations=(1, 2), stereo_cues=True)
TINY_PHASE = ModelConfig(n_fft=256, hop=128, hidden=16, head_rank=4, dilations=(1, 2), stereo_cues=True,
                         phase_cues=True)
TINY_WIENER = ModelConfig(n_fft=256, hop=128, hidden=16, head_rank=4, dilations=(1, 2), stereo_cues=True,
                          spatial_wiener=0.5)


def _trained_looking(model: Separator) -> Separator:
    """Random non-trivial weights, and batch norms with non-default running statistics."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(0.3 * torch.randn(parameter.shape, generator=generator))
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator))
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
    return model.eval()


def test_masks_are_a_partition_of_unity() -> None:
    model = _trained_looking(Separator(TINY))
    magnitude = torch.rand(2, 2 * TINY.nb_bins, 20) * 10
    masks = model.masknet(magnitude)
    assert masks.shape == (2, len(STEMS), 2 * TINY.nb_bins, 20)
    assert masks.min() >= 0
    assert torch.allclose(masks.sum(dim=1), torch.ones(2, 2 * TINY.nb_bins, 20), atol=1e-6)
    assert masks.std() > 0.05  # the stems do get different masks


@pytest.mark.parametrize("config", [TINY, TINY_WIENER], ids=["masks", "with-spatial-wiener"])
@pytest.mark.parametrize("nb_samples", [2000, 2048])
def test_stems_sum_to_the_mix(nb_samples: int, config: ModelConfig) -> None:
    model = _trained_looking(Separator(config))
    mix = torch.randn(2, 2, nb_samples, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        stems = model(mix)
    assert stems.shape == (2, len(STEMS), 2, nb_samples)
    assert torch.allclose(stems.sum(dim=1), mix, atol=1e-5)
    assert not torch.allclose(stems[:, 0], stems[:, 1], atol=1e-3)


@pytest.mark.parametrize("config", [TINY_STEREO, TINY_PHASE, TINY_WIENER],
                         ids=["stereo-cues", "phase-cues", "spatial-wiener"])
@pytest.mark.parametrize("gain", [0.02, 5.0])
def test_a_quiet_or_loud_mix_is_separated_like_the_same_mix_at_training_level(gain: float, config: ModelConfig) -> None:
    model = _trained_looking(Separator(config))
    mix = 0.1 * torch.randn(1, 2, 4096, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        stems, scaled = model(mix), model(gain * mix)
    assert torch.allclose(scaled, gain * stems, atol=1e-5 * gain)
    with torch.no_grad():  # the masks of a magnitude at mean 1, as training feeds them, are unchanged
        magnitude = torch.rand(1, 2 * TINY.nb_bins, 20) + 0.1
        magnitude = magnitude / magnitude.mean()
        phase = torch.rand(1, 2 * TINY.nb_bins, 20) if config.phase_cues else None
        assert torch.allclose(model.masknet(magnitude, phase), model.masknet(gain * magnitude, phase), atol=1e-6)


@pytest.mark.parametrize("config", [TINY, TINY_LOCAL, TINY_STEREO, TINY_PHASE, TINY_WIENER],
                         ids=["temporal", "with-local-branch", "with-stereo-cues", "with-phase-cues",
                              "with-spatial-wiener"])
def test_onnx_export_matches_pytorch(tmp_path, config: ModelConfig) -> None:
    model = _trained_looking(Separator(config))
    path = tmp_path / "model.onnx"
    export_onnx(model, path, segment_samples=4096)
    report = check_parity(path, model, 4096, batch=3, tolerance=1e-5)
    assert report.passed, report.line("tiny")


def test_local_branch_changes_the_masks_per_bin() -> None:
    model = _trained_looking(Separator(TINY_LOCAL))
    magnitude = torch.rand(1, 2 * TINY.nb_bins, 20) * 10
    with torch.no_grad():
        with_branch = model.masknet(magnitude)
        model.masknet.local.out.weight.zero_()
        model.masknet.local.out.bias.zero_()
        without = model.masknet(magnitude)
    assert (with_branch - without).abs().max() > 0.05
    assert torch.allclose(with_branch.sum(dim=1), torch.ones(1, 2 * TINY.nb_bins, 20), atol=1e-6)


def test_stereo_cues_tell_a_panned_sound_from_a_centred_one() -> None:
    """The same left channel, once with an equal right channel (centred) and once with a
    right channel 60 dB down (panned hard left). With the cues' size weights of stem 0 at
    -4, stem 0's odds in the panned bins fall by exp(-4); with the signed weights of stem 1
    at +3, stem 1's odds rise by exp(3) in the louder (left) channel and fall by exp(3) in
    the other, relative to the same model without the cues."""
    model = _trained_looking(Separator(TINY_STEREO))
    with torch.no_grad():
        model.masknet.stereo.encoder.weight.zero_()
        model.masknet.stereo.signed_scale.zero_()
        model.masknet.stereo.size_scale.zero_()
        model.masknet.stereo.size_scale[:, 0] = -4.0  # stem 0 dislikes panned bins
        model.masknet.stereo.signed_scale[:, 1] = 3.0  # stem 1 likes the louder channel
        bins = TINY.nb_bins
        level = torch.rand(1, bins, 20) * 5 + 1
        centred = torch.cat([level, level], dim=1)
        panned = torch.cat([level, level * 1e-3], dim=1)
        masks_centred, masks_panned = model.masknet(centred), model.masknet(panned)
        model.masknet.stereo.size_scale.zero_()
        model.masknet.stereo.signed_scale.zero_()
        plain_centred, plain_panned = model.masknet(centred), model.masknet(panned)

    def odds_change(stem: int, channel: slice) -> torch.Tensor:
        def odds(masks: torch.Tensor) -> torch.Tensor:
            share = masks[:, stem, channel].double()
            others = 1 - share - (masks[:, 0, channel] if stem else masks[:, 1, channel]).double()
            return share / others  # against the stems whose logits the cues leave alone

        return (odds(masks_panned) / odds(masks_centred)) / (odds(plain_panned) / odds(plain_centred))

    left, right = slice(0, bins), slice(bins, 2 * bins)
    for stem, channel, log_odds in ((0, left, -4.0), (0, right, -4.0), (1, left, 3.0), (1, right, -3.0)):
        change = odds_change(stem, channel)
        assert torch.allclose(change, torch.full_like(change, float(np.exp(log_odds))), rtol=1e-3), (stem, channel)


def test_stereo_cues_need_two_channels() -> None:
    with pytest.raises(ValueError, match="stereo_cues needs 2 channels, got nb_channels 1"):
        ModelConfig(nb_channels=1, stereo_cues=True)
    with pytest.raises(ValueError, match="phase_cues needs 2 channels, got nb_channels 1"):
        ModelConfig(nb_channels=1, phase_cues=True)
    with pytest.raises(ValueError, match="spatial_wiener needs 2 channels, got nb_channels 1"):
        ModelConfig(nb_channels=1, spatial_wiener=0.5)


def _phase_features_of(left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The cosine and centre features of one bin whose channels hold the complex values given."""
    real = torch.stack([left.real, right.real]).view(1, 2, -1, 1).float()
    imag = torch.stack([left.imag, right.imag]).view(1, 2, -1, 1).float()
    magnitude = torch.sqrt(real.square() + imag.square() + 1e-12)
    cosine, centre = phase_features(real, imag, magnitude).view(2, -1)
    return cosine, centre


def test_phase_features_tell_a_centred_sound_from_panned_and_overlapping_ones() -> None:
    one = torch.tensor([0.3 + 0.4j, -2.0 + 1.0j], dtype=torch.complex128)  # two bins
    cases = {  # (right channel for left = one) -> (cosine, centre coherence) per bin
        "centred": (one, [1.0, 1.0]),
        "panned 6 dB left": (0.5 * one, [1.0, (2 * 0.5 / 1.25) ** 8]),  # 2ab / (a^2 + b^2) = 0.8
        "panned hard left": (1e-3 * one, [1.0, 0.0]),
        "opposite phase": (-one, [-1.0, 0.0]),
        "a quarter turn apart": (1j * one, [0.0, 0.0]),
    }
    for name, (right, (cosine, centre)) in cases.items():
        for gain in (0.1, 1.0, 50.0):  # independent of the level (above the magnitude floor, 1e-6)
            got_cosine, got_centre = _phase_features_of(gain * one, gain * right)
            assert torch.allclose(got_cosine, torch.full((2,), cosine), atol=1e-3), (name, gain)
            assert torch.allclose(got_centre, torch.full((2,), centre), atol=1e-3), (name, gain)
    # two sounds panned apart in one bin: left = a + b, right = a - b (b a quarter turn from a)
    a, b = torch.tensor([1.0 + 0.0j]), torch.tensor([0.0 + 0.5j])
    cosine, centre = _phase_features_of(a + b, a - b)
    assert cosine.item() == pytest.approx((1 - 0.25) / 1.25, abs=1e-5)  # cos of the angle 2 atan(0.5)
    assert centre.item() == pytest.approx(((1 - 0.25) / 1.25) ** 8, abs=1e-5)
    silent = torch.zeros(2, dtype=torch.complex128)
    assert torch.equal(torch.stack(_phase_features_of(silent, silent)), torch.zeros(2, 2))  # no NaN


def test_phase_cues_move_each_stems_odds_by_its_weight_times_the_feature() -> None:
    """With only the centre weights of stem 0 at +3 and the cosine weights of stem 1 at -2,
    stem 0's odds against the stems the cues leave alone rise by exp(3 * centre) and stem
    1's fall by exp(2 * cosine), in both channels, against the same model without the cues."""
    model = _trained_looking(Separator(TINY_PHASE))
    bins = TINY.nb_bins
    magnitude = torch.rand(1, 2 * bins, 20) * 5 + 1
    cosine = 2 * torch.rand(1, bins, 20) - 1
    centre = torch.rand(1, bins, 20)
    phase = torch.cat([cosine, centre], dim=1)
    with torch.no_grad():
        model.masknet.phase.encoder.weight.zero_()
        model.masknet.phase.cosine_scale.zero_()
        model.masknet.phase.centre_scale.zero_()
        plain = model.masknet(magnitude, phase).double()
        model.masknet.phase.centre_scale[:, 0] = 3.0
        model.masknet.phase.cosine_scale[:, 1] = -2.0
        cued = model.masknet(magnitude, phase).double()

    def odds(masks: torch.Tensor, stem: int) -> torch.Tensor:
        return masks[:, stem] / masks[:, 2:].sum(dim=1)

    for stem, expected in ((0, 3.0 * centre), (1, -2.0 * cosine)):
        change = (odds(cued, stem) / odds(plain, stem)).log()  # (1, 2 * bins, frames)
        for channel in (slice(0, bins), slice(bins, 2 * bins)):
            assert torch.allclose(change[:, channel], expected.double(), atol=1e-4), (stem, channel)


def test_the_mask_net_refuses_phase_features_it_does_not_use_and_needs_those_it_does() -> None:
    magnitude = torch.rand(1, 2 * TINY.nb_bins, 4) + 0.1
    with pytest.raises(ValueError, match="phase features are needed with phase_cues=True, got none"):
        Separator(TINY_PHASE).eval().masknet(magnitude)
    with pytest.raises(ValueError, match="phase features are not used with phase_cues=False, got some"):
        Separator(TINY).eval().masknet(magnitude, torch.zeros(1, 2 * TINY.nb_bins, 4))


def test_config_rejects_bad_hop_and_stem_count() -> None:
    with pytest.raises(ValueError, match="hop"):
        ModelConfig(n_fft=1024, hop=256)
    with pytest.raises(ValueError, match="nb_stems"):
        ModelConfig(nb_stems=4)
    with pytest.raises(ValueError, match="spatial_wiener must be a share from 0 to 1, got 1.5"):
        ModelConfig(spatial_wiener=1.5)


def test_the_spatial_wiener_share_moves_the_stems_of_a_panned_mix() -> None:
    masks_only = _trained_looking(Separator(replace(TINY_WIENER, spatial_wiener=0.0)))
    blended = Separator(TINY_WIENER).eval()
    blended.load_state_dict(masks_only.state_dict())
    left = torch.randn(1, 1, 4096, generator=torch.Generator().manual_seed(4))
    mix = torch.cat([left, 0.3 * left], dim=1) + 0.2 * torch.randn(1, 2, 4096, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        stems, filtered = masks_only(mix), blended(mix)
        masks = stem_softmax(masks_only.mask_logits(mix)[1])
        spec = masks_only.spectrogram(mix)
        assert torch.allclose(blended.apply_masks(spec, masks, 4096, wiener_share=0.0), stems, atol=1e-5)
    assert (filtered - stems).abs().max() > 1e-2


# the weights through which each optional part reaches the logits
SILENT = {"local": ("out.weight", "out.bias"), "stereo": ("encoder.weight", "signed_scale", "size_scale"),
          "phase": ("encoder.weight", "cosine_scale", "centre_scale")}


@pytest.mark.parametrize(("part", "field", "absent"), [("local", "local_width", 0), ("stereo", "stereo_cues", False),
                                                       ("phase", "phase_cues", False)])
def test_a_part_with_its_silent_weights_at_zero_separates_as_the_model_without_it(part: str, field: str,
                                                                                  absent: bool | int) -> None:
    full = ModelConfig(n_fft=256, hop=128, hidden=16, head_rank=4, dilations=(1, 2), local_width=2,
                       stereo_cues=True, phase_cues=True)
    model = _trained_looking(Separator(full))
    without = Separator(replace(full, **{field: absent})).eval()
    without.load_state_dict({k: v for k, v in model.state_dict().items()
                             if not k.startswith(f"masknet.{part}.")})
    module = getattr(model.masknet, part)
    mix = torch.from_numpy(np.random.default_rng(5).standard_normal((1, 2, 3000)).astype(np.float32))
    with torch.no_grad():
        assert not torch.allclose(model(mix), without(mix), atol=1e-4)
        for name in SILENT[part]:
            module.get_parameter(name).zero_()
        assert torch.allclose(model(mix), without(mix), atol=1e-6)
