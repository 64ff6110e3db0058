"""Translate between the protobuf messages of the API and stemserve's own types.

Only this module and the client know the wire format's enums; the rest of the server works
with ``SeparationOptions`` and ``SeparationRecord``.
"""

from __future__ import annotations

from stemserve.client.proto_gen import separation_pb2 as pb
from stemserve.client.records import SeparationRecord
from stemserve.client.wire import BIT_DEPTH_FROM_WIRE, DEVICE_TO_WIRE, FORMAT_FROM_WIRE
from stemserve.core.errors import InvalidOptionError
from stemserve.core.model_config import ModelSpec
from stemserve.core.presets import PRESETS, resolve
from stemserve.pipeline.options import SeparationOptions

REMOVE_VOCALS = "RemoveVocals"
SPLIT_STEMS = "SplitStems"
RPC_STEMS = {REMOVE_VOCALS: (2,), SPLIT_STEMS: (4, 5)}  # first: the default when stems is 0



def options_from_proto(rpc: str, message: pb.SeparateOptions, default_model: str) -> SeparationOptions:
    allowed = RPC_STEMS[rpc]
    stems = message.stems or allowed[0]
    if stems not in allowed:
        other = REMOVE_VOCALS if stems == 2 else SPLIT_STEMS
        raise InvalidOptionError(f"{rpc} makes {allowed} stems, got stems={stems}; use {other} for that")
    if message.format not in FORMAT_FROM_WIRE:
        raise InvalidOptionError(f"format must be one of {sorted(FORMAT_FROM_WIRE)}, not {message.format}")
    if message.bit_depth not in BIT_DEPTH_FROM_WIRE:
        raise InvalidOptionError(f"bit_depth must be one of {sorted(BIT_DEPTH_FROM_WIRE)}, not {message.bit_depth}")
    return SeparationOptions(
        stems=stems,
        format=FORMAT_FROM_WIRE[message.format],
        bit_depth=BIT_DEPTH_FROM_WIRE[message.bit_depth],
        sample_rate_hz=message.sample_rate_hz or None,
        normalize=message.normalize if message.HasField("normalize") else True,
        model=message.model or default_model,
        # float32 on the wire: 0.3 arrives as 0.30000001...; six digits restore what was sent
        overlap=round(message.overlap, 6) if message.HasField("overlap") else None,
        **({"mp3_bitrate": message.mp3_bitrate} if message.mp3_bitrate else {}),
        two_stems=message.two_stems or None,
    )


def result_to_proto(record: SeparationRecord, *, cache_hit: bool, runtime_seconds: float | None = None
                    ) -> pb.SeparationResult:
    info = record.input
    return pb.SeparationResult(
        model_name=record.model_name,
        model_version=record.model_version,
        runtime_seconds=record.runtime_seconds if runtime_seconds is None else runtime_seconds,
        device=DEVICE_TO_WIRE.get(record.device, pb.DEVICE_UNSPECIFIED),
        audio_seconds=record.audio_seconds,
        cache_hit=cache_hit,
        warnings=record.warnings,
        stems=[
            pb.StemInfo(name=s.name, sample_rate_hz=s.sample_rate_hz, nb_frames=s.nb_frames,
                        format=s.format, nb_bytes=s.nb_bytes)
            for s in record.stems
        ],
        input=pb.InputInfo(duration_s=info["duration_s"], sample_rate_hz=info["sample_rate_hz"],
                           channels=info["channels"], format=info["format"], subtype=info["subtype"],
                           bytes=info["bytes"]),
    )


def model_info(spec: ModelSpec, device: str) -> pb.ModelInfo:
    presets = []
    for nb_stems in PRESETS:
        try:
            resolve(nb_stems, spec.stems, spec.name)
        except InvalidOptionError:
            continue
        presets.append(nb_stems)
    return pb.ModelInfo(
        name=spec.name, stems=list(spec.stems), model_version=spec.model_version,
        sample_rate_hz=spec.sample_rate_hz, segment_samples=spec.segment_samples,
        architecture=spec.architecture, license=spec.license, presets=presets,
        device=DEVICE_TO_WIRE.get(device, pb.DEVICE_UNSPECIFIED),
    )
