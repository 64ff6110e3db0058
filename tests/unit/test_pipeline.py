import io

import numpy as np
import pytest
import soundfile as sf
import soxr
from stemserve.core.errors import InvalidAudioError, InvalidOptionError
from stemserve.pipeline.options import SeparationOptions
from stemserve.pipeline.run import separate

from tests.conftest import tone_mix


def wav_bytes(audio, rate, subtype="FLOAT"):
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def read(path):
    return sf.read(path, dtype="float32")


@pytest.mark.parametrize("nb_frames", [1_000, 4_096, 30_001])
def test_identity_model_end_to_end_reproduces_input(tmp_path, local_backend, nb_frames):
    audio = tone_mix(nb_frames)
    options = SeparationOptions(stems=5, bit_depth="float", model="identity5")
    result = separate(wav_bytes(audio, 44_100), tmp_path, local_backend("identity5"), options)
    vocals, rate = read(tmp_path / "vocals.wav")
    assert rate == 44_100 and vocals.shape == audio.shape
    np.testing.assert_allclose(vocals, audio, atol=1e-5)
    np.testing.assert_array_equal(read(tmp_path / "drums.wav")[0], 0.0)
    assert result.stem("vocals").nb_frames == nb_frames and result.audio_seconds == round(nb_frames / 44_100, 3)


def test_normalization_is_undone_so_stem_levels_match_the_input(tmp_path, local_backend):
    quiet = tone_mix(20_000) * np.float32(0.01)
    for normalize, folder in ((True, tmp_path / "n"), (False, tmp_path / "raw")):
        options = SeparationOptions(stems=4, bit_depth="float", model="split5", normalize=normalize)
        separate(wav_bytes(quiet, 44_100), folder, local_backend("split5"), options)
    for stem, gain in (("vocals", 0.4), ("drums", 0.25), ("bass", 0.15), ("other", 0.2)):
        normalized, raw = read(tmp_path / "n" / f"{stem}.wav")[0], read(tmp_path / "raw" / f"{stem}.wav")[0]
        np.testing.assert_allclose(normalized, gain * quiet, atol=1e-7)
        np.testing.assert_array_equal(normalized, raw)


def test_two_stem_preset_sums_to_the_input(tmp_path, local_backend):
    audio = tone_mix(25_000)
    options = SeparationOptions(stems=2, bit_depth="float", model="split5")
    separate(wav_bytes(audio, 44_100), tmp_path, local_backend("split5"), options)
    vocals, instrumental = read(tmp_path / "vocals.wav")[0], read(tmp_path / "instrumental.wav")[0]
    np.testing.assert_allclose(vocals, 0.4 * audio, atol=1e-6)
    np.testing.assert_allclose(vocals + instrumental, audio, atol=1e-6)


@pytest.mark.parametrize(
    "in_rate,requested,expected",
    [(48_000, None, 48_000), (22_050, None, 44_100), (44_100, 48_000, 48_000), (8_000, 44_100, 44_100)],
)
def test_output_rate_and_exact_length(tmp_path, local_backend, in_rate, requested, expected):
    audio = tone_mix(in_rate // 2 + 7, in_rate)
    options = SeparationOptions(stems=4, model="split5", sample_rate_hz=requested, bit_depth="float")
    result = separate(wav_bytes(audio, in_rate), tmp_path, local_backend("split5"), options)
    vocals, rate = read(tmp_path / "vocals.wav")
    assert rate == expected and len(vocals) == round(len(audio) * expected / in_rate)
    assert result.stem("other").nb_frames == len(vocals)
    reference = np.sqrt(np.mean((0.4 * audio) ** 2))
    assert abs(np.sqrt(np.mean(vocals[100:-100] ** 2)) / reference - 1) < 0.02


def test_same_input_gives_bit_identical_stems(tmp_path, local_backend):
    data = wav_bytes(tone_mix(50_000), 44_100, "PCM_16")
    backend = local_backend("split5")
    for run in ("a", "b"):
        separate(data, tmp_path / run, backend, SeparationOptions(format="flac", model="split5"))
    for stem in ("vocals", "drums", "bass", "other"):
        assert (tmp_path / "a" / f"{stem}.flac").read_bytes() == (tmp_path / "b" / f"{stem}.flac").read_bytes()


def test_clipping_warning_without_rescaling(tmp_path, local_backend):
    loud = tone_mix(50_000) * np.float32(3.0)
    options = SeparationOptions(model="identity5", bit_depth="float")
    result = separate(wav_bytes(loud, 44_100), tmp_path, local_backend("identity5"), options)
    peak = float(np.abs(loud).max())
    assert list(result.warnings) == [
        (f"clipping risk: stem 'vocals' peaks at {peak:.3f} (above full scale 1.0); "
         "integer and mp3 outputs are clipped, float wav keeps it")
    ]
    np.testing.assert_allclose(read(tmp_path / "vocals.wav")[0], loud, atol=1e-6)


def test_warnings_for_short_input_and_low_confidence(tmp_path, local_backend):
    result = separate(
        wav_bytes(tone_mix(2_000), 44_100), tmp_path, local_backend("half5"), SeparationOptions(model="half5")
    )
    assert result.warnings[0].startswith("short input: 0.045 s")
    assert result.warnings[1].startswith("low confidence: the model's stems leave 25 %")  # (1 - 0.5)^2


def test_failed_separation_leaves_no_stem_files(tmp_path, local_backend):
    backend = local_backend("split5")
    calls = []

    def failing(batch):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("backend died")
        return backend.infer(batch)

    class Dying:
        spec, device, max_batch_size, infer = backend.spec, "cpu", 1, staticmethod(failing)

    with pytest.raises(RuntimeError, match="backend died"):
        separate(wav_bytes(tone_mix(40_000), 44_100), tmp_path / "out", Dying(), SeparationOptions(model="split5"))
    assert list((tmp_path / "out").iterdir()) == []


def test_bad_audio_and_unservable_preset_fail_before_any_output(tmp_path, local_backend):
    with pytest.raises(InvalidAudioError):
        separate(b"not audio" * 100, tmp_path / "out", local_backend("split5"), SeparationOptions(model="split5"))
    with pytest.raises(InvalidOptionError, match="5-stem preset"):
        separate(
            wav_bytes(tone_mix(100), 44_100), tmp_path / "out", local_backend("split4"), SeparationOptions(stems=5)
        )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"stems": 3}, "stems must be one of"),
        ({"format": "ogg"}, "format must be one of"),
        ({"sample_rate_hz": 22050}, "sample_rate must be one of"),
        ({"overlap": 0.9}, "overlap must be within"),
        ({"format": "flac", "bit_depth": "float"}, "bit_depth for flac"),
    ],
)
def test_options_out_of_range(kwargs, message):
    with pytest.raises(InvalidOptionError, match=message):
        SeparationOptions(**kwargs)


def bright_mix(nb_frames: int, rate: int) -> np.ndarray:
    """``tone_mix`` plus a tone near the input's Nyquist frequency: above what a 44.1-kHz model hears."""
    t = np.arange(nb_frames) / rate
    high = 0.2 * np.sin(2 * np.pi * 0.45 * rate * t)
    return (tone_mix(nb_frames, rate) + high[:, None]).astype(np.float32)


@pytest.mark.parametrize("stems", [2, 4, 5])
@pytest.mark.parametrize(("in_rate", "requested"), [(48_000, None), (96_000, 48_000), (22_050, None),
                                                     (44_100, 48_000), (48_000, 44_100)])
def test_stems_sum_to_the_input_at_the_output_rate(tmp_path, local_backend, stems, in_rate, requested):
    audio = bright_mix(in_rate + 123, in_rate)
    # half5 leaves half the mix unexplained: that half, and the band it cannot hear, go to the residual
    options = SeparationOptions(stems=stems, model="half5", sample_rate_hz=requested, bit_depth="float")
    result = separate(wav_bytes(audio, in_rate, subtype="FLOAT"), tmp_path, local_backend("half5"), options)
    out_rate = result.stems[0].sample_rate_hz
    expected = audio if out_rate == in_rate else soxr.resample(audio, in_rate, out_rate, quality="HQ")
    total = sum(read(path)[0] for path in result.paths.values())
    assert total.shape == expected.shape
    snr_db = 10 * np.log10(np.sum(expected**2) / np.sum((total - expected) ** 2))
    assert snr_db >= 90, snr_db
