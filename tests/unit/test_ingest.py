import numpy as np
import pytest

from preprocess.ingest import ingest
from preprocess.resample import resample
from tests.conftest import tone_mix


def blocks_of(audio: np.ndarray, size: int):
    return (audio[i : i + size] for i in range(0, len(audio), size))


@pytest.mark.parametrize("declared", [0, 1_000, 30_001, 90_000])
def test_same_rate_blocks_are_reassembled_exactly_whatever_the_declared_length(declared):
    audio = tone_mix(30_001)
    signal, peak, warnings = ingest(blocks_of(audio, 4_096), 44_100, 44_100, declared)
    np.testing.assert_array_equal(signal, audio)
    assert peak == float(np.abs(audio).max()) and warnings == []


def test_mono_blocks_at_another_rate_match_whole_array_resampling():
    mono = tone_mix(48_000, 48_000, nb_channels=1)
    signal, peak, _ = ingest(blocks_of(mono, 5_000), 48_000, 44_100, len(mono))
    whole = resample(np.repeat(mono, 2, axis=1), 48_000, 44_100)
    assert signal.shape == (44_100, 2)
    np.testing.assert_allclose(signal[500:-500], whole[500:-500], atol=2e-3)
    np.testing.assert_array_equal(signal[:, 0], signal[:, 1])


def test_multichannel_warning_is_given_once():
    six = np.zeros((10_000, 6), np.float32)
    _, _, warnings = ingest(blocks_of(six, 1_000), 44_100, 44_100, 10_000)
    assert warnings == ["input has 6 channels; downmixed to stereo"]
