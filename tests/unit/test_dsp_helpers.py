import time

import numpy as np
import pytest
import soundfile as sf
from stemserve.preprocess.channels import to_stereo
from stemserve.preprocess.encode import EncodeOptions, StemWriter
from stemserve.preprocess.normalize import clipping_warnings, normalization_gain
from stemserve.preprocess.resample import StreamResampler, resample

from tests.conftest import tone_mix


@pytest.mark.parametrize("peak", [1e-4, 0.01, 0.3, 0.7, 0.9, 1.0, 3.0])
def test_normalization_gain_is_a_power_of_two_that_lands_in_range_and_undoes_exactly(peak):
    gain = normalization_gain(peak)
    assert np.log2(gain) == int(np.log2(gain))
    assert 0.35 < peak * gain <= 0.7
    x = tone_mix(1_000) * np.float32(peak)
    np.testing.assert_array_equal((x * np.float32(gain)) * np.float32(1.0 / gain), x)


def test_silence_is_not_scaled():
    assert normalization_gain(0.0) == 1.0


def test_clipping_warning_names_the_stem():
    (warning,) = clipping_warnings({"vocals": 0.5, "drums": 1.25})
    assert "'drums' peaks at 1.250" in warning


def test_mono_becomes_dual_mono_and_multichannel_is_downmixed():
    mono = np.array([[0.1], [0.2]], np.float32)
    np.testing.assert_array_equal(to_stereo(mono)[0], np.array([[0.1, 0.1], [0.2, 0.2]], np.float32))
    six = np.array([[1.0, 0.0, 0.5, 0.5, 0.5, 0.5]], np.float32)
    stereo, warnings = to_stereo(six)
    np.testing.assert_allclose(stereo, [[0.75, 0.25]])
    assert warnings == ["input has 6 channels; downmixed to stereo"]


@pytest.mark.parametrize("from_hz,to_hz", [(44_100, 48_000), (48_000, 44_100), (8_000, 44_100), (44_100, 44_100)])
def test_stream_resampling_matches_length_and_whole_array(from_hz, to_hz):
    audio = tone_mix(from_hz // 2 + 123, from_hz)
    whole = resample(audio, from_hz, to_hz)
    stream = StreamResampler(from_hz, to_hz, 2)
    blocks = [stream.push(audio[i : i + 1000]) for i in range(0, len(audio), 1000)]
    blocks.append(stream.push(np.zeros((0, 2), np.float32), last=True))
    out = np.concatenate(blocks)
    assert len(out) == round(len(audio) * to_hz / from_hz)
    n = min(len(out), len(whole)) - 200
    np.testing.assert_allclose(out[200:n], whole[200:n], atol=2e-3)


def test_stream_resampler_hits_an_exact_target_length():
    stream = StreamResampler(44_100, 48_000, 2, nb_out_frames=1_000)
    out = np.concatenate(
        [stream.push(np.ones((500, 2), np.float32)), stream.push(np.ones((0, 2), np.float32), last=True)]
    )
    assert out.shape == (1_000, 2)


@pytest.mark.parametrize(
    "fmt,depth,tol",
    [
        ("wav", "16", 0.5 / 32768 + 1e-9),
        ("wav", "24", 0.5 / 2**23 + 1e-9),
        ("wav", "float", 0),
        ("flac", "16", 0.5 / 32768 + 1e-9),
        ("flac", "24", 0.5 / 2**23 + 1e-9),
    ],
)
@pytest.mark.parametrize("rate", [44_100, 48_000])
def test_encoded_stems_have_exact_rate_length_and_values(tmp_path, fmt, depth, tol, rate):
    audio = tone_mix(10_007, rate)
    path = tmp_path / f"s.{fmt}"
    with StemWriter(path, rate, 2, EncodeOptions(format=fmt, bit_depth=depth)) as writer:
        writer.write(audio[:5_000])
        writer.write(audio[5_000:])
    decoded, decoded_rate = sf.read(path, dtype="float32")
    assert decoded_rate == rate and decoded.shape == audio.shape
    np.testing.assert_allclose(decoded, audio, atol=tol)


@pytest.mark.parametrize("rate", [44_100, 48_000])
def test_mp3_has_no_added_delay(tmp_path, rate):
    audio = tone_mix(rate, rate)
    path = tmp_path / "s.mp3"
    with StemWriter(path, rate, 2, EncodeOptions(format="mp3")) as writer:
        writer.write(audio)
    decoded, decoded_rate = sf.read(path, dtype="float32")
    assert decoded_rate == rate and decoded.shape == audio.shape
    # aligned: correlation at lag 0 beats lags of +-1..50 samples
    lags = {lag: float(np.dot(np.roll(decoded[:, 0], lag), audio[:, 0])) for lag in range(-50, 51)}
    assert max(lags, key=lags.get) == 0


def test_integer_outputs_clip_instead_of_wrapping(tmp_path):
    path = tmp_path / "loud.wav"
    with StemWriter(path, 44_100, 2, EncodeOptions(format="wav", bit_depth="16")) as writer:
        writer.write(np.full((10, 2), 1.5, np.float32))
    decoded, _ = sf.read(path, dtype="float32")
    assert writer.peak == 1.5
    assert decoded.min() > 0.99


def test_float_wav_bytes_do_not_depend_on_the_time_of_writing(tmp_path):
    audio = tone_mix(1_000)
    digests = []
    for attempt in range(2):
        path = tmp_path / f"{attempt}.wav"
        with StemWriter(path, 44_100, 2, EncodeOptions(format="wav", bit_depth="float")) as writer:
            writer.write(audio)
        digests.append(path.read_bytes())
        time.sleep(1.1)  # libsndfile's PEAK chunk time stamp has a resolution of one second
    assert digests[0] == digests[1]
    np.testing.assert_array_equal(sf.read(tmp_path / "0.wav", dtype="float32")[0], audio)
