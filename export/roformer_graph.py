"""BS-RoFormer and Mel-Band RoFormer (Music-Source-Separation-Training checkpoints) as the
model contract.

Architecture: the ``BS-RoFormer`` package (lucidrains), pinned at 0.3.10
(``export/requirements-install.sh``): for the viperx configs its ``BSRoformer`` /
``MelBandRoformer`` have exactly the state-dict keys and shapes of ZFTurbo
Music-Source-Separation-Training's ``models/bs_roformer/*.py`` (699 and 828 keys), and the
same forward except one step MSST added later (2025-09): ``zero_dc`` (default on, not
set by the viperx YAMLs) zeroes the DC bin of the masked spectrogram before the inverse
STFT. The graph does what MSST's inference does, ``zero_dc`` included.

The graph is the package model's own layers (band split, the axial transformers, the mask
estimators) with its forward rewritten around what an export cannot take: ``torch.stft`` /
``torch.istft`` and complex tensors become ``stft_graph``'s real-valued transforms and
written-out complex products; Mel-Band RoFormer's overlapping bands are averaged back with
``scatter_add`` on real tensors. One window is ``audio.chunk_size`` samples (8 s for the
published configs); MSST's chunking (``num_overlap`` windows, linear fades) is replaced by
the pipeline's, and its settings are recorded in config.pbtxt.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from stemserve.export.errors import ArchitectureMismatchError, CheckpointError, ExportError
from stemserve.export.stft_graph import FactorizedISTFT, FactorizedSTFT
from torch import nn
from torch.nn import functional as F

logger = logging.getLogger(__name__)

STEMS = ("vocals", "instrumental")
SAMPLE_RATE_HZ = 44100
# MSST-only options the package model lacks: the value each must have for the package's
# structure and forward to be MSST's (zero_dc is done by the graph itself)
MSST_ONLY = {"linear_transformer_depth": 0, "mlp_expansion_factor": 4, "skip_connection": False,
             "use_pope": False, "use_torch_checkpoint": False, "zero_dc": None}
IGNORED = {"sample_rate"}  # BS-RoFormer's yaml may carry it; only Mel-Band RoFormer takes it


class _TupleLoader(yaml.SafeLoader):
    """MSST's YAMLs tag tuples ``!!python/tuple``; nothing else beyond safe YAML is allowed."""


_TupleLoader.add_constructor("tag:yaml.org,2002:python/tuple", lambda loader, node: tuple(loader.construct_sequence(node)))


def roformer_package() -> Any:
    try:
        import bs_roformer
    except ImportError as exc:
        raise ExportError(f"the BS-RoFormer package is needed for RoFormer exports ({exc}); "
                          "install it with export/requirements-install.sh") from exc
    return bs_roformer


@dataclass(frozen=True, kw_only=True)
class RoformerConfig:
    kind: str  # "bs_roformer" or "mel_band_roformer"
    model_kwargs: Mapping[str, Any]  # for the package class
    zero_dc: bool
    chunk_samples: int
    num_overlap: int
    batch_size: int
    target: str

    def package_class(self) -> type[nn.Module]:
        package = roformer_package()
        return package.BSRoformer if self.kind == "bs_roformer" else package.MelBandRoformer


def read_config(path: Path, kind: str) -> RoformerConfig:
    """An MSST YAML (``model``, ``audio``, ``training``, ``inference``) for ``kind``."""
    try:
        config = yaml.load(Path(path).read_text(), Loader=_TupleLoader)
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{Path(path).name}: not a readable YAML config: {exc}") from exc
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise CheckpointError(f"{Path(path).name}: an MSST config has a 'model' section")
    model = dict(config["model"])
    zero_dc = bool(model.pop("zero_dc", True))
    for key, required in MSST_ONLY.items():
        if key in model and required is not None and model.pop(key) != required:
            raise ArchitectureMismatchError(f"{Path(path).name}: {key} must be {required} for the packaged "
                                            f"{kind} (the published models' value)")
    package_class = RoformerConfig(kind=kind, model_kwargs={}, zero_dc=True, chunk_samples=1, num_overlap=1,
                                   batch_size=1, target="").package_class()
    accepted = set(inspect.signature(package_class.__init__).parameters) - {"self"}
    unknown = sorted(set(model) - accepted - IGNORED)
    if unknown:
        raise ArchitectureMismatchError(f"{Path(path).name}: {kind} does not take {unknown}")
    if not model.get("stereo") or model.get("num_stems", 1) != 1:
        raise ArchitectureMismatchError(f"{Path(path).name}: stereo models of one stem are supported")
    audio, training, inference = (config.get(k) or {} for k in ("audio", "training", "inference"))
    return RoformerConfig(
        kind=kind,
        model_kwargs={k: v for k, v in model.items() if k in accepted},
        zero_dc=zero_dc,
        chunk_samples=int(inference.get("chunk_size", audio.get("chunk_size", 352800))),
        num_overlap=int(inference.get("num_overlap", 2)),
        batch_size=int(inference.get("batch_size", 1)),
        target=str(training.get("target_instrument") or "vocals"),
    )


def load_roformer(config: RoformerConfig, checkpoint: Path) -> nn.Module:
    """The package model with the checkpoint's weights (a state dict, or MSST's
    ``{"state_dict": ...}``); strict: every key and shape must fit."""
    if config.target != "vocals":
        raise ArchitectureMismatchError(f"the published models separate vocals, this config's target is "
                                        f"{config.target!r}")
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors all mean "not a checkpoint"
        raise CheckpointError(f"{Path(checkpoint).name} is not a readable torch checkpoint: {exc}") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{Path(checkpoint).name}: not a state dict of tensors")
    model = config.package_class()(**config.model_kwargs)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ArchitectureMismatchError(f"{Path(checkpoint).name} does not fit its config's {config.kind}: "
                                        f"{str(exc)[:600]}") from exc
    return model.eval()


def _complex_mul(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(..., 2) * (..., 2) as complex numbers, last axis (real, imaginary)."""
    xr, xi = x[..., 0], x[..., 1]
    yr, yi = y[..., 0], y[..., 1]
    return torch.stack((xr * yr - xi * yi, xr * yi + xi * yr), dim=-1)


class RoformerGraph(nn.Module):
    """``mix`` (batch, 2, chunk) -> ``stems`` (batch, 2, 2, chunk): vocals, mix - vocals."""

    def __init__(self, model: nn.Module, chunk_samples: int, zero_dc: bool = True) -> None:
        super().__init__()
        self.model = model
        kwargs = model.stft_kwargs
        n_fft, hop, win = kwargs["n_fft"], kwargs["hop_length"], kwargs["win_length"]
        window = model.stft_window_fn(device="cpu").double()
        if win < n_fft:  # torch.stft centres a shorter window in the frame
            left = (n_fft - win) // 2
            window = F.pad(window, (left, n_fft - win - left))
        nb_bins = n_fft // 2 + 1
        self.nb_frames = chunk_samples // hop + 1  # center=True
        self.stft = FactorizedSTFT(window=window, hop_length=hop, nb_bins=nb_bins, normalized=kwargs["normalized"])
        self.istft = FactorizedISTFT(window=window, hop_length=hop, nb_bins=nb_bins, normalized=kwargs["normalized"],
                                     nb_frames=self.nb_frames, length=chunk_samples)
        self.n_fft, self.nb_bins, self.zero_dc = n_fft, nb_bins, zero_dc
        self.channels = model.audio_channels
        self.mel = hasattr(model, "freq_indices")
        if self.mel:
            denominator = model.num_bands_per_freq.repeat_interleave(self.channels).float().clamp(min=1e-8)
            self.register_buffer("inverse_bands", (1.0 / denominator)[:, None, None], persistent=False)
        keep = torch.ones(nb_bins * self.channels, 1, 1)
        if zero_dc:
            keep[: self.channels] = 0.0  # bin 0 of each channel, frequency-major as (f s)
        self.register_buffer("keep", keep, persistent=False)
        self.segment_samples = chunk_samples

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        model = self.model
        half = self.n_fft // 2
        spec = self.stft(F.pad(mix, (half, half), mode="reflect"))  # (b, s, c, f, t)
        batch, _, _, nb_bins, nb_frames = spec.shape
        stft_repr = spec.permute(0, 3, 1, 4, 2).reshape(batch, nb_bins * self.channels, nb_frames, 2)  # b (f s) t c
        x = stft_repr[:, model.freq_indices] if self.mel else stft_repr
        x = x.permute(0, 2, 1, 3).reshape(batch, nb_frames, -1)  # b t (f c)
        x = model.band_split(x)  # (b, t, bands, d)
        for time_transformer, freq_transformer in model.layers:
            nb_bands, dim = x.shape[2], x.shape[3]
            x = x.permute(0, 2, 1, 3).reshape(batch * nb_bands, nb_frames, dim)
            x = time_transformer(x)
            x = x.reshape(batch, nb_bands, nb_frames, dim).permute(0, 2, 1, 3).reshape(batch * nb_frames, nb_bands, dim)
            x = freq_transformer(x)
            x = x.reshape(batch, nb_frames, nb_bands, dim)
        if hasattr(model, "final_norm"):
            x = model.final_norm(x)
        mask = model.mask_estimators[0](x)  # (b, t, (f c)): one stem
        mask = mask.reshape(batch, nb_frames, -1, 2).permute(0, 2, 1, 3)  # (b, f, t, c)
        if self.mel:  # average the overlapping bands' masks per frequency
            index = model.freq_indices[None, :, None, None].expand(batch, -1, nb_frames, 2)
            summed = torch.zeros_like(stft_repr).scatter_add(1, index, mask)
            mask = summed * self.inverse_bands
        vocals = _complex_mul(stft_repr, mask) * self.keep  # (b, (f s), t, c)
        vocals = vocals.reshape(batch, nb_bins, self.channels, nb_frames, 2).permute(0, 2, 4, 1, 3)
        vocals = self.istft(vocals)  # (b, s, samples)
        return torch.stack((vocals, mix - vocals), dim=1)


@contextlib.contextmanager
def _istft_without_dc() -> Iterator[None]:
    """MSST's ``zero_dc`` around the package forward: the DC bin of the inverse STFT's
    input is zeroed (``stft_repr.index_fill(1, 0, 0.)`` in MSST)."""
    original = torch.istft

    def istft(spec: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return original(spec.index_fill(1, torch.tensor(0), 0.0), *args, **kwargs)

    torch.istft = istft
    try:
        yield
    finally:
        torch.istft = original


def reference(model: nn.Module, zero_dc: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """The package model's own forward (``torch.stft`` / ``torch.istft``), as MSST runs it,
    in the graph's stem order."""

    def run(mix: torch.Tensor) -> torch.Tensor:
        with _istft_without_dc() if zero_dc else contextlib.nullcontext():
            vocals = model(mix)
        vocals = vocals.reshape(mix.shape)  # (b, 1, s, t) or (b, s, t) -> (b, s, t)
        return torch.stack((vocals, mix - vocals), dim=1)

    return run


def default_overlap(num_overlap: int) -> float:
    """MSST steps by ``chunk / num_overlap``; the pipeline's overlap range is 0.25-0.5."""
    return min(0.5, max(0.25, 1.0 - 1.0 / max(num_overlap, 1)))


def describe(config: RoformerConfig) -> dict[str, str]:
    """The chunking and model settings written to config.pbtxt."""
    kwargs = config.model_kwargs
    return {
        "roformer_kind": config.kind,
        "roformer_chunk_size": str(config.chunk_samples),
        "roformer_num_overlap": str(config.num_overlap),
        "roformer_batch_size": str(config.batch_size),
        "roformer_stft": f"n_fft={kwargs.get('stft_n_fft', 2048)};hop={kwargs.get('stft_hop_length', 512)};"
        f"win={kwargs.get('stft_win_length', 2048)}",
        "roformer_zero_dc": str(config.zero_dc).lower(),
        "roformer_fade_size": str(config.chunk_samples // 10),
        "roformer_overlap_fraction": f"{1 - 1 / max(config.num_overlap, 1):g}",
    }



def export_roformer(
    checkpoint: Path,
    config_path: Path,
    kind: str,
    *,
    repository: Path,
    name: str,
    license: str,
    max_batch_size: int = 8,
    threads: int = 0,
    tolerance: float | None = None,
) -> Any:
    """Load, build the graph, export, check parity against the package model on full
    windows, write ``<repository>/<name>`` with the chunking settings in config.pbtxt."""
    import tempfile

    from stemserve.export.architectures import Architecture
    from stemserve.export.onnx_export import PARITY_TOLERANCE, check_parity, export_onnx
    from stemserve.export.repository import model_spec, write_model_folder

    config = read_config(config_path, kind)
    model = load_roformer(config, checkpoint)
    graph = RoformerGraph(model, config.chunk_samples, zero_dc=config.zero_dc)
    arch = Architecture(name=kind, family="roformer", stems=STEMS, sample_rate_hz=SAMPLE_RATE_HZ, license=license,
                        default_overlap=default_overlap(config.num_overlap))
    with tempfile.TemporaryDirectory(prefix="stemserve-export-") as scratch:
        path = export_onnx(graph, Path(scratch) / "model.onnx", config.chunk_samples)
        parity = check_parity(path, reference(model, config.zero_dc), config.chunk_samples, batch=2,
                              tolerance=PARITY_TOLERANCE if tolerance is None else tolerance, threads=threads,
                              name=name)
        if not parity.passed:
            raise ExportError(parity.line(name))
        spec = model_spec(name=name, architecture=arch, stems=STEMS, segment_samples=config.chunk_samples,
                          model_file=path, max_batch_size=max_batch_size)
        extra = "".join(f'parameters {{ key: "{key}" value: {{ string_value: "{value}" }} }}\n'
                        for key, value in describe(config).items())
        write_model_folder(repository, spec, path, extra_config=extra)
    return parity
