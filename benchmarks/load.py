"""Load: many concurrent clients against the service running its model on Triton.

Starts a real Triton (the repository's CPU variant) and ``stemserve serve --triton`` as
separate processes on loopback, then ``--clients`` threads each send generated songs
back to back until ``--duration`` seconds (or ``--max-requests``) are used up. The
service's global limit is below the client count, so RESOURCE_EXHAUSTED is the intended
answer when it is full; anything else is an error. Memory of the front end and of Triton
(with its python-backend processes) is sampled every second. Targets: no error but the
intended RESOURCE_EXHAUSTED, and memory flat (mean RSS of the last third of the run within
10 % of the middle third).

``python -m benchmarks.load [--clients 16] [--duration 180] [--model stemserve-small]``
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import grpc
from stemserve.client import StemserveClient
from stemserve.client.client import RemoteError
from stemserve.core.settings import Settings
from stemserve.pipeline.options import DEFAULT_MODEL, SeparationOptions
from stemserve.server.triton.process import TritonConfig, TritonProcess

from benchmarks import report
from stemserve.example import example_wav_bytes
from tests.integration.serve_process import free_port, serve_process

MEMORY_DRIFT_LIMIT = 0.10


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{current}/status").read_text()
            total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
            for task in Path(f"/proc/{current}/task").iterdir():
                stack += [int(child) for child in (task / "children").read_text().split()]
    return total / 1024


def find_pid(name: str) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == name:
                    return int(entry.name)
    raise RuntimeError(f"no {name} process found")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of load")
    parser.add_argument("--max-requests", type=int, default=5_000)
    parser.add_argument("--song-seconds", type=float, default=10.0)
    parser.add_argument("--max-in-flight", type=int, default=8, help="the service's global song limit")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--model-repository", type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    repo = Settings.load({"model_repository": args.model_repository}).model_repository
    songs = [example_wav_bytes(args.song_seconds, seed) for seed in range(8)]
    options = SeparationOptions(stems=4, model=args.model)
    outcomes: collections.Counter[str] = collections.Counter()
    latencies: list[float] = []
    samples: list[tuple[float, float, float]] = []  # (t, front end MB, triton MB)
    lock, stop = threading.Lock(), threading.Event()
    with (
        tempfile.TemporaryDirectory() as build,
        TritonProcess(
            TritonConfig(model_repository=repo, build_dir=Path(build), grpc_port=0, http_port=0, metrics_port=0)
        ) as triton,
    ):
        triton_pid = find_pid("tritonserver")
        port = free_port()
        serve_args = [
            "--models",
            args.model,
            "--triton",
            triton.grpc_url,
            "--cache-max-bytes",
            "0",
            "--max-songs-in-flight",
            str(args.max_in_flight),
        ]
        with serve_process(repo, port, serve_args) as front:
            started = time.monotonic()

            def client_loop(index: int) -> None:
                with StemserveClient(f"127.0.0.1:{port}") as client, tempfile.TemporaryDirectory() as out:
                    turn = index
                    while not stop.is_set():
                        with lock:
                            if sum(outcomes.values()) >= args.max_requests:
                                return
                        t0 = time.monotonic()
                        try:
                            client.separate(songs[turn % len(songs)], Path(out), options, timeout_s=120)
                            code = "OK"
                        except RemoteError as exc:
                            code = exc.code.name
                        with lock:
                            outcomes[code] += 1
                            if code == "OK":
                                latencies.append(time.monotonic() - t0)
                        if code == grpc.StatusCode.RESOURCE_EXHAUSTED.name:
                            time.sleep(0.2)  # back off as a well-behaved client does
                        turn += 1

            def sampler() -> None:
                while not stop.wait(1.0):
                    samples.append((time.monotonic() - started, tree_rss_mb(front.pid), tree_rss_mb(triton_pid)))

            threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(args.clients)]
            threads.append(threading.Thread(target=sampler))
            for thread in threads:
                thread.start()
            stop.wait(args.duration)
            stop.set()
            for thread in threads:
                thread.join(180)
    third = max(len(samples) // 3, 1)
    middle, last = samples[third : 2 * third], samples[2 * third :]

    def drift(column: int) -> float:
        before = statistics.mean(s[column] for s in middle)
        return statistics.mean(s[column] for s in last) / before - 1

    errors = {k: v for k, v in outcomes.items() if k not in ("OK", "RESOURCE_EXHAUSTED")}
    latencies.sort()
    figures = {
        "model": args.model,
        "clients": args.clients,
        "duration_s": round(time.monotonic() - started, 1),
        "requests": sum(outcomes.values()),
        "outcomes": dict(outcomes),
        "errors": errors,
        "p50_latency_s": round(latencies[len(latencies) // 2], 3) if latencies else None,
        "p95_latency_s": round(latencies[int(len(latencies) * 0.95)], 3) if latencies else None,
        "peak_front_end_mb": round(max(s[1] for s in samples), 1),
        "peak_triton_mb": round(max(s[2] for s in samples), 1),
        "front_end_drift": round(drift(1), 4),
        "triton_drift": round(drift(2), 4),
        "cpu_count": os.cpu_count(),
    }
    figures["target_met"] = (
        not errors
        and abs(figures["front_end_drift"]) <= MEMORY_DRIFT_LIMIT
        and abs(figures["triton_drift"]) <= MEMORY_DRIFT_LIMIT
    )
    rows = [{"t_s": round(t, 1), "front_end_mb": round(f, 1), "triton_mb": round(m, 1)} for t, f, m in samples[::10]]
    print(report.write("load", figures, rows).read_text())
    return 0 if figures["target_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
