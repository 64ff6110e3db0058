"""The stemserve-small separation model: STFT masks from a dilated temporal conv net.

Waveform in, waveform stems out, with the STFT and ISTFT inside the network as real-valued
matrix products (``stemserve.train.stft``, the transform of
``stemserve.export.stft_graph``), so the exported ONNX graph holds no complex tensors. The
net sees the log magnitudes of both channels of every frame, the window brought to one
mean magnitude as in training (with ``stereo_cues``, also where each bin sits between the
channels; with ``phase_cues``, also how alike the channels' phases are), mixes them
through a stack of dilated depthwise-separable temporal convolutions and gives each stem
its own head; a softmax across stems turns the head outputs into masks that sum to one, so
the stems sum to the mix up to the ISTFT's rounding error.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from stemserve.train.stft import FactorizedSTFT
from stemserve.train.wiener import spatial_wiener
from torch import nn
from torch.nn import functional as F

STEMS = ("vocals", "drums", "bass", "piano", "other")
MIN_MEAN_MAGNITUDE = 1e-5  # a window quieter than this (near silence) is not raised further


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    n_fft: int = 1024
    hop: int = 512
    nb_channels: int = 2
    nb_stems: int = len(STEMS)
    hidden: int = 192
    head_rank: int = 96
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    kernel_size: int = 5
    local_width: int = 0  # channels of the frequency-local branch; 0: none (the first models)
    stereo_cues: bool = False  # per-bin inter-channel level differences as inputs (stereo only)
    phase_cues: bool = False  # per-bin inter-channel phase agreement and centre coherence as inputs
    spatial_wiener: float = 0.0  # share of train.wiener's spatial Wiener estimate in each stem; 0: masks only

    def __post_init__(self) -> None:
        if self.n_fft != 2 * self.hop:
            raise ValueError(f"hop must be n_fft / 2 (sqrt-Hann reconstruction), got {self.n_fft}/{self.hop}")
        if self.nb_stems != len(STEMS):
            raise ValueError(f"nb_stems must be {len(STEMS)} ({STEMS}), got {self.nb_stems}")
        for cue in ("stereo_cues", "phase_cues", "spatial_wiener"):
            if getattr(self, cue) and self.nb_channels != 2:
                raise ValueError(f"{cue} needs 2 channels, got nb_channels {self.nb_channels}")
        if not 0 <= self.spatial_wiener <= 1:
            raise ValueError(f"spatial_wiener must be a share from 0 to 1, got {self.spatial_wiener}")

    @property
    def nb_bins(self) -> int:
        return self.n_fft // 2 + 1

    def to_dict(self) -> dict:
        return asdict(self)


class SeparableBlock(nn.Module):
    def __init__(self, hidden: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv1d(hidden, hidden, kernel_size, padding=dilation * (kernel_size // 2),
                                   dilation=dilation, groups=hidden)
        self.norm1 = nn.BatchNorm1d(hidden)
        self.pointwise1 = nn.Conv1d(hidden, hidden, 1)
        self.norm2 = nn.BatchNorm1d(hidden)
        self.pointwise2 = nn.Conv1d(hidden, hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.gelu(self.norm1(self.depthwise(x)))
        y = F.gelu(self.norm2(self.pointwise1(y)))
        return x + self.pointwise2(y)


class LocalBranch(nn.Module):
    """Per-bin evidence from the bins and frames around each bin: two small 2-D convolutions
    over the normalized log magnitudes give per-stem logits for every channel and bin, the
    local spectral shape (harmonic spacing, onsets) that the temporal net's one projection
    of the whole frame blurs. The output layer starts at zero, so a trained model extended
    with the branch starts where it was (``ModelConfig.local_width``)."""

    def __init__(self, nb_channels: int, nb_stems: int, width: int) -> None:
        super().__init__()
        self.nb_stems = nb_stems
        self.conv1 = nn.Conv2d(nb_channels, width, (5, 3), padding=(2, 1))
        self.conv2 = nn.Conv2d(width, width, 3, padding=2, dilation=2)
        self.out = nn.Conv2d(width, nb_stems * nb_channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, bins, frames)`` -> logits ``(batch, stems, channels * bins, frames)``."""
        batch, channels, bins, frames = x.shape
        h = F.gelu(self.conv2(F.gelu(self.conv1(x))))
        return self.out(h).view(batch, self.nb_stems, channels * bins, frames)


def _zero_cue_layers(nb_bins: int, nb_stems: int, hidden: int) -> tuple[nn.BatchNorm1d, nn.Conv1d, nn.Parameter, nn.Parameter]:
    """What a set of two per-bin cues needs, all starting at zero but the norm: a batch norm
    of the two cues, their projection into the temporal net, and one per-stem logit weight
    per cue, channel and bin."""
    encoder = nn.Conv1d(2 * nb_bins, hidden, 1, bias=False)
    nn.init.zeros_(encoder.weight)
    return (nn.BatchNorm1d(2 * nb_bins), encoder, nn.Parameter(torch.zeros(1, nb_stems, 2 * nb_bins, 1)),
            nn.Parameter(torch.zeros(1, nb_stems, 2 * nb_bins, 1)))


class StereoCues(nn.Module):
    """Where each bin sits between the channels: ``tanh`` of the inter-channel level
    difference in nats, per bin and frame. Its sign says which channel is louder, its size how
    far from the centre the bin's sound is panned (a centre-panned voice is near 0 in every
    bin it owns). The temporal net gets both as extra inputs, and each stem's logits get them
    per bin, signed per channel (louder in this channel or in the other). Every weight
    starts at zero, so a trained model extended with the cues starts where it was."""

    def __init__(self, nb_bins: int, nb_stems: int, hidden: int) -> None:
        super().__init__()
        self.norm, self.encoder, self.signed_scale, self.size_scale = _zero_cue_layers(nb_bins, nb_stems, hidden)

    def forward(self, log_magnitude: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(batch, 2 * bins, frames)`` log magnitudes (left bins, then right) -> the encoder's
        extra input ``(batch, hidden, frames)`` and per-stem logits ``(batch, stems, 2 * bins, frames)``."""
        left, right = log_magnitude.chunk(2, dim=1)
        balance = torch.tanh(left - right)  # (batch, bins, frames): > 0 where the left is louder
        size = balance.abs()
        encoded = self.encoder(self.norm(torch.cat([balance, size], dim=1)))
        signed = torch.cat([balance, -balance], dim=1).unsqueeze(1)  # per channel: louder here
        return encoded, self.signed_scale * signed + self.size_scale * signed.abs()


def phase_features(real: torch.Tensor, imag: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """What the channels' phases say, per bin and frame, from a stereo spectrum ``(batch, 2,
    bins, frames)`` (real and imaginary parts, and the magnitudes, floored above zero):
    ``cos`` of the inter-channel phase difference, and the centre coherence
    ``2 Re(L conj R) / (|L|^2 + |R|^2)`` clipped at 0 and raised to the 8th power, which is
    near 1 only where the channels are equal (a centre-panned sound alone in the bin). A
    bin owned by one amplitude-panned sound has both channels in phase; two sounds panned
    apart in one bin pull the phases apart. Returns ``(batch, 2 * bins, frames)``: the
    cosines, then the coherences. Both are independent of the level."""
    across = real[:, 0] * real[:, 1] + imag[:, 0] * imag[:, 1]  # Re(L conj R)
    cosine = across / (magnitude[:, 0] * magnitude[:, 1])
    centre = (2 * across / (magnitude[:, 0].square() + magnitude[:, 1].square())).clamp_min(0.0) ** 8
    return torch.cat([cosine, centre], dim=1)


class PhaseCues(nn.Module):
    """The inputs of ``phase_features`` for the temporal net and for each stem's logits per
    bin (the same for both channels). Every weight starts at zero, so a trained model
    extended with the cues starts where it was."""

    def __init__(self, nb_bins: int, nb_stems: int, hidden: int) -> None:
        super().__init__()
        self.norm, self.encoder, self.cosine_scale, self.centre_scale = _zero_cue_layers(nb_bins, nb_stems, hidden)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``phase_features`` ``(batch, 2 * bins, frames)`` -> the encoder's extra input
        ``(batch, hidden, frames)`` and per-stem logits ``(batch, stems, 2 * bins, frames)``."""
        cosine, centre = features.chunk(2, dim=1)
        encoded = self.encoder(self.norm(features))
        # the same per-bin value for both channels: (batch, 1, 2 * bins, frames)
        cosine, centre = (torch.cat([f, f], dim=1).unsqueeze(1) for f in (cosine, centre))
        return encoded, self.cosine_scale * cosine + self.centre_scale * centre


class MaskNet(nn.Module):
    """Log-magnitude frames of the mix -> softmax masks per stem, channel and bin."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        features = config.nb_channels * config.nb_bins
        self.input_norm = nn.BatchNorm1d(features)
        self.encoder = nn.Conv1d(features, config.hidden, 1)
        self.encoder_norm = nn.BatchNorm1d(config.hidden)
        self.blocks = nn.ModuleList(
            SeparableBlock(config.hidden, config.kernel_size, d) for d in config.dilations
        )
        rank = config.head_rank * config.nb_stems
        self.head_in = nn.Conv1d(config.hidden, rank, 1)
        self.head_norm = nn.BatchNorm1d(rank)
        # per-stem output heads as one batched matmul: (stems, features, rank)
        self.head_out = nn.Parameter(torch.randn(config.nb_stems, features, config.head_rank)
                                     / math.sqrt(config.head_rank))
        self.head_bias = nn.Parameter(torch.zeros(1, config.nb_stems, features, 1))
        # a direct per-bin path from the input, so masks see bin-level detail
        self.skip_scale = nn.Parameter(torch.zeros(1, config.nb_stems, features, 1))
        self.local = (LocalBranch(config.nb_channels, config.nb_stems, config.local_width)
                      if config.local_width else None)
        self.stereo = StereoCues(config.nb_bins, config.nb_stems, config.hidden) if config.stereo_cues else None
        self.phase = PhaseCues(config.nb_bins, config.nb_stems, config.hidden) if config.phase_cues else None

    def forward(self, magnitude: torch.Tensor, phase: torch.Tensor | None = None) -> torch.Tensor:
        """``(batch, channels * bins, frames)`` magnitudes (with ``phase_cues`` also the mix's
        ``phase_features``) -> masks ``(batch, stems, channels * bins, frames)``."""
        return stem_softmax(self.logits(magnitude, phase))

    def logits(self, magnitude: torch.Tensor, phase: torch.Tensor | None = None) -> torch.Tensor:
        """``forward``'s per-stem logits, before the softmax across stems."""
        used = self.config.phase_cues
        if (phase is None) == used:
            raise ValueError(f"phase features are {'needed' if used else 'not used'} with phase_cues={used}, "
                             f"got {'none' if phase is None else 'some'}")
        batch, _features, frames = magnitude.shape
        # the masks see the mix at one level, as in training (mean magnitude 1 per window), so
        # a quiet song is separated like a loud one
        level = magnitude.mean(dim=(1, 2), keepdim=True).clamp_min(MIN_MEAN_MAGNITUDE)
        magnitude = magnitude / level
        log_magnitude = torch.log(magnitude + 1e-4)
        x = self.input_norm(log_magnitude)
        h = self.encoder(x)
        stereo_logits = None
        if self.stereo is not None:
            stereo_input, stereo_logits = self.stereo(log_magnitude)
            h = h + stereo_input
        phase_logits = None
        if self.phase is not None:
            phase_input, phase_logits = self.phase(phase)
            h = h + phase_input
        h = F.gelu(self.encoder_norm(h))
        for block in self.blocks:
            h = block(h)
        h = F.gelu(self.head_norm(self.head_in(h)))
        h = h.view(batch, self.config.nb_stems, self.config.head_rank, frames)  # (batch, stems, rank, frames)
        logits = torch.matmul(self.head_out, h) + self.head_bias  # (batch, stems, features, frames)
        logits = logits + self.skip_scale * x.unsqueeze(1)  # (batch, stems, features, frames)
        if self.local is not None:
            logits = logits + self.local(x.view(batch, self.config.nb_channels, self.config.nb_bins, frames))
        if stereo_logits is not None:
            logits = logits + stereo_logits
        if phase_logits is not None:
            logits = logits + phase_logits
        return logits


def stem_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax across stems (axis 1), written out: ONNX Runtime's Softmax on a middle axis is slow."""
    weights = torch.exp(logits - logits.max(dim=1, keepdim=True).values)
    return weights / weights.sum(dim=1, keepdim=True)


@torch.no_grad()
def copy_stem_head(masknet: MaskNet, source: int, target: int) -> None:
    """Give stem ``target`` the head of stem ``source``: both then get equal masks, and
    training separates them again. Revives a head whose softmax share collapsed to zero."""
    rank = masknet.config.head_rank
    src, dst = slice(source * rank, (source + 1) * rank), slice(target * rank, (target + 1) * rank)
    masknet.head_in.weight[dst] = masknet.head_in.weight[src]
    masknet.head_in.bias[dst] = masknet.head_in.bias[src]
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(masknet.head_norm, name)[dst] = getattr(masknet.head_norm, name)[src]
    masknet.head_out[target] = masknet.head_out[source]
    masknet.head_bias[:, target] = masknet.head_bias[:, source]
    masknet.skip_scale[:, target] = masknet.skip_scale[:, source]


class Separator(nn.Module):
    """Waveform model: ``mix (batch, channels, samples)`` -> ``stems (batch, stems, channels, samples)``."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        self.stft = FactorizedSTFT(self.config.n_fft, self.config.hop)
        self.masknet = MaskNet(self.config)

    def spectrogram(self, mix: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, samples)`` -> ``(batch, channels, 2 * bins, frames)``."""
        batch, channels, samples = mix.shape
        spec = self.stft(mix.reshape(batch * channels, samples))  # (batch * channels, 2 * bins, frames)
        return spec.view(batch, channels, spec.shape[1], spec.shape[2])

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        spec, logits = self.mask_logits(mix)
        return self.apply_masks(spec, stem_softmax(logits), mix.shape[-1])

    def mask_logits(self, mix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(batch, channels, samples)`` -> (``spectrogram``, the mask net's logits ``(batch,
        stems, channels * bins, frames)``)."""
        batch, channels = mix.shape[:2]
        cfg = self.config
        spec = self.spectrogram(mix)  # (batch, channels, 2 * bins, frames)
        frames = spec.shape[-1]
        real, imag = spec[:, :, : cfg.nb_bins], spec[:, :, cfg.nb_bins:]
        magnitude = torch.sqrt(real * real + imag * imag + 1e-12)  # (batch, channels, bins, frames)
        phase = phase_features(real, imag, magnitude) if cfg.phase_cues else None
        return spec, self.masknet.logits(magnitude.reshape(batch, channels * cfg.nb_bins, frames), phase)

    def apply_masks(self, spec: torch.Tensor, masks: torch.Tensor, samples: int,
                    wiener_share: float | None = None) -> torch.Tensor:
        """The ``spectrogram`` of a mix and masks ``(batch, stems, channels * bins, frames)`` ->
        stems ``(batch, stems, channels, samples)``, with ``wiener_share`` (default: the
        config's ``spatial_wiener``) of the spatial Wiener estimate."""
        batch, channels, _, frames = spec.shape
        cfg = self.config
        masks = masks.view(batch, cfg.nb_stems, channels, 1, cfg.nb_bins, frames)
        mix = spec.view(batch, 1, channels, 2, cfg.nb_bins, frames)
        # stem spectra: (batch, stems, channels, 2, bins, frames) with (real, imag) on axis 3
        share = cfg.spatial_wiener if wiener_share is None else wiener_share
        masked = spatial_wiener(mix, masks, share)
        masked = masked.reshape(batch * cfg.nb_stems * channels, 2 * cfg.nb_bins, frames)
        stems = self.stft.inverse(masked, samples)  # (batch * stems * channels, samples)
        return stems.view(batch, cfg.nb_stems, channels, samples)
