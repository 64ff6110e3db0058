"""Wire options -> SeparationOptions, and exceptions -> gRPC statuses."""

import grpc
import pytest
from stemserve.client.client import options_to_proto
from stemserve.client.proto_gen import separation_pb2 as pb
from stemserve.core.errors import (
    AuthenticationError,
    BackendUnavailableError,
    DeadlineExceededError,
    InvalidAudioError,
    InvalidOptionError,
    ModelConfigError,
    ModelNotFoundError,
    ResourceExhaustedError,
    StemserveError,
)
from stemserve.core.model_config import ModelSpec
from stemserve.pipeline.options import SeparationOptions
from stemserve.server.messages import REMOVE_VOCALS, SPLIT_STEMS, model_info, options_from_proto
from stemserve.server.status import rejection_reason, status_code


def test_empty_options_get_each_rpcs_defaults():
    assert options_from_proto(SPLIT_STEMS, pb.SeparateOptions(), "dflt") == SeparationOptions(stems=4, model="dflt")
    assert options_from_proto(REMOVE_VOCALS, pb.SeparateOptions(), "dflt") == SeparationOptions(stems=2, model="dflt")


def test_every_field_is_translated():
    message = pb.SeparateOptions(stems=5, format=pb.AUDIO_FORMAT_FLAC, bit_depth=pb.BIT_DEPTH_24,
                                 sample_rate_hz=48_000, normalize=False, model="m", overlap=0.3)
    expected = SeparationOptions(stems=5, format="flac", bit_depth="24", sample_rate_hz=48_000, normalize=False,
                                 model="m", overlap=0.3)
    assert options_from_proto(SPLIT_STEMS, message, "dflt") == expected


@pytest.mark.parametrize("options", [
    SeparationOptions(stems=2, format="mp3", model="a"),
    SeparationOptions(stems=4, format="mp3", model="a", mp3_bitrate="v2"),
    SeparationOptions(stems=2, model="a", two_stems="drums"),
    SeparationOptions(stems=4, format="wav", bit_depth="float", sample_rate_hz=44_100, normalize=False, model="b"),
    SeparationOptions(stems=5, format="flac", bit_depth="24", overlap=0.45, model="c"),
])
def test_client_and_server_translations_round_trip(options):
    rpc = REMOVE_VOCALS if options.stems == 2 else SPLIT_STEMS
    assert options_from_proto(rpc, options_to_proto(vars(options)), "dflt") == options


@pytest.mark.parametrize("rpc,message,fragment", [
    (SPLIT_STEMS, pb.SeparateOptions(stems=2), "SplitStems makes (4, 5) stems, got stems=2; use RemoveVocals"),
    (REMOVE_VOCALS, pb.SeparateOptions(stems=5), "RemoveVocals makes (2,) stems, got stems=5; use SplitStems"),
    (SPLIT_STEMS, pb.SeparateOptions(stems=3), "got stems=3"),
    (SPLIT_STEMS, pb.SeparateOptions(format=7), "format must be one of [0, 1, 2, 3], not 7"),
    (SPLIT_STEMS, pb.SeparateOptions(bit_depth=9), "bit_depth must be one of [0, 1, 2, 3], not 9"),
    (SPLIT_STEMS, pb.SeparateOptions(sample_rate_hz=8_000), "sample_rate must be one of [44100, 48000], not 8000"),
    (SPLIT_STEMS, pb.SeparateOptions(model="../etc"), "model must be a model name"),
])
def test_bad_wire_options_say_what_was_expected(rpc, message, fragment):
    with pytest.raises(InvalidOptionError) as failure:
        options_from_proto(rpc, message, "dflt")
    assert fragment in str(failure.value)


def test_model_info_lists_the_presets_the_model_can_serve():
    spec = ModelSpec(name="m", stems=("vocals", "drums", "bass", "other"), sample_rate_hz=44_100,
                     segment_samples=4096, model_version="abc")
    info = model_info(spec, "gpu")
    assert list(info.presets) == [2, 4] and info.device == pb.DEVICE_GPU and info.model_version == "abc"
    two_stem = ModelSpec(name="v", stems=("vocals", "accompaniment"), sample_rate_hz=44_100, segment_samples=4096)
    assert list(model_info(two_stem, "cpu").presets) == [2]


class CustomAudioError(InvalidAudioError):
    pass


@pytest.mark.parametrize("exc,code", [
    (InvalidAudioError("x", reason="corrupt"), grpc.StatusCode.INVALID_ARGUMENT),
    (CustomAudioError("x"), grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidOptionError("x"), grpc.StatusCode.INVALID_ARGUMENT),
    (AuthenticationError("x"), grpc.StatusCode.UNAUTHENTICATED),
    (ResourceExhaustedError("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),
    (ModelNotFoundError("x"), grpc.StatusCode.NOT_FOUND),
    (BackendUnavailableError("x"), grpc.StatusCode.UNAVAILABLE),
    (DeadlineExceededError("x"), grpc.StatusCode.DEADLINE_EXCEEDED),
    (ModelConfigError("x"), grpc.StatusCode.FAILED_PRECONDITION),
    (StemserveError("x"), grpc.StatusCode.INTERNAL),
    (KeyError("x"), grpc.StatusCode.INTERNAL),
])
def test_each_error_has_one_status(exc, code):
    assert status_code(exc) == code


def test_rejection_reasons_are_the_bounded_labels():
    assert rejection_reason(InvalidAudioError("x", reason="too_long")) == "too_long"
    assert rejection_reason(InvalidOptionError("x")) == "invalid_option"
    assert rejection_reason(ModelNotFoundError("x")) is None
