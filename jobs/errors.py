"""The jobs system's errors: subclasses of ``core/errors.py``'s classes, so that
``server/status.py`` (the one boundary) gives each its gRPC status.

Whether a failed attempt is worth another one is decided here too (:func:`is_retryable`):
the store or the backend being down, a download failing or the broker timing out are;
bad input, bad options, an unknown model are not.
"""

from __future__ import annotations

from stemserve.core.errors import (
    BackendUnavailableError,
    DeadlineExceededError,
    FailedPreconditionError,
    NotFoundError,
    StemserveError,
)
from stemserve.jobs.broker import BrokerUnavailable


class JobNotFoundError(NotFoundError):
    """No job (or stem, or upload) of that id for this caller."""


class JobStateError(FailedPreconditionError):
    """The job is not in a state that allows the call (stems of an unfinished job...)."""


class StoreUnavailableError(BackendUnavailableError):
    """The object store did not answer (or failed) after its retries."""


class InputUnavailableError(BackendUnavailableError):
    """The job's input URL could not be fetched (yet)."""


RETRYABLE = (BackendUnavailableError, BrokerUnavailable, OSError, TimeoutError)


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, DeadlineExceededError):
        return False
    return isinstance(exc, RETRYABLE)


def error_code(exc: BaseException) -> str:
    """A short stable code for the job record: the error class's name without ``Error``."""
    name = type(exc).__name__
    if isinstance(exc, BrokerUnavailable):
        return "BrokerUnavailable"
    if not isinstance(exc, StemserveError):
        return "Internal" if not isinstance(exc, OSError | TimeoutError) else "IOError"
    return name.removesuffix("Error")
