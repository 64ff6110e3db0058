import io
import struct

import numpy as np
import pytest
import soundfile as sf
from stemserve.core.errors import InvalidAudioError
from stemserve.preprocess.decode import DecodeLimits, decode, probe

from tests.conftest import tone_mix


def encoded(audio: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


LOSSLESS = [
    ("WAV", "PCM_16", 1e-4),
    ("WAV", "PCM_24", 1e-6),
    ("WAV", "PCM_32", 1e-8),
    ("WAV", "FLOAT", 0),
    ("FLAC", "PCM_16", 1e-4),
    ("FLAC", "PCM_24", 1e-6),
]


@pytest.mark.parametrize("fmt,subtype,tol", LOSSLESS)
@pytest.mark.parametrize("rate", [8_000, 44_100, 192_000])
@pytest.mark.parametrize("channels", [1, 2])
def test_lossless_round_trip(fmt, subtype, tol, rate, channels):
    audio = tone_mix(rate // 10, rate, channels)
    decoded, info = decode(encoded(audio, rate, fmt, subtype))
    assert (info.sample_rate_hz, info.nb_channels, info.nb_frames) == (rate, channels, len(audio))
    np.testing.assert_allclose(decoded, audio, atol=tol)


@pytest.mark.parametrize("fmt", ["OGG", "MP3"])
@pytest.mark.parametrize("rate", [22_050, 44_100, 48_000])
def test_lossy_round_trip_keeps_length_and_level(fmt, rate):
    audio = tone_mix(rate, rate, 2)
    decoded, info = decode(encoded(audio, rate, fmt))
    assert info.format == fmt and info.sample_rate_hz == rate
    assert len(decoded) == len(audio)
    rms_in, rms_out = np.sqrt(np.mean(audio**2)), np.sqrt(np.mean(decoded**2))
    assert abs(rms_out / rms_in - 1) < 0.05


def test_decode_from_path_equals_decode_from_bytes(tmp_path):
    data = encoded(tone_mix(1_000), 44_100, "FLAC")
    path = tmp_path / "x.flac"
    path.write_bytes(data)
    np.testing.assert_array_equal(decode(path)[0], decode(data)[0])


def wav_with_header(nb_frames_declared: int, payload: bytes, channels=2, rate=44_100, bits=16) -> bytes:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, (rate * block) % 2**32, block, bits)
    data_size = nb_frames_declared * block
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_size)
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", data_size)
        + payload
    )


@pytest.mark.parametrize(
    "data,reason,message",
    [
        (b"", "empty", "empty upload"),
        (b"this is not audio at all" * 10, "not_audio", "could not be parsed as audio"),
        (wav_with_header(0, b""), "no_frames", "at least 1 audio frame"),
        (wav_with_header(1_000, b"\x00\x01" * 400), "truncated", "declares 1000 frames, got 200"),
        (wav_with_header(10, b"\x00" * 40, rate=4_000), "bad_sample_rate", "got 4000"),
    ],
)
def test_bad_inputs_each_get_their_own_error(data, reason, message):
    with pytest.raises(InvalidAudioError, match=message) as caught:
        decode(data)
    assert caught.value.reason == reason


def test_nan_and_inf_samples_are_refused():
    audio = tone_mix(1_000)
    audio[500, 1] = np.nan
    audio[700, 0] = np.inf
    with pytest.raises(InvalidAudioError, match="NaN/Inf at frame 500 \\(2 in frames 0-999\\)") as caught:
        decode(encoded(audio, 44_100, "WAV", "FLOAT"))
    assert caught.value.reason == "non_finite"


def test_corrupt_flac_is_refused():
    data = bytearray(encoded(tone_mix(44_100), 44_100, "FLAC"))
    data[len(data) // 2 :] = b"\xff" * (len(data) - len(data) // 2)
    with pytest.raises(InvalidAudioError) as caught:
        decode(bytes(data))
    assert caught.value.reason in ("corrupt", "truncated")


def test_limits_are_checked_before_decoding():
    data = encoded(tone_mix(44_100 * 2), 44_100, "WAV")
    with pytest.raises(InvalidAudioError, match="at most 1 s long, got 2.0 s") as caught:
        probe(data, DecodeLimits(max_duration_s=1.0))
    assert caught.value.reason == "too_long"
    with pytest.raises(InvalidAudioError, match="at most 100 bytes") as caught:
        decode(data, DecodeLimits(max_bytes=100))
    assert caught.value.reason == "too_large"


def test_input_properties_are_logged_once(caplog):
    caplog.set_level("INFO", logger="stemserve.preprocess.decode")
    decode(encoded(tone_mix(4_410), 44_100, "WAV"))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("input_audio")]
    assert lines == [
        ('input_audio {"bytes": 17684, "channels": 2, "duration_s": 0.1, "format": "WAV", '
         '"sample_rate_hz": 44100, "subtype": "PCM_16"}')
    ]


def test_nan_in_a_later_block_is_reported_at_its_absolute_frame():
    audio = tone_mix(200_000)
    audio[150_001, 0] = np.nan
    with pytest.raises(InvalidAudioError, match="NaN/Inf at frame 150001 "):
        decode(encoded(audio, 44_100, "WAV", "FLOAT"))
