"""UVR MDX-Net wrapped into the model contract: parity with python-audio-separator's way
of running the published ONNX file, at the published shapes.

The published files cannot be fetched here: a random ONNX graph with their input and
output (``[batch, 4, dim_f, dim_t]``, a small conv net, ``benchmarks/synthetic_checkpoints``)
stands in. The reference below is written from the algorithm of ``mdx_separator.py`` /
``uvr_lib_v5/stft.py`` (``run_model`` on one chunk, then ``mix - compensate * primary``) in
NumPy: its own framing, ``np.fft``, overlap-add and window-envelope division, independent of
both the exported graph and the PyTorch reference the export checks itself against.
Tolerance: 1e-4 max abs error on full chunks (the project's parity tolerance).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from stemserve.core.model_config import load_model, parse_pbtxt
from stemserve.export.catalogue import CATALOGUE
from stemserve.export.errors import ArchitectureMismatchError, CheckpointError
from stemserve.export.mdx_graph import MdxSettings, export_mdx
from stemserve.export.onnx_export import open_session, parity_signal

from benchmarks.synthetic_checkpoints import write_mdx_onnx
from tests.unit import export_fixtures

one_thread = export_fixtures.one_thread
pytestmark = pytest.mark.usefixtures("one_thread")

HOP = 1024
TOLERANCE = 1e-4


def settings_of(name: str) -> MdxSettings:
    return MdxSettings.from_mapping(dict(CATALOGUE[name].settings))


def periodic_hann(n: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)


def separator_chunk(mix: np.ndarray, model: Path, s: MdxSettings, zero_bins: int = 3) -> np.ndarray:
    """python-audio-separator on one chunk, (batch, 2, chunk) -> (batch, [vocals, instrumental], 2, chunk)."""
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    window = periodic_hann(s.n_fft)
    half = s.n_fft // 2
    out = []
    for item in mix.astype(np.float64):
        # STFT, center=True (reflect padding), frames every hop
        padded = np.pad(item, ((0, 0), (half, half)), mode="reflect")
        starts = np.arange(s.dim_t) * HOP
        frames = np.stack([padded[:, t : t + s.n_fft] for t in starts], axis=-1) * window[:, None]  # (2, n_fft, T)
        spec = np.fft.rfft(frames, axis=1)[:, : s.dim_f]  # (2, dim_f, T)
        spek = np.stack([spec[0].real, spec[0].imag, spec[1].real, spec[1].imag])[None].astype(np.float32)
        spek[:, :, :zero_bins] = 0
        est = session.run(None, {"input": spek})[0][0].astype(np.float64)  # (4, dim_f, T)
        full = np.zeros((2, s.n_fft // 2 + 1, s.dim_t), dtype=complex)
        full[0, : s.dim_f] = est[0] + 1j * est[1]
        full[1, : s.dim_f] = est[2] + 1j * est[3]
        # iSTFT: windowed inverse frames overlap-added, divided by the squared-window envelope
        frames = np.fft.irfft(full, n=s.n_fft, axis=1) * window[:, None]
        length = HOP * (s.dim_t - 1) + s.n_fft
        signal, envelope = np.zeros((2, length)), np.zeros(length)
        for t, start in enumerate(starts):
            signal[:, start : start + s.n_fft] += frames[:, :, t]
            envelope[start : start + s.n_fft] += window**2
        kept = slice(half, half + s.chunk_samples)  # center=True: half a window off each end
        primary = signal[:, kept] / envelope[kept]
        secondary = item - s.compensate * primary
        out.append([primary, secondary] if s.primary_stem == "vocals" else [secondary, primary])
    return np.asarray(out)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Both catalogue MDX-Net models, full published shapes, exported: name -> (raw, repository)."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("mdx")
    result = {}
    for seed, name in enumerate(("uvr_mdx_voc_ft", "uvr_mdx_inst_hq_3")):
        s = settings_of(name)
        raw = write_mdx_onnx(folder / f"{name}.onnx", s.dim_f, s.dim_t, seed=seed, opset=13)
        report = export_mdx(raw, s, repository=folder / "repo", name=name, license="test", threads=1)
        assert report.passed and report.max_abs_error <= TOLERANCE
        result[name] = (raw, folder / "repo")
    return result


@pytest.mark.parametrize("name", ["uvr_mdx_voc_ft", "uvr_mdx_inst_hq_3"])
def test_wrapped_graph_matches_the_separator_on_full_chunks(name: str, exported) -> None:
    raw, repository = exported[name]
    s = settings_of(name)
    entry = load_model(repository, name)
    assert entry.spec.segment_samples == s.chunk_samples == 261120
    assert entry.spec.stems == ("vocals", "instrumental")
    mix = parity_signal(3, s.chunk_samples, seed=5)  # batch 3: the batch axis is dynamic
    got = open_session(entry.model_file(), threads=1).run(["stems"], {"mix": mix})[0]
    expected = separator_chunk(mix, raw, s)
    assert got.shape == (3, 2, 2, s.chunk_samples)
    error = np.abs(got - expected).max()
    print(f"{name}: max abs error {error:.3g} vs the NumPy reference")
    assert error <= TOLERANCE, f"{name}: max abs error {error:.3g}"
    assert np.abs(expected[:, 0]).max() > 0.05  # the primary stem is not trivially silent
    # the check can fail: leaving out one step of the algorithm (the 3 zeroed bins) is far outside it
    assert np.abs(got - separator_chunk(mix, raw, s, zero_bins=0)).max() > 100 * TOLERANCE


def test_config_carries_the_settings_and_dynamic_batching(exported) -> None:
    _, repository = exported["uvr_mdx_voc_ft"]
    config = parse_pbtxt((repository / "uvr_mdx_voc_ft" / "config.pbtxt").read_text())
    params = {p["key"][0]: p["value"][0]["string_value"][0] for p in config["parameters"]}
    assert params["mdx_n_fft"] == "7680" and params["mdx_compensate"] == "1.021"
    assert params["architecture"] == "mdx_net" and config["max_batch_size"] == [8]
    assert "dynamic_batching" in config


def test_settings_that_do_not_fit_the_file_are_refused(tmp_path: Path) -> None:
    raw = write_mdx_onnx(tmp_path / "m.onnx", 2048, 256)  # a KARA_2-shaped file
    with pytest.raises(ArchitectureMismatchError, match=r"dim_f 3072.*\[None, 4, 2048, 256\]"):
        export_mdx(raw, settings_of("uvr_mdx_voc_ft"), repository=tmp_path / "repo", name="m", license="x")
    assert not (tmp_path / "repo").exists()


def test_not_an_onnx_file(tmp_path: Path) -> None:
    raw = tmp_path / "m.onnx"
    raw.write_bytes(b"\x00garbage" * 64)
    with pytest.raises(CheckpointError, match="m.onnx is not a readable ONNX model"):
        export_mdx(raw, settings_of("uvr_mdx_voc_ft"), repository=tmp_path / "repo", name="m", license="x")


def test_a_batch_one_file_is_served_at_batch_one(tmp_path: Path) -> None:
    s = MdxSettings(n_fft=2048, dim_f=512, dim_t=16, compensate=1.0, primary_stem="vocals")  # small, fast
    raw = write_mdx_onnx(tmp_path / "m.onnx", s.dim_f, s.dim_t, opset=17, fixed_batch=True)
    report = export_mdx(raw, s, repository=tmp_path / "repo", name="m", license="x", threads=1)
    assert report.passed and report.batch == 1
    assert load_model(tmp_path / "repo", "m").spec.max_batch_size == 1
