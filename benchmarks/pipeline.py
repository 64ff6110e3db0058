"""Time the in-process pipeline on a generated 4-minute stereo song.

Reports wall time, real-time factor, peak memory, and the share of time spent outside
model inference (decode, resample, chunk, overlap-add, encode). Target: that share is at
most 10 % with the default model (median of the repeats).

``python -m benchmarks.pipeline [--minutes 4] [--repeats 3] [--model stemserve-small]``
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from stemserve.backends.local import LocalBackend
from stemserve.core.model_config import load_model
from stemserve.core.settings import Settings
from stemserve.pipeline.options import DEFAULT_MODEL, SeparationOptions
from stemserve.pipeline.run import separate

from benchmarks import report
from stemserve.example import example_wav_bytes

log = logging.getLogger(__name__)
TARGET_OUTSIDE_SHARE = 0.10


class TimedBackend:
    """Wraps a backend and adds up the time spent inside ``infer``."""

    def __init__(self, backend: LocalBackend) -> None:
        self.backend, self.spec, self.device = backend, backend.spec, backend.device
        self.max_batch_size = backend.max_batch_size
        self.seconds = 0.0

    def infer(self, windows: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        try:
            return self.backend.infer(windows)
        finally:
            self.seconds += time.perf_counter() - started


def song_wav(minutes: float, seed: int = 1) -> bytes:
    return example_wav_bytes(minutes * 60, seed)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--stems", type=int, default=4, choices=[2, 4, 5])
    parser.add_argument("--model-repository", type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    settings = Settings.load({"model_repository": args.model_repository})
    data = song_wav(args.minutes)
    backend = TimedBackend(LocalBackend(load_model(settings.model_repository, args.model)))
    backend.backend.warm_up()
    options = SeparationOptions(stems=args.stems, model=args.model)
    rows = []
    for repeat in range(args.repeats):
        backend.seconds = 0.0
        with tempfile.TemporaryDirectory() as out:
            started = time.perf_counter()
            separate(data, Path(out), backend, options)
            wall = time.perf_counter() - started
        rows.append(
            {
                "run": repeat + 1,
                "wall_s": round(wall, 3),
                "inference_s": round(backend.seconds, 3),
                "outside_share": round((wall - backend.seconds) / wall, 4),
                "rtf": round(wall / (args.minutes * 60), 4),
            }
        )
        print(rows[-1], file=sys.stderr)
    share = statistics.median(r["outside_share"] for r in rows)
    figures = {
        "model": args.model,
        "model_version": backend.spec.model_version,
        "minutes": args.minutes,
        "median_wall_s": statistics.median(r["wall_s"] for r in rows),
        "median_rtf": statistics.median(r["rtf"] for r in rows),
        "median_outside_share": share,
        "peak_rss_mb": round(report.peak_rss_mb(), 1),
        "target_outside_share": TARGET_OUTSIDE_SHARE,
        "target_met": share <= TARGET_OUTSIDE_SHARE,
    }
    path = report.write("pipeline", figures, rows)
    print(path.read_text())
    return 0 if figures["target_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
