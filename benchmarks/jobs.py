"""Separation jobs end to end: a real nats-server, ``stemserve serve --jobs`` and
``stemserve worker`` processes on this machine, clients on gRPC.

Three parts, one run:

- **throughput**: ``--songs`` short songs (each different, so no cache hits) from
  ``--clients`` clients at once, with one and with two worker processes (one job and one
  ONNX Runtime thread each): songs per hour, p50/p95 queue wait (submit to the attempt's
  start) and end to end (submit to SUCCEEDED), from the job records;
- **added time**: one ``--minutes`` song through the jobs path (upload, submit, watch until
  SUCCEEDED, read every stem into files) against the in-process pipeline on the same file,
  one worker with the same threads as the in-process run, alternating which goes first.
  Target: the time the jobs path spends outside the worker's own separation (upload, queue,
  input and result in the store, events, reading the stems; median of the repeats) is at
  most 10 % of the in-process time. The difference of the two paths' medians is reported
  too; on a shared machine it moves with the load by more than the target, both ways;
- **soak**: jobs flow for ``--soak-s`` seconds while a random worker is SIGKILLed every
  ``--kill-every-s`` seconds (a replacement starts at once); then every accepted job must
  end SUCCEEDED (lost = 0) with one job per idempotency key and one result per song,
  written by that song's job, whose stems match the stored files (duplicated = 0).

Writes ``benchmarks/results/jobs.{json,md}``; exits 1 when a target is missed.

``python -m benchmarks.jobs [--songs 24] [--song-s 15] [--clients 4] [--minutes 4]
[--repeats 3] [--soak-s 60] [--kill-every-s 5] [--model stemserve-small]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from stemserve.client.proto_gen import jobs_pb2 as jpb
from stemserve.client.proto_gen import jobs_pb2_grpc as jpb_grpc
from stemserve.client.proto_gen import separation_pb2 as pb
from stemserve.pipeline.options import DEFAULT_MODEL

from benchmarks import report

log = logging.getLogger(__name__)
TARGET_ADDED = 0.10
CHUNK = 1 << 20
TERMINAL = {jpb.JOB_STATUS_SUCCEEDED, jpb.JOB_STATUS_FAILED, jpb.JOB_STATUS_CANCELED, jpb.JOB_STATUS_EXPIRED}
RETRIED_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}


# statistics (pure; tests/unit/test_jobs_benchmark.py)

def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between the closest ranks
    (NumPy's default); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class JobTimes:
    submitted: float  # unix seconds, the client's clock just before SubmitJob
    created: float  # the record's times (same machine, same clock)
    started: float
    finished: float


def summarize(times: Sequence[JobTimes]) -> dict[str, float]:
    """Throughput (songs per hour, first submit to last finish) and p50/p95 of queue wait
    (created to started) and end to end (submitted to finished), in seconds."""
    if not times:
        return {"songs": 0}
    span = max(t.finished for t in times) - min(t.submitted for t in times)
    waits = [max(t.started - t.created, 0.0) for t in times]
    ends = [max(t.finished - t.submitted, 0.0) for t in times]
    return {
        "songs": len(times),
        "span_s": round(span, 3),
        "songs_per_hour": round(len(times) / span * 3600, 1) if span > 0 else math.inf,
        "queue_wait_p50_s": round(percentile(waits, 50), 3),
        "queue_wait_p95_s": round(percentile(waits, 95), 3),
        "end_to_end_p50_s": round(percentile(ends, 50), 3),
        "end_to_end_p95_s": round(percentile(ends, 95), 3),
    }


def added_time(jobs_s: Sequence[float], in_process_s: Sequence[float], outside_s: Sequence[float]) -> dict[str, float]:
    """Medians of the repeats: the jobs path's share added over the in-process run, and the
    share of its median time outside the worker's separation against the in-process median."""
    jobs, local, outside = statistics.median(jobs_s), statistics.median(in_process_s), statistics.median(outside_s)
    return {"median_jobs_s": round(jobs, 3), "median_in_process_s": round(local, 3),
            "added": round(jobs / local - 1, 4), "median_outside_separation_s": round(outside, 3),
            "outside_share": round(outside / local, 4)}


def soak_verdict(accepted: dict[str, str], jobs: Sequence[dict], results: Sequence[dict],
                 stored_sha: Callable[[str], str | None]) -> dict[str, int]:
    """Count what the soak must not have. Every song is different, so every job computes
    its own result.

    ``accepted``: idempotency key -> the job id SubmitJob answered (one song per key);
    ``jobs``: every job the API lists (``id``, ``key``: its idempotency key, ``status``,
    ``stems``: {name: sha256}); ``results``: every result marker in the store (``job_id``,
    ``result_key``, ``stems``: [{``name``, ``key``, ``sha256``}]); ``stored_sha``: an object
    key's sha256 in the store (None: missing).

    lost: accepted jobs not SUCCEEDED (or gone). duplicated: jobs beyond one per key, results
    beyond one per job, results of a job nobody was answered with, and succeeded jobs whose
    stems are not exactly their one result's stored files (a result mixing two attempts)."""
    by_id = {j["id"]: j for j in jobs}
    lost = sum(1 for job_id in accepted.values() if by_id.get(job_id, {}).get("status") != "SUCCEEDED")
    extra_jobs = sum(n - 1 for n in Counter(j["key"] for j in jobs).values() if n > 1)
    per_job = Counter(r["job_id"] for r in results)
    extra_results = sum(n - 1 for n in per_job.values() if n > 1)
    known = set(accepted.values())
    foreign = sum(1 for r in results if r["job_id"] not in known)
    own = {r["job_id"]: r for r in results}
    mismatched = 0
    for job in jobs:
        if job["status"] != "SUCCEEDED":
            continue
        result = own.get(job["id"])
        stored = {} if result is None else {s["name"]: (s["sha256"], stored_sha(s["key"])) for s in result["stems"]}
        if stored.keys() != job["stems"].keys() or any(
                stored[name] != (sha, sha) for name, sha in job["stems"].items()):
            mismatched += 1
    failed = sum(1 for j in jobs if j["status"] in ("FAILED", "EXPIRED", "CANCELED"))
    return {"accepted": len(accepted), "lost": lost, "failed": failed,
            "duplicated": extra_jobs + extra_results + foreign + mismatched,
            "extra_jobs": extra_jobs, "extra_results": extra_results, "foreign_results": foreign,
            "mismatched_results": mismatched}


def short_songs(count: int, seconds: float, first_seed: int) -> list[bytes]:
    """``count`` different generated songs."""
    from stemserve.example import example_wav_bytes

    return [example_wav_bytes(seconds, seed=seed) for seed in range(first_seed, first_seed + count)]


# processes

def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEMSERVE_")}
    env.update(extra)
    return env


class Cluster:
    """A nats-server, one ``serve --jobs`` front end and worker processes sharing a local
    store (the front end's and workers' ``--cache-dir``)."""

    def __init__(self, folder: Path, repository: Path, model: str, lease_s: float) -> None:
        from stemserve.jobs.nats_process import NatsProcess

        from tests.integration.serve_process import free_port, start_serve_process

        self.folder, self.model, self.lease_s = folder, model, lease_s
        self.repository = ":".join(map(str, repository)) if isinstance(repository, tuple | list) else str(repository)
        self.cache = folder / "cache"
        self.nats = NatsProcess.start(folder / "nats")
        self.common = ["--nats-url", self.nats.url, "--cache-dir", str(self.cache), "--job-lease-s", str(lease_s),
                       "--max-queued-per-key", "1000", "--max-running-per-key", "100"]
        self.port = free_port()
        self.frontend = start_serve_process(
            self.repository, self.port, ["--jobs", "--models", model, "--cache-max-bytes", "0", *self.common],
            env=clean_env(STEMSERVE_INTRA_OP_THREADS="1"), timeout_s=300.0)
        self.workers: list[subprocess.Popen] = []
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = jpb_grpc.JobsStub(self.channel)

    @property
    def store(self) -> Path:
        return self.cache / "jobs" / "store"

    def start_worker(self, threads: int = 1, wait: bool = True) -> subprocess.Popen:
        log_path = self.folder / f"worker-{len(self.workers)}.log"
        command = [sys.executable, "-m", "stemserve.jobs", "--log-level", "INFO", "--model-repository",
                   self.repository, "worker", "--models", self.model, "--metrics-port", "0",
                   "--worker-concurrency", "1", *self.common]
        with open(log_path, "wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                       env=clean_env(STEMSERVE_INTRA_OP_THREADS=str(threads)))
        process.log_path = log_path  # type: ignore[attr-defined]
        self.workers.append(process)
        if wait:
            self.wait_ready(process)
        return process

    @staticmethod
    def wait_ready(process: subprocess.Popen, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while b" ready (models" not in process.log_path.read_bytes():  # type: ignore[attr-defined]
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start: {process.log_path.read_text()[-2000:]}")  # type: ignore[attr-defined]
            time.sleep(0.1)

    def alive_workers(self) -> list[subprocess.Popen]:
        return [w for w in self.workers if w.poll() is None]

    def stop_workers(self) -> None:
        for worker in self.alive_workers():
            worker.terminate()
        for worker in self.workers:
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(10)

    def close(self) -> None:
        self.channel.close()
        self.stop_workers()
        self.frontend.terminate()
        try:
            self.frontend.wait(60)
        except subprocess.TimeoutExpired:
            self.frontend.kill()
        self.nats.stop()


# one client's calls

def upload(stub, data: bytes) -> str:
    return stub.UploadAudio(jpb.UploadAudioRequest(chunk=data[i:i + CHUNK]) for i in range(0, len(data), CHUNK)).upload_id


def submit(stub, data: bytes, key: str, model: str, stems: int, tries: int = 20) -> tuple[str, float]:
    """Upload and submit with an idempotency key, retrying what a client retries; (job id,
    unix time just before the accepted SubmitJob)."""
    for attempt in range(tries):
        try:
            sha = upload(stub, data)
            submitted = time.time()
            answer = stub.SubmitJob(jpb.SubmitJobRequest(
                input=jpb.JobInput(upload_id=sha), idempotency_key=key,
                options=pb.SeparateOptions(model=model, stems=stems)), timeout=30)
            return answer.job.id, submitted
        except grpc.RpcError as exc:
            if exc.code() not in RETRIED_CODES or attempt == tries - 1:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def wait_terminal(stub, job_id: str, timeout_s: float) -> jpb.Job:
    deadline = time.monotonic() + timeout_s
    while True:
        job = stub.GetJob(jpb.JobRequest(job_id=job_id), timeout=10)
        if job.status in TERMINAL or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def times_of(job: jpb.Job, submitted: float) -> JobTimes:
    return JobTimes(submitted, job.created_at_unix_s, job.started_at_unix_s, job.finished_at_unix_s)


def run_clients(cluster: Cluster, songs: Sequence[bytes], clients: int, model: str, stems: int,
                prefix: str) -> list[JobTimes]:
    """``clients`` threads submit their share of ``songs`` at once, then wait for each."""
    times: list[JobTimes] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        try:
            with grpc.insecure_channel(f"127.0.0.1:{cluster.port}") as channel:
                stub = jpb_grpc.JobsStub(channel)
                mine = [submit(stub, data, f"{prefix}-{i}", model, stems)
                        for i, data in enumerate(songs) if i % clients == index]
                for job_id, submitted in mine:
                    job = wait_terminal(stub, job_id, 600)
                    if job.status != jpb.JOB_STATUS_SUCCEEDED:
                        raise RuntimeError(f"job {job_id} ended {jpb.JobStatus.Name(job.status)}: {job.error}")
                    with lock:
                        times.append(times_of(job, submitted))
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return times


# the three parts

def throughput(args, repository: Path, scratch: Path) -> list[dict]:
    rows = []
    for nb_workers in (1, 2):
        songs = short_songs(args.songs, args.song_s, 1000 * nb_workers)
        cluster = Cluster(scratch / f"throughput{nb_workers}", repository, args.model, lease_s=30.0)
        try:
            for _ in range(nb_workers):
                cluster.start_worker(threads=1)
            times = run_clients(cluster, songs, args.clients, args.model, args.stems, f"t{nb_workers}")
        finally:
            cluster.close()
        rows.append({"part": "throughput", "workers": nb_workers, "clients": args.clients,
                     "song_s": args.song_s, **summarize(times)})
        print(rows[-1], file=sys.stderr)
    return rows


def added(args, repository: Path, scratch: Path) -> tuple[dict, list[dict]]:
    from stemserve.backends.local import LocalBackend
    from stemserve.core.model_config import load_model
    from stemserve.pipeline.options import SeparationOptions
    from stemserve.pipeline.run import separate

    from benchmarks.pipeline import song_wav

    threads = args.added_threads
    local = LocalBackend(load_model(repository, args.model), intra_op_threads=threads)
    local.warm_up()
    options = SeparationOptions(stems=args.stems, model=args.model)
    cluster = Cluster(scratch / "added", repository, args.model, lease_s=30.0)
    rows = []
    try:
        cluster.start_worker(threads=threads)
        for repeat in range(args.repeats):
            song = scratch / f"song{repeat}.wav"  # a new song each repeat: the result cache never answers
            song.write_bytes(song_wav(args.minutes, seed=100 + repeat))

            def in_process(out: Path, song: Path = song) -> float:
                return separate(song, out, local, options).runtime_seconds

            def through_jobs(out: Path, song: Path = song, repeat: int = repeat) -> float:
                stub = cluster.stub
                job_id, _ = submit(stub, song.read_bytes(), f"added-{repeat}", args.model, args.stems)
                job = None
                for event in stub.WatchJob(jpb.JobRequest(job_id=job_id), timeout=600):
                    job = event.job
                    if job.status in TERMINAL:
                        break
                if job is None or job.status != jpb.JOB_STATUS_SUCCEEDED:
                    raise RuntimeError(f"job {job_id} did not succeed: {job}")
                out.mkdir(parents=True)
                for stem in job.stems:
                    parts = stub.ReadStem(jpb.ReadStemRequest(job_id=job_id, stem=stem.name), timeout=600)
                    with open(out / f"{stem.name}.{stem.format}", "wb") as handle:
                        handle.writelines(part.data for part in parts)
                return job.runtime_seconds

            runs = {"in_process": in_process, "jobs": through_jobs}
            seconds, separating = {}, {}
            for name in sorted(runs, reverse=bool(repeat % 2)):
                started = time.perf_counter()
                separating[name] = runs[name](scratch / f"run{repeat}-{name}")
                seconds[name] = time.perf_counter() - started
            rows.append({"part": "added", "run": repeat + 1, "in_process_s": round(seconds["in_process"], 3),
                         "jobs_s": round(seconds["jobs"], 3),
                         "added": round(seconds["jobs"] / seconds["in_process"] - 1, 4),
                         "worker_separation_s": round(separating["jobs"], 3),
                         "jobs_outside_separation_s": round(seconds["jobs"] - separating["jobs"], 3)})
            print(rows[-1], file=sys.stderr)
    finally:
        cluster.close()
    figures = added_time([r["jobs_s"] for r in rows], [r["in_process_s"] for r in rows],
                         [r["jobs_outside_separation_s"] for r in rows])
    return figures, rows


def soak(args, repository: Path, scratch: Path) -> dict:
    songs = short_songs(args.soak_songs, args.soak_song_s, 5000)
    cluster = Cluster(scratch / "soak", repository, args.model, lease_s=args.soak_lease_s)
    accepted: dict[str, str] = {}
    errors: list[BaseException] = []
    kills = 0
    try:
        for _ in range(2):
            cluster.start_worker(threads=1)
        started = time.monotonic()
        spacing = args.soak_s / max(len(songs), 1)

        def client(index: int) -> None:
            try:
                with grpc.insecure_channel(f"127.0.0.1:{cluster.port}") as channel:
                    stub = jpb_grpc.JobsStub(channel)
                    for i in range(index, len(songs), args.clients):
                        time.sleep(max(0.0, started + i * spacing - time.monotonic()))
                        accepted[f"soak-{i}"] = submit(stub, songs[i], f"soak-{i}", args.model, args.stems)[0]
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        for thread in threads:
            thread.start()
        rng = random.Random(7)
        while time.monotonic() - started < args.soak_s:
            time.sleep(args.kill_every_s)
            alive = cluster.alive_workers()
            if alive:
                victim = rng.choice(alive)
                os.kill(victim.pid, signal.SIGKILL)
                victim.wait(10)
                kills += 1
            cluster.start_worker(threads=1, wait=False)  # a replacement, as a Deployment would start
        for thread in threads:
            thread.join()
        drain_deadline = time.monotonic() + args.soak_drain_s
        for job_id in accepted.values():
            wait_terminal(cluster.stub, job_id, max(drain_deadline - time.monotonic(), 0.1))
        jobs = list_jobs(cluster.stub)
        results = [json.loads(p.read_text()) for p in sorted(cluster.store.glob("results/*/result.json"))]

        def stored_sha(key: str) -> str | None:
            path = cluster.store / key
            return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None

        verdict = soak_verdict(accepted, jobs, results, stored_sha)
        attempts = Counter(j["attempt"] for j in jobs)
    finally:
        cluster.close()
    if errors:
        raise errors[0]
    return {"part": "soak", "seconds": args.soak_s, "songs": len(songs), "song_s": args.soak_song_s,
            "kills": kills, "lease_s": args.soak_lease_s,
            "jobs_by_attempts": dict(sorted(attempts.items())), **verdict}


def list_jobs(stub) -> list[dict]:
    jobs, token = [], ""
    while True:
        page = stub.ListJobs(jpb.ListJobsRequest(page_size=200, page_token=token), timeout=30)
        jobs += [{"id": job.id, "key": job.idempotency_key, "attempt": job.attempt,
                  "status": jpb.JobStatus.Name(job.status).removeprefix("JOB_STATUS_"),
                  "stems": {s.name: s.sha256 for s in job.stems}} for job in page.jobs]
        token = page.next_page_token
        if not token:
            return jobs


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=24, help="short songs per throughput run")
    parser.add_argument("--song-s", type=float, default=15.0, help="length of a short song")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=4.0, help="the added-time song")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--added-threads", type=int, default=0,
                        help="ONNX Runtime threads of the added-time worker and in-process run (0: every core)")
    parser.add_argument("--soak-s", type=float, default=60.0)
    parser.add_argument("--soak-songs", type=int, default=60)
    parser.add_argument("--soak-song-s", type=float, default=8.0)
    parser.add_argument("--soak-lease-s", type=float, default=3.0)
    parser.add_argument("--soak-drain-s", type=float, default=180.0)
    parser.add_argument("--kill-every-s", type=float, default=5.0)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--stems", type=int, default=4, choices=[2, 4, 5])
    parser.add_argument("--parts", default="throughput,added,soak")
    parser.add_argument("--model-repository", type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    from stemserve.core.settings import Settings

    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    parts = set(args.parts.split(","))
    repository = Settings.load({"model_repository": args.model_repository}).model_repository
    rows: list[dict] = []
    figures: dict[str, object] = {"model": args.model, "stems": args.stems, "cpu_count": os.cpu_count()}
    targets: list[bool] = []
    with tempfile.TemporaryDirectory(prefix="stemserve-jobs-bench-") as scratch:
        if "throughput" in parts:
            found = throughput(args, repository, Path(scratch))
            rows += found
            for row in found:
                figures[f"songs_per_hour_{row['workers']}_workers"] = row["songs_per_hour"]
        if "added" in parts:
            found, added_rows = added(args, repository, Path(scratch))
            rows += added_rows
            figures.update({"added_minutes": args.minutes, "added_threads": args.added_threads, **found,
                            "target_added": TARGET_ADDED})
            targets.append(found["outside_share"] <= TARGET_ADDED)
        if "soak" in parts:
            found = soak(args, repository, Path(scratch))
            rows.append(found)
            figures.update({f"soak_{k}": v for k, v in found.items() if k != "part"})
            targets.append(found["lost"] == 0 and found["duplicated"] == 0)
    figures["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    figures["target_met"] = all(targets)
    path = report.write("jobs", figures, table(rows))
    print(path.read_text())
    return 0 if figures["target_met"] else 1


def table(rows: Sequence[dict]) -> list[dict]:
    """Rows of different parts as one table: every column of any row, "-" where a part has none."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    return [{k: (json.dumps(row[k]) if isinstance(row.get(k), dict) else row.get(k, "-")) for k in columns}
            for row in rows]


if __name__ == "__main__":
    raise SystemExit(main())
