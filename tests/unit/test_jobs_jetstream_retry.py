"""Stream and bucket creation while a cluster is still forming: NATS answers "no suitable
peers for placement" (err_code 10005, seen at a 3-node cluster's start); the call is retried
until the peers are there, and any other bad request still updates or raises."""

from __future__ import annotations

import asyncio

import nats.js.errors
import pytest
from nats.js.api import StreamConfig
from stemserve.jobs.broker import BrokerUnavailable
from stemserve.jobs.jetstream import _ensure_stream, retrying


def no_peers() -> nats.js.errors.BadRequestError:
    return nats.js.errors.BadRequestError(code=400, err_code=10005,
                                          description="no suitable peers for placement, peer offline")


class FakeJetStream:
    def __init__(self, refusals: list[Exception]) -> None:
        self.refusals = refusals
        self.calls: list[str] = []

    async def add_stream(self, config: StreamConfig) -> None:
        self.calls.append("add")
        if self.refusals:
            raise self.refusals.pop(0)

    async def update_stream(self, config: StreamConfig) -> None:
        self.calls.append("update")


CONFIG = StreamConfig(name="S", subjects=["s"], num_replicas=3)


def test_creation_waits_for_the_peers_of_a_forming_cluster():
    js = FakeJetStream([no_peers(), no_peers()])
    asyncio.run(retrying(lambda: _ensure_stream(js, CONFIG), "create stream S", 5.0))
    assert js.calls == ["add", "add", "add"]


def test_peers_that_never_come_give_a_broker_unavailable_error_naming_them():
    js = FakeJetStream([no_peers() for _ in range(100)])
    with pytest.raises(BrokerUnavailable, match="create stream S: NATS did not answer within 0.5 s.*no suitable peers"):
        asyncio.run(retrying(lambda: _ensure_stream(js, CONFIG), "create stream S", 0.5))


def test_a_stream_that_exists_with_other_limits_is_updated():
    js = FakeJetStream([nats.js.errors.BadRequestError(code=400, err_code=10058,
                                                       description="stream name already in use")])
    asyncio.run(retrying(lambda: _ensure_stream(js, CONFIG), "create stream S", 5.0))
    assert js.calls == ["add", "update"]
