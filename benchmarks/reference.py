"""stemserve's in-process path against the packages' own inference, on one generated song.

Same architecture, same random full-size weights (saved in the package's own checkpoint
format, then exported with ``python -m stemserve.export``), same input:

- HT-Demucs: stemserve (``stemserve.pipeline.run.separate`` + ``LocalBackend``) against
  ``demucs.apply.apply_model(shifts=1, overlap=0.25)``, the segment of the model.
  Targets: >= 2x faster, <= 50 % of demucs's peak memory.
- Open-Unmix: stemserve against ``openunmix.model.Separator(niter=1)`` on the whole track.
  Targets: >= 2x faster, and stemserve's peak memory does not grow with the track length
  (``--memory-minutes``, 12 by default, against ``--minutes``).

Each side runs in its own subprocess (peak memory = that process's max RSS) and is warmed up
on one window before the timed call. Both sides get the same thread count.

``python -m benchmarks.reference --minutes 3 --architectures htdemucs umxhq``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks import report

log = logging.getLogger(__name__)

TARGET_SPEEDUP = 2.0
TARGET_DEMUCS_MEMORY_RATIO = 0.5
TARGET_MEMORY_GROWTH = 1.10  # flat: peak at the long track / peak at the short one
SEED = 0


def _figures(wall: float) -> dict[str, float]:
    """A worker's result: its wall time and its own peak memory."""
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(report.peak_rss_mb(), 1)}


# ----------------------------------------------------------------------------- workers
def _worker_stemserve(args: argparse.Namespace) -> dict[str, float]:
    from stemserve.backends.local import LocalBackend
    from stemserve.core.model_config import load_model
    from stemserve.pipeline.options import SeparationOptions
    from stemserve.pipeline.run import separate

    backend = LocalBackend(load_model(args.repository, args.architecture), intra_op_threads=args.threads)
    backend.warm_up()
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        separate(args.song, Path(out), backend, SeparationOptions(stems=4, model=args.architecture))
        wall = time.perf_counter() - started
    return _figures(wall)


def _read_song(path: Path):  # -> torch tensor (channels, samples)
    import torch

    data, _ = sf.read(path, dtype="float32", always_2d=True)
    return torch.from_numpy(np.ascontiguousarray(data.T))


def _worker_demucs(args: argparse.Namespace) -> dict[str, float]:
    import torch
    from stemserve.export.checkpoints import load_checkpoint
    from stemserve.export.packages import demucs_module

    torch.set_num_threads(args.threads)
    apply = demucs_module("apply")
    checkpoint = load_checkpoint(args.architecture, args.checkpoint)
    if len(checkpoint.models) == 1:
        model = checkpoint.models[0]
    else:
        model = apply.BagOfModels(list(checkpoint.models), [list(w) for w in checkpoint.weights])
    wav = _read_song(args.song)
    with torch.no_grad():
        segment = int(checkpoint.models[0].segment * checkpoint.models[0].samplerate)
        apply.apply_model(model, torch.zeros(1, 2, segment), shifts=0, split=False)  # warm-up
        started = time.perf_counter()
        ref = wav.mean(0)  # demucs.separate normalises by the mono mix's statistics
        normalised = (wav - ref.mean()) / ref.std()
        stems = apply.apply_model(model, normalised[None], shifts=1, split=True, overlap=0.25)
        stems = stems * ref.std() + ref.mean()
        wall = time.perf_counter() - started
    assert stems.shape[-1] == wav.shape[-1]
    return _figures(wall)


def _worker_umx(args: argparse.Namespace) -> dict[str, float]:
    import torch
    from stemserve.export.checkpoints import load_checkpoint
    from stemserve.export.exporter import build_graph

    torch.set_num_threads(args.threads)
    _, separator, _ = build_graph(load_checkpoint(args.architecture, args.checkpoint))
    wav = _read_song(args.song)
    with torch.no_grad():
        separator(wav[None, :, :44100])  # warm-up
        started = time.perf_counter()
        stems = separator(wav[None])
        wall = time.perf_counter() - started
    assert stems.shape[-1] == wav.shape[-1]
    return _figures(wall)


WORKERS = {"stemserve": _worker_stemserve, "demucs": _worker_demucs, "umx": _worker_umx}


# ----------------------------------------------------------------------------- driver
def _prepare(architecture: str, work: Path, max_batch_size: int) -> tuple[Path, Path]:
    """Random full-size checkpoint in the package's format, exported into ``work/repo``."""
    from stemserve.export.architectures import get_architecture
    from stemserve.export.exporter import ExportConfig, run_export

    from benchmarks.synthetic_checkpoints import random_checkpoint

    arch = get_architecture(architecture)
    if arch.nb_models != 1:
        raise SystemExit(f"the reference benchmark covers single models, not the bag {architecture}")
    checkpoint = random_checkpoint(arch, work / "checkpoints" / architecture, SEED)
    started = time.perf_counter()
    config = ExportConfig(
        architecture=architecture, checkpoint=checkpoint, repository=work / "repo", max_batch_size=max_batch_size
    )
    result = run_export(config)
    print(f"{result.parity.line(architecture)} (export {time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return checkpoint, work / "repo"


def _write_song(minutes: float, path: Path) -> Path:
    from benchmarks.pipeline import song_wav

    if not path.exists():
        path.write_bytes(song_wav(minutes))
    return path


def _run_worker(kind: str, architecture: str, song: Path, threads: int, **paths: Path) -> dict[str, float]:
    command = [
        sys.executable,
        "-m",
        "benchmarks.reference",
        "--worker",
        kind,
        "--architectures",
        architecture,
        "--song",
        str(song),
        "--threads",
        str(threads),
    ]
    for key, value in paths.items():
        command += [f"--{key}", str(value)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{architecture} {kind} {song.name}: {figures}", file=sys.stderr)
    return figures


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument(
        "--memory-minutes", type=float, default=12.0, help="longer track for the Open-Unmix flat-memory check (0: skip)"
    )
    parser.add_argument("--architectures", nargs="+", default=["htdemucs", "umxhq"])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--work", type=Path, help="keep checkpoints, exports and songs here")
    parser.add_argument(
        "--max-batch-size",
        type=int,
        default=1,
        help="max_batch_size of the exports: the windows per ONNX Runtime call in process. On a "
        "CPU a larger batch is no faster and multiplies the activations (HT-Demucs: 3.6 GB at 8)",
    )
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--song", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--repository", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.worker:
        args.architecture = args.architectures[0]
        print(json.dumps(WORKERS[args.worker](args)))
        return 0
    with tempfile.TemporaryDirectory(prefix="stemserve-reference-") as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        return _compare(args, work)


def _compare(args: argparse.Namespace, work: Path) -> int:
    from stemserve.export.architectures import get_architecture

    song = _write_song(args.minutes, work / f"song_{args.minutes:g}min.wav")
    rows: list[dict[str, object]] = []
    figures: dict[str, object] = {
        "minutes": args.minutes,
        "threads": args.threads,
        "max_batch_size": args.max_batch_size,
    }
    met = True
    for name in args.architectures:
        arch = get_architecture(name)
        checkpoint, repository = _prepare(name, work, args.max_batch_size)
        ours = _run_worker("stemserve", name, song, args.threads, repository=repository)
        reference_kind = "demucs" if arch.family == "demucs" else "umx"
        theirs = _run_worker(reference_kind, name, song, args.threads, checkpoint=checkpoint)
        rows += [
            {"architecture": name, "side": "stemserve", "minutes": args.minutes, **ours},
            {"architecture": name, "side": reference_kind, "minutes": args.minutes, **theirs},
        ]
        speedup = theirs["wall_s"] / ours["wall_s"]
        memory_ratio = ours["peak_rss_mb"] / theirs["peak_rss_mb"]
        figures[f"{name}_speedup"] = round(speedup, 2)
        figures[f"{name}_memory_ratio"] = round(memory_ratio, 3)
        met &= speedup >= TARGET_SPEEDUP
        if arch.family == "demucs":
            met &= memory_ratio <= TARGET_DEMUCS_MEMORY_RATIO
        elif args.memory_minutes:
            long_song = _write_song(args.memory_minutes, work / f"song_{args.memory_minutes:g}min.wav")
            long = _run_worker("stemserve", name, long_song, args.threads, repository=repository)
            rows.append({"architecture": name, "side": "stemserve", "minutes": args.memory_minutes, **long})
            growth = long["peak_rss_mb"] / ours["peak_rss_mb"]
            figures[f"{name}_memory_growth_{args.memory_minutes:g}min"] = round(growth, 3)
            met &= growth <= TARGET_MEMORY_GROWTH
    figures.update(
        target_speedup=TARGET_SPEEDUP,
        target_demucs_memory_ratio=TARGET_DEMUCS_MEMORY_RATIO,
        target_memory_growth=TARGET_MEMORY_GROWTH,
        targets_met=met,
    )
    path = report.write("reference", figures, rows)
    print(path.read_text())
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
