"""The public Python API: ``from stemserve import Separator``."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
import soundfile as sf
from stemserve.core.errors import InvalidAudioError, InvalidOptionError, ModelNotFoundError
from stemserve.core.settings import Settings

import stemserve
from tests.conftest import tone_mix


def settings(repo) -> Settings:
    return Settings.load({"model_repository": repo, "intra_op_threads": 1}, environ={})


def test_arrays_bytes_and_paths_give_the_same_stems(repo, tmp_path):
    audio = tone_mix(30_001)  # (frames, channels)
    sf.write(tmp_path / "song.wav", audio, 44_100, subtype="FLOAT")
    separator = stemserve.Separator(settings=settings(repo), model="split5", stems=4)
    from_array = separator.separate(audio.T, sample_rate_hz=44_100)
    from_path = separator.separate(tmp_path / "song.wav")
    from_bytes = separator.separate((tmp_path / "song.wav").read_bytes())
    assert list(from_array) == ["vocals", "drums", "bass", "other"]
    for name, stem in from_array.items():
        assert stem.shape == (2, 30_001) and stem.dtype == np.float32
        np.testing.assert_array_equal(stem, from_path[name])
        np.testing.assert_array_equal(stem, from_bytes[name])
    # split5's fixed gains: vocals 0.4 of the mix; "other" takes other + piano (0.1 + 0.1)
    np.testing.assert_allclose(from_array["vocals"], 0.4 * audio.T, atol=1e-5)
    np.testing.assert_allclose(from_array["other"], 0.2 * audio.T, atol=1e-5)


def test_mono_array_and_another_rate(repo):
    mono = tone_mix(48_000, 48_000, nb_channels=1)[:, 0]
    stems = stemserve.Separator(settings=settings(repo), model="identity5", stems=2).separate(mono, sample_rate_hz=48_000)
    assert stems["vocals"].shape == (2, 48_000)  # dual mono, the input's own rate
    # the identity model returns the mix as the model hears it: band-limited to 22.05 kHz
    assert np.corrcoef(stems["vocals"][0], mono)[0, 1] > 0.99 and np.abs(stems["instrumental"]).max() < 0.05


def test_files_with_their_record(repo, tmp_path):
    separator = stemserve.Separator(settings=settings(repo), model="split5", stems=5, format="flac", bit_depth="24")
    buffer = io.BytesIO()
    sf.write(buffer, tone_mix(44_100), 44_100, format="WAV")
    record = separator.separate_to_files(buffer.getvalue(), tmp_path / "out")
    assert [s.name for s in record.stems] == ["vocals", "drums", "bass", "piano", "other"]
    info = sf.info(tmp_path / "out" / "piano.flac")
    assert (info.samplerate, info.frames, info.subtype) == (44_100, 44_100, "PCM_24")
    assert record.stem("piano").nb_bytes == (tmp_path / "out" / "piano.flac").stat().st_size


def test_bad_options_and_inputs_are_clear_errors(repo):
    with pytest.raises(InvalidOptionError, match="overlap must be within"):
        stemserve.Separator(settings=settings(repo), model="split5", overlap=0.9)
    with pytest.raises(ModelNotFoundError, match="model must be one of"):
        stemserve.Separator(settings=settings(repo), model="nope")
    separator = stemserve.Separator(settings=settings(repo), model="split5")
    with pytest.raises(InvalidAudioError, match="needs its sample_rate_hz"):
        separator.separate(np.zeros((2, 100), np.float32))
    with pytest.raises(InvalidAudioError, match="must be float"):
        separator.separate(np.zeros((2, 100), np.int16), sample_rate_hz=44_100)


def test_importing_stemserve_loads_nothing_heavy():
    import subprocess

    code = "import stemserve, stemserve.client, sys; print(sorted(m for m in ('numpy', 'onnxruntime', 'grpc') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
