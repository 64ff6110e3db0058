"""A corpus of broken and extreme inputs, generated here: each gets a clear
InvalidAudioError (or decodes to finite audio when it is valid), never another exception."""

import io

import numpy as np
import pytest
import soundfile as sf
from stemserve.core.errors import InvalidAudioError
from stemserve.preprocess.decode import decode

from tests.conftest import tone_mix
from tests.unit.test_decode import wav_with_header


def encoded(audio, rate, fmt, subtype=None):
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "MP3"])
@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.9])
def test_truncated_files_are_refused(fmt, fraction):
    data = encoded(tone_mix(44_100), 44_100, fmt)
    with pytest.raises(InvalidAudioError) as caught:
        decode(data[: int(len(data) * fraction)])
    assert caught.value.reason in ("truncated", "corrupt")


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.9])
def test_truncated_ogg_is_refused_or_decodes_what_it_holds(fraction):
    # an ogg cut at a page boundary is indistinguishable from a shorter song
    data = encoded(tone_mix(44_100), 44_100, "OGG")
    try:
        audio, _info = decode(data[: int(len(data) * fraction)])
    except InvalidAudioError as exc:
        assert exc.reason in ("no_frames", "corrupt", "not_audio")
    else:
        assert 0 < len(audio) < 44_100 and np.isfinite(audio).all()


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG", "MP3"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flipped_bytes_never_crash(fmt, seed):
    data = bytearray(encoded(tone_mix(22_050), 44_100, fmt))
    rng = np.random.default_rng(seed)
    for index in rng.integers(0, len(data), 64):
        data[index] ^= int(rng.integers(1, 256))
    try:
        audio, _ = decode(bytes(data))
    except InvalidAudioError as exc:
        assert str(exc)
    else:
        assert np.isfinite(audio).all()


@pytest.mark.parametrize(
    "header,reason",
    [
        (wav_with_header(2**29, b"", 2, 44_100), "truncated"),  # a huge declared length
        (wav_with_header(100, b"", 0, 44_100), "not_audio"),  # zero channels
        (wav_with_header(100, b"", 2, 1), "bad_sample_rate"),
        (wav_with_header(100, b"", 2, 4_000_000_000), "not_audio"),
    ],
)
def test_lying_headers_are_refused(header, reason):
    with pytest.raises(InvalidAudioError) as caught:
        decode(header + b"\x01\x02" * 200)
    assert caught.value.reason == reason


@pytest.mark.parametrize("fmt", ["WAV", "FLAC"])
def test_one_sample_file_decodes(fmt):
    audio, info = decode(encoded(np.array([[0.25, -0.25]], np.float32), 44_100, fmt, "PCM_16"))
    np.testing.assert_array_equal(audio, [[0.25, -0.25]])
    assert info.nb_frames == 1


@pytest.mark.parametrize("channels", [6, 8])
def test_many_channels_decode(channels):
    audio, info = decode(encoded(tone_mix(1_000, nb_channels=channels), 48_000, "WAV", "PCM_24"))
    assert audio.shape == (1_000, channels) and info.nb_channels == channels
