"""mp3 stems: the quality is chosen (constant bitrate or VBR), the file is gapless."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from stemserve.core.errors import InvalidOptionError
from stemserve.pipeline.options import SeparationOptions
from stemserve.preprocess.encode import EncodeOptions, StemWriter

from stemserve.cli import main
from tests.conftest import tone_mix

RATE = 44_100


def noise(seconds: float) -> np.ndarray:
    return (0.1 * np.random.default_rng(0).standard_normal((int(seconds * RATE), 2))).astype(np.float32)


def encoded_kbps(path, seconds: float) -> float:
    return path.stat().st_size * 8 / seconds / 1000


@pytest.mark.parametrize("kbps", [64, 128, 192, 256, 320])
def test_a_constant_bitrate_is_the_one_asked_and_the_file_is_gapless(tmp_path, kbps):
    audio = noise(10.0)
    with StemWriter(tmp_path / "s.mp3", RATE, 2, EncodeOptions(format="mp3", mp3_bitrate=str(kbps))) as writer:
        writer.write(audio)
    assert abs(encoded_kbps(tmp_path / "s.mp3", 10.0) - kbps) < 0.02 * kbps
    decoded, rate = sf.read(tmp_path / "s.mp3", dtype="float32")
    assert rate == RATE and decoded.shape == audio.shape  # decoded length = input length


def test_vbr_qualities_order_the_sizes(tmp_path):
    audio = (tone_mix(10 * RATE) + noise(10.0)).astype(np.float32)
    sizes = []
    for quality in ("v0", "v4", "v9"):
        with StemWriter(tmp_path / f"{quality}.mp3", RATE, 2, EncodeOptions(format="mp3", mp3_bitrate=quality)) as w:
            w.write(audio)
        assert sf.info(tmp_path / f"{quality}.mp3").frames == len(audio)
        sizes.append((tmp_path / f"{quality}.mp3").stat().st_size)
    assert sizes[0] > sizes[1] > sizes[2]


def test_gapless_mp3_keeps_the_signal_in_place(tmp_path):
    """A click at a known sample comes back at that sample: no encoder delay left in."""
    audio = np.zeros((3 * RATE, 2), np.float32)
    audio[RATE + 1234] = 0.9
    with StemWriter(tmp_path / "click.mp3", RATE, 2, EncodeOptions(format="mp3")) as writer:
        writer.write(audio)
    decoded, _ = sf.read(tmp_path / "click.mp3", dtype="float32")
    assert abs(int(np.argmax(np.abs(decoded[:, 0]))) - (RATE + 1234)) <= 2


def test_bad_mp3_options_are_refused_with_what_was_expected():
    with pytest.raises(InvalidOptionError, match=r"bit_depth for mp3 must be one of \['16'\], not '24'"):
        SeparationOptions(format="mp3", bit_depth="24")
    with pytest.raises(InvalidOptionError, match=r"mp3_bitrate must be a constant bitrate in kbps \[64, .*, 320\] "
                                                 r"or a VBR quality v0 \(best\) - v9, not '500'"):
        SeparationOptions(format="mp3", mp3_bitrate="500")
    assert SeparationOptions(format="mp3", mp3_bitrate="128").cache_key_part() != SeparationOptions(
        format="mp3").cache_key_part()


def test_the_command_line_takes_the_bitrate(tmp_path, repo, capsys):
    sf.write(tmp_path / "song.wav", noise(6.0), RATE)
    code = main(["--model-repository", str(repo), "separate", str(tmp_path / "song.wav"), "-o", str(tmp_path / "out"),
                 "--model", "split5", "--stems", "2", "--format", "mp3", "--mp3-bitrate", "128", "--no-progress"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert abs(encoded_kbps(tmp_path / "out" / "song" / "vocals.mp3", 6.0) - 128) < 6
    assert summary["stems"]["vocals"]["nb_frames"] == 6 * RATE
    assert main(["--model-repository", str(repo), "separate", str(tmp_path / "song.wav"), "--format", "mp3",
                 "--bit-depth", "24", "--model", "split5"]) == 2
    assert "bit_depth for mp3 must be one of ['16'], not '24'" in capsys.readouterr().err


def test_mp3_input_decodes_as_ffmpeg_decodes_it():
    """Same length (the encoder's delay and padding dropped as the LAME header says) and the
    same samples as FFmpeg's decoder (PyAV), to float rounding."""
    import io

    import av
    from stemserve.preprocess.decode import decode

    buffer = io.BytesIO()
    sf.write(buffer, tone_mix(5 * RATE + 321), RATE, format="MP3")
    ours, info = decode(buffer.getvalue())
    with av.open(io.BytesIO(buffer.getvalue())) as container:
        frames = [f.to_ndarray() for f in container.decode(audio=0)]
    reference = np.concatenate([f if f.shape[0] == 2 else f.reshape(-1, 2).T for f in frames], axis=1).T
    assert ours.shape == reference.shape == (5 * RATE + 321, 2) and info.nb_frames == 5 * RATE + 321
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_version(capsys):
    from stemserve import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"stemserve {__version__}"
