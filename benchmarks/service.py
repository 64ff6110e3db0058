"""gRPC overhead: one generated 4-minute song through the service vs in process, same run.

Both paths use the same model and settings: the in-process pipeline in this process, and
``stemserve serve`` in its own process on a free local port (result cache off, so every
repeat separates), called by the blocking client, which uploads the file and writes the
stems it streams back: a service's caller never shares its process. Both start from the
song's file and end with the stems' files. Each repeat runs both, the first of the two
alternating, so drift and warm caches favour neither.

Targets, on the medians of the repeats: gRPC adds at most 5 % to the in-process time, both
as the difference of the two runs and as the time each call spends outside the server's
separation (upload, the stem bytes left at the end, the result), and the song takes at most
10 s through gRPC.

``python -m benchmarks.service [--minutes 4] [--repeats 5] [--model stemserve-small]``
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from stemserve.backends.local import LocalBackend
from stemserve.client import StemserveClient
from stemserve.core.model_config import load_model
from stemserve.core.settings import Settings
from stemserve.pipeline.options import DEFAULT_MODEL, SeparationOptions
from stemserve.pipeline.run import separate

from benchmarks import report
from benchmarks.pipeline import song_wav
from tests.integration.serve_process import free_port, serve_process

log = logging.getLogger(__name__)
TARGET_OVERHEAD = 0.05
TARGET_GRPC_S = 10.0


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--stems", type=int, default=4, choices=[2, 4, 5])
    parser.add_argument("--format", default="wav", choices=["wav", "flac", "mp3"])
    parser.add_argument("--model-repository", type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    options = SeparationOptions(stems=args.stems, format=args.format, model=args.model)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        song = Path(scratch) / "song.wav"  # both paths start from the file and end with stem files
        song.write_bytes(song_wav(args.minutes))
        upload_bytes = song.stat().st_size
        settings = Settings.load({"model_repository": args.model_repository, "host": "127.0.0.1", "port": 0,
                                  "models": args.model, "cache_dir": Path(scratch) / "cache",
                                  "cache_max_bytes": 0})
        local = LocalBackend(load_model(settings.model_repository, args.model),
                             intra_op_threads=settings.intra_op_threads)
        local.warm_up()
        port = free_port()
        serve_args = ["--models", args.model, "--cache-dir", str(settings.cache_dir), "--cache-max-bytes", "0"]
        with (serve_process(settings.model_repository, port, serve_args, timeout_s=300.0),
              StemserveClient(f"127.0.0.1:{port}") as client):
            runs = {
                "in_process": lambda out: separate(song, out, local, options).runtime_seconds,
                "grpc": lambda out: client.separate(song, out, options).summary["runtime_seconds"],
            }
            for repeat in range(args.repeats):
                seconds, separating = {}, {}
                for name in sorted(runs, reverse=bool(repeat % 2)):  # alternate which goes first
                    started = time.perf_counter()
                    separating[name] = runs[name](Path(scratch) / f"run{repeat}-{name}")
                    seconds[name] = time.perf_counter() - started
                in_process, through_grpc = seconds["in_process"], seconds["grpc"]
                rows.append({"run": repeat + 1, "in_process_s": round(in_process, 3),
                             "grpc_s": round(through_grpc, 3),
                             "overhead": round(through_grpc / in_process - 1, 4),
                             "grpc_server_separation_s": separating["grpc"],
                             "grpc_outside_separation_s": round(through_grpc - separating["grpc"], 3)})
                print(rows[-1], file=sys.stderr)
    median_local = statistics.median(r["in_process_s"] for r in rows)
    median_grpc = statistics.median(r["grpc_s"] for r in rows)
    overhead = median_grpc / median_local - 1
    # what the call adds around the server's own separation (upload, last stem bytes, result),
    # measured within each call: unlike the difference of two runs, machine load hardly moves it
    outside = statistics.median(r["grpc_outside_separation_s"] for r in rows)
    figures = {
        "model": args.model,
        "model_version": local.spec.model_version,
        "minutes": args.minutes,
        "stems": args.stems,
        "format": args.format,
        "upload_bytes": upload_bytes,
        "median_in_process_s": median_local,
        "median_grpc_s": median_grpc,
        "median_added_s": round(median_grpc - median_local, 3),
        "overhead": round(overhead, 4),
        "median_grpc_outside_separation_s": outside,
        "outside_share_of_in_process": round(outside / median_local, 4),
        "cpu_count": os.cpu_count(),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),  # other work on the machine skews both paths
        "target_overhead": TARGET_OVERHEAD,
        "target_grpc_s": TARGET_GRPC_S,
        "target_met": max(overhead, outside / median_local) <= TARGET_OVERHEAD and median_grpc <= TARGET_GRPC_S,
    }
    path = report.write("service", figures, rows)
    print(path.read_text())
    return 0 if figures["target_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
