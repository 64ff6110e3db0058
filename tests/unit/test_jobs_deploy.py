"""The deployment files of the jobs system parse, and hold what they promise: the compose
file's services, Kubernetes objects with their required keys, KEDA scaling the workers on
the job consumer's lag, a 3-node NATS StatefulSet with JetStream, settings that exist."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest
import yaml
from stemserve.core.settings import ENV_PREFIX, Settings
from stemserve.jobs.config import JOBS_STREAM, JobsConfig

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
SETTINGS = {f"{ENV_PREFIX}{f.name.upper()}" for f in fields(Settings)}


def objects() -> list[dict]:
    return [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def by_kind(kind: str) -> list[dict]:
    return [o for o in objects() if o["kind"] == kind]


def one(kind: str, name: str) -> dict:
    found = [o for o in by_kind(kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def env_names(obj: dict) -> set[str]:
    return {e["name"] for c in obj["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])}


def test_manifests_parse_with_the_keys_every_object_needs():
    assert {p.name for p in MANIFESTS} >= {"api.yaml", "worker.yaml", "nats.yaml", "triton.yaml", "config.yaml"}
    for obj in objects():
        assert {"apiVersion", "kind", "metadata"} <= obj.keys() and obj["metadata"].get("name"), obj
        if obj["kind"] in ("Deployment", "StatefulSet"):
            spec = obj["spec"]
            labels = spec["template"]["metadata"]["labels"]
            assert spec["selector"]["matchLabels"].items() <= labels.items(), obj["metadata"]["name"]
            assert all(c.get("image") for c in spec["template"]["spec"]["containers"])


def test_api_and_worker_deployments_run_the_two_commands():
    api, worker = one("Deployment", "stemserve-api"), one("Deployment", "stemserve-worker")
    assert api["spec"]["template"]["spec"]["containers"][0]["args"][:3] == ["stemserve", "serve", "--jobs"]
    assert worker["spec"]["template"]["spec"]["containers"][0]["args"][:2] == ["stemserve", "worker"]
    for deployment in (api, worker):
        refs = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        assert {"configMapRef": {"name": "stemserve-config"}} in refs and {"secretRef": {"name": "stemserve-secrets"}} in refs
        grace = int(one("ConfigMap", "stemserve-config")["data"]["STEMSERVE_SHUTDOWN_GRACE_S"])
        assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > grace


def test_settings_in_config_and_secret_exist_and_s3_credentials_are_secret():
    config, secret = one("ConfigMap", "stemserve-config"), one("Secret", "stemserve-secrets")
    names = set(config["data"]) | set(secret["stringData"])
    for deployment in by_kind("Deployment"):
        names |= {n for n in env_names(deployment) if n.startswith(ENV_PREFIX)}
    assert names <= SETTINGS, sorted(names - SETTINGS)
    assert {"STEMSERVE_S3_ACCESS_KEY", "STEMSERVE_S3_SECRET_KEY"} <= set(secret["stringData"])
    assert not {"STEMSERVE_S3_ACCESS_KEY", "STEMSERVE_S3_SECRET_KEY"} & set(config["data"])
    assert config["data"]["STEMSERVE_NATS_REPLICAS"] == "3" and config["data"]["STEMSERVE_S3_ENDPOINT"]
    assert all(isinstance(v, str) for v in config["data"].values())  # ConfigMap values are strings


def test_keda_scales_workers_on_the_job_consumers_lag():
    scaled = one("ScaledObject", "stemserve-worker")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == "stemserve-worker"
    assert 1 <= scaled["spec"]["minReplicaCount"] < scaled["spec"]["maxReplicaCount"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "nats-jetstream"
    meta = trigger["metadata"]
    queue = JobsConfig.from_settings(Settings.load({}, environ={})).jobs_queue
    assert (meta["stream"], meta["consumer"]) == (JOBS_STREAM, queue.consumer) and queue.stream == JOBS_STREAM
    assert meta["natsServerMonitoringEndpoint"].endswith(":8222") and meta["account"] == "$G"
    assert int(meta["lagThreshold"]) >= 1 and all(isinstance(v, str) for v in meta.values())


def test_nats_is_a_three_node_jetstream_cluster():
    nats = one("StatefulSet", "nats")
    assert nats["spec"]["replicas"] == 3 and nats["spec"]["serviceName"] == "nats"
    assert one("Service", "nats")["spec"]["clusterIP"] == "None"
    conf = one("ConfigMap", "nats-config")["data"]["nats.conf"]
    assert "jetstream" in conf and all(f"nats-{i}.nats:6222" in conf for i in range(3))
    urls = one("ConfigMap", "stemserve-config")["data"]["STEMSERVE_NATS_URL"].split(",")
    assert len(urls) == 3 and nats["spec"]["volumeClaimTemplates"]


def test_triton_fleet_is_listed_for_the_workers():
    triton = one("StatefulSet", "triton")
    assert triton["spec"]["replicas"] >= 2
    limits = triton["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == 1
    worker = one("Deployment", "stemserve-worker")["spec"]["template"]["spec"]["containers"][0]
    fleet = next(e["value"] for e in worker["env"] if e["name"] == "STEMSERVE_TRITON_URL").split(",")
    assert fleet == [f"triton-{i}.triton:8001" for i in range(triton["spec"]["replicas"])]


def test_compose_file_parses_with_its_services():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"nats-1", "nats-2", "nats-3", "s3", "api", "worker", "worker-triton", "triton-1", "triton-2"} <= set(services)
    assert services["api"]["command"][:3] == ["stemserve", "serve", "--jobs"]
    assert services["worker"]["command"][:2] == ["stemserve", "worker"]
    env = services["worker"]["environment"]
    assert set(env) <= SETTINGS and env["STEMSERVE_NATS_REPLICAS"] == "3"
    assert services["worker-triton"]["environment"]["STEMSERVE_TRITON_URL"] == "triton-1:8001,triton-2:8001"
    for i in (1, 2, 3):
        command = services[f"nats-{i}"]["command"]
        assert "--jetstream" in command and "--routes" in command
    keys = json.loads((DEPLOY / "seaweedfs-s3.json").read_text())["identities"][0]["credentials"][0]
    example = dict(line.split("=", 1) for line in (DEPLOY / "s3.env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert (example["STEMSERVE_S3_ACCESS_KEY"], example["STEMSERVE_S3_SECRET_KEY"]) == (keys["accessKey"], keys["secretKey"])


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_manifest_is_labelled_part_of_stemserve(path):
    for obj in yaml.safe_load_all(path.read_text()):
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "stemserve"
