"""The model's STFT (its framing of the export package's transform): equal to torch.stft,
and perfectly invertible."""

import pytest
import torch
from stemserve.export import stft_graph
from stemserve.train.stft import FactorizedSTFT, frame_padding, sqrt_hann


@pytest.mark.parametrize("n_fft", [512, 1024, 2048])
@pytest.mark.parametrize("nb_samples", [4410, 5000, 6144])
def test_forward_matches_torch_stft(n_fft: int, nb_samples: int) -> None:
    hop = n_fft // 2
    signal = torch.randn(3, nb_samples, generator=torch.Generator().manual_seed(n_fft + nb_samples))
    spec = FactorizedSTFT(n_fft, hop)(signal)
    padded = torch.nn.functional.pad(signal, frame_padding(nb_samples, hop))
    assert padded.shape[-1] == hop + -(-nb_samples // hop) * hop + hop  # centred frames, the last hop completed
    expected = torch.stft(padded, n_fft, hop, window=sqrt_hann(n_fft).float(), center=False,
                          return_complex=True)
    bins = n_fft // 2 + 1
    scale = expected.abs().max()
    assert spec.shape == (3, 2 * bins, expected.shape[-1])
    assert torch.allclose(spec[:, :bins], expected.real, atol=1e-6 * scale)
    assert torch.allclose(spec[:, bins:], expected.imag, atol=1e-6 * scale)


@pytest.mark.parametrize("nb_samples", [1000, 1024, 44101])
def test_inverse_reconstructs_signal(nb_samples: int) -> None:
    stft = FactorizedSTFT(1024, 512)
    signal = torch.randn(2, nb_samples, generator=torch.Generator().manual_seed(nb_samples))
    restored = stft.inverse(stft(signal), nb_samples)
    assert restored.shape == signal.shape
    assert torch.allclose(restored, signal, atol=1e-5)


def test_inverse_of_a_single_bin_is_a_windowed_cosine() -> None:
    stft = FactorizedSTFT(64, 32)
    spec = torch.zeros(1, 2 * 33, 3)
    spec[0, 4, 1] = 32.0  # bin 4, real part, middle frame: amplitude 32 * 2 / 64 = 1
    frame = stft.inverse(spec, 64)[0]  # the middle frame covers samples 0..63 after the crop
    n = torch.arange(64, dtype=torch.float64)
    expected = torch.cos(2 * torch.pi * 4 * n / 64) * sqrt_hann(64)
    assert torch.allclose(frame.double(), expected, atol=1e-6)


def test_sqrt_hann_squared_overlap_adds_to_one() -> None:
    window = sqrt_hann(256) ** 2
    assert torch.allclose(window[:128] + window[128:], torch.ones(128, dtype=torch.float64))


def test_rejects_a_hop_other_than_half_the_frame() -> None:
    with pytest.raises(ValueError, match="hop must be n_fft / 2"):
        FactorizedSTFT(1024, 256)


def test_the_transform_is_the_export_packages() -> None:
    stft = FactorizedSTFT(1024, 512)
    assert isinstance(stft.transform, stft_graph.FactorizedSTFT)
    assert isinstance(stft.inverse_transform, stft_graph.FactorizedISTFT)
    assert stft.inverse_transform.nb_frames is None  # any length, no envelope constant
