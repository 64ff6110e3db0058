"""The one exception root of stemserve and its subclasses.

Each subclass maps to exactly one gRPC status at the service boundary
(``server/status.py``); library code raises these and nothing else for caller errors.
"""


class StemserveError(Exception):
    """Root of every error stemserve raises on purpose."""


class InvalidAudioError(StemserveError):
    """The upload is not usable audio (empty, not audio, corrupt, NaN, too long...)."""

    def __init__(self, message: str, *, reason: str = "invalid_audio") -> None:
        super().__init__(message)
        self.reason = reason  # bounded label value for metrics


class InvalidOptionError(StemserveError):
    """A request option is out of range (stems, format, sample rate, overlap...)."""


class ModelNotFoundError(StemserveError):
    """No model of that name in the model repository."""


class ModelConfigError(StemserveError):
    """A model's config.pbtxt is missing, malformed or breaks the model contract."""


class AuthenticationError(StemserveError):
    """Missing or wrong credentials."""


class ResourceExhaustedError(StemserveError):
    """A per-key or global limit was reached."""


class BackendUnavailableError(StemserveError):
    """The inference backend stayed down after retries."""


class DeadlineExceededError(StemserveError):
    """The caller's deadline passed before the work finished."""


class RetryLaterError(ResourceExhaustedError):
    """A limit that frees up by itself (a full queue, a key's running jobs): retry after
    ``retry_after_s`` seconds (sent as the ``retry-after-s`` trailing metadata)."""

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class NotFoundError(StemserveError):
    """No object of that id for this caller (a job, an upload, a stem)."""


class FailedPreconditionError(StemserveError):
    """The object is not in a state that allows the call (stems of an unfinished job...)."""
