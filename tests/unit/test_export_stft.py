"""The convolution STFT / ISTFT against torch.stft / torch.istft."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from export.stft_conv import ConvISTFT, ConvSTFT
from tests.unit import export_fixtures

one_thread = export_fixtures.one_thread
pytestmark = pytest.mark.usefixtures("one_thread")


def _torch_spec(signal: torch.Tensor, n_fft: int, hop: int, normalized: bool) -> torch.Tensor:
    """(batch, signals, samples) -> (batch, signals, 2, bins, frames), as the convolutions."""
    batch, nb_signals, nb_samples = signal.shape
    spec = torch.stft(
        signal.reshape(-1, nb_samples),
        n_fft,
        hop,
        window=torch.hann_window(n_fft),
        center=True,
        normalized=normalized,
        pad_mode="reflect",
        return_complex=True,
    )
    return torch.view_as_real(spec).permute(0, 3, 1, 2).reshape(batch, nb_signals, 2, *spec.shape[1:])


@pytest.mark.parametrize("normalized", [True, False])
@pytest.mark.parametrize("n_fft,hop", [(256, 64), (512, 128), (400, 100)])
@pytest.mark.parametrize("nb_samples", [4000, 4097])
def test_conv_stft_matches_torch_stft(normalized: bool, n_fft: int, hop: int, nb_samples: int) -> None:
    signal = torch.randn(2, 3, nb_samples, generator=torch.Generator().manual_seed(n_fft))
    stft = ConvSTFT(window=torch.hann_window(n_fft), hop_length=hop, nb_bins=n_fft // 2 + 1, normalized=normalized)
    got = stft(F.pad(signal, (n_fft // 2, n_fft // 2), mode="reflect"))
    expected = _torch_spec(signal, n_fft, hop, normalized)
    scale = expected.abs().max().item()
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 2e-6 * scale


@pytest.mark.parametrize("normalized", [True, False])
@pytest.mark.parametrize("nb_samples", [4000, 4097])
@pytest.mark.parametrize("n_fft,hop", [(512, 128), (500, 120)])  # overlap-add / conv path
def test_conv_istft_matches_torch_istft_and_inverts(normalized: bool, nb_samples: int, n_fft: int, hop: int) -> None:
    signal = torch.randn(2, 3, nb_samples, generator=torch.Generator().manual_seed(nb_samples))
    spec = _torch_spec(signal, n_fft, hop, normalized)
    istft = ConvISTFT(
        window=torch.hann_window(n_fft),
        hop_length=hop,
        nb_bins=n_fft // 2 + 1,
        normalized=normalized,
        nb_frames=spec.shape[-1],
        length=nb_samples,
    )
    got = istft(spec)
    complex_spec = torch.view_as_complex(spec.permute(0, 1, 3, 4, 2).contiguous())
    expected = torch.istft(
        complex_spec.reshape(6, *complex_spec.shape[2:]),
        n_fft,
        hop,
        window=torch.hann_window(n_fft),
        center=True,
        normalized=normalized,
        length=nb_samples,
    ).reshape(2, 3, nb_samples)
    assert (got - expected).abs().max().item() < 1e-5
    assert (got - signal).abs().max().item() < 1e-5  # perfect reconstruction


def test_dropped_nyquist_bin_is_treated_as_zero() -> None:
    n_fft, hop, nb_samples = 256, 64, 2048
    signal = torch.randn(1, 1, nb_samples, generator=torch.Generator().manual_seed(3))
    spec = _torch_spec(signal, n_fft, hop, True)
    kwargs = {
        "window": torch.hann_window(n_fft),
        "hop_length": hop,
        "normalized": True,
        "nb_frames": spec.shape[-1],
        "length": nb_samples,
    }
    without = ConvISTFT(nb_bins=n_fft // 2, **kwargs)(spec[:, :, :, :-1])
    zeroed = spec.clone()
    zeroed[:, :, :, -1] = 0
    with_zero = ConvISTFT(nb_bins=n_fft // 2 + 1, **kwargs)(zeroed)
    assert (without - with_zero).abs().max().item() < 1e-6
    assert (without - signal).abs().max().item() > 1e-4  # the Nyquist bin did carry signal


def test_istft_rejects_lengths_the_frames_cannot_cover() -> None:
    with pytest.raises(ValueError, match="length must be <="):
        ConvISTFT(
            window=torch.hann_window(256), hop_length=64, nb_bins=129, normalized=False, nb_frames=10, length=10_000
        )


def test_overlap_add_path_equals_the_transposed_convolution() -> None:
    n_fft, hop, nb_frames = 512, 128, 20
    spec = torch.randn(2, 3, 2, n_fft // 2 + 1, nb_frames, generator=torch.Generator().manual_seed(9))
    istft = ConvISTFT(
        window=torch.hann_window(n_fft),
        hop_length=hop,
        nb_bins=n_fft // 2 + 1,
        normalized=False,
        nb_frames=nb_frames,
        length=(nb_frames - 1) * hop,
    )
    flat = spec.reshape(6, -1, nb_frames)
    by_conv = F.conv_transpose1d(flat, istft.kernel, stride=hop)[:, 0]
    by_matmul = istft._matmul_overlap_add(flat, n_fft // hop)
    assert by_conv.shape == by_matmul.shape
    assert (by_conv - by_matmul).abs().max().item() < 1e-5
