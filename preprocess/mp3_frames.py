"""Walk an mp3 stream's frame headers to tell whether the file was cut short.

An mp3 whose Xing/LAME header states its frame count is checked against that count when
decoded; one without it (sox and many streaming encoders write none) states no length, and
a decoder stops quietly wherever the bytes end. What still shows a cut is the last frame:
its header says how long it is, and a cut file ends inside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

# Layer III bitrates in kbps by bitrate index; MPEG-1, and MPEG-2 / 2.5
_BITRATES_KBPS = {
    1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_SAMPLE_RATES_HZ = {3: (44_100, 48_000, 32_000), 2: (22_050, 24_000, 16_000), 0: (11_025, 12_000, 8_000)}
_HEADER_BYTES = 4
_ID3V2_HEADER_BYTES = 10


@dataclass(frozen=True)
class FrameWalk:
    nb_frames: int  # whole frames found
    end_of_frames: int  # byte offset where the last whole frame ends
    nb_bytes: int  # the stream's size
    cut_mid_frame: bool  # the last frame's header claims bytes the stream does not have


def frame_bytes(header: bytes) -> int | None:
    """The length of the Layer III frame that starts with ``header`` (4 bytes), or None
    when these bytes are not such a header."""
    if len(header) < _HEADER_BYTES or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version = (header[1] >> 3) & 0b11  # 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5, 1: reserved
    layer = (header[1] >> 1) & 0b11  # 1: Layer III
    bitrate_index, rate_index, padding = header[2] >> 4, (header[2] >> 2) & 0b11, (header[2] >> 1) & 1
    if version == 1 or layer != 1 or bitrate_index in (0, 15) or rate_index == 3:
        return None  # reserved values, or free format (no length in the header)
    kbps = _BITRATES_KBPS[1 if version == 3 else 2][bitrate_index]
    rate_hz = _SAMPLE_RATES_HZ[version][rate_index]
    samples_per_frame = 1152 if version == 3 else 576
    return samples_per_frame // 8 * kbps * 1000 // rate_hz + padding


def walk(stream: BinaryIO, nb_bytes: int) -> FrameWalk:
    """Follow the frames from the start of the audio (after an ID3v2 tag) to the end."""
    stream.seek(0)
    head = stream.read(_ID3V2_HEADER_BYTES)
    offset = 0
    if head[:3] == b"ID3" and len(head) == _ID3V2_HEADER_BYTES:
        size = (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F)
        offset = _ID3V2_HEADER_BYTES + size + (_ID3V2_HEADER_BYTES if head[5] & 0x10 else 0)
    nb_frames, cut = 0, False
    while offset + _HEADER_BYTES <= nb_bytes:
        stream.seek(offset)
        header = stream.read(_HEADER_BYTES)
        length = frame_bytes(header)
        if length is None:
            break  # a trailing tag (ID3v1, APE), or bytes that are not frames: the frames ended here
        if offset + length > nb_bytes:
            cut = True
            break
        nb_frames += 1
        offset += length
    else:
        cut = 0 < nb_bytes - offset < _HEADER_BYTES and nb_frames > 0  # a cut inside the next header
    return FrameWalk(nb_frames=nb_frames, end_of_frames=offset, nb_bytes=nb_bytes, cut_mid_frame=cut)
