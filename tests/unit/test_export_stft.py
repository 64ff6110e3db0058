"""The factorised STFT / ISTFT against torch.stft / torch.istft."""

from __future__ import annotations

import pytest
import torch
from stemserve.export.stft_graph import FactorizedISTFT, FactorizedSTFT, split_size
from torch.nn import functional as F

from tests.unit import export_fixtures

one_thread = export_fixtures.one_thread
pytestmark = pytest.mark.usefixtures("one_thread")

WINDOWS = {"hann": torch.hann_window, "hamming": torch.hamming_window}
# (n_fft, hop, window): hop n_fft / 4 (the models), n_fft / 2, a hop that does not divide
# the window, an n_fft of two unequal factors, an odd one and a prime one (a dense DFT)
CASES = [
    (256, 64, "hann"),
    (512, 256, "hann"),
    (400, 100, "hamming"),
    (500, 120, "hann"),
    (99, 33, "hamming"),
    (97, 30, "hann"),
]


def _torch_spec(signal: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor, normalized: bool) -> torch.Tensor:
    """(batch, signals, samples) -> (batch, signals, 2, bins, frames), the modules' layout."""
    batch, nb_signals, nb_samples = signal.shape
    spec = torch.stft(
        signal.reshape(-1, nb_samples),
        n_fft,
        hop,
        window=window,
        center=True,
        normalized=normalized,
        pad_mode="reflect",
        return_complex=True,
    )
    return torch.view_as_real(spec).permute(0, 3, 1, 2).reshape(batch, nb_signals, 2, *spec.shape[1:])


def _torch_istft(spec: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor, normalized: bool, length: int):
    """The inverse of :func:`_torch_spec`; missing bins above the given ones are zero."""
    batch, nb_signals = spec.shape[:2]
    complex_spec = torch.view_as_complex(spec.permute(0, 1, 3, 4, 2).contiguous()).flatten(0, 1)
    complex_spec = F.pad(complex_spec, (0, 0, 0, n_fft // 2 + 1 - complex_spec.shape[1]))
    wave = torch.istft(complex_spec, n_fft, hop, window=window, center=True, normalized=normalized, length=length)
    return wave.reshape(batch, nb_signals, length)


@pytest.mark.parametrize("drop_nyquist", [False, True])
@pytest.mark.parametrize("normalized", [True, False])
@pytest.mark.parametrize("n_fft,hop,window_name", CASES)
@pytest.mark.parametrize("nb_samples", [4000, 4097])
def test_stft_matches_torch_stft(
    n_fft: int, hop: int, window_name: str, normalized: bool, drop_nyquist: bool, nb_samples: int
) -> None:
    window = WINDOWS[window_name](n_fft)
    nb_bins = n_fft // 2 + (0 if drop_nyquist else 1)
    signal = torch.randn(2, 3, nb_samples, generator=torch.Generator().manual_seed(n_fft))
    stft = FactorizedSTFT(window=window, hop_length=hop, nb_bins=nb_bins, normalized=normalized)
    got = stft(F.pad(signal, (n_fft // 2, n_fft // 2), mode="reflect"))
    expected = _torch_spec(signal, n_fft, hop, window, normalized)[:, :, :, :nb_bins]
    scale = expected.abs().max().item()
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 2e-6 * scale


@pytest.mark.parametrize("drop_nyquist", [False, True])
@pytest.mark.parametrize("normalized", [True, False])
@pytest.mark.parametrize("n_fft,hop,window_name", CASES)
@pytest.mark.parametrize("nb_samples", [4000, 4097])
def test_istft_matches_torch_istft(
    n_fft: int, hop: int, window_name: str, normalized: bool, drop_nyquist: bool, nb_samples: int
) -> None:
    window = WINDOWS[window_name](n_fft)
    nb_bins = n_fft // 2 + (0 if drop_nyquist else 1)
    signal = torch.randn(2, 3, nb_samples, generator=torch.Generator().manual_seed(nb_samples))
    spec = _torch_spec(signal, n_fft, hop, window, normalized)[:, :, :, :nb_bins]
    istft = FactorizedISTFT(
        window=window,
        hop_length=hop,
        nb_bins=nb_bins,
        normalized=normalized,
        nb_frames=spec.shape[-1],
        length=nb_samples,
    )
    got = istft(spec)
    expected = _torch_istft(spec, n_fft, hop, window, normalized, nb_samples)
    assert got.shape == signal.shape
    assert (got - expected).abs().max().item() < 1e-5
    if drop_nyquist:  # the last bin (Nyquist for even sizes) did carry signal
        assert (got - signal).abs().max().item() > 1e-4
    else:
        assert (got - signal).abs().max().item() < 1e-5  # perfect reconstruction


def test_stft_random_spectrum_inverse_equals_torch() -> None:
    """Not only spectra of real signals: any (inconsistent) spectrum, as a network emits."""
    n_fft, hop, nb_frames = 512, 128, 20
    spec = torch.randn(2, 3, 2, n_fft // 2 + 1, nb_frames, generator=torch.Generator().manual_seed(9))
    window = torch.hann_window(n_fft)
    length = (nb_frames - 1) * hop
    istft = FactorizedISTFT(
        window=window, hop_length=hop, nb_bins=n_fft // 2 + 1, normalized=False, nb_frames=nb_frames, length=length
    )
    expected = _torch_istft(spec, n_fft, hop, window, False, length)
    assert (istft(spec) - expected).abs().max().item() < 1e-5 * expected.abs().max().item()


@pytest.mark.parametrize("n_fft,p,q", [(4096, 64, 64), (1024, 32, 32), (512, 16, 32), (500, 20, 25), (97, 1, 97)])
def test_split_size_is_the_most_balanced_factorisation(n_fft: int, p: int, q: int) -> None:
    assert split_size(n_fft) == (p, q)


def test_no_dense_dft_basis() -> None:
    """The constants of both transforms at 4096 points stay near 4 q nb_bins values each,
    against 2 n_fft nb_bins (16.8 million) for a dense basis."""
    n_fft = 4096
    window, hop, nb_bins = torch.hann_window(n_fft), n_fft // 4, n_fft // 2 + 1
    stft = FactorizedSTFT(window=window, hop_length=hop, nb_bins=nb_bins, normalized=False)
    istft = FactorizedISTFT(
        window=window, hop_length=hop, nb_bins=nb_bins, normalized=False, nb_frames=10, length=8 * hop
    )
    for module in (stft, istft):
        values = sum(b.numel() for b in module.buffers())
        assert values < 600_000, values


def test_istft_rejects_lengths_the_frames_cannot_cover() -> None:
    with pytest.raises(ValueError, match="length must be <="):
        FactorizedISTFT(
            window=torch.hann_window(256), hop_length=64, nb_bins=129, normalized=False, nb_frames=10, length=10_000
        )


@pytest.mark.parametrize("module", [FactorizedSTFT, FactorizedISTFT])
def test_bins_beyond_the_one_sided_spectrum_are_rejected(module: type) -> None:
    kwargs = {"nb_frames": 10, "length": 500} if module is FactorizedISTFT else {}
    with pytest.raises(ValueError, match="nb_bins must be within 1-129"):
        module(window=torch.hann_window(256), hop_length=64, nb_bins=130, normalized=False, **kwargs)


def _sqrt_hann(n_fft: int, gain: float = 1.0) -> torch.Tensor:
    return gain * torch.hann_window(n_fft, dtype=torch.float64).sqrt().float()


@pytest.mark.parametrize("n_fft,gain", [(1024, 1.0), (500, 2.0), (64, 0.5)])
@pytest.mark.parametrize("nb_frames", [3, 17])
def test_istft_for_any_frame_count_matches_torch_istft(n_fft: int, gain: float, nb_frames: int) -> None:
    """Without a fixed frame count: a window whose squares overlap-add to a constant (here
    ``gain ** 2``) at half overlap; one module inverts spectra of any length."""
    hop, nb_bins = n_fft // 2, n_fft // 2 + 1
    window = _sqrt_hann(n_fft, gain)
    istft = FactorizedISTFT(window=window, hop_length=hop, nb_bins=nb_bins, normalized=False)
    assert not any(name == "inverse_envelope" for name, _ in istft.named_buffers())
    spec = torch.randn(2, 3, 2, nb_bins, nb_frames, generator=torch.Generator().manual_seed(nb_frames))
    for length in ((nb_frames - 1) * hop, (nb_frames - 1) * hop - 7):
        expected = _torch_istft(spec, n_fft, hop, window, False, length)
        assert (istft(spec, length) - expected).abs().max().item() < 1e-5 * expected.abs().max().item()


def test_istft_for_any_frame_count_needs_a_constant_envelope() -> None:
    window = torch.hann_window(256)
    with pytest.raises(ValueError, match="overlap-add to a constant"):  # hann squared is not constant at hop 128
        FactorizedISTFT(window=window, hop_length=128, nb_bins=129, normalized=False)
    with pytest.raises(ValueError, match="overlap-add to a constant"):  # hann is, at hop 64, but the edges are not
        FactorizedISTFT(window=window.sqrt(), hop_length=64, nb_bins=129, normalized=False)
    with pytest.raises(ValueError, match="both nb_frames and length"):
        FactorizedISTFT(window=window, hop_length=64, nb_bins=129, normalized=False, nb_frames=10)


def test_istft_lengths_per_call() -> None:
    dynamic = FactorizedISTFT(window=_sqrt_hann(256), hop_length=128, nb_bins=129, normalized=False)
    spec = torch.zeros(1, 1, 2, 129, 10)
    assert dynamic(spec, 9 * 128).shape == (1, 1, 9 * 128)
    with pytest.raises(ValueError, match="length must be given"):
        dynamic(spec)
    with pytest.raises(ValueError, match="length must be <= 1152"):
        dynamic(spec, 9 * 128 + 1)
    fixed = FactorizedISTFT(
        window=torch.hann_window(256), hop_length=64, nb_bins=129, normalized=False, nb_frames=10, length=500
    )
    assert fixed(spec, 500).shape == fixed(spec).shape == (1, 1, 500)
    with pytest.raises(ValueError, match="gives 500 samples, not 400"):
        fixed(spec, 400)
