"""The one boundary where stemserve exceptions become gRPC statuses.

Library code raises ``StemserveError`` subclasses (``core/errors.py``); handlers let
them through to :func:`abort_with_status`, which picks the status from :data:`STATUS_CODES`,
counts rejected inputs, and aborts the call with the exception's message (which already
says what was expected and what was got); a :class:`RetryLaterError` also sends its hint as
the ``retry-after-s`` trailing metadata. Anything else is a bug: it is logged with its
traceback and the caller gets INTERNAL without internals.
"""

from __future__ import annotations

import logging
from typing import NoReturn

import grpc
from stemserve.core.errors import (
    AuthenticationError,
    BackendUnavailableError,
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidAudioError,
    InvalidOptionError,
    ModelConfigError,
    ModelNotFoundError,
    NotFoundError,
    ResourceExhaustedError,
    RetryLaterError,
    StemserveError,
)
from stemserve.server.metrics import ServiceMetrics

log = logging.getLogger(__name__)

STATUS_CODES: dict[type[StemserveError], grpc.StatusCode] = {
    InvalidAudioError: grpc.StatusCode.INVALID_ARGUMENT,
    InvalidOptionError: grpc.StatusCode.INVALID_ARGUMENT,
    AuthenticationError: grpc.StatusCode.UNAUTHENTICATED,
    ResourceExhaustedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ModelNotFoundError: grpc.StatusCode.NOT_FOUND,
    BackendUnavailableError: grpc.StatusCode.UNAVAILABLE,
    DeadlineExceededError: grpc.StatusCode.DEADLINE_EXCEEDED,
    ModelConfigError: grpc.StatusCode.FAILED_PRECONDITION,
    NotFoundError: grpc.StatusCode.NOT_FOUND,
    FailedPreconditionError: grpc.StatusCode.FAILED_PRECONDITION,
}
RETRY_AFTER_KEY = "retry-after-s"  # trailing metadata of a RetryLaterError: whole seconds
INTERNAL_MESSAGE = "internal error while serving the request; the server log has the details"


def status_code(exc: BaseException) -> grpc.StatusCode:
    """The status of an exception: its nearest class in STATUS_CODES, else INTERNAL."""
    for cls in type(exc).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return grpc.StatusCode.INTERNAL


def rejection_reason(exc: StemserveError) -> str | None:
    """The bounded ``reason`` label of a rejected input, or None when it is not one."""
    if isinstance(exc, InvalidAudioError):
        return exc.reason
    if isinstance(exc, InvalidOptionError):
        return "invalid_option"
    return None


async def abort_with_status(
    context: grpc.aio.ServicerContext, exc: Exception, metrics: ServiceMetrics
) -> NoReturn:
    """End the call with the status of ``exc``; never returns."""
    code = status_code(exc)
    if isinstance(exc, StemserveError):
        reason = rejection_reason(exc)
        if reason is not None:
            metrics.rejected_inputs.labels(reason=reason).inc()
        if isinstance(exc, RetryLaterError):
            context.set_trailing_metadata(((RETRY_AFTER_KEY, f"{exc.retry_after_s:g}"),))
        log.info("request failed with %s: %s", code.name, exc)
        await context.abort(code, str(exc))
    log.error("unexpected error while serving a request", exc_info=exc)
    await context.abort(code, INTERNAL_MESSAGE)
