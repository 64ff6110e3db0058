"""UVR MDX-Net ONNX models wrapped into the model contract.

A published MDX-Net file is an ONNX graph from a spectrogram to a spectrogram: input
``[batch, 4, dim_f, dim_t]`` (channels ``[L.re, L.im, R.re, R.im]``, the lowest ``dim_f``
bins of an ``n_fft``-point STFT with hop 1024, ``dim_t`` frames), output the same layout,
read as the complex spectrogram of the model's primary stem. python-audio-separator
(``mdx_separator.py``, ``uvr_lib_v5/stft.py``) runs one chunk of
``chunk_size = 1024 * (dim_t - 1)`` samples as:

1. ``torch.stft(n_fft, hop 1024, periodic Hann, center=True, reflect)``, bins ``< dim_f``;
2. the lowest 3 bins set to zero;
3. the ONNX model;
4. the bins padded with zeros to ``n_fft // 2 + 1``, ``torch.istft`` (same window,
   center=True, no length: ``chunk_size`` samples): the primary stem;
5. the secondary stem ``mix - compensate * primary``.

This module builds exactly that as one ONNX graph with the contract's names: a front end
(mix -> spectrogram, ``stft_graph.FactorizedSTFT``) and a back end (spectrogram -> stems,
``stft_graph.FactorizedISTFT``), both traced from PyTorch, joined around the published graph
with ``onnx.compose``. The published graph is not changed (its node names get a prefix). Its
stems are ordered ``(vocals, instrumental)`` whichever is primary. The chunking around the
chunks (audio-separator's Hann-weighted overlap, its peak normalisation) is not part of
the graph: stemserve's pipeline windows and normalises every model the same way.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from stemserve.core.model_config import INPUT_NAME, OUTPUT_NAME
from stemserve.export.architectures import Architecture
from stemserve.export.errors import ArchitectureMismatchError, CheckpointError, ExportError
from stemserve.export.onnx_export import PARITY_TOLERANCE, ParityReport, check_parity
from stemserve.export.repository import model_spec, write_model_folder
from stemserve.export.stft_graph import FactorizedISTFT, FactorizedSTFT
from torch import nn
from torch.nn import functional as F

logger = logging.getLogger(__name__)

HOP = 1024  # python-audio-separator mdx_params hop_length
ZEROED_BINS = 3  # run_model: spek[:, :, :3, :] = 0
SAMPLE_RATE_HZ = 44100
MIN_OPSET = 13
STEMS = ("vocals", "instrumental")
PREFIX = "mdx_net/"  # the published graph's names inside the wrapped one


@dataclass(frozen=True, kw_only=True)
class MdxSettings:
    """One published model's settings (UVR ``model_data_new.json``)."""

    n_fft: int  # mdx_n_fft_scale_set
    dim_f: int  # mdx_dim_f_set
    dim_t: int  # 2 ** mdx_dim_t_set
    compensate: float
    primary_stem: str  # "vocals" or "instrumental"

    def __post_init__(self) -> None:
        if self.primary_stem not in STEMS:
            raise ValueError(f"primary_stem must be one of {STEMS}, not {self.primary_stem!r}")
        if not 1 <= self.dim_f <= self.n_fft // 2 + 1 or self.dim_t < 2:
            raise ValueError(f"dim_f must be within 1-{self.n_fft // 2 + 1} and dim_t >= 2")

    @property
    def chunk_samples(self) -> int:
        return HOP * (self.dim_t - 1)

    @classmethod
    def from_mapping(cls, values: dict) -> MdxSettings:
        return cls(**{k: values[k] for k in ("n_fft", "dim_f", "dim_t", "compensate", "primary_stem")})


def architecture(settings: MdxSettings, license: str) -> Architecture:
    return Architecture(name="mdx_net", family="mdx", stems=STEMS, sample_rate_hz=SAMPLE_RATE_HZ, license=license,
                        model_kwargs=settings.__dict__)


def _window(n_fft: int) -> torch.Tensor:
    return torch.hann_window(n_fft, periodic=True, dtype=torch.float64)


class MdxFrontEnd(nn.Module):
    """``mix`` (batch, 2, chunk) -> ``(batch, 4, dim_f, dim_t)``, the published model's input."""

    def __init__(self, settings: MdxSettings) -> None:
        super().__init__()
        self.settings = settings
        self.stft = FactorizedSTFT(window=_window(settings.n_fft), hop_length=HOP, nb_bins=settings.dim_f,
                                   normalized=False)
        keep = torch.ones(1, 1, settings.dim_f, 1)
        keep[:, :, :ZEROED_BINS] = 0.0
        self.register_buffer("keep", keep, persistent=False)

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        half = self.settings.n_fft // 2
        padded = F.pad(mix, (half, half), mode="reflect")  # center=True
        spec = self.stft(padded)  # (batch, 2 channels, 2 re/im, dim_f, dim_t)
        spec = spec.reshape(-1, 4, self.settings.dim_f, spec.shape[-1])  # [L.re, L.im, R.re, R.im]
        return spec * self.keep


class MdxBackEnd(nn.Module):
    """(``mix``, the published model's output) -> ``stems`` (batch, 2, 2, chunk)."""

    def __init__(self, settings: MdxSettings) -> None:
        super().__init__()
        self.settings = settings
        self.istft = FactorizedISTFT(window=_window(settings.n_fft), hop_length=HOP, nb_bins=settings.dim_f,
                                     normalized=False, nb_frames=settings.dim_t, length=settings.chunk_samples)

    def forward(self, mix: torch.Tensor, spec: torch.Tensor) -> torch.Tensor:
        s = self.settings
        primary = self.istft(spec.reshape(-1, 2, 2, s.dim_f, s.dim_t))  # (batch, 2, chunk)
        secondary = mix - s.compensate * primary
        pair = (primary, secondary) if s.primary_stem == STEMS[0] else (secondary, primary)
        return torch.stack(pair, dim=1)


@dataclass(frozen=True)
class PublishedGraph:
    model: onnx.ModelProto
    input_name: str
    output_name: str
    opset: int
    fixed_batch: bool  # the file's batch axis is the constant 1


def load_published(path: Path, settings: MdxSettings) -> PublishedGraph:
    """The published ONNX file, checked against the settings it is to run with."""
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # protobuf DecodeError, onnx ValidationError, OSError
        raise CheckpointError(f"{Path(path).name} is not a readable ONNX model: {exc}") from exc
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1 or not graph.output:
        raise ArchitectureMismatchError(f"{path.name}: an MDX-Net model has one input, found {len(inputs)}")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    expected = [None, 4, settings.dim_f, settings.dim_t]
    if len(dims) != 4 or any(d is not None and e is not None and d != e for d, e in zip(dims[1:], expected[1:])):
        raise ArchitectureMismatchError(
            f"{path.name}: input must be [batch, 4, dim_f {settings.dim_f}, dim_t {settings.dim_t}] for its "
            f"settings, the file says {dims}"
        )
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return PublishedGraph(model=model, input_name=inputs[0].name, output_name=graph.output[0].name,
                          opset=opset, fixed_batch=dims[0] == 1)


def _traced(module: nn.Module, args: tuple[torch.Tensor, ...], names: list[str], output: str, opset: int,
            path: Path) -> onnx.ModelProto:
    dynamic = {name: {0: "batch"} for name in names + [output]}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), args, str(path), input_names=names, output_names=[output],
                          dynamic_axes=dynamic, opset_version=opset, dynamo=False, do_constant_folding=True)
    return onnx.load(str(path))


def wrap(published: PublishedGraph, settings: MdxSettings, path: Path) -> Path:
    """Write the contract graph (mix -> stems) around the published one as ``path``."""
    opset = max(published.opset, MIN_OPSET)
    inner = published.model
    if published.opset < opset:
        inner = onnx.version_converter.convert_version(inner, opset)
    inner = onnx.compose.add_prefix(inner, PREFIX)
    chunk = settings.chunk_samples
    mix = torch.zeros(1, 2, chunk)
    with tempfile.TemporaryDirectory(prefix="stemserve-mdx-") as scratch:
        front = _traced(MdxFrontEnd(settings), (mix,), [INPUT_NAME], "spek", opset, Path(scratch) / "front.onnx")
        spec = torch.zeros(1, 4, settings.dim_f, settings.dim_t)
        back = _traced(MdxBackEnd(settings), (mix, spec), ["back_mix", "spec"], OUTPUT_NAME, opset,
                       Path(scratch) / "back.onnx")
    ir_version = max(front.ir_version, back.ir_version, inner.ir_version)
    for part in (front, back, inner):
        part.ir_version = ir_version
        del part.opset_import[:]
        part.opset_import.append(onnx.helper.make_opsetid("", opset))
    for extra in published.model.opset_import:  # custom domains of the published graph, if any
        if extra.domain not in ("", "ai.onnx"):
            for part in (front, back, inner):
                part.opset_import.append(onnx.helper.make_opsetid(extra.domain, extra.version))
    front = onnx.compose.add_prefix(front, "front/", rename_inputs=False, rename_outputs=False)
    back = onnx.compose.add_prefix(back, "back/", rename_inputs=False, rename_outputs=False)
    joined = onnx.compose.merge_models(front, inner, io_map=[("spek", PREFIX + published.input_name)])
    joined = onnx.compose.merge_models(joined, back, io_map=[(PREFIX + published.output_name, "spec")],
                                       outputs=[OUTPUT_NAME])
    graph = joined.graph
    for node in graph.node:  # the back end reads the one mix input
        for index, name in enumerate(node.input):
            if name == "back_mix":
                node.input[index] = INPUT_NAME
    kept = [i for i in graph.input if i.name != "back_mix"]
    del graph.input[:]
    graph.input.extend(kept)
    if any(o.name != OUTPUT_NAME for o in graph.output) or [i.name for i in graph.input] != [INPUT_NAME]:
        raise ExportError(f"the wrapped graph must take {INPUT_NAME} and give {OUTPUT_NAME} only")
    onnx.save(joined, str(path))
    onnx.checker.check_model(str(path))
    return path


def reference(published_path: Path, settings: MdxSettings, threads: int = 1) -> Callable[[torch.Tensor], torch.Tensor]:
    """python-audio-separator's ``run_model`` + secondary stem on one chunk (torch.stft,
    the published file in ONNX Runtime, torch.istft), in the wrapped graph's stem order."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(published_path), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    window = torch.hann_window(settings.n_fft, periodic=True)

    def run(mix: torch.Tensor) -> torch.Tensor:
        batch, channels, length = mix.shape
        spec = torch.stft(mix.reshape(-1, length), settings.n_fft, hop_length=HOP, window=window, center=True,
                          return_complex=True)
        spec = torch.view_as_real(spec).permute(0, 3, 1, 2)  # (batch * 2, re/im, bins, frames)
        spec = spec.reshape(batch, 4, spec.shape[-2], spec.shape[-1])[:, :, : settings.dim_f]
        spec[:, :, :ZEROED_BINS] = 0
        rows = [session.run(None, {input_name: spec[i : i + 1].numpy()})[0] for i in range(batch)]
        out = torch.from_numpy(np.concatenate(rows))
        out = F.pad(out, (0, 0, 0, settings.n_fft // 2 + 1 - settings.dim_f))
        out = out.reshape(batch * channels, 2, -1, settings.dim_t)
        primary = torch.istft(torch.complex(out[:, 0], out[:, 1]), settings.n_fft, hop_length=HOP, window=window,
                              center=True).reshape(batch, channels, -1)
        secondary = mix - settings.compensate * primary
        pair = (primary, secondary) if settings.primary_stem == STEMS[0] else (secondary, primary)
        return torch.stack(pair, dim=1)

    return run


def export_mdx(
    published_path: Path,
    settings: MdxSettings,
    *,
    repository: Path,
    name: str,
    license: str,
    max_batch_size: int = 8,
    threads: int = 0,
    tolerance: float = PARITY_TOLERANCE,
) -> ParityReport:
    """Wrap, check parity against :func:`reference` on full chunks, write ``<repository>/<name>``."""
    published = load_published(Path(published_path), settings)
    batch = 1 if published.fixed_batch else 2
    if published.fixed_batch:
        logger.warning("%s takes batch 1 only: max_batch_size is 1", Path(published_path).name)
        max_batch_size = 1
    with tempfile.TemporaryDirectory(prefix="stemserve-export-") as scratch:
        path = wrap(published, settings, Path(scratch) / "model.onnx")
        parity = check_parity(path, reference(published_path, settings, threads or 1), settings.chunk_samples,
                              batch=batch, tolerance=tolerance, threads=threads, name=name)
        if not parity.passed:
            raise ExportError(parity.line(name))
        spec = model_spec(name=name, architecture=architecture(settings, license), stems=STEMS,
                          segment_samples=settings.chunk_samples, model_file=path, max_batch_size=max_batch_size)
        extra = "".join(f'parameters {{ key: "mdx_{key}" value: {{ string_value: "{value}" }} }}\n'
                        for key, value in settings.__dict__.items())
        write_model_folder(repository, spec, path, extra_config=extra)
    return parity
