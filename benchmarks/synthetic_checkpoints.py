"""Checkpoints of the real architectures with random weights, in the packages' formats.

Published weights cannot be fetched here, so the tests and the benchmark build the real
``demucs`` / ``openunmix`` modules, randomise them, and save them exactly as the packages
save their releases: a demucs package ``<signature>-<sha256[:8]>.th`` (and a bag
``.yaml``), an Open-Unmix folder of ``<target>-<sha256[:8]>.pth`` state dicts with their
``.json`` files. Loading these goes through the same code as an operator's checkpoint.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from stemserve.export.architectures import Architecture, umx_max_bin
from stemserve.export.packages import demucs_module, openunmix_model
from torch import nn


def _save_with_hash(content: Any, folder: Path, base: str, suffix: str) -> Path:
    """``torch.save`` under ``<base>-<sha256[:8]><suffix>``, as the releases are named."""
    buffer = io.BytesIO()
    torch.save(content, buffer)
    data = buffer.getvalue()
    path = Path(folder) / f"{base}-{hashlib.sha256(data).hexdigest()[:8]}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def random_htdemucs(arch: Architecture, seed: int = 0, **overrides: Any) -> nn.Module:
    """An ``HTDemucs`` with the architecture's hyper-parameters (``overrides`` to shrink)."""
    torch.manual_seed(seed)
    htdemucs = demucs_module("htdemucs")
    return htdemucs.HTDemucs(**{**arch.model_kwargs, **overrides}).eval()


def write_demucs_package(model: nn.Module, folder: Path, signature: str, half: bool = False) -> Path:
    """The package dict of ``demucs.states.serialize_model`` (without training args)."""
    args, kwargs = model._init_args_kwargs
    dtype = torch.half if half else None
    package = {
        "klass": model.__class__,
        "args": args,
        "kwargs": kwargs,
        "state": {k: v.detach().to(dtype=dtype) for k, v in model.state_dict().items()},
    }
    return _save_with_hash(package, folder, signature, ".th")


def write_demucs_bag(models: Sequence[nn.Module], weights: Sequence[Sequence[float]], folder: Path, name: str) -> Path:
    """Packages plus a bag ``<name>.yaml`` listing their signatures and per-stem weights."""
    signatures = [f"{index:08x}" for index in range(len(models))]
    for model, signature in zip(models, signatures):
        write_demucs_package(model, folder, signature)
    rows = ",\n".join(f"  [{', '.join(f'{w:g}' for w in row)}]" for row in weights)
    path = Path(folder) / f"{name}.yaml"
    path.write_text(f"models: {signatures!r}\nweights: [\n{rows},\n]\n")
    return path


def random_umx_targets(arch: Architecture, seed: int = 0) -> list[nn.Module]:
    """One ``OpenUnmix`` per stem with random weights and non-trivial normalisations."""
    kwargs = arch.model_kwargs
    generator = torch.Generator().manual_seed(seed)
    OpenUnmix = openunmix_model().OpenUnmix
    targets = []
    for _ in arch.stems:
        net = OpenUnmix(
            nb_bins=kwargs["n_fft"] // 2 + 1,
            nb_channels=kwargs["nb_channels"],
            hidden_size=kwargs["hidden_size"],
            nb_layers=kwargs["nb_layers"],
            max_bin=umx_max_bin(arch.sample_rate_hz, kwargs["n_fft"], kwargs["bandwidth_hz"]),
        )
        with torch.no_grad():
            for param in net.parameters():
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
            net.input_scale.copy_(torch.rand(net.input_scale.shape, generator=generator) + 0.5)
            net.output_scale.copy_(torch.rand(net.output_scale.shape, generator=generator) + 0.5)
            net.output_mean.copy_(torch.rand(net.output_mean.shape, generator=generator) + 0.5)
            for bn in (net.bn1, net.bn2, net.bn3):
                bn.running_mean.copy_(torch.randn(bn.running_mean.shape, generator=generator) * 0.1)
                bn.running_var.copy_(torch.rand(bn.running_var.shape, generator=generator) + 0.5)
        targets.append(net.eval())
    return targets


def write_umx_folder(arch: Architecture, targets: Sequence[nn.Module], folder: Path, with_json: bool = True) -> Path:
    """``<stem>-<hash>.pth`` state dicts (+ ``<stem>.json``, ``separator.json``)."""
    folder = Path(folder)
    kwargs = arch.model_kwargs
    for stem, net in zip(arch.stems, targets):
        _save_with_hash(net.state_dict(), folder, stem, ".pth")
        if with_json:
            args = {
                "nfft": kwargs["n_fft"],
                "nhop": kwargs["n_hop"],
                "nb_channels": kwargs["nb_channels"],
                "hidden_size": net.hidden_size,
            }
            (folder / f"{stem}.json").write_text(json.dumps({"args": args}))
    if with_json:
        separator = {
            "sample_rate": arch.sample_rate_hz,
            "nfft": kwargs["n_fft"],
            "nhop": kwargs["n_hop"],
            "nb_channels": kwargs["nb_channels"],
        }
        (folder / "separator.json").write_text(json.dumps(separator))
    return folder


def random_checkpoint(arch: Architecture, folder: Path, seed: int = 0) -> Path:
    """A full-size random checkpoint of a single-model architecture, saved as its release
    is (an Open-Unmix folder, or a half-precision demucs package): for benchmarks."""
    if arch.family == "umx":
        return write_umx_folder(arch, random_umx_targets(arch, seed), folder)
    if arch.nb_models != 1:
        raise ValueError(f"random_checkpoint covers single models, not the bag {arch.name}")
    return write_demucs_package(random_htdemucs(arch, seed), folder, "00000000", half=True)


class _SpectrogramNet(nn.Module):
    """A small conv net over an MDX-Net spectrogram, ``[batch, 4, dim_f, dim_t]`` both ways:
    the published files' input and output shape, not their architecture."""

    def __init__(self, hidden: int = 8) -> None:
        super().__init__()
        self.inner = nn.Conv2d(4, hidden, 3, padding=1)
        self.outer = nn.Conv2d(hidden, 4, 3, padding=1)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        # a mask-like change of the mixture's spectrogram, channels mixed (re / im, left / right)
        return spec * torch.sigmoid(self.outer(torch.tanh(self.inner(spec))))


def write_mdx_onnx(path: Path, dim_f: int, dim_t: int, *, seed: int = 0, opset: int = 17,
                   fixed_batch: bool = False) -> Path:
    """A random ONNX file shaped as a published UVR MDX-Net model: input ``input``
    ``[batch, 4, dim_f, dim_t]`` -> output ``output`` of the same shape (batch 1 only with
    ``fixed_batch``, as some exports are)."""
    torch.manual_seed(seed)
    net = _SpectrogramNet().eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dynamic = None if fixed_batch else {"input": {0: "batch_size"}, "output": {0: "batch_size"}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(net, (torch.zeros(1, 4, dim_f, dim_t),), str(path), input_names=["input"],
                          output_names=["output"], dynamic_axes=dynamic, opset_version=opset, dynamo=False)
    return path


# The model sections of Music-Source-Separation-Training's configs/viperx YAMLs
# (model_bs_roformer_ep_317_sdr_12.9755.yaml, model_mel_band_roformer_ep_3005_sdr_11.4360.yaml)
_BS_FREQS_PER_BANDS = (2,) * 24 + (4,) * 12 + (12,) * 8 + (24,) * 8 + (48,) * 8 + (128, 129)
_ROFORMER_COMMON: dict[str, Any] = {
    "stereo": True, "num_stems": 1, "time_transformer_depth": 1, "freq_transformer_depth": 1,
    "linear_transformer_depth": 0, "dim_head": 64, "heads": 8, "attn_dropout": 0.1, "ff_dropout": 0.1,
    "flash_attn": True, "dim_freqs_in": 1025, "stft_n_fft": 2048, "stft_hop_length": 441, "stft_win_length": 2048,
    "stft_normalized": False, "mask_estimator_depth": 2, "multi_stft_resolution_loss_weight": 1.0,
    "multi_stft_resolutions_window_sizes": (4096, 2048, 1024, 512, 256), "multi_stft_hop_size": 147,
    "multi_stft_normalized": False,
}
VIPERX_MODELS: dict[str, dict[str, Any]] = {
    "bs_roformer": {"dim": 512, "depth": 12, **_ROFORMER_COMMON, "freqs_per_bands": _BS_FREQS_PER_BANDS},
    "mel_band_roformer": {"dim": 384, "depth": 12, **_ROFORMER_COMMON, "num_bands": 60, "sample_rate": 44100},
}


def msst_config_yaml(kind: str, chunk_size: int = 352800, **overrides: Any) -> str:
    """An MSST config in the published layout (``!!python/tuple`` tags included)."""
    model = {**VIPERX_MODELS[kind], **overrides}

    def value(v: Any) -> str:
        if isinstance(v, tuple):
            return "!!python/tuple\n" + "".join(f"    - {item}\n" for item in v).rstrip("\n")
        return str(v).lower() if isinstance(v, bool) else str(v)

    lines = ["audio:", f"  chunk_size: {chunk_size}", "  num_channels: 2", "  sample_rate: 44100", "", "model:"]
    lines += [f"  {key}: {value(v)}" for key, v in model.items()]
    lines += ["", "training:", "  instruments:", "  - vocals", "  - other", "  target_instrument: vocals", "",
              "inference:", "  batch_size: 4", "  num_overlap: 2", ""]
    return "\n".join(lines)


def random_roformer(kind: str, seed: int = 0, **overrides: Any) -> nn.Module:
    """The BS-RoFormer package's model with the viperx hyper-parameters (``overrides`` to
    shrink), random weights, the RMSNorm gains spread around 1."""
    import bs_roformer

    torch.manual_seed(seed)
    kwargs = {**VIPERX_MODELS[kind], **overrides}
    kwargs.pop("linear_transformer_depth")  # MSST's option; 0 is the package's structure
    if kind == "bs_roformer":
        model = bs_roformer.BSRoformer(**kwargs)
    else:
        model = bs_roformer.MelBandRoformer(**kwargs)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("gamma"):
                param.copy_(1.0 + 0.2 * torch.randn_like(param))
    return model.eval()


def write_roformer_checkpoint(model: nn.Module, folder: Path, name: str, yaml_text: str) -> tuple[Path, Path]:
    """``<name>.ckpt`` (the state dict, as MSST saves it) and ``<name>.yaml`` beside it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint, config = folder / f"{name}.ckpt", folder / f"{name}.yaml"
    torch.save(model.state_dict(), checkpoint)
    config.write_text(yaml_text)
    return checkpoint, config
