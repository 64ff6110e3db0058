import pytest
from stemserve.core.errors import ModelConfigError, ModelNotFoundError
from stemserve.core.model_config import ModelSpec, load_model, parse_pbtxt, render_config, spec_from_config

TRITON_STYLE = """
name: "demo"  # a comment
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "mix" data_type: TYPE_FP32 dims: [ 2, 1024 ] } ]
output [
  { name: "stems", data_type: TYPE_FP32, dims: [4, 2, 1024] }
]
dynamic_batching { max_queue_delay_microseconds: 100 }
parameters { key: "stems" value: { string_value: "vocals,drums,bass,other" } }
parameters: { key: "sample_rate" value: { string_value: "44100" } }
parameters { key: "segment_samples" value { string_value: "1024" } }
parameters { key: "default_overlap" value { string_value: "0.5" } }
"""


def test_parses_triton_style_config():
    config = parse_pbtxt(TRITON_STYLE)
    assert config["input"][0]["dims"] == [2, 1024]
    assert config["dynamic_batching"][0]["max_queue_delay_microseconds"] == [100]
    spec = spec_from_config(config)
    assert spec == ModelSpec(
        name="demo",
        stems=("vocals", "drums", "bass", "other"),
        sample_rate_hz=44100,
        segment_samples=1024,
        default_overlap=0.5,
        max_batch_size=8,
    )


def test_render_then_parse_round_trips():
    spec = ModelSpec(
        name="m",
        stems=("vocals", "other"),
        sample_rate_hz=48000,
        segment_samples=4096,
        default_overlap=0.3,
        model_version="abc123",
        architecture="x",
        license="MIT",
        max_batch_size=2,
        onnxruntime_config={"session.disable_prepacking": "1"},
    )
    assert spec_from_config(parse_pbtxt(render_config(spec))) == spec


def test_missing_parameters_are_named():
    with pytest.raises(ModelConfigError, match=r"missing \['segment_samples'\]"):
        spec_from_config(parse_pbtxt(TRITON_STYLE.replace("segment_samples", "segment")))


def test_malformed_config_is_a_clear_error():
    with pytest.raises(ModelConfigError, match="missing '}'"):
        parse_pbtxt('name: "x" parameters { key: "a"')


def test_unknown_model_lists_the_available_ones(repo):
    with pytest.raises(
        ModelNotFoundError, match=r"model must be one of \['half5', 'identity5', 'split4', 'split5'\], not 'nope'"
    ):
        load_model(repo, "nope")


@pytest.mark.parametrize(("edit", "fragment"), [
    (lambda text: text.replace('"44100"', '"44.1k"'), "bad numeric parameter"),
    (lambda text: text.replace('"0.25"', '"0.9"'), "default_overlap must be within 0.25-0.5"),
    (lambda text: text + 'parameters { key: "onnxruntime_session_config" value: { string_value: "nonsense" } }\n',
     "onnxruntime_session_config must be key=value"),
])
def test_a_bad_config_value_is_a_model_config_error_never_a_bare_one(repo, edit, fragment):
    """Whatever is wrong in a model's folder surfaces as ModelConfigError (a StemserveError,
    so the service answers with its status), never as a ValueError or onnxruntime's own."""
    from stemserve.backends.local import LocalBackend

    config = repo / "split5" / "config.pbtxt"
    config.write_text(edit(config.read_text()))
    with pytest.raises(ModelConfigError, match=fragment):
        LocalBackend(load_model(repo, "split5"))


def test_a_corrupt_model_file_is_a_model_config_error(repo):
    from stemserve.backends.local import LocalBackend

    (repo / "split5" / "1" / "model.onnx").write_bytes(b"not a graph" * 100)
    with pytest.raises(ModelConfigError, match="ONNX Runtime cannot load .*model.onnx"):
        LocalBackend(load_model(repo, "split5"))
