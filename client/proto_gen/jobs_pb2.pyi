# ruff: noqa
# fmt: off
from stemserve.client.proto_gen import separation_pb2 as _separation_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATUS_UNSPECIFIED: _ClassVar[JobStatus]
    JOB_STATUS_QUEUED: _ClassVar[JobStatus]
    JOB_STATUS_RUNNING: _ClassVar[JobStatus]
    JOB_STATUS_SUCCEEDED: _ClassVar[JobStatus]
    JOB_STATUS_FAILED: _ClassVar[JobStatus]
    JOB_STATUS_CANCELED: _ClassVar[JobStatus]
    JOB_STATUS_EXPIRED: _ClassVar[JobStatus]
JOB_STATUS_UNSPECIFIED: JobStatus
JOB_STATUS_QUEUED: JobStatus
JOB_STATUS_RUNNING: JobStatus
JOB_STATUS_SUCCEEDED: JobStatus
JOB_STATUS_FAILED: JobStatus
JOB_STATUS_CANCELED: JobStatus
JOB_STATUS_EXPIRED: JobStatus

class UploadAudioRequest(_message.Message):
    __slots__ = ("chunk",)
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    chunk: bytes
    def __init__(self, chunk: _Optional[bytes] = ...) -> None: ...

class UploadAudioResponse(_message.Message):
    __slots__ = ("upload_id", "audio_sha256", "nb_bytes")
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    AUDIO_SHA256_FIELD_NUMBER: _ClassVar[int]
    NB_BYTES_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    audio_sha256: str
    nb_bytes: int
    def __init__(self, upload_id: _Optional[str] = ..., audio_sha256: _Optional[str] = ..., nb_bytes: _Optional[int] = ...) -> None: ...

class CreateUploadRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateUploadResponse(_message.Message):
    __slots__ = ("upload_id", "put_url", "expires_at_unix_s")
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    PUT_URL_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    put_url: str
    expires_at_unix_s: float
    def __init__(self, upload_id: _Optional[str] = ..., put_url: _Optional[str] = ..., expires_at_unix_s: _Optional[float] = ...) -> None: ...

class JobInput(_message.Message):
    __slots__ = ("upload_id", "url", "audio_sha256")
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    AUDIO_SHA256_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    url: str
    audio_sha256: str
    def __init__(self, upload_id: _Optional[str] = ..., url: _Optional[str] = ..., audio_sha256: _Optional[str] = ...) -> None: ...

class Webhook(_message.Message):
    __slots__ = ("url", "events")
    URL_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    url: str
    events: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, url: _Optional[str] = ..., events: _Optional[_Iterable[str]] = ...) -> None: ...

class SubmitJobRequest(_message.Message):
    __slots__ = ("idempotency_key", "input", "options", "model_version", "webhook", "metadata", "timeout_s")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    input: JobInput
    options: _separation_pb2.SeparateOptions
    model_version: str
    webhook: Webhook
    metadata: _containers.ScalarMap[str, str]
    timeout_s: float
    def __init__(self, idempotency_key: _Optional[str] = ..., input: _Optional[_Union[JobInput, _Mapping]] = ..., options: _Optional[_Union[_separation_pb2.SeparateOptions, _Mapping]] = ..., model_version: _Optional[str] = ..., webhook: _Optional[_Union[Webhook, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., timeout_s: _Optional[float] = ...) -> None: ...

class SubmitJobResponse(_message.Message):
    __slots__ = ("job", "created")
    JOB_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    job: Job
    created: bool
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class JobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class JobError(_message.Message):
    __slots__ = ("code", "message", "retryable")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    retryable: bool
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., retryable: _Optional[bool] = ...) -> None: ...

class JobStem(_message.Message):
    __slots__ = ("name", "format", "sample_rate_hz", "nb_frames", "nb_bytes", "sha256", "url", "url_expires_at_unix_s")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    NB_FRAMES_FIELD_NUMBER: _ClassVar[int]
    NB_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    URL_EXPIRES_AT_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    name: str
    format: str
    sample_rate_hz: int
    nb_frames: int
    nb_bytes: int
    sha256: str
    url: str
    url_expires_at_unix_s: float
    def __init__(self, name: _Optional[str] = ..., format: _Optional[str] = ..., sample_rate_hz: _Optional[int] = ..., nb_frames: _Optional[int] = ..., nb_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., url: _Optional[str] = ..., url_expires_at_unix_s: _Optional[float] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "status", "progress", "attempt", "max_attempts", "created_at_unix_s", "started_at_unix_s", "finished_at_unix_s", "deadline_unix_s", "model_name", "model_version", "device", "runtime_seconds", "audio_seconds", "cache_hit", "warnings", "error", "stems", "metadata", "audio_sha256", "idempotency_key", "updated_at_unix_s")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STEMS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    AUDIO_SHA256_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    id: str
    status: JobStatus
    progress: float
    attempt: int
    max_attempts: int
    created_at_unix_s: float
    started_at_unix_s: float
    finished_at_unix_s: float
    deadline_unix_s: float
    model_name: str
    model_version: str
    device: _separation_pb2.Device
    runtime_seconds: float
    audio_seconds: float
    cache_hit: bool
    warnings: _containers.RepeatedScalarFieldContainer[str]
    error: JobError
    stems: _containers.RepeatedCompositeFieldContainer[JobStem]
    metadata: _containers.ScalarMap[str, str]
    audio_sha256: str
    idempotency_key: str
    updated_at_unix_s: float
    def __init__(self, id: _Optional[str] = ..., status: _Optional[_Union[JobStatus, str]] = ..., progress: _Optional[float] = ..., attempt: _Optional[int] = ..., max_attempts: _Optional[int] = ..., created_at_unix_s: _Optional[float] = ..., started_at_unix_s: _Optional[float] = ..., finished_at_unix_s: _Optional[float] = ..., deadline_unix_s: _Optional[float] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., device: _Optional[_Union[_separation_pb2.Device, str]] = ..., runtime_seconds: _Optional[float] = ..., audio_seconds: _Optional[float] = ..., cache_hit: _Optional[bool] = ..., warnings: _Optional[_Iterable[str]] = ..., error: _Optional[_Union[JobError, _Mapping]] = ..., stems: _Optional[_Iterable[_Union[JobStem, _Mapping]]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., audio_sha256: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., updated_at_unix_s: _Optional[float] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("event_id", "type", "job")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    type: str
    job: Job
    def __init__(self, event_id: _Optional[str] = ..., type: _Optional[str] = ..., job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteJobResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReadStemRequest(_message.Message):
    __slots__ = ("job_id", "stem", "offset")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STEM_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    stem: str
    offset: int
    def __init__(self, job_id: _Optional[str] = ..., stem: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...

class StemData(_message.Message):
    __slots__ = ("data", "offset", "total_bytes")
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    offset: int
    total_bytes: int
    def __init__(self, data: _Optional[bytes] = ..., offset: _Optional[int] = ..., total_bytes: _Optional[int] = ...) -> None: ...
