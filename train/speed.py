"""Time the exported model on a 4-minute song's worth of windows: ``python -m stemserve.train.speed``.

The front end cuts a song into ``segment_samples`` windows at the model's default overlap
and runs them through ONNX Runtime (``LocalBackend``); this replays that workload on random audio
(the compute does not depend on the content) and reports seconds per song.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
from stemserve.backends.local import LocalBackend
from stemserve.core.model_config import load_model
from stemserve.preprocess.chunk import WindowPlan

log = logging.getLogger(__name__)


def time_song(repository: Path, name: str, song_s: float, threads: int, batch_size: int) -> float:
    """Seconds to run every window of a ``song_s`` stereo song through the model, in the
    serving path's own session (``LocalBackend``)."""
    backend = LocalBackend(load_model(repository, name), intra_op_threads=threads, batch_size=batch_size)
    spec = backend.spec
    plan = WindowPlan.for_fraction(round(song_s * spec.sample_rate_hz), spec.segment_samples, spec.default_overlap)
    rng = np.random.default_rng(0)
    batch = (0.1 * rng.standard_normal((batch_size, 2, spec.segment_samples))).astype(np.float32)
    backend.warm_up()
    start, start_cpu = time.perf_counter(), time.process_time()
    for first in range(0, plan.nb_windows, batch_size):
        backend.infer(batch[: plan.nb_windows - first])  # the last batch may be short
    elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    # on a shared machine the wall time includes waiting for a core; CPU time does not
    log.info("%s: %d windows of %.2f s at %.0f%% overlap for a %.0f s song: %.2f s wall, "
             "%.2f s CPU, on %d threads", name, plan.nb_windows, spec.segment_s, 100 * spec.default_overlap,
             song_s, elapsed, cpu, threads)
    return elapsed


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repository", type=Path, default=Path("model_repository"))
    parser.add_argument("--model", default="stemserve-small")
    parser.add_argument("--song-s", type=float, default=240.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    times = [time_song(args.repository, args.model, args.song_s, args.threads, args.batch_size)
             for _ in range(args.repeats)]
    log.info("best of %d: %.2f s per %.0f s song", len(times), min(times), args.song_s)


if __name__ == "__main__":
    main()
