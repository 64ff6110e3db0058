"""Process-wide settings, built once at the entry point from flags and ``STEMSERVE_*``
environment variables (flags win). Unknown ``STEMSERVE_*`` variables are an error."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from stemserve.core.errors import InvalidOptionError

ENV_PREFIX = "STEMSERVE_"
# the default model ships with the package: model_repository/ in a checkout, stemserve/model_repository in a wheel
BUNDLED_REPOSITORY = Path(__file__).resolve().parents[1] / "model_repository"
# where ``stemserve models pull`` installs published models, searched before the bundled one
USER_REPOSITORY = Path.home() / ".local" / "share" / "stemserve" / "models"
DEFAULT_REPOSITORIES = (USER_REPOSITORY, BUNDLED_REPOSITORY)


@dataclass(frozen=True, kw_only=True)
class Settings:
    # where models are looked up, in order: STEMSERVE_MODEL_REPOSITORY / --model-repository are folders
    # separated by os.pathsep, an empty entry standing for the default ones ("DIR:" adds DIR first,
    # "DIR" replaces them)
    model_repository: tuple[Path, ...] = DEFAULT_REPOSITORIES
    max_upload_bytes: int = 2 * 1024**3  # 3 hours of 16-bit stereo wav at 44.1 kHz fit
    max_duration_s: float = 3 * 3600.0
    intra_op_threads: int = 0  # 0: onnxruntime picks (all cores)
    # gRPC server (stemserve serve)
    host: str = "[::]"
    port: int = 50051  # 0: a free port
    metrics_port: int = 9464  # Prometheus exposition; 0: a free port
    models: str = ""  # comma-separated model names to load and serve; empty: every model
    api_keys_file: Path | None = None  # hashed API keys; None: no authentication
    max_songs_in_flight: int = 4  # global
    max_songs_per_key: int = 2
    cache_dir: Path = Path.home() / ".cache" / "stemserve" / "results"
    cache_max_bytes: int = 2 * 1024**3  # 0: no result cache
    tls_cert: Path | None = None
    tls_key: Path | None = None
    shutdown_grace_s: float = 30.0  # time requests in flight get to finish on shutdown
    triton_url: str = ""  # HOST:PORT of a Triton server to run the models on; empty: ONNX Runtime here
    # separation jobs (stemserve serve --jobs, stemserve worker): queue, store, workers, limits
    nats_url: str = ""  # NATS servers, comma-separated; empty: a local nats-server under cache_dir (embedded)
    nats_replicas: int = 1  # replicas of the job streams and KV (3 on a 3-node cluster)
    s3_endpoint: str = ""  # S3 API endpoint for uploads and stems; empty: a local folder under cache_dir
    s3_bucket: str = "stemserve"
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_region: str = "us-east-1"
    job_lease_s: float = 30.0  # a job not heartbeated for this long is redelivered to another worker
    job_max_attempts: int = 3  # attempts before a job is FAILED and dead-lettered
    job_timeout_s: float = 3600.0  # default deadline of a job, from its submission
    max_queued_per_key: int = 100
    max_running_per_key: int = 4
    max_queued_jobs: int = 10000  # global bound on the queue
    worker_concurrency: int = 1  # jobs a worker process runs at once
    webhook_secret: str = ""  # signs webhooks (Standard Webhooks, whsec_ base64 or raw text)
    stem_url_ttl_s: int = 3600  # lifetime of presigned stem URLs
    # gRPC client (stemserve separate --server)
    api_key: str = ""
    server_ca: Path | None = None  # PEM certificates to verify the server by: turns TLS on

    def __post_init__(self) -> None:
        if self.max_upload_bytes <= 0:
            raise InvalidOptionError(f"max_upload_bytes must be > 0, not {self.max_upload_bytes}")
        if self.max_duration_s <= 0:
            raise InvalidOptionError(f"max_duration_s must be > 0, not {self.max_duration_s}")
        if self.intra_op_threads < 0:
            raise InvalidOptionError(f"intra_op_threads must be >= 0, not {self.intra_op_threads}")
        for name in ("port", "metrics_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise InvalidOptionError(f"{name} must be within 0-65535, not {getattr(self, name)}")
        for name in ("max_songs_in_flight", "max_songs_per_key"):
            if getattr(self, name) < 1:
                raise InvalidOptionError(f"{name} must be >= 1, not {getattr(self, name)}")
        if self.cache_max_bytes < 0:
            raise InvalidOptionError(f"cache_max_bytes must be >= 0, not {self.cache_max_bytes}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise InvalidOptionError(
                f"tls_cert and tls_key must be given together, got cert={self.tls_cert} key={self.tls_key}"
            )
        if self.shutdown_grace_s < 0:
            raise InvalidOptionError(f"shutdown_grace_s must be >= 0, not {self.shutdown_grace_s}")

    @property
    def model_names(self) -> list[str]:
        return [name.strip() for name in self.models.split(",") if name.strip()]

    @classmethod
    def load(cls, overrides: Mapping[str, object] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for key, raw in environ.items():
            if not key.startswith(ENV_PREFIX):
                continue
            name = key[len(ENV_PREFIX) :].lower()
            if name not in _CONVERTERS:
                expected = sorted(ENV_PREFIX + n.upper() for n in _CONVERTERS)
                raise InvalidOptionError(f"unknown setting {key}; expected one of {expected}")
            values[name] = raw
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        converted: dict[str, object] = {}
        for name, value in values.items():
            convert = _CONVERTERS[name]
            try:
                converted[name] = convert(value)
            except (TypeError, ValueError) as exc:
                raise InvalidOptionError(f"setting {name} must be a {convert.__name__}, not {value!r}") from exc
        return cls(**converted)


def repositories(value: object) -> tuple[Path, ...]:
    """A search path of model repositories from a setting's value (see ``Settings.model_repository``)."""
    if isinstance(value, tuple):
        return tuple(Path(v) for v in value)
    if isinstance(value, Path):
        return (value,)
    entries = str(value).split(os.pathsep)
    return tuple(path for entry in entries for path in ((Path(entry),) if entry else DEFAULT_REPOSITORIES))


_TYPES = {"Path": Path, "Path | None": Path, "int": int, "float": float, "str": str,
          "tuple[Path, ...]": repositories}
_CONVERTERS = {f.name: _TYPES[str(f.type)] for f in fields(Settings)}
