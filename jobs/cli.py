"""The jobs system's command line: ``stemserve worker`` and ``stemserve serve --jobs``.

``stemserve/cli.py`` wires these in: :func:`add_commands` adds ``worker``,
:func:`add_serve_flags` adds ``--jobs`` and the jobs flags to ``serve``, :func:`run` runs
either (``args.command`` is ``worker``, or ``serve`` with ``args.jobs``). Each flag is a
setting (README, "Settings"); the flag wins over its ``STEMSERVE_*`` variable.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from pathlib import Path

from stemserve.core.errors import StemserveError
from stemserve.core.settings import Settings

HELP = argparse.ArgumentDefaultsHelpFormatter
# flag -> (setting, type, help): the flags both commands take
JOB_FLAGS = {
    "--nats-url": ("nats_url", str, "NATS servers, comma-separated (default: a local nats-server, embedded)"),
    "--nats-replicas": ("nats_replicas", int, "replicas of the job streams and KV (3 on a 3-node cluster)"),
    "--s3-endpoint": ("s3_endpoint", str, ("S3 endpoint for uploads and stems (default: a local folder); "
                                          "credentials from STEMSERVE_S3_ACCESS_KEY / STEMSERVE_S3_SECRET_KEY")),
    "--s3-bucket": ("s3_bucket", str, "S3 bucket"),
    "--job-lease-s": ("job_lease_s", float, "lease of a running job; a silent worker's job is redelivered after it"),
    "--job-max-attempts": ("job_max_attempts", int, "attempts before a job is FAILED and dead-lettered"),
    "--job-timeout-s": ("job_timeout_s", float, "default deadline of a job"),
    "--max-queued-per-key": ("max_queued_per_key", int, "queued jobs per API key"),
    "--max-running-per-key": ("max_running_per_key", int, "running jobs per API key"),
    "--max-queued-jobs": ("max_queued_jobs", int, "queued jobs, all keys"),
    "--worker-concurrency": ("worker_concurrency", int, "jobs one worker runs at once"),
}


def _add_job_flags(parser: argparse.ArgumentParser) -> None:
    for flag, (dest, kind, text) in JOB_FLAGS.items():
        parser.add_argument(flag, dest=dest, type=kind, help=text)


def add_commands(subparsers) -> argparse.ArgumentParser:
    """``stemserve worker``: pull and run separation jobs until SIGTERM (then drain)."""
    worker = subparsers.add_parser("worker", formatter_class=HELP,
                                   help="run separation jobs from the queue (needs the jobs extra)")
    worker.add_argument("--models", help="comma-separated models to load (default: every model)")
    worker.add_argument("--triton", dest="triton_url", metavar="HOST:PORT[,HOST:PORT...]",
                        help="run the models on this Triton server, or spread windows over several (a fleet)")
    worker.add_argument("--metrics-port", type=int, help="Prometheus /metrics port (0: a free one)")
    worker.add_argument("--cache-dir", type=Path, help="folder for work files (and the embedded store)")
    _add_job_flags(worker)
    return worker


def add_serve_flags(serve_parser: argparse.ArgumentParser) -> None:
    """``serve --jobs``: the Jobs service beside Separation (embedded unless --nats-url)."""
    serve_parser.add_argument("--jobs", action="store_true",
                              help="also serve the Jobs API; without --nats-url: a local nats-server, the local "
                                   "store and a worker in this process (one command)")
    _add_job_flags(serve_parser)


def with_job_flags(args: argparse.Namespace, settings: Settings) -> Settings:
    """``settings`` with the jobs flags that were given (validated again)."""
    given = {dest: getattr(args, dest) for dest, _, _ in JOB_FLAGS.values() if getattr(args, dest, None) is not None}
    for name in ("models", "triton_url", "metrics_port", "cache_dir"):
        if getattr(args, name, None) is not None:
            given[name] = getattr(args, name)
    return dataclasses.replace(settings, **given) if given else settings


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run ``worker`` or ``serve --jobs``; 2 with one line on stderr for a stemserve error."""
    from stemserve.jobs.config import JobsConfig
    from stemserve.jobs.runtime import run_worker, serve_jobs

    try:
        settings = with_job_flags(args, settings)
        config = JobsConfig.from_settings(settings)
        if args.command == "worker":
            asyncio.run(run_worker(settings, config))
        else:
            asyncio.run(serve_jobs(settings, config))
    except StemserveError as exc:
        sys.stderr.write(f"stemserve: error: {exc}\n")
        return 2
    return 0
