"""Every Prometheus metric of the service, in one place, on one registry.

Names carry their unit (``_seconds``, ``_bytes``, ``_total``, ``_ratio``); label values
are bounded: gRPC method names and status codes, model names from the repository,
backend names, cache outcomes and the fixed ``reason`` values of rejected inputs.
The exposition is served by :func:`start_metrics_server` on its own port.
"""

from __future__ import annotations

import logging
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from stemserve.core.errors import InvalidOptionError

log = logging.getLogger(__name__)

NAMESPACE = "stemserve"
# a song takes from well under a second (cache hit, short clip) to minutes (an hour-long file)
REQUEST_BUCKETS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640)
# processing time / audio duration: < 1 is faster than real time
REAL_TIME_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5)
# the job metrics' names (stemserve.jobs; each has a panel in deploy/grafana/stemserve-triton.json)
JOB_METRICS = ("jobs", "job_queue_depth", "job_queue_wait_seconds", "job_run_duration_seconds", "job_attempts",
               "jobs_dead_lettered", "webhook_deliveries", "busy_workers")
WINDOW_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class ServiceMetrics:
    """The service's metrics, registered on ``registry`` (a fresh one per server in tests)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = CollectorRegistry() if registry is None else registry
        r = self.registry
        self.requests = Counter(
            "requests", "gRPC requests finished, by method and status code.",
            ["rpc", "code"], namespace=NAMESPACE, registry=r,
        )
        self.request_duration = Histogram(
            "request_duration_seconds", "gRPC request latency, first message to status.",
            ["rpc"], namespace=NAMESPACE, buckets=REQUEST_BUCKETS_S, registry=r,
        )
        self.real_time_factor = Histogram(
            "real_time_factor_ratio", "Separation time divided by the song's duration (cache misses).",
            ["model"], namespace=NAMESPACE, buckets=REAL_TIME_BUCKETS, registry=r,
        )
        self.window_inference = Histogram(
            "window_inference_duration_seconds", "Inference time per window of audio, by backend.",
            ["backend"], namespace=NAMESPACE, buckets=WINDOW_BUCKETS_S, registry=r,
        )
        self.songs_in_flight = Gauge(
            "songs_in_flight", "Separation requests being served now.", namespace=NAMESPACE, registry=r,
        )
        self.audio_processed = Counter(
            "audio_processed_seconds", "Duration of the audio separated (cache misses).",
            ["model"], namespace=NAMESPACE, registry=r,
        )
        self.cache_hits = Counter(
            "cache_hits", "Separation requests answered from the result cache.", namespace=NAMESPACE, registry=r,
        )
        self.cache_misses = Counter(
            "cache_misses", "Separation requests not found in the result cache.", namespace=NAMESPACE, registry=r,
        )
        self.cache_size = Gauge(
            "cache_size_bytes", "Bytes held by the result cache.", namespace=NAMESPACE, registry=r,
        )
        self.rejected_inputs = Counter(
            "rejected_inputs", "Requests refused for their input or options, by reason.",
            ["reason"], namespace=NAMESPACE, registry=r,
        )

        # separation jobs (stemserve.jobs): the queue, workers, webhooks
        self.jobs = Counter(
            "jobs", "Jobs that reached a state, by state (QUEUED counts submits).",
            ["state"], namespace=NAMESPACE, registry=r,
        )
        self.job_queue_depth = Gauge(
            "job_queue_depth", "Jobs in the queue not yet acknowledged (waiting or running).",
            namespace=NAMESPACE, registry=r,
        )
        self.job_queue_wait = Histogram(
            "job_queue_wait_seconds", "Time from submit to the start of a job's attempt.",
            namespace=NAMESPACE, buckets=REQUEST_BUCKETS_S, registry=r,
        )
        self.job_run_time = Histogram(
            "job_run_duration_seconds", "Time of a job's attempt, start to its end.",
            ["state"], namespace=NAMESPACE, buckets=REQUEST_BUCKETS_S, registry=r,
        )
        self.job_attempts = Counter(
            "job_attempts", "Job attempts started by workers.", namespace=NAMESPACE, registry=r,
        )
        self.jobs_dead_lettered = Counter(
            "jobs_dead_lettered", "Jobs FAILED after their last attempt and dead-lettered.",
            namespace=NAMESPACE, registry=r,
        )
        self.webhook_deliveries = Counter(
            "webhook_deliveries", "Webhook POSTs, by outcome (ok: 2xx; failed: retried later).",
            ["outcome"], namespace=NAMESPACE, registry=r,
        )
        self.busy_workers = Gauge(
            "busy_workers", "Worker slots running a job now.", namespace=NAMESPACE, registry=r,
        )

    def observe_inference(self, backend: str, seconds: float, nb_windows: int) -> None:
        per_window = seconds / max(nb_windows, 1)
        child = self.window_inference.labels(backend=backend)
        for _ in range(nb_windows):
            child.observe(per_window)

    def observe_separation(self, model: str, runtime_s: float, audio_s: float) -> None:
        self.audio_processed.labels(model=model).inc(audio_s)
        if audio_s > 0:
            self.real_time_factor.labels(model=model).observe(runtime_s / audio_s)


def start_metrics_server(port: int, registry: CollectorRegistry, host: str = "0.0.0.0") -> tuple[WSGIServer, int]:
    """Serve ``registry`` over HTTP on ``port`` (0: a free one) in a daemon thread;
    returns the server (``shutdown()`` stops it) and its port."""
    try:
        httpd, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise InvalidOptionError(f"expected to serve metrics on {host}:{port}, got {exc}") from exc
    bound = int(httpd.server_port)
    log.info("metrics on http://%s:%d/metrics", host, bound)
    return httpd, bound
