"""The in-graph STFT: equal to torch.stft, and perfectly invertible; the low-band STFT framed like it."""

import pytest
import torch
from stemserve.train.stft import FactorizedSTFT, LowBandSTFT, sqrt_hann


@pytest.mark.parametrize("n_fft", [512, 1024, 2048])
@pytest.mark.parametrize("nb_samples", [4410, 5000, 6144])
def test_forward_matches_torch_stft(n_fft: int, nb_samples: int) -> None:
    hop = n_fft // 2
    signal = torch.randn(3, nb_samples, generator=torch.Generator().manual_seed(n_fft + nb_samples))
    spec = FactorizedSTFT(n_fft, hop)(signal)
    padded = torch.nn.functional.pad(signal, (hop, hop + (-nb_samples % hop)))
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


@pytest.mark.parametrize("nb_samples", [3000, 4096])
def test_the_low_band_is_a_hann_stft_with_the_models_frames(nb_samples: int) -> None:
    signal = torch.randn(2, nb_samples, generator=torch.Generator().manual_seed(nb_samples))
    low = LowBandSTFT(1024, 128, 20)(signal)
    padded = torch.nn.functional.pad(signal, (512, 512 + (-nb_samples % 128)))
    expected = torch.stft(padded, 1024, 128, window=torch.hann_window(1024), center=False,
                          return_complex=True)[:, :20]
    assert low.shape == (2, 40, FactorizedSTFT(256, 128)(signal).shape[-1]) == (2, 40, expected.shape[-1])
    scale = expected.abs().max()
    assert torch.allclose(low[:, :20], expected.real, atol=1e-5 * scale)
    assert torch.allclose(low[:, 20:], expected.imag, atol=1e-5 * scale)
    fast = LowBandSTFT(1024, 128, 20).by_fft(signal)  # the training path: the same frames through an FFT
    assert torch.allclose(torch.cat([fast.real, fast.imag], dim=1), low, atol=1e-5 * scale)


def test_low_band_frames_are_centred_on_the_models_and_resolve_a_bin_centre_tone() -> None:
    impulse = torch.zeros(1, 4096)
    impulse[0, 3 * 128] = 1.0  # the centre of frame 3 of a hop-128 STFT
    low = LowBandSTFT(1024, 128, 8)(impulse)[0]
    # at the window's centre (weight 1) the k-th basis row is cos(pi k), its sine 0
    assert torch.allclose(low[:8, 3], torch.tensor([(-1.0) ** k for k in range(8)]), atol=1e-6)
    assert torch.allclose(low[8:, 3], torch.zeros(8), atol=1e-5)
    assert FactorizedSTFT(256, 128)(impulse)[0, :129].abs().argmax(dim=1).eq(3).all()  # its frame 3 too
    n = torch.arange(8192, dtype=torch.float64)
    tone = (0.5 * torch.cos(2 * torch.pi * 5 * n / 1024)).float()[None]  # exactly on bin 5
    magnitude = LowBandSTFT(1024, 128, 8)(tone)[0].view(2, 8, -1).square().sum(dim=0).sqrt()[:, 30]
    assert magnitude[5] == pytest.approx(0.5 * 1024 / 4, rel=1e-4)  # amplitude times the Hann sum, halved
    assert magnitude[[0, 1, 2, 3, 7]].max() < 1e-3 * magnitude[5]  # the Hann window's main lobe is +-2 bins


def test_the_low_band_has_at_least_one_bin_and_at_most_nyquist() -> None:
    for bins in (0, 514):
        with pytest.raises(ValueError, match=f"has 1 to 513 bins, got {bins}"):
            LowBandSTFT(1024, 256, bins)
