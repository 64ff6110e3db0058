"""HT-Demucs as an exportable graph: one fixed-length window in, stems out.

``demucs.htdemucs.HTDemucs.forward`` cannot be exported as it is: its STFT is complex, its
``pad1d`` asserts on data, its segment is a ``Fraction`` that the forward rewrites in
training mode, and its attention is fused. ``HTDemucsGraph`` reuses the loaded model's own
layers (encoder, decoder, time branch, frequency embedding, cross-transformer) and replaces
only the spectral front and back ends with the real-valued convolutions of
:mod:`export.stft_conv`, and the attention with :mod:`export.attention`. A bag of models
(``htdemucs_ft``) becomes one graph that runs each sub-model and mixes their stems with the
bag's per-stem weights, as ``demucs.apply.apply_model`` does.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from export.attention import DEFAULT_QUERY_BLOCK, swap_attention
from export.stft_conv import ConvISTFT, ConvSTFT


def segment_samples_of(model: nn.Module) -> int:
    """The window HT-Demucs was trained on, exactly as its forward computes it."""
    return int(model.segment * model.samplerate)


class HTDemucsGraph(nn.Module):
    """``(batch, 2, segment_samples)`` -> ``(batch, nb_stems, 2, segment_samples)``."""

    def __init__(self, model: nn.Module, query_block: int = DEFAULT_QUERY_BLOCK) -> None:
        super().__init__()
        if not getattr(model, "cac", False):
            raise ValueError("only complex-as-channels HT-Demucs models can be exported")
        if model.hop_length != model.nfft // 4:
            raise ValueError(f"hop_length must be nfft // 4, got {model.hop_length}")
        self.net = copy.deepcopy(model).eval()
        swap_attention(self.net, query_block)
        self.segment_samples = segment_samples_of(model)
        self.nb_stems = len(model.sources)
        self.nb_channels = model.audio_channels
        hop, n_fft = model.hop_length, model.nfft
        self.hop = hop
        self.n_fft = n_fft
        self.nb_frames = math.ceil(self.segment_samples / hop)  # frames kept by _spec
        self.pad = hop // 2 * 3  # HT-Demucs re-pads so that frames = samples / hop
        window = torch.hann_window(n_fft)
        self.stft = ConvSTFT(window=window, hop_length=hop, nb_bins=n_fft // 2, normalized=True)
        # _ispec adds 2 empty frames on each side; istft then keeps
        # hop * frames + 2 * pad samples, of which the model keeps [pad, pad + length).
        self.istft = ConvISTFT(
            window=window,
            hop_length=hop,
            nb_bins=n_fft // 2,
            normalized=True,
            nb_frames=self.nb_frames + 4,
            length=self.pad + self.segment_samples,
        )

    def _spec(self, mix: torch.Tensor) -> torch.Tensor:
        right = self.pad + self.nb_frames * self.hop - self.segment_samples
        padded = F.pad(mix, (self.pad, right), mode="reflect")
        padded = F.pad(padded, (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        spec = self.stft(padded)  # (batch, channels, 2, bins, nb_frames + 4)
        return spec[..., 2 : 2 + self.nb_frames]

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        net = self.net
        spec = self._spec(mix)
        # complex as channels: (batch, channels, 2, bins, frames) -> (batch, channels * 2, ...)
        x = spec.reshape(-1, self.nb_channels * 2, spec.shape[-2], self.nb_frames)
        nb_bins = x.shape[-2]
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) / (1e-5 + std)
        meant = mix.mean(dim=(1, 2), keepdim=True)
        stdt = mix.std(dim=(1, 2), keepdim=True)
        xt = (mix - meant) / (1e-5 + stdt)

        saved, saved_t, lengths, lengths_t = [], [], [], []
        for idx, encode in enumerate(net.encoder):
            lengths.append(x.shape[-1])
            inject = None
            if idx < len(net.tencoder):
                lengths_t.append(xt.shape[-1])
                tenc = net.tencoder[idx]
                xt = tenc(xt)
                if not tenc.empty:
                    saved_t.append(xt)
                else:
                    inject = xt  # time and frequency branches merge here
            x = encode(x, inject)
            if idx == 0 and net.freq_emb is not None:
                frs = torch.arange(x.shape[-2], device=x.device)
                emb = net.freq_emb(frs).t()[None, :, :, None].expand_as(x)
                x = x + net.freq_emb_scale * emb
            saved.append(x)

        if net.crosstransformer:
            if net.bottom_channels:
                nb_freqs, nb_steps = x.shape[-2], x.shape[-1]
                # (batch, chans, freqs, steps) -> (batch, chans, freqs * steps)
                x = net.channel_upsampler(x.flatten(2))
                x = x.reshape(x.shape[0], x.shape[1], nb_freqs, nb_steps)
                xt = net.channel_upsampler_t(xt)
            x, xt = net.crosstransformer(x, xt)
            if net.bottom_channels:
                x = net.channel_downsampler(x.flatten(2))
                x = x.reshape(x.shape[0], x.shape[1], nb_freqs, nb_steps)
                xt = net.channel_downsampler_t(xt)

        for idx, decode in enumerate(net.decoder):
            x, pre = decode(x, saved.pop(-1), lengths.pop(-1))
            offset = net.depth - len(net.tdecoder)
            if idx >= offset:
                tdec = net.tdecoder[idx - offset]
                length_t = lengths_t.pop(-1)
                if tdec.empty:
                    xt, _ = tdec(pre[:, :, 0], None, length_t)
                else:
                    xt, _ = tdec(xt, saved_t.pop(-1), length_t)

        # (batch, stems * channels * 2, bins, frames) -> (batch, stems, channels * 2, ...)
        x = x.reshape(-1, self.nb_stems, self.nb_channels * 2, nb_bins, self.nb_frames)
        x = x * std[:, None] + mean[:, None]
        # (batch, stems, channels * 2, ...) -> (batch, stems * channels, 2, bins, frames)
        x = x.reshape(-1, self.nb_stems * self.nb_channels, 2, nb_bins, self.nb_frames)
        x = F.pad(x, (2, 2))  # the two empty frames _ispec adds on each side
        wave = self.istft(x)[..., self.pad :]  # (batch, stems * channels, samples)
        # (batch, stems * channels, samples) -> (batch, stems, channels, samples)
        wave = wave.reshape(-1, self.nb_stems, self.nb_channels, self.segment_samples)
        xt = xt.reshape(-1, self.nb_stems, self.nb_channels, self.segment_samples)
        return xt * stdt[:, None] + meant[:, None] + wave


class BagGraph(nn.Module):
    """A bag of HT-Demucs models mixed with per-stem weights, ``demucs.apply`` style."""

    def __init__(
        self,
        models: Sequence[nn.Module],
        weights: Sequence[Sequence[float]],
        query_block: int = DEFAULT_QUERY_BLOCK,
    ) -> None:
        super().__init__()
        graphs = [HTDemucsGraph(model, query_block) for model in models]
        lengths = {graph.segment_samples for graph in graphs}
        if len(lengths) != 1:
            raise ValueError(f"sub-models must share one segment, got {sorted(lengths)}")
        for graph in graphs[1:]:  # one copy of the (large) DFT kernels in the exported file
            if (graph.n_fft, graph.hop) != (graphs[0].n_fft, graphs[0].hop):
                raise ValueError("sub-models must share one STFT size and hop")
            graph.stft, graph.istft = graphs[0].stft, graphs[0].istft
        self.graphs = nn.ModuleList(graphs)
        self.segment_samples = graphs[0].segment_samples
        table = torch.tensor(weights, dtype=torch.float32)  # (models, stems)
        totals = table.sum(dim=0)
        if (totals <= 0).any():
            raise ValueError(f"every stem needs a positive total weight, got {totals.tolist()}")
        # weight of each model for each stem, normalised, broadcast over (channels, samples)
        self.register_buffer("mixing", (table / totals)[:, :, None, None], persistent=False)
        self.used = [bool((row != 0).any()) for row in table]

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        out = None
        for index, graph in enumerate(self.graphs):
            if not self.used[index]:
                continue
            stems = graph(mix) * self.mixing[index]  # (batch, stems, channels, samples)
            out = stems if out is None else out + stems
        return out
