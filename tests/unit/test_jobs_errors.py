"""Job errors get their gRPC status at the one boundary (``server/status.py``), through the
classes of ``core/errors.py``; a limit that frees up by itself carries ``retry-after-s``."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from stemserve.core.errors import FailedPreconditionError, NotFoundError, ResourceExhaustedError, RetryLaterError
from stemserve.jobs.broker import BrokerUnavailable
from stemserve.jobs.errors import InputUnavailableError, JobNotFoundError, JobStateError, StoreUnavailableError
from stemserve.server.metrics import ServiceMetrics
from stemserve.server.status import abort_with_status, status_code


@pytest.mark.parametrize(("exc", "code"), [
    (JobNotFoundError("no job"), grpc.StatusCode.NOT_FOUND),
    (NotFoundError("no upload"), grpc.StatusCode.NOT_FOUND),
    (JobStateError("not finished"), grpc.StatusCode.FAILED_PRECONDITION),
    (FailedPreconditionError("not yet"), grpc.StatusCode.FAILED_PRECONDITION),
    (StoreUnavailableError("store down"), grpc.StatusCode.UNAVAILABLE),
    (InputUnavailableError("url down"), grpc.StatusCode.UNAVAILABLE),
    (BrokerUnavailable("broker down"), grpc.StatusCode.UNAVAILABLE),
    (RetryLaterError("queue full", retry_after_s=5), grpc.StatusCode.RESOURCE_EXHAUSTED),
    (ResourceExhaustedError("limit"), grpc.StatusCode.RESOURCE_EXHAUSTED),
])
def test_job_errors_map_at_the_boundary(exc, code):
    assert status_code(exc) == code


class Context:
    def __init__(self) -> None:
        self.trailing, self.aborted = (), None

    def set_trailing_metadata(self, metadata) -> None:
        self.trailing = tuple(metadata)

    async def abort(self, code, details):
        self.aborted = (code, details)
        raise grpc.aio.AbortError()


@pytest.mark.parametrize(("exc", "trailing"), [
    (RetryLaterError("queue full", retry_after_s=5), (("retry-after-s", "5"),)),
    (RetryLaterError("busy", retry_after_s=0.5), (("retry-after-s", "0.5"),)),
    (ResourceExhaustedError("no hint"), ()),
    (JobNotFoundError("no job"), ()),
])
def test_abort_sends_the_retry_hint(exc, trailing):
    context = Context()
    with pytest.raises(grpc.aio.AbortError):
        asyncio.run(abort_with_status(context, exc, ServiceMetrics()))
    assert context.aborted == (status_code(exc), str(exc)) and context.trailing == trailing
