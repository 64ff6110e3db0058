"""An mp3 without a frame count, cut short, is told apart from a whole one."""

from __future__ import annotations

import io

import pytest
import soundfile as sf
from stemserve.core.errors import InvalidAudioError
from stemserve.pipeline.options import SeparationOptions
from stemserve.pipeline.run import separate
from stemserve.preprocess.decode import AudioReader, probe
from stemserve.preprocess.mp3_frames import frame_bytes, walk

from tests.conftest import tone_mix

RATE = 44_100


@pytest.mark.parametrize(("header", "expected"), [
    (bytes([0xFF, 0xFB, 0x90, 0x64]), 417),  # MPEG-1 L3, 128 kbps, 44.1 kHz: 144 * 128000 / 44100
    (bytes([0xFF, 0xFB, 0x92, 0x64]), 418),  # the same with the padding bit
    (bytes([0xFF, 0xFB, 0xE4, 0x64]), 960),  # MPEG-1 L3, 320 kbps, 48 kHz: 144 * 320000 / 48000
    (bytes([0xFF, 0xF3, 0x50, 0x64]), 130),  # MPEG-2 L3, 40 kbps, 22.05 kHz: 72 * 40000 / 22050
    (b"TAG\x00", None), (bytes([0xFF, 0xFB, 0xF0, 0x64]), None), (bytes([0xFF, 0xFB, 0x0C, 0x64]), None),
])
def test_frame_lengths_from_headers(header, expected):
    assert frame_bytes(header) == expected


def headerless_mp3(seconds: float) -> bytes:
    """A CBR mp3 as sox writes it: no Xing/LAME frame, so no stated length."""
    buffer = io.BytesIO()
    sf.write(buffer, tone_mix(int(seconds * RATE)), RATE, format="MP3", compression_level=0.5,
             bitrate_mode="CONSTANT")
    data = buffer.getvalue()
    offset = 0
    if data[:3] == b"ID3":
        offset = 10 + ((data[6] & 0x7F) << 21 | (data[7] & 0x7F) << 14 | (data[8] & 0x7F) << 7 | (data[9] & 0x7F))
    first = frame_bytes(data[offset : offset + 4])
    assert first is not None and (b"Info" in data[offset : offset + first] or b"Xing" in data[offset : offset + first])
    return data[:offset] + data[offset + first :]  # without the info frame


def test_a_whole_stream_walks_to_its_end_and_a_cut_one_does_not():
    data = headerless_mp3(10.0)
    whole = walk(io.BytesIO(data), len(data))
    assert not whole.cut_mid_frame and whole.end_of_frames == len(data)
    assert abs(whole.nb_frames - 10.0 * RATE / 1152) < 3
    cut = walk(io.BytesIO(data[:100_000]), 100_000)
    assert cut.cut_mid_frame and cut.end_of_frames < 100_000 and cut.nb_frames < whole.nb_frames


def test_a_cut_mp3_without_a_frame_count_separates_with_a_warning(tmp_path, local_backend):
    data = headerless_mp3(10.0)
    info = probe(data[:100_000])
    assert info.format == "MP3"
    result = separate(data[:100_000], tmp_path / "cut", local_backend("split5"), SeparationOptions(model="split5"))
    assert any("input is cut short: the mp3 stream ends inside a frame at byte 100000" in w for w in result.warnings)
    whole = separate(data, tmp_path / "whole", local_backend("split5"), SeparationOptions(model="split5"))
    assert not any("cut short" in w for w in whole.warnings)


def test_a_cut_inside_the_first_frame_is_an_error():
    data = headerless_mp3(2.0)
    with pytest.raises(InvalidAudioError), AudioReader(data[:300]) as reader:
        list(reader.blocks())
