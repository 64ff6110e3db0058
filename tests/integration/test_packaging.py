"""What a new user installs: the wheels' contents, and each wheel alone in a fresh venv.

- ``stemserve``: one top-level name, the default model inside; ``pip install`` of the wheel,
  then ``stemserve separate`` from an unrelated folder works.
- ``stemserve-client`` (``client/``): grpcio + protobuf only; it separates a song on a
  running server, sync and asyncio, without numpy ever being imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import venv
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import tone_mix
from tests.integration import test_service_support as support

ROOT = Path(__file__).resolve().parents[2]
start_server = support.start_server  # the fixture, shared


def build_wheel(source: Path, out: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(source)], check=True, capture_output=True, cwd=out)
    return next(out.glob("*.whl"))


def fresh_venv(path: Path, *requirements: str) -> Path:
    venv.create(path, with_pip=True)
    python = path / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", *requirements], check=True, capture_output=True)
    return python


def top_level_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {name.split("/", 1)[0] for name in archive.namelist()}


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    built = {}
    for name, source in (("stemserve", ROOT), ("client", ROOT / "client")):
        built[name] = build_wheel(source, tmp_path_factory.mktemp(name))
    return built


def test_the_wheel_holds_no_top_level_name_but_the_projects_own(wheels):
    assert top_level_names(wheels["stemserve"]) == {"stemserve", "stemserve-0.1.0.dist-info"}
    assert top_level_names(wheels["client"]) == {"stemserve", "stemserve_client-0.1.0.dist-info"}
    with zipfile.ZipFile(wheels["client"]) as archive:
        assert {n.split("/")[1] for n in archive.namelist() if n.startswith("stemserve/")} == {"client"}
    with zipfile.ZipFile(wheels["stemserve"]) as archive:
        names = set(archive.namelist())
    bundled = ROOT / "model_repository" / "stemserve-small"
    for relative in ("config.pbtxt", "1/model.onnx"):
        assert f"stemserve/model_repository/stemserve-small/{relative}" in names
        with zipfile.ZipFile(wheels["stemserve"]) as archive:
            assert archive.read(f"stemserve/model_repository/stemserve-small/{relative}") == (
                bundled / relative).read_bytes()


def test_the_wheel_in_a_fresh_venv_separates_from_any_folder(wheels, tmp_path):
    python = fresh_venv(tmp_path / "venv", str(wheels["stemserve"]))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    sf.write(elsewhere / "song.wav", tone_mix(44_100), 44_100)
    stemserve = str(tmp_path / "venv" / "bin" / "stemserve")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(check=False, args=[stemserve, "separate", "song.wav", "-o", "stems", "--stems", "2", "--no-progress"],
                          cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["model_name"] == "stemserve-small" and list(summary["stems"]) == ["vocals", "instrumental"]
    vocals, rate = sf.read(elsewhere / "stems" / "song" / "vocals.wav")
    assert rate == 44_100 and len(vocals) == 44_100 and np.abs(vocals).max() > 0
    listed = subprocess.run(check=False, args=[stemserve, "models"], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert [m["name"] for m in json.loads(listed.stdout)] == ["stemserve-small"]
    empty = subprocess.run(check=False, args=[stemserve, "--model-repository", str(tmp_path / "none"), "models"], cwd=elsewhere,
                           env=env, capture_output=True, text=True)
    assert empty.returncode == 2 and f"in the model repository {tmp_path / 'none'}, found none" in empty.stderr
    checked = subprocess.run(check=False, args=[str(python), "-c", "import stemserve.core.settings as s; print(s.BUNDLED_REPOSITORY)"],
                             cwd=elsewhere, env=env, capture_output=True, text=True)
    assert "site-packages/stemserve/model_repository" in checked.stdout


LIGHT_CLIENT = textwrap.dedent("""
    import asyncio, json, sys
    from stemserve.client import AsyncStemserveClient, StemserveClient

    song = open(sys.argv[2], "rb").read()
    with StemserveClient(sys.argv[1]) as client:
        record, data = client.separate_bytes(song, stems=4, model="split5", format="flac")
        files = client.separate(sys.argv[2], sys.argv[3], stems=2, model="split5")

    async def remote():
        async with AsyncStemserveClient(sys.argv[1]) as client:
            return await client.separate_bytes(song, stems=5, model="split5")

    aio_record, aio_data = asyncio.run(remote())
    print(json.dumps({"numpy": "numpy" in sys.modules,
                      "sync": {n: len(b) for n, b in data.items()}, "flac": [b[:4].decode() for b in data.values()],
                      "sizes": [s.nb_bytes for s in record.stems], "cache_hit": record.cache_hit,
                      "files": {n: str(p) for n, p in files.paths.items()},
                      "aio": sorted(aio_data), "aio_sizes": {s.name: s.nb_bytes for s in aio_record.stems}}))
""")


def test_the_light_client_alone_separates_on_a_server(wheels, tmp_path, start_server):
    python = fresh_venv(tmp_path / "venv", str(wheels["client"]))
    missing = subprocess.run(check=False, args=[str(python), "-c", "import numpy"], cwd=tmp_path, capture_output=True)
    assert missing.returncode != 0  # grpcio + protobuf only
    server = start_server()
    (tmp_path / "song.wav").write_bytes(support.wav_bytes(1.0))
    done = subprocess.run(check=False, args=[str(python), "-c", LIGHT_CLIENT, f"127.0.0.1:{server.port}", str(tmp_path / "song.wav"),
                           str(tmp_path / "files")], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["numpy"] is False
    assert list(got["sync"]) == ["vocals", "drums", "bass", "other"] and set(got["flac"]) == {"fLaC"}
    assert list(got["sync"].values()) == got["sizes"]
    assert got["files"] == {"vocals": str(tmp_path / "files" / "vocals.wav"),
                            "instrumental": str(tmp_path / "files" / "instrumental.wav")}
    vocals, rate = sf.read(tmp_path / "files" / "vocals.wav")
    assert rate == 44_100 and len(vocals) == 44_100
    assert got["aio"] == sorted(["vocals", "drums", "bass", "piano", "other"])
    assert all(size > 44 for size in got["aio_sizes"].values())
