"""The Grafana dashboard in deploy/ queries only metrics the front end exports, and charts
every job metric."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.metrics_core import Metric
from stemserve.server.metrics import JOB_METRICS, NAMESPACE, ServiceMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "stemserve-triton.json"
SUFFIXES = {"histogram": ("_bucket", "_count", "_sum"), "counter": ("_total",), "gauge": ("",)}


def dashboard_metrics(prefix: str) -> set[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs = [target["expr"] for panel in panels for target in panel.get("targets", [])]
    return {name for expr in exprs for name in re.findall(rf"\b{prefix}[a-z_]+\b", expr)}


def exported_names(family: Metric) -> list[str]:
    return [family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))]


def test_dashboard_front_end_metrics_exist():
    exported = {name for family in ServiceMetrics().registry.collect() for name in exported_names(family)}
    used = dashboard_metrics("stemserve_")
    assert used, "the dashboard must chart the front end"
    assert used <= exported, f"not exported by server/metrics.py: {sorted(used - exported)}"


def test_dashboard_charts_latency_rtf_queue_compute_batch_and_songs_in_flight():
    used = dashboard_metrics("stemserve_") | dashboard_metrics("nv_")
    for name in (
        "stemserve_request_duration_seconds_bucket",
        "stemserve_real_time_factor_ratio_bucket",
        "stemserve_songs_in_flight",
        "nv_inference_queue_duration_us",
        "nv_inference_compute_infer_duration_us",
        "nv_inference_exec_count",
        "nv_inference_count",
    ):
        assert name in used


def test_dashboard_charts_every_job_metric():
    families = {family.name: family for family in ServiceMetrics().registry.collect()}
    job_like = {name.removeprefix(f"{NAMESPACE}_") for name in families
                if any(word in name for word in ("job", "webhook", "worker"))}
    assert job_like == set(JOB_METRICS), "a job metric is missing from server.metrics.JOB_METRICS"
    used = dashboard_metrics("stemserve_")
    for name in JOB_METRICS:
        family = families[f"{NAMESPACE}_{name}"]
        assert set(exported_names(family)) & used, f"no panel charts {family.name}"
