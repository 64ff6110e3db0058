"""Where the time of one exported window goes: an ONNX Runtime profile by graph part.

Builds the full-size architecture with random weights (as ``benchmarks.reference`` does),
exports it without the parity check, runs one window once to warm up and once profiled,
and sums the node times by the top module of each node's name (``stft``, ``istft``,
``targets.0``, ``net``; nodes outside any module, such as the Wiener filter and the
normalisation, are ``graph``), then by operator type within each part.

``python -m benchmarks.export_profile umxhq --threads 1``
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

SEED = 0
TOP_OPS = 4


def _part(node_name: str) -> str:
    """``/targets.1/lstm/LSTM`` -> ``targets.1``; a top-level node -> ``graph``."""
    parts = node_name.split("/")
    return parts[1] if node_name.startswith("/") and len(parts) > 2 else "graph"


def _export(architecture: str, folder: Path) -> tuple[Path, int]:
    from stemserve.export.architectures import get_architecture
    from stemserve.export.checkpoints import load_checkpoint
    from stemserve.export.exporter import build_graph
    from stemserve.export.onnx_export import export_onnx

    from benchmarks.synthetic_checkpoints import random_checkpoint

    arch = get_architecture(architecture)
    graph, _, segment_samples = build_graph(load_checkpoint(arch, random_checkpoint(arch, folder / "checkpoint", SEED)))
    return export_onnx(graph, folder / "model.onnx", segment_samples), segment_samples


def profile(architecture: str, threads: int) -> dict[str, object]:
    import onnxruntime as ort
    from stemserve.backends.session import session_options
    from stemserve.core.model_config import INPUT_NAME
    from stemserve.export.onnx_export import parity_signal
    from stemserve.export.repository import ONNXRUNTIME_CONFIG

    with tempfile.TemporaryDirectory(prefix="stemserve-profile-") as scratch:
        path, segment_samples = _export(architecture, Path(scratch))
        options = session_options(ONNXRUNTIME_CONFIG, threads)
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(scratch) / "profile")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        mix = parity_signal(1, segment_samples)
        session.run(None, {INPUT_NAME: mix})  # warm-up
        started = time.perf_counter()
        session.run(None, {INPUT_NAME: mix})
        wall = time.perf_counter() - started
        events = json.loads(Path(session.end_profiling()).read_text())
        size_mb = path.stat().st_size / 1e6
    # the profile holds both runs: keep the second run's node events
    runs = [e for e in events if e.get("cat") == "Session" and e["name"] == "model_run"]
    last_start = runs[-1]["ts"]
    by_part: dict[str, float] = defaultdict(float)
    by_op: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for event in events:
        if event.get("cat") != "Node" or event["ts"] < last_start or not event["name"].endswith("_kernel_time"):
            continue
        part = _part(event["name"].removesuffix("_kernel_time"))
        seconds = event["dur"] / 1e6
        by_part[part] += seconds
        by_op[part][event["args"]["op_name"]] += seconds
    parts = {
        part: {
            "s": round(total, 3),
            "ops": {op: round(s, 3) for op, s in sorted(by_op[part].items(), key=lambda kv: -kv[1])[:TOP_OPS]},
        }
        for part, total in sorted(by_part.items(), key=lambda kv: -kv[1])
    }
    return {
        "architecture": architecture,
        "segment_s": round(segment_samples / 44100, 2),
        "threads": threads,
        "model_mb": round(size_mb, 1),
        "wall_s": round(wall, 3),
        "nodes_s": round(float(np.sum(list(by_part.values()))), 3),
        "parts": parts,
    }


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("architectures", nargs="+", help="e.g. umxhq htdemucs")
    parser.add_argument("--threads", type=int, default=1)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for name in args.architectures:
        print(json.dumps(profile(name, args.threads), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
