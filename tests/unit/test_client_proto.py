"""The committed stubs are exactly what ``python -m stemserve.client.gen_proto`` makes from the proto."""

from pathlib import Path

from stemserve.client.gen_proto import DEFAULT_OUT, generate, generated_names


def test_generated_stubs_are_not_stale(tmp_path):
    written = generate(tmp_path)
    assert sorted(p.name for p in written) == sorted(("__init__.py", *generated_names()))
    assert "separation_pb2_grpc.py" in generated_names()
    for path in written:
        committed = DEFAULT_OUT / path.name
        assert committed.read_text() == path.read_text(), (
            f"{committed} is stale: run python -m stemserve.client.gen_proto"
        )


def test_stubs_import_each_other_from_the_package():
    grpc_stub = (DEFAULT_OUT / "separation_pb2_grpc.py").read_text()
    assert "from stemserve.client.proto_gen import separation_pb2 as" in grpc_stub
    assert "from stemserve.v1" not in grpc_stub
    assert Path(DEFAULT_OUT / "separation_pb2.py").read_text().count("stemserve/v1/separation.proto") >= 1
