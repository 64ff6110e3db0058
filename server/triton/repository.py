"""Generate the variants of a model repository that Triton serves.

Every model keeps its name, inputs, outputs, ``parameters`` (the model contract's
metadata) and dynamic batching from its own ``config.pbtxt``: that file stays the one place
those facts live. A variant changes only how the model runs:

- CPU (``stemserve triton``): ``backend: "python"`` with ``model.py`` (this package's
  template) running the same ``model.onnx`` in ONNX Runtime, KIND_CPU instances;
- GPU (NVIDIA's Triton container, ``deploy/README.md``): ``onnxruntime_onnx`` on KIND_GPU
  instances with the TensorRT execution accelerator, or ``tensorrt_plan`` where the model
  folder holds a ``model.plan``.

Both warm up at the largest batch before the model is ready.
``python -m stemserve.server.triton.repository {cpu,gpu} SOURCE TARGET`` writes one by hand.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stemserve.core.errors import ModelConfigError, StemserveError
from stemserve.core.model_config import (
    CONFIG_NAME,
    INPUT_NAME,
    ONNX_NAME,
    OUTPUT_NAME,
    Repository,
    list_model_names,
    load_model,
    parse_pbtxt,
    spec_from_config,
)

log = logging.getLogger(__name__)

PLAN_NAME = "model.plan"  # a TensorRT engine, as export/ writes it
TEMPLATE = Path(__file__).with_name("model.py")
SESSION = Path(__file__).parents[2] / "backends" / "session.py"  # imported by TEMPLATE
MARKER = ".stemserve-variant"  # only folders carrying it are ever deleted on regeneration


@dataclass(frozen=True, kw_only=True)
class CpuVariantOptions:
    instance_count: int = 1  # model instances per Triton server (each one process, one ORT session)
    intra_op_threads: int = 0  # ONNX Runtime threads per instance; 0: ONNX Runtime picks
    max_batch_size: int | None = None  # None: the model's own; 1 turns dynamic batching off
    models: tuple[str, ...] = ()  # empty: every model of the repository

    def __post_init__(self) -> None:
        if self.instance_count < 1:
            raise ModelConfigError(f"instance_count must be >= 1, not {self.instance_count}")
        if self.intra_op_threads < 0:
            raise ModelConfigError(f"intra_op_threads must be >= 0, not {self.intra_op_threads}")
        if self.max_batch_size is not None and self.max_batch_size < 1:
            raise ModelConfigError(f"max_batch_size must be >= 1 or None, not {self.max_batch_size}")


@dataclass(frozen=True, kw_only=True)
class GpuVariantOptions:
    gpus: tuple[int, ...] = (0,)  # devices of one Triton server
    instances_per_gpu: int = 1
    tensorrt: bool = True  # ONNX Runtime's TensorRT execution accelerator (ignored for model.plan)
    precision: str = "FP16"  # TensorRT precision_mode: FP16 or FP32
    engine_cache: str = "/models/.tensorrt-cache"  # inside the container: engines built once, reused
    models: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.gpus or min(self.gpus) < 0 or self.instances_per_gpu < 1:
            raise ModelConfigError(
                f"gpus must be device numbers and instances_per_gpu >= 1, not {self.gpus} and {self.instances_per_gpu}"
            )
        if self.precision not in ("FP16", "FP32"):
            raise ModelConfigError(f"precision must be FP16 or FP32, not {self.precision!r}")


def generate(
    source: Repository, target: Path, options: CpuVariantOptions | GpuVariantOptions = CpuVariantOptions()
) -> list[str]:
    """Write the variant of ``source`` (a repository or a search path of them) into
    ``target`` (replacing a previous one) and return the names of the models written."""
    target = Path(target).resolve()
    available = list_model_names(source)
    names = list(options.models) or available
    unknown = [name for name in names if name not in available]
    if unknown:
        raise ModelConfigError(f"models must be among {available} in {source}, not {unknown}")
    if not names:
        raise ModelConfigError(f"{source} holds no model (no <model>/{CONFIG_NAME})")
    gpu = isinstance(options, GpuVariantOptions)
    _clear(target)
    written = []
    for name in names:
        folder_of_model = load_model(source, name).directory.resolve()
        files = {ONNX_NAME, PLAN_NAME} if gpu else {ONNX_NAME}
        versions = sorted(
            {p.parent.name for f in files for p in folder_of_model.glob(f"*/{f}") if p.parent.name.isdigit()}
        )
        if not versions:
            log.warning("model %s has no <version>/%s: left out of the variant", name, " or ".join(sorted(files)))
            continue
        config = parse_pbtxt((folder_of_model / CONFIG_NAME).read_text())
        plan = gpu and all((folder_of_model / v / PLAN_NAME).is_file() for v in versions)
        model_file = PLAN_NAME if plan else ONNX_NAME
        if isinstance(options, GpuVariantOptions):
            text = render_gpu_config(config, options, plan=plan)
        else:
            text = render_python_config(config, options)
        (target / name).mkdir(parents=True)
        (target / name / CONFIG_NAME).write_text(text)
        for version in versions:
            folder = target / name / version
            folder.mkdir()
            if gpu:  # the folder is mounted into a container: real files, no links out of it
                _link_or_copy(folder_of_model / version / model_file, folder / model_file)
            else:
                (folder / model_file).symlink_to(folder_of_model / version / model_file)
                shutil.copyfile(TEMPLATE, folder / "model.py")
                shutil.copyfile(SESSION, folder / "session.py")
        written.append(name)
    log.info("%s variant of %s written to %s: %s", "GPU" if gpu else "CPU", source, target, ", ".join(written))
    return written


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _clear(target: Path) -> None:
    if target.exists():
        if any(target.iterdir()) and not (target / MARKER).is_file():
            raise ModelConfigError(f"{target} must be empty or a generated variant (with {MARKER}); it is neither")
        shutil.rmtree(target)
    target.mkdir(parents=True)
    (target / MARKER).write_text("generated by server.triton.repository from the source repository; do not edit\n")


def _common(config: dict[str, list[Any]], head: list[str], max_batch: int, instance_group: str) -> list[str]:
    """The lines every variant shares around its own ``head`` (name, backend/platform)."""
    spec = spec_from_config(config)  # validates the model contract's parameters
    if max_batch < 1:
        raise ModelConfigError(f"model {spec.name!r}: a served variant needs max_batch_size >= 1, got {max_batch}")
    segment, nb_stems = spec.segment_samples, len(spec.stems)
    lines = [
        f'name: "{spec.name}"',
        *head,
        f"max_batch_size: {max_batch}",
        f'input [ {{ name: "{INPUT_NAME}" data_type: TYPE_FP32 dims: [ 2, {segment} ] }} ]',
        f'output [ {{ name: "{OUTPUT_NAME}" data_type: TYPE_FP32 dims: [ {nb_stems}, 2, {segment} ] }} ]',
        instance_group,
    ]
    if max_batch > 1:
        lines.append(_dynamic_batching(config, max_batch))
    lines.append(
        "model_warmup [ { "
        f'name: "zeros_batch_{max_batch}" batch_size: {max_batch} inputs {{ key: "{INPUT_NAME}" '
        f"value: {{ data_type: TYPE_FP32 dims: [ 2, {segment} ] zero_data: true }} }} }} ]"
    )
    return lines


def _parameters(config: dict[str, list[Any]], extra: dict[str, str]) -> list[str]:
    parameters = {
        _one(entry, "key"): str(_one(_one(entry, "value"), "string_value")) for entry in config.get("parameters", [])
    }
    lines = []
    for key, value in {**parameters, **extra}.items():
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'parameters {{ key: "{key}" value: {{ string_value: "{escaped}" }} }}')
    return lines


def render_python_config(config: dict[str, list[Any]], options: CpuVariantOptions) -> str:
    """The python-backend ``config.pbtxt`` of one parsed source ``config.pbtxt``."""
    source_batch = int(_one(config, "max_batch_size") or 0)
    max_batch = source_batch if options.max_batch_size is None else options.max_batch_size
    group = f"instance_group [ {{ kind: KIND_CPU count: {options.instance_count} }} ]"
    lines = _common(config, ['backend: "python"'], max_batch, group)
    lines += _parameters(config, {"intra_op_threads": str(options.intra_op_threads)})
    return "\n".join(lines) + "\n"


def render_gpu_config(config: dict[str, list[Any]], options: GpuVariantOptions, *, plan: bool) -> str:
    """The GPU ``config.pbtxt``: ``tensorrt_plan`` for an engine, else ``onnxruntime_onnx``."""
    max_batch = int(_one(config, "max_batch_size") or 0)
    gpus = ", ".join(map(str, options.gpus))
    group = f"instance_group [ {{ kind: KIND_GPU count: {options.instances_per_gpu} gpus: [ {gpus} ] }} ]"
    lines = _common(config, [f'platform: "{"tensorrt_plan" if plan else "onnxruntime_onnx"}"'], max_batch, group)
    if options.tensorrt and not plan:
        accelerator = {
            "precision_mode": options.precision,
            "max_workspace_size_bytes": str(4 * 1024**3),
            "trt_engine_cache_enable": "true",
            "trt_engine_cache_path": options.engine_cache,
        }
        parameters = " ".join(f'parameters {{ key: "{k}" value: "{v}" }}' for k, v in accelerator.items())
        lines.append(
            "optimization { execution_accelerators { gpu_execution_accelerator: "
            f'[ {{ name: "tensorrt" {parameters} }} ] }} }}'
        )
    lines += _parameters(config, {})
    return "\n".join(lines) + "\n"


def _dynamic_batching(config: dict[str, list[Any]], max_batch: int) -> str:
    source = _one(config, "dynamic_batching") or {}
    delay_us = int(_one(source, "max_queue_delay_microseconds") or 0)
    preferred = [int(size) for size in source.get("preferred_batch_size", []) if int(size) <= max_batch]
    fields = [f"max_queue_delay_microseconds: {delay_us}"]
    if preferred:
        fields.append(f"preferred_batch_size: [ {', '.join(map(str, preferred))} ]")
    # No default_queue_policy allowing per-request timeouts: with one, Triton 2.51's dynamic
    # batcher ran these models 2-3x slower (benchmarks/triton_batching.py). Deadlines are
    # enforced by the client's gRPC deadline instead.
    return "dynamic_batching { " + " ".join(fields) + " }"


def _one(message: dict[str, list[Any]], key: str) -> Any:
    values = message.get(key)
    return values[-1] if values else None


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stemserve.server.triton.repository", description=__doc__.splitlines()[0])
    parser.add_argument("variant", choices=["cpu", "gpu"])
    parser.add_argument("source", type=Path, help="the model repository (config.pbtxt + model files)")
    parser.add_argument("target", type=Path, help="folder to write the variant into (replaced)")
    parser.add_argument("--models", default="", help="comma-separated models (default: every model)")
    parser.add_argument("--gpus", default="0", help="gpu: comma-separated device numbers")
    parser.add_argument("--instances-per-gpu", type=int, default=1)
    parser.add_argument("--no-tensorrt", action="store_true", help="gpu: plain CUDA execution, no TensorRT accelerator")
    parser.add_argument("--precision", default="FP16", choices=["FP16", "FP32"], help="gpu: TensorRT precision")
    parser.add_argument("--instances", type=int, default=1, help="cpu: model instances")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    models = tuple(name for name in args.models.split(",") if name)
    try:
        options: CpuVariantOptions | GpuVariantOptions
        if args.variant == "gpu":
            gpus = tuple(int(g) for g in args.gpus.split(","))
            options = GpuVariantOptions(
                gpus=gpus,
                instances_per_gpu=args.instances_per_gpu,
                tensorrt=not args.no_tensorrt,
                precision=args.precision,
                models=models,
            )
        else:
            options = CpuVariantOptions(instance_count=args.instances, models=models)
        generate(args.source, args.target, options)
    except (StemserveError, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
