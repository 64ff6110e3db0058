"""Checkpoint -> graph -> ONNX (parity-checked) -> optional fp16 / TensorRT -> repository.

:class:`ExportConfig` is built once by the command line (``python -m stemserve.export``);
:func:`run_export` does the work and returns what it measured.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from stemserve.export.architectures import ARCHITECTURES, Architecture
from stemserve.export.attention import DEFAULT_QUERY_BLOCK
from stemserve.export.checkpoints import DemucsCheckpoint, UmxCheckpoint, load_checkpoint
from stemserve.export.demucs_graph import BagGraph, HTDemucsGraph
from stemserve.export.errors import ExportError
from stemserve.export.onnx_export import (
    PARITY_TOLERANCE,
    ParityReport,
    check_parity,
    compare_fp16,
    convert_fp16,
    export_onnx,
)
from stemserve.export.packages import openunmix_model
from stemserve.export.repository import Backend, model_spec, write_model_folder
from stemserve.export.tensorrt_build import EngineProfile, build_engine, import_tensorrt
from stemserve.export.umx_graph import OpenUnmixGraph
from torch import nn

logger = logging.getLogger(__name__)

Reference = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True, kw_only=True)
class ExportConfig:
    architecture: str | Architecture  # a table name; tests pass reduced entries
    checkpoint: Path
    repository: Path = Path("model_repository")
    model_name: str = ""  # defaults to the architecture name
    precision: Literal["fp32", "fp16"] = "fp32"
    tensorrt: bool = False
    max_batch_size: int = 8
    parity_batch: int = 2
    tolerance: float = PARITY_TOLERANCE
    query_block: int = DEFAULT_QUERY_BLOCK
    threads: int = 0  # 0: let ONNX Runtime decide

    def __post_init__(self) -> None:
        if not isinstance(self.architecture, Architecture) and self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {sorted(ARCHITECTURES)}, not {self.architecture!r}")
        if self.precision not in ("fp32", "fp16"):
            raise ValueError(f"precision must be fp32 or fp16, not {self.precision!r}")
        if self.max_batch_size < 1 or self.parity_batch < 1:
            raise ValueError("max_batch_size and parity_batch must be >= 1")

    @property
    def name(self) -> str:
        if self.model_name:
            return self.model_name
        if isinstance(self.architecture, Architecture):
            return self.architecture.name
        return self.architecture


@dataclass(frozen=True, kw_only=True)
class ExportResult:
    folder: Path
    stems: tuple[str, ...]
    parity: ParityReport
    fp16_sdr_db: tuple[float, ...] | None  # per stem, fp16 against fp32


def build_graph(
    checkpoint: DemucsCheckpoint | UmxCheckpoint, query_block: int = DEFAULT_QUERY_BLOCK
) -> tuple[nn.Module, Reference, int]:
    """The exportable graph, the PyTorch reference it must match, and its segment."""
    if isinstance(checkpoint, DemucsCheckpoint):
        if len(checkpoint.models) == 1:
            model = checkpoint.models[0]
            graph = HTDemucsGraph(model, query_block)
            return graph, model, graph.segment_samples
        bag = BagGraph(checkpoint.models, checkpoint.weights, query_block)
        weights = torch.tensor(checkpoint.weights)  # (models, stems)
        models = checkpoint.models

        def bag_reference(mix: torch.Tensor) -> torch.Tensor:
            # demucs.apply.apply_model for a bag: weighted sum, per stem, of each model
            out = sum(m(mix) * w[None, :, None, None] for m, w in zip(models, weights))
            return out / weights.sum(dim=0)[None, :, None, None]

        return bag, bag_reference, bag.segment_samples
    arch = checkpoint.architecture
    kwargs = arch.model_kwargs
    graph = OpenUnmixGraph(
        checkpoint.targets,
        n_fft=checkpoint.n_fft,
        n_hop=checkpoint.n_hop,
        nb_frames=arch.umx_nb_frames,
        niter=kwargs["niter"],
        wiener_win_len=kwargs["wiener_win_len"],
    )
    separator = (
        openunmix_model()
        .Separator(
            dict(zip(checkpoint.stems, checkpoint.targets)),
            niter=kwargs["niter"],
            wiener_win_len=kwargs["wiener_win_len"],
            sample_rate=float(checkpoint.sample_rate_hz),
            n_fft=checkpoint.n_fft,
            n_hop=checkpoint.n_hop,
            nb_channels=kwargs["nb_channels"],
        )
        .eval()
    )
    return graph, separator, graph.segment_samples


def run_export(config: ExportConfig) -> ExportResult:
    if config.tensorrt:
        import_tensorrt()  # fail before the slow part
    checkpoint = load_checkpoint(config.architecture, config.checkpoint)
    graph, reference, segment_samples = build_graph(checkpoint, config.query_block)
    with tempfile.TemporaryDirectory(prefix="stemserve-export-") as scratch:
        fp32_path = export_onnx(graph, Path(scratch) / "model.onnx", segment_samples)
        del graph
        parity = check_parity(
            fp32_path,
            reference,
            segment_samples,
            batch=config.parity_batch,
            tolerance=config.tolerance,
            threads=config.threads,
            name=config.name,
        )
        if not parity.passed:
            raise ExportError(parity.line(config.name))
        model_file, sdr = fp32_path, None
        backend: Backend = "tensorrt" if config.tensorrt else "onnxruntime"
        if config.precision == "fp16" and not config.tensorrt:
            model_file = convert_fp16(fp32_path, Path(scratch) / "model_fp16.onnx")
            sdr = tuple(float(v) for v in compare_fp16(fp32_path, model_file, segment_samples))
        if config.tensorrt:
            profile = EngineProfile(
                opt_batch=min(4, config.max_batch_size),
                max_batch=config.max_batch_size,
                fp16=config.precision == "fp16",
            )
            model_file = build_engine(
                fp32_path, Path(scratch) / "model.plan", segment_samples=segment_samples, profile=profile
            )
        spec = model_spec(
            name=config.name,
            architecture=checkpoint.architecture,
            stems=checkpoint.stems,
            segment_samples=segment_samples,
            model_file=model_file,
            backend=backend,
            max_batch_size=config.max_batch_size,
        )
        folder = write_model_folder(config.repository, spec, model_file, backend)
    return ExportResult(folder=folder, stems=checkpoint.stems, parity=parity, fp16_sdr_db=sdr)


def describe_sdr(stems: tuple[str, ...], sdr_db: tuple[float, ...]) -> str:
    per_stem = ", ".join(f"{s} {v:.1f} dB" for s, v in zip(stems, sdr_db))
    return f"fp16 vs fp32 SDR: {per_stem} (min {float(np.min(sdr_db)):.1f} dB)"
