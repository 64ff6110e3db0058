"""The committed default model: its config, its reproducibility from the checkpoint, and
that it separates."""

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from stemserve.core.model_config import CONFIG_NAME, INPUT_NAME, OUTPUT_NAME, file_sha256, load_model, parse_pbtxt
from stemserve.export.errors import ExportError
from stemserve.train.arrange import STEMS, generate_song
from stemserve.train.export_onnx import SEGMENT_SAMPLES, export_onnx, export_repository
from stemserve.train.metrics import sdr_db, stem_is_active
from stemserve.train.train import load_separator

ROOT = Path(__file__).resolve().parents[2]
REPOSITORY = ROOT / "model_repository"
CHECKPOINT = ROOT / "train" / "checkpoints" / "stemserve-small.pt"
SOUNDFONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
TEST_SEED = 4_200_011  # far from the training (0-799) and validation (900000+) seeds


@pytest.fixture(scope="module")
def entry():
    return load_model(REPOSITORY, "stemserve-small")


@pytest.fixture(scope="module")
def session(entry):
    return ort.InferenceSession(str(entry.model_file()), providers=["CPUExecutionProvider"])


def _run(session, mix: np.ndarray) -> np.ndarray:
    return session.run([OUTPUT_NAME], {INPUT_NAME: mix.astype(np.float32)})[0]


def test_config_describes_the_committed_model(entry) -> None:
    spec = entry.spec
    assert spec.stems == STEMS == ("vocals", "drums", "bass", "piano", "other")
    assert (spec.sample_rate_hz, spec.segment_samples, spec.default_overlap) == (44100, SEGMENT_SAMPLES, 0.25)
    assert spec.model_version == file_sha256(entry.model_file())[:12]
    assert spec.license == "Apache-2.0" and spec.architecture.startswith("stemserve-small")
    size = entry.model_file().stat().st_size + CHECKPOINT.stat().st_size
    assert size < 15e6


def test_reexport_from_checkpoint_reproduces_the_onnx(session, tmp_path) -> None:
    model, _ = load_separator(CHECKPOINT)
    path = tmp_path / "model.onnx"
    export_onnx(model, path)
    mix = (0.1 * np.random.default_rng(0).standard_normal((1, 2, SEGMENT_SAMPLES))).astype(np.float32)
    fresh = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert np.abs(_run(fresh, mix) - _run(session, mix)).max() < 1e-5


def test_export_writes_the_committed_config(tmp_path) -> None:
    """The export command writes the model folder as the export package does: the committed
    config.pbtxt's fields and parameters (the version is the new file's hash), plus the
    warm-up block every exported model has."""
    onnx_path = export_repository(CHECKPOINT, tmp_path)
    assert onnx_path == tmp_path / "stemserve-small" / "1" / "model.onnx"
    written = parse_pbtxt((tmp_path / "stemserve-small" / CONFIG_NAME).read_text())
    committed = parse_pbtxt((REPOSITORY / "stemserve-small" / CONFIG_NAME).read_text())
    assert [w["batch_size"] for w in written.pop("model_warmup")] == [[1]]

    def parameters(config: dict) -> dict:
        return {p["key"][0]: p["value"][0]["string_value"][0] for p in config.pop("parameters")}

    written_parameters, committed_parameters = parameters(written), parameters(committed)
    assert written_parameters.pop("model_version") == file_sha256(onnx_path)[:12]
    committed_parameters.pop("model_version")
    assert (written, written_parameters) == (committed, committed_parameters)
    assert load_model(tmp_path, "stemserve-small").spec.segment_samples == SEGMENT_SAMPLES


def test_export_refuses_an_onnx_that_differs_from_pytorch(tmp_path) -> None:
    with pytest.raises(ExportError, match="parity stemserve-small: .*FAILED"):
        export_repository(CHECKPOINT, tmp_path, tolerance=0.0)
    assert not (tmp_path / "stemserve-small").exists()


def test_stems_sum_to_the_mix(session) -> None:
    rng = np.random.default_rng(1)
    mix = 0.2 * rng.standard_normal((2, 2, SEGMENT_SAMPLES))
    stems = _run(session, mix)
    assert stems.shape == (2, len(STEMS), 2, SEGMENT_SAMPLES)
    assert np.abs(stems.sum(axis=1) - mix).max() < 1e-4
    # (how white noise is shared is not a property of music; separation is checked on a song below)


@pytest.mark.skipif(not SOUNDFONT.exists(), reason="needs the timgm6mb-soundfont Debian package")
def test_separates_a_held_out_generated_song(session) -> None:
    from stemserve.train.render import open_renderers, render_song

    song = generate_song(TEST_SEED, duration_s=SEGMENT_SAMPLES / 44100)
    stems = render_song(song, open_renderers(("TimGM6mb.sf2",)))[..., :SEGMENT_SAMPLES]
    mix = stems.sum(axis=0)
    estimate = _run(session, mix[None])[0]
    scores = {stem: sdr_db(stems[i], estimate[i]) for i, stem in enumerate(STEMS)
              if stem_is_active(stems[i], mix)}
    assert set(scores) == set(STEMS), scores
    # first committed model: vocals 5.4, drums 2.8, bass 6.6, piano 0.2, other 1.7 dB
    assert scores["vocals"] > 3.0, scores
    assert scores["drums"] > 1.0 and scores["bass"] > 2.0, scores
    assert np.mean(list(scores.values())) > 2.0, scores
