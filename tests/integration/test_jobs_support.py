"""Shared pieces of the jobs tests (no tests here): engines as fixtures, a way to run an
``async def`` body, unique names."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from typing import Any

import pytest
from stemserve.jobs.nats_process import NatsProcess

from tests.integration.engines import NatsCluster, SeaweedS3


def run(coroutine: Coroutine[Any, Any, Any], timeout_s: float = 60.0) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, timeout_s))


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory):
    server = NatsProcess.start(tmp_path_factory.mktemp("nats"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory):
    s3 = SeaweedS3.start(tmp_path_factory.mktemp("seaweed"))
    yield s3
    s3.stop()


@pytest.fixture(scope="module")
def nats_cluster(tmp_path_factory):
    cluster = NatsCluster.start(tmp_path_factory.mktemp("cluster"))
    yield cluster
    cluster.stop()
