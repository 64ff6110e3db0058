"""HT-Demucs as an exportable graph: one fixed-length window in, stems out.

``demucs.htdemucs.HTDemucs.forward`` cannot be exported as it is: its STFT is complex, its
``pad1d`` asserts on data, its segment is a ``Fraction`` that the forward rewrites in
training mode, and its attention is fused. ``HTDemucsGraph`` reuses the loaded model's own
layers (encoder, decoder, time branch, frequency embedding, cross-transformer) and replaces
only the spectral front and back ends with the real-valued factorised DFT of
:mod:`stemserve.export.stft_graph`, and the attention with :mod:`stemserve.export.attention`. A bag of models
(``htdemucs_ft``) becomes one graph that runs each sub-model and mixes their stems with the
bag's per-stem weights, as ``demucs.apply.apply_model`` does.
"""

from __future__ import annotations

import copy
import importlib
import math
from collections.abc import Sequence

import torch
from stemserve.export.attention import DEFAULT_QUERY_BLOCK, swap_attention
from stemserve.export.stft_graph import FactorizedISTFT, FactorizedSTFT
from torch import nn
from torch.nn import functional as F


def segment_samples_of(model: nn.Module) -> int:
    """The window HT-Demucs was trained on, exactly as its forward computes it."""
    return int(model.segment * model.samplerate)


def _balanced_split(length: int) -> tuple[int, int]:
    """``length = rows * cols`` with ``rows`` the largest divisor <= sqrt(length)."""
    rows = max(d for d in range(1, math.isqrt(length) + 1) if length % d == 0)
    return rows, length // rows


def mean_std(x: torch.Tensor, nb_dims: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased std over the last ``nb_dims`` axes, keeping them as size 1.

    ONNX Runtime sums a reduction over several axes in one float32 accumulator: over the
    2.7 M values of an HT-Demucs spectrogram that is a 5e-5 relative error in the std, which
    scales every output sample. Reducing one axis of at most ~2000 values at a time keeps the
    statistics at PyTorch's accuracy.
    """
    shape = x.shape[-nb_dims:]
    count = math.prod(int(size) for size in shape)
    rows, cols = _balanced_split(int(shape[-1]))
    # (..., last) -> (..., rows, cols): no axis longer than ~sqrt(last)
    split = x.reshape(*x.shape[:-1], rows, cols)

    def reduce(t: torch.Tensor) -> torch.Tensor:
        for axis in range(-1, -nb_dims - 2, -1):
            t = t.mean(dim=axis, keepdim=True)
        return t

    mean = reduce(split)
    variance = reduce((split - mean) ** 2) * (count / (count - 1))
    return mean[..., 0], torch.sqrt(variance)[..., 0]  # drop the split axis


class _Captured(Exception):
    """Stops a dry run once the cross-transformer's input shapes are known."""


def _transformer_input_shapes(net: nn.Module, nb_channels: int, nb_samples: int) -> tuple[tuple[int, ...], ...]:
    """Shapes of ``(x, xt)`` entering the cross-transformer, from a dry run of the encoder."""
    shapes: list[tuple[int, ...]] = []

    def hook(_: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        shapes.extend(tuple(t.shape) for t in args[:2])
        raise _Captured

    handle = net.crosstransformer.register_forward_pre_hook(hook)
    try:
        with torch.no_grad():
            net(torch.zeros(1, nb_channels, nb_samples))
    except _Captured:
        pass
    finally:
        handle.remove()
    return tuple(shapes)


def _positional_embeddings(net: nn.Module, shapes: tuple[tuple[int, ...], ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """The transformer's positional embeddings, computed once in PyTorch.

    In the graph they would be ``cos(pos / max_period ** k)`` for positions up to ~1300: one
    ulp of difference between two ``pow`` implementations moves such a phase by 1e-4 rad, so
    they are constants of the graph instead.
    """
    transformer_module = importlib.import_module(type(net.crosstransformer).__module__)
    ct = net.crosstransformer
    (_, channels, nb_freqs, nb_steps), (_, _, nb_steps_t) = shapes
    pos_2d = transformer_module.create_2d_sin_embedding(channels, nb_freqs, nb_steps, "cpu", ct.max_period)
    pos_2d = pos_2d.permute(0, 3, 2, 1).reshape(1, nb_steps * nb_freqs, channels)  # (1, t1 * fr, c)
    pos_1d = ct._get_pos_embedding(nb_steps_t, 1, channels, "cpu")[:, :1]  # (t2, 1, c), eval: no shift
    return pos_2d.detach().float(), pos_1d.transpose(0, 1).detach().float()  # (1, t2, c)


class HTDemucsGraph(nn.Module):
    """``(batch, 2, segment_samples)`` -> ``(batch, nb_stems, 2, segment_samples)``."""

    def __init__(self, model: nn.Module, query_block: int = DEFAULT_QUERY_BLOCK) -> None:
        super().__init__()
        if not getattr(model, "cac", False):
            raise ValueError("only complex-as-channels HT-Demucs models can be exported")
        if model.hop_length != model.nfft // 4:
            raise ValueError(f"hop_length must be nfft // 4, got {model.hop_length}")
        self.net = copy.deepcopy(model).eval()
        self.segment_samples = segment_samples_of(model)
        self.nb_stems = len(model.sources)
        self.nb_channels = model.audio_channels
        if self.net.crosstransformer:
            shapes = _transformer_input_shapes(self.net, self.nb_channels, self.segment_samples)
            pos_2d, pos_1d = _positional_embeddings(self.net, shapes)
            self.register_buffer("pos_2d", pos_2d, persistent=False)
            self.register_buffer("pos_1d", pos_1d, persistent=False)
        swap_attention(self.net, query_block)
        hop, n_fft = model.hop_length, model.nfft
        self.hop = hop
        self.n_fft = n_fft
        self.nb_frames = math.ceil(self.segment_samples / hop)  # frames kept by _spec
        self.pad = hop // 2 * 3  # HT-Demucs re-pads so that frames = samples / hop
        window = torch.hann_window(n_fft)
        self.stft = FactorizedSTFT(window=window, hop_length=hop, nb_bins=n_fft // 2, normalized=True)
        # _ispec adds 2 empty frames on each side; istft then keeps
        # hop * frames + 2 * pad samples, of which the model keeps [pad, pad + length).
        self.istft = FactorizedISTFT(
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

    def _crosstransformer(self, x: torch.Tensor, xt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``CrossTransformerEncoder.forward`` with constant positional embeddings."""
        ct = self.net.crosstransformer
        channels, nb_freqs, nb_steps = x.shape[1], x.shape[2], x.shape[3]
        # (batch, chans, freqs, steps) -> (batch, steps * freqs, chans)
        x = x.permute(0, 3, 2, 1).reshape(-1, nb_steps * nb_freqs, channels)
        x = ct.norm_in(x) + ct.weight_pos_embed * self.pos_2d
        xt = xt.transpose(1, 2)  # (batch, chans, steps_t) -> (batch, steps_t, chans)
        xt = ct.norm_in_t(xt) + ct.weight_pos_embed * self.pos_1d
        for idx in range(ct.num_layers):
            if idx % 2 == ct.classic_parity:
                x, xt = ct.layers[idx](x), ct.layers_t[idx](xt)
            else:
                x, xt = ct.layers[idx](x, xt), ct.layers_t[idx](xt, x)
        # (batch, steps * freqs, chans) -> (batch, chans, freqs, steps)
        x = x.reshape(-1, nb_steps, nb_freqs, channels).permute(0, 3, 2, 1)
        return x, xt.transpose(1, 2)

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        net = self.net
        spec = self._spec(mix)
        # complex as channels: (batch, channels, 2, bins, frames) -> (batch, channels * 2, ...)
        x = spec.reshape(-1, self.nb_channels * 2, spec.shape[-2], self.nb_frames)
        nb_bins = x.shape[-2]
        mean, std = mean_std(x, 3)  # (batch, 1, 1, 1)
        x = (x - mean) / (1e-5 + std)
        meant, stdt = mean_std(mix, 2)  # (batch, 1, 1)
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
            x, xt = self._crosstransformer(x, xt)
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
