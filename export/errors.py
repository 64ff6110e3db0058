"""Errors of the export path, under the one stemserve exception root.

A checkpoint that is not what the operator said it is must stop the export with a message
that says what was expected and what was found, never pass through silently.
"""

from stemserve.core.errors import ModelConfigError, StemserveError


class CheckpointError(ModelConfigError):
    """A checkpoint file is missing, unreadable, corrupt or of an unknown format."""


class ChecksumMismatchError(CheckpointError):
    """A checkpoint whose file name carries a sha256 prefix does not hash to it."""


class ArchitectureMismatchError(CheckpointError):
    """A readable checkpoint of another architecture than the one asked for."""


class ExportError(StemserveError):
    """The exported graph could not be built or fails its parity check."""


class TensorRTUnavailableError(ExportError):
    """A TensorRT engine was asked for where the tensorrt package is not installed."""


class DownloadError(StemserveError):
    """A model file could not be fetched (HTTP error, unreachable host, interrupted transfer)."""
