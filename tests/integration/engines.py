"""Real engines for the jobs tests (no tests here): a 3-node NATS JetStream cluster and
SeaweedFS's S3 (``weed mini``), on free loopback ports with their data in a test folder;
each start waits (bounded) until the engine is usable, each can be killed and restarted.

Single nats-server nodes are ``stemserve.jobs.nats_process.NatsProcess`` (the embedded
mode's own launcher). Readiness of a cluster: every node healthy, all agree on the
JetStream meta leader, and the leader sees every other node as a current peer (agreeing on
a leader alone was seen to be too early for an R3 stream). ``weed mini`` gets every port
explicitly (its defaults collide between instances) and telemetry off.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from stemserve.jobs.nats_process import HOST, NatsProcess, find_binary, free_ports, http_status


def wait_for(condition, timeout_s: float, what: str, interval_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = condition()
        except Exception:  # noqa: BLE001 - not ready yet
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)


@dataclass
class NatsCluster:
    nodes: list[NatsProcess]

    @classmethod
    def start(cls, folder: Path, size: int = 3, timeout_s: float = 60.0) -> NatsCluster:
        ports = free_ports(3 * size)
        routes = tuple(ports[2 * size:])
        nodes = [NatsProcess(folder / f"n{i + 1}", f"n{i + 1}", ports[i], ports[size + i], routes[i], routes)
                 for i in range(size)]
        cluster = cls(nodes)
        for node in nodes:
            node.spawn()
        try:
            cluster.wait_ready(timeout_s)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def wait_ready(self, timeout_s: float) -> str:
        def ready() -> str | None:
            live = [n for n in self.nodes if n.alive()]
            metas = {}
            for node in live:
                if not node.healthy():
                    return None
                metas[node.name] = node.jsz().get("meta_cluster") or {}
            leaders = {m.get("leader") or "" for m in metas.values()}
            if len(leaders) != 1 or "" in leaders or next(iter(leaders)) not in metas:
                return None
            leader = leaders.pop()
            current = {p.get("name") for p in metas[leader].get("replicas") or [] if p.get("current")}
            return leader if {n.name for n in live} - {leader} <= current else None

        return wait_for(ready, timeout_s, "the NATS cluster's meta leader", 0.2)

    def kill(self, index: int) -> None:
        self.nodes[index].kill()

    def restart(self, index: int, timeout_s: float = 60.0) -> None:
        self.nodes[index].spawn()
        self.nodes[index].wait_healthy(timeout_s)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


ACCESS_KEY, SECRET_KEY = "stemserve-test", "stemserve-test-secret-0123456789"
WEED_PORTS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
              "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc")


@dataclass
class SeaweedS3:
    folder: Path
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen | None = None

    @classmethod
    def start(cls, folder: Path, timeout_s: float = 60.0) -> SeaweedS3:
        s3 = cls(folder, dict(zip(WEED_PORTS, free_ports(len(WEED_PORTS)), strict=True)))
        s3.spawn(timeout_s)
        return s3

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.ports['s3.port']}"

    def spawn(self, timeout_s: float = 60.0) -> None:
        (self.folder / "data").mkdir(parents=True, exist_ok=True)
        config = {"identities": [{"name": "admin", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                                  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
        (self.folder / "s3.json").write_text(json.dumps(config))
        argv = [str(find_binary("weed", "WEED_BIN")), "mini", f"-dir={self.folder / 'data'}", f"-ip={HOST}",
                f"-ip.bind={HOST}", *(f"-{flag}={port}" for flag, port in self.ports.items()),
                f"-s3.config={self.folder / 's3.json'}", "-s3.port.iceberg=0", "-s3.port.lance=0",
                "-webdav=false", "-admin.ui=false", "-master.telemetry=false", "-master.volumeSizeLimitMB=64"]
        with open(self.folder / "weed.log", "ab") as log:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        client = self.client()
        wait_for(lambda: http_status(f"{self.endpoint_url}/healthz")[0] == 200, timeout_s, "weed S3 /healthz")
        wait_for(lambda: client.list_buckets() is not None, timeout_s, "a signed S3 ListBuckets", 0.2)

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint_url, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
                            config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                                          retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=2))

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
