# ruff: noqa
# fmt: off
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AudioFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIO_FORMAT_UNSPECIFIED: _ClassVar[AudioFormat]
    AUDIO_FORMAT_WAV: _ClassVar[AudioFormat]
    AUDIO_FORMAT_FLAC: _ClassVar[AudioFormat]
    AUDIO_FORMAT_MP3: _ClassVar[AudioFormat]

class BitDepth(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BIT_DEPTH_UNSPECIFIED: _ClassVar[BitDepth]
    BIT_DEPTH_16: _ClassVar[BitDepth]
    BIT_DEPTH_24: _ClassVar[BitDepth]
    BIT_DEPTH_FLOAT: _ClassVar[BitDepth]

class Device(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEVICE_UNSPECIFIED: _ClassVar[Device]
    DEVICE_CPU: _ClassVar[Device]
    DEVICE_GPU: _ClassVar[Device]
AUDIO_FORMAT_UNSPECIFIED: AudioFormat
AUDIO_FORMAT_WAV: AudioFormat
AUDIO_FORMAT_FLAC: AudioFormat
AUDIO_FORMAT_MP3: AudioFormat
BIT_DEPTH_UNSPECIFIED: BitDepth
BIT_DEPTH_16: BitDepth
BIT_DEPTH_24: BitDepth
BIT_DEPTH_FLOAT: BitDepth
DEVICE_UNSPECIFIED: Device
DEVICE_CPU: Device
DEVICE_GPU: Device

class SeparateOptions(_message.Message):
    __slots__ = ("stems", "format", "bit_depth", "sample_rate_hz", "normalize", "model", "overlap", "mp3_bitrate", "two_stems")
    STEMS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    BIT_DEPTH_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    NORMALIZE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    MP3_BITRATE_FIELD_NUMBER: _ClassVar[int]
    TWO_STEMS_FIELD_NUMBER: _ClassVar[int]
    stems: int
    format: AudioFormat
    bit_depth: BitDepth
    sample_rate_hz: int
    normalize: bool
    model: str
    overlap: float
    mp3_bitrate: str
    two_stems: str
    def __init__(self, stems: _Optional[int] = ..., format: _Optional[_Union[AudioFormat, str]] = ..., bit_depth: _Optional[_Union[BitDepth, str]] = ..., sample_rate_hz: _Optional[int] = ..., normalize: _Optional[bool] = ..., model: _Optional[str] = ..., overlap: _Optional[float] = ..., mp3_bitrate: _Optional[str] = ..., two_stems: _Optional[str] = ...) -> None: ...

class SeparateRequest(_message.Message):
    __slots__ = ("options", "audio_chunk")
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CHUNK_FIELD_NUMBER: _ClassVar[int]
    options: SeparateOptions
    audio_chunk: bytes
    def __init__(self, options: _Optional[_Union[SeparateOptions, _Mapping]] = ..., audio_chunk: _Optional[bytes] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("windows_done", "windows_total")
    WINDOWS_DONE_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    windows_done: int
    windows_total: int
    def __init__(self, windows_done: _Optional[int] = ..., windows_total: _Optional[int] = ...) -> None: ...

class StemChunk(_message.Message):
    __slots__ = ("stem", "data", "offset")
    STEM_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    stem: str
    data: bytes
    offset: int
    def __init__(self, stem: _Optional[str] = ..., data: _Optional[bytes] = ..., offset: _Optional[int] = ...) -> None: ...

class StemInfo(_message.Message):
    __slots__ = ("name", "sample_rate_hz", "nb_frames", "format", "nb_bytes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    NB_FRAMES_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    NB_BYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    sample_rate_hz: int
    nb_frames: int
    format: str
    nb_bytes: int
    def __init__(self, name: _Optional[str] = ..., sample_rate_hz: _Optional[int] = ..., nb_frames: _Optional[int] = ..., format: _Optional[str] = ..., nb_bytes: _Optional[int] = ...) -> None: ...

class InputInfo(_message.Message):
    __slots__ = ("duration_s", "sample_rate_hz", "channels", "format", "subtype", "bytes")
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SUBTYPE_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    duration_s: float
    sample_rate_hz: int
    channels: int
    format: str
    subtype: str
    bytes: int
    def __init__(self, duration_s: _Optional[float] = ..., sample_rate_hz: _Optional[int] = ..., channels: _Optional[int] = ..., format: _Optional[str] = ..., subtype: _Optional[str] = ..., bytes: _Optional[int] = ...) -> None: ...

class SeparationResult(_message.Message):
    __slots__ = ("model_name", "model_version", "runtime_seconds", "device", "audio_seconds", "cache_hit", "warnings", "stems", "input")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    STEMS_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    runtime_seconds: float
    device: Device
    audio_seconds: float
    cache_hit: bool
    warnings: _containers.RepeatedScalarFieldContainer[str]
    stems: _containers.RepeatedCompositeFieldContainer[StemInfo]
    input: InputInfo
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., runtime_seconds: _Optional[float] = ..., device: _Optional[_Union[Device, str]] = ..., audio_seconds: _Optional[float] = ..., cache_hit: _Optional[bool] = ..., warnings: _Optional[_Iterable[str]] = ..., stems: _Optional[_Iterable[_Union[StemInfo, _Mapping]]] = ..., input: _Optional[_Union[InputInfo, _Mapping]] = ...) -> None: ...

class SeparateResponse(_message.Message):
    __slots__ = ("progress", "stem_chunk", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    STEM_CHUNK_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: Progress
    stem_chunk: StemChunk
    result: SeparationResult
    def __init__(self, progress: _Optional[_Union[Progress, _Mapping]] = ..., stem_chunk: _Optional[_Union[StemChunk, _Mapping]] = ..., result: _Optional[_Union[SeparationResult, _Mapping]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "stems", "model_version", "sample_rate_hz", "segment_samples", "architecture", "license", "presets", "device")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STEMS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    PRESETS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    name: str
    stems: _containers.RepeatedScalarFieldContainer[str]
    model_version: str
    sample_rate_hz: int
    segment_samples: int
    architecture: str
    license: str
    presets: _containers.RepeatedScalarFieldContainer[int]
    device: Device
    def __init__(self, name: _Optional[str] = ..., stems: _Optional[_Iterable[str]] = ..., model_version: _Optional[str] = ..., sample_rate_hz: _Optional[int] = ..., segment_samples: _Optional[int] = ..., architecture: _Optional[str] = ..., license: _Optional[str] = ..., presets: _Optional[_Iterable[int]] = ..., device: _Optional[_Union[Device, str]] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "default_model")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MODEL_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    default_model: str
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., default_model: _Optional[str] = ...) -> None: ...
