import numpy as np
import pytest
from stemserve.preprocess.chunk import WindowPlan, separate_windows


def identity(batch: np.ndarray) -> np.ndarray:
    return batch[:, None]  # (batch, 1, channels, segment)


def run(signal: np.ndarray, plan: WindowPlan, infer=identity, batch_size: int = 3, prefetch=False) -> np.ndarray:
    """signal (channels, samples) -> output (stems, channels, samples)"""
    blocks = [b.copy() for b in separate_windows(signal.T, plan, infer, batch_size=batch_size, prefetch=prefetch)]
    return np.concatenate(blocks, axis=2)


@pytest.mark.parametrize("overlap", [0.25, 0.33, 0.5])
@pytest.mark.parametrize("segment", [64, 100])
def test_weights_sum_to_one_everywhere(segment, overlap):
    plan = WindowPlan.for_fraction(1_000, segment, overlap)
    total = np.zeros(plan.nb_windows * plan.hop + segment)
    for i in range(plan.nb_windows):
        total[plan.start(i) : plan.start(i) + segment] += plan.weights(i)
    np.testing.assert_allclose(total[:1_000], 1.0, atol=1e-6)


@pytest.mark.parametrize("nb_samples", [1, 37, 64, 65, 100, 1_000, 1_003, 1_010])
@pytest.mark.parametrize("overlap", [0.25, 0.5])
@pytest.mark.parametrize("prefetch", [False, True])
def test_identity_model_reproduces_input(nb_samples, overlap, prefetch):
    signal = np.random.default_rng(nb_samples).standard_normal((2, nb_samples)).astype(np.float32)
    plan = WindowPlan.for_fraction(nb_samples, 64, overlap)
    out = run(signal, plan, prefetch=prefetch)
    assert out.shape == (1, 2, nb_samples)
    np.testing.assert_allclose(out[0], signal, atol=1e-5)


def test_window_count_and_padding_of_last_window():
    plan = WindowPlan.for_fraction(100, 64, 0.25)  # hop 48: windows at 0 and 48, the second padded
    assert (plan.hop, plan.nb_windows) == (48, 2)
    seen = []

    def record(batch):
        seen.append(batch.copy())
        return batch[:, None]

    signal = np.arange(200, dtype=np.float32).reshape(2, 100)
    run(signal, plan, record, batch_size=1)
    np.testing.assert_array_equal(seen[1][0, 0, :52], np.arange(48, 100))
    np.testing.assert_array_equal(seen[1][0, 0, 52:], 0.0)


def test_fixed_gain_model_has_no_seams():
    t = np.arange(20_000) / 44_100
    signal = np.stack([np.sin(2 * np.pi * 440 * t), np.cos(2 * np.pi * 330 * t)]).astype(np.float32)
    plan = WindowPlan.for_fraction(signal.shape[1], 2_048, 0.25)
    out = run(signal, plan, lambda b: np.stack([0.7 * b, 0.3 * b], axis=1))
    max_jump_in = np.abs(np.diff(signal, axis=1)).max()
    for stem, gain in enumerate((0.7, 0.3)):
        assert np.abs(np.diff(out[stem], axis=1)).max() <= gain * max_jump_in + 1e-6
        np.testing.assert_allclose(out[stem], gain * signal, atol=1e-6)


def test_progress_reports_every_window_and_bounded_batches():
    plan = WindowPlan.for_fraction(10_000, 256, 0.25)
    calls, sizes = [], []
    signal = np.zeros((2, 10_000), np.float32)

    def infer(batch):
        sizes.append(len(batch))
        return batch[:, None]

    list(separate_windows(signal.T, plan, infer, batch_size=4, progress=lambda d, t: calls.append((d, t))))
    assert calls == [(i, plan.nb_windows) for i in range(1, plan.nb_windows + 1)]
    assert max(sizes) == 4 and sum(sizes) == plan.nb_windows


def test_streaming_blocks_are_bounded_by_one_hop():
    plan = WindowPlan.for_fraction(50_000, 1_024, 0.25)
    signal = np.zeros((2, 50_000), np.float32)
    lengths = [b.shape[2] for b in separate_windows(signal.T, plan, identity, batch_size=2)]
    assert sum(lengths) == 50_000
    assert max(lengths) <= plan.segment


@pytest.mark.parametrize("overlap", [0.2, 0.6])
def test_overlap_out_of_range_is_refused_where_it_is_given(overlap):
    from stemserve.core.errors import InvalidOptionError, ModelConfigError
    from stemserve.core.model_config import ModelSpec
    from stemserve.pipeline.options import SeparationOptions

    with pytest.raises(InvalidOptionError, match=f"overlap must be within 0.25-0.5, not {overlap}"):
        SeparationOptions(overlap=overlap)
    with pytest.raises(ModelConfigError, match=f"default_overlap must be within 0.25-0.5, got {overlap}"):
        ModelSpec(name="m", stems=("vocals",), sample_rate_hz=44_100, segment_samples=4_096, default_overlap=overlap)


def test_wrong_model_output_shape_is_a_clear_error():
    plan = WindowPlan.for_fraction(100, 64, 0.25)
    with pytest.raises(ValueError, match="model output must be"):
        run(np.zeros((2, 100), np.float32), plan, lambda b: b[:, None, :, :10])


def test_gain_scales_what_the_model_sees():
    seen = []

    def record(batch):
        seen.append(float(np.abs(batch).max()))
        return batch[:, None]

    signal = np.full((2, 500), 0.25, np.float32)
    blocks = [b.copy() for b in separate_windows(signal.T, WindowPlan.for_fraction(500, 64, 0.25), record, gain=4.0)]
    assert set(seen) == {1.0}
    np.testing.assert_allclose(np.concatenate(blocks, axis=2), 1.0, atol=1e-6)
