"""The CPU variant of a repository: same metadata, python backend, batching as asked."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from stemserve.core.errors import InvalidOptionError, ModelConfigError
from stemserve.core.model_config import load_model, parse_pbtxt
from stemserve.server.triton.process import TritonConfig, TritonProcess, free_ports
from stemserve.server.triton.repository import (
    MARKER,
    CpuVariantOptions,
    GpuVariantOptions,
    generate,
    main,
    render_python_config,
)

from tests.model_fixtures import write_mask_model


def one(message, key):
    return message[key][-1]


def test_variant_keeps_the_models_metadata(repo, tmp_path):
    target = tmp_path / "cpu"
    written = generate(repo, target, CpuVariantOptions(intra_op_threads=2, instance_count=3))
    assert written == ["half5", "identity5", "split4", "split5"]
    for name in written:
        source, variant = load_model(repo, name).spec, load_model(target, name).spec
        assert dataclasses.replace(variant, platform=source.platform) == source
        assert variant.platform == "python"
        assert (target / name / "1" / "model.onnx").resolve() == (repo / name / "1" / "model.onnx").resolve()
        assert (target / name / "1" / "model.py").read_text().startswith('"""Triton python-backend model')
        # the served session options are the in-process ones, file for file
        from stemserve.backends import session

        assert (target / name / "1" / "session.py").read_bytes() == Path(session.__file__).read_bytes()


def test_variant_config_has_batching_warmup_and_cpu_instances(repo):
    source = parse_pbtxt((repo / "split4" / "config.pbtxt").read_text())
    config = parse_pbtxt(render_python_config(source, CpuVariantOptions(intra_op_threads=2, instance_count=3)))
    assert one(config, "backend") == "python" and "platform" not in config
    assert one(config, "max_batch_size") == 4
    assert config["input"][0]["dims"] == [2, 4096]
    assert config["output"][0]["dims"] == [4, 2, 4096]
    group = one(config, "instance_group")
    assert (one(group, "kind"), one(group, "count")) == ("KIND_CPU", 3)
    batching = one(config, "dynamic_batching")
    assert one(batching, "max_queue_delay_microseconds") == 2000  # the source's own delay
    warmup = one(config, "model_warmup")
    assert one(warmup, "batch_size") == 4
    assert one(one(warmup, "inputs"), "value")["dims"] == [2, 4096]
    parameters = {one(p, "key"): one(one(p, "value"), "string_value") for p in config["parameters"]}
    assert parameters["stems"] == "vocals,drums,bass,other"
    assert parameters["intra_op_threads"] == "2"


def test_max_batch_size_one_turns_dynamic_batching_off(repo):
    source = parse_pbtxt((repo / "split5" / "config.pbtxt").read_text())
    config = parse_pbtxt(render_python_config(source, CpuVariantOptions(max_batch_size=1)))
    assert one(config, "max_batch_size") == 1
    assert "dynamic_batching" not in config
    assert one(one(config, "model_warmup"), "batch_size") == 1


def test_regenerating_replaces_the_previous_variant_only(repo, tmp_path):
    target = tmp_path / "cpu"
    generate(repo, target, CpuVariantOptions(models=("split4", "split5")))
    generate(repo, target, CpuVariantOptions(models=("identity5",)))
    assert sorted(p.name for p in target.iterdir()) == sorted([MARKER, "identity5"])
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("not generated")
    with pytest.raises(ModelConfigError, match="must be empty or a generated variant"):
        generate(repo, foreign)
    assert (foreign / "keep.txt").read_text() == "not generated"


def test_unknown_model_and_model_without_onnx(repo, tmp_path):
    with pytest.raises(ModelConfigError, match=r"models must be among .* not \['nope'\]"):
        generate(repo, tmp_path / "cpu", CpuVariantOptions(models=("nope",)))
    write_mask_model(tmp_path / "src", "planonly", [1.0, 0.0, 0.0, 0.0, 0.0])
    write_mask_model(tmp_path / "src", "kept", [1.0, 0.0, 0.0, 0.0, 0.0])
    (tmp_path / "src" / "planonly" / "1" / "model.onnx").unlink()
    assert generate(tmp_path / "src", tmp_path / "cpu2") == ["kept"]


@pytest.mark.parametrize("kwargs", [{"instance_count": 0}, {"intra_op_threads": -1}, {"max_batch_size": 0}])
def test_variant_options_are_validated(kwargs):
    with pytest.raises(ModelConfigError):
        CpuVariantOptions(**kwargs)


def test_process_config_validates_ports_and_picks_free_ones(tmp_path):
    with pytest.raises(InvalidOptionError, match="grpc_port must be within 0-65535, not 70000"):
        TritonConfig(model_repository=tmp_path, grpc_port=70000)
    process = TritonProcess(TritonConfig(model_repository=tmp_path, grpc_port=0, http_port=0, metrics_port=9100))
    ports = (process.config.grpc_port, process.config.http_port, process.config.metrics_port)
    assert 0 not in ports and ports[2] == 9100 and len(set(ports)) == 3
    assert process.grpc_url == f"127.0.0.1:{ports[0]}"  # 0.0.0.0 binds every interface; clients use loopback
    assert len(set(free_ports(5))) == 5
    assert process.stop() is None  # never started: nothing to stop


def test_gpu_variant_runs_the_onnx_on_gpus_with_the_tensorrt_accelerator(repo, tmp_path):
    options = GpuVariantOptions(gpus=(0, 1), instances_per_gpu=2, models=("split4",))
    assert generate(repo, tmp_path / "gpu", options) == ["split4"]
    config = parse_pbtxt((tmp_path / "gpu" / "split4" / "config.pbtxt").read_text())
    assert one(config, "platform") == "onnxruntime_onnx" and "backend" not in config
    group = one(config, "instance_group")
    assert (one(group, "kind"), one(group, "count"), group["gpus"]) == ("KIND_GPU", 2, [0, 1])
    accelerator = one(one(one(config, "optimization"), "execution_accelerators"), "gpu_execution_accelerator")
    settings = {one(p, "key"): one(p, "value") for p in accelerator["parameters"]}
    assert one(accelerator, "name") == "tensorrt"
    assert settings["precision_mode"] == "FP16" and settings["trt_engine_cache_enable"] == "true"
    assert one(one(config, "dynamic_batching"), "max_queue_delay_microseconds") == 2000
    spec, source = load_model(tmp_path / "gpu", "split4").spec, load_model(repo, "split4").spec
    assert dataclasses.replace(spec, platform=source.platform) == source
    model_file = tmp_path / "gpu" / "split4" / "1" / "model.onnx"
    assert not model_file.is_symlink()  # mounted into a container: a real file
    assert model_file.read_bytes() == (repo / "split4" / "1" / "model.onnx").read_bytes()


def test_gpu_variant_serves_a_tensorrt_engine_as_a_plan(repo, tmp_path):
    version = repo / "split5" / "1"
    (version / "model.plan").write_bytes(b"engine bytes")
    (version / "model.onnx").unlink()
    generate(repo, tmp_path / "gpu", GpuVariantOptions(models=("split5",)))
    config = parse_pbtxt((tmp_path / "gpu" / "split5" / "config.pbtxt").read_text())
    assert one(config, "platform") == "tensorrt_plan"
    assert "optimization" not in config
    assert (tmp_path / "gpu" / "split5" / "1" / "model.plan").read_bytes() == b"engine bytes"


def test_variant_command_writes_the_gpu_variant(repo, tmp_path):
    assert main(["gpu", str(repo), str(tmp_path / "gpu"), "--gpus", "0,1", "--no-tensorrt", "--models", "half5"]) == 0
    config = parse_pbtxt((tmp_path / "gpu" / "half5" / "config.pbtxt").read_text())
    assert one(one(config, "instance_group"), "gpus") == 1 and "optimization" not in config
    assert main(["gpu", str(repo), str(tmp_path / "gpu"), "--models", "nope"]) == 2
