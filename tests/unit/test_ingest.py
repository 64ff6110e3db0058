import numpy as np
import pytest
from stemserve.preprocess.chunk import StreamedSignal, WindowPlan, separate_windows
from stemserve.preprocess.ingest import model_rate_blocks, scan
from stemserve.preprocess.resample import resample

from tests.conftest import tone_mix


def blocks_of(audio: np.ndarray, size: int):
    return (audio[i : i + size] for i in range(0, len(audio), size))


def test_scan_finds_the_peak_and_warns_once_for_many_channels():
    six = tone_mix(10_000, nb_channels=6)
    six[7_777, 4] = -0.99
    peak, warnings = scan(blocks_of(six, 1_000))
    assert peak == pytest.approx(0.99)
    assert warnings == ["input has 6 channels; downmixed to stereo"]


def test_same_rate_blocks_pass_through_exactly():
    audio = tone_mix(30_001)
    out = np.concatenate(list(model_rate_blocks(blocks_of(audio, 4_096), 44_100, 44_100)))
    np.testing.assert_array_equal(out, audio)


def test_mono_blocks_at_another_rate_match_whole_array_resampling():
    mono = tone_mix(48_000, 48_000, nb_channels=1)
    out = np.concatenate(list(model_rate_blocks(blocks_of(mono, 5_000), 48_000, 44_100)))
    whole = resample(np.repeat(mono, 2, axis=1), 48_000, 44_100)
    assert out.shape == (44_100, 2)
    np.testing.assert_allclose(out[500:-500], whole[500:-500], atol=2e-3)
    np.testing.assert_array_equal(out[:, 0], out[:, 1])


def test_streamed_signal_slices_like_the_array_with_zeros_past_the_end():
    audio = tone_mix(10_000)
    signal = StreamedSignal(blocks_of(audio, 700), len(audio))
    np.testing.assert_array_equal(signal[0:1_500], audio[:1_500])
    np.testing.assert_array_equal(signal[1_200:3_000], audio[1_200:3_000])
    signal.release(2_800)
    np.testing.assert_array_equal(signal[2_900:10_300][:7_100], audio[2_900:])
    np.testing.assert_array_equal(signal[2_900:10_300][7_100:], 0.0)
    with pytest.raises(ValueError, match="samples before 2800 were released"):
        signal[100:200]


@pytest.mark.parametrize("nb_samples", [5_000, 100_003])
def test_streamed_windows_equal_array_windows_and_hold_little(nb_samples):
    audio = tone_mix(nb_samples)
    plan = WindowPlan.for_fraction(nb_samples, 4_096, 0.25)
    expected = np.concatenate([b.copy() for b in separate_windows(audio, plan, lambda b: b[:, None])], axis=2)
    signal = StreamedSignal(blocks_of(audio, 1_024), nb_samples)
    got, held, position = [], [], 0
    for block in separate_windows(signal, plan, lambda b: b[:, None], batch_size=2, prefetch=True):
        got.append(block.copy())
        position += block.shape[2]
        signal.release(position)
        held.append(sum(len(b) for b in signal._held))
    np.testing.assert_array_equal(np.concatenate(got, axis=2), expected)
    assert max(held) <= (2 * 2 + 1) * plan.segment  # the batch in hand, the one ahead: not the song
