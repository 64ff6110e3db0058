"""The wire enums of ``stemserve.v1`` and stemserve's own names for them, both ways: the one
place the client and the service translate formats, bit depths and devices."""

from __future__ import annotations

from stemserve.client.proto_gen import separation_pb2 as pb

FORMAT_TO_WIRE = {"wav": pb.AUDIO_FORMAT_WAV, "flac": pb.AUDIO_FORMAT_FLAC, "mp3": pb.AUDIO_FORMAT_MP3}
FORMAT_FROM_WIRE = {pb.AUDIO_FORMAT_UNSPECIFIED: "wav", **{v: k for k, v in FORMAT_TO_WIRE.items()}}
BIT_DEPTH_TO_WIRE = {"16": pb.BIT_DEPTH_16, "24": pb.BIT_DEPTH_24, "float": pb.BIT_DEPTH_FLOAT}
BIT_DEPTH_FROM_WIRE = {pb.BIT_DEPTH_UNSPECIFIED: "16", **{v: k for k, v in BIT_DEPTH_TO_WIRE.items()}}
DEVICE_TO_WIRE = {"cpu": pb.DEVICE_CPU, "gpu": pb.DEVICE_GPU}
DEVICE_FROM_WIRE = {pb.DEVICE_UNSPECIFIED: "unknown", **{v: k for k, v in DEVICE_TO_WIRE.items()}}
