"""``stemserve models pull``: the real download path against a local HTTP server.

The server (a free port on 127.0.0.1) serves random-weight checkpoints in the upstream
formats (``benchmarks/synthetic_checkpoints.py``, reduced sizes from the export tests):
a demucs ``<signature>-<sha256[:8]>.th`` package and an Open-Unmix folder of
``<target>-<sha256[:8]>.pth`` state dicts. The catalogue entries are the real ones with the
files replaced by these (their names carry their own hash prefix, as upstream's do).
Every failure must say what happened and leave the model repository as it was.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self

import numpy as np
import pytest
from stemserve.core.model_config import load_model, parse_pbtxt
from stemserve.core.settings import Settings
from stemserve.export.catalogue import CATALOGUE, CatalogueEntry, CatalogueFile
from stemserve.export.cli import add_models_commands, run_models_command
from stemserve.export.errors import CheckpointError, ChecksumMismatchError, DownloadError
from stemserve.export.onnx_export import ParityReport
from stemserve.export.pull import PullConfig, pull

from tests.unit import export_fixtures
from tests.unit.export_fixtures import small_umx

one_thread = export_fixtures.one_thread
htdemucs_package = export_fixtures.htdemucs_package
umxhq_folder = export_fixtures.umxhq_folder
pytestmark = pytest.mark.usefixtures("one_thread")


class FileServer:
    """Serves ``files`` (URL path -> bytes) with byte ranges; ``cut_once[path] = n`` sends
    only the first n bytes of the next full response and closes the connection."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self.cut_once: dict[str, int] = {}
        self.honour_range = True
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Range")))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                start = int(match.group(1)) if match and server.honour_range else 0
                if start >= len(data) and start:
                    self.send_error(416, "Range Not Satisfiable")
                    return
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                cut = server.cut_once.pop(self.path, None)
                self.wfile.write(data[start:] if cut is None else data[start:cut])
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(htdemucs_package: Path, umxhq_folder: Path) -> Iterator[FileServer]:
    files = {"/demucs/" + htdemucs_package.name: htdemucs_package.read_bytes()}
    files.update({"/umx/" + p.name: p.read_bytes() for p in umxhq_folder.glob("*.pth")})
    with FileServer(files) as running:
        yield running


def demucs_entry(package: Path, url: str) -> CatalogueEntry:
    """The htdemucs entry with its file replaced by the synthetic package at ``url``."""
    prefix = package.stem.split("-")[1]
    file = CatalogueFile(name=package.name, urls=(url,), sha256_prefix=prefix, hash_source="test")
    return dataclasses.replace(CATALOGUE["htdemucs"], files=(file,))


def umx_entry(folder: Path, root: str) -> CatalogueEntry:
    files = tuple(
        CatalogueFile(name=p.name, urls=(root + p.name,), sha256_prefix=p.stem.split("-")[1], hash_source="test")
        for p in sorted(folder.glob("*.pth"))
    )
    return dataclasses.replace(CATALOGUE["umxhq"], files=files)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones included) and its content."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()} | {
        str(p.relative_to(folder)) + "/": b"" for p in folder.rglob("*") if p.is_dir()
    }


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """A repository that already serves one model: pulls must not disturb it."""
    folder = tmp_path / "repo"
    (folder / "existing" / "1").mkdir(parents=True)
    (folder / "existing" / "config.pbtxt").write_text('name: "existing"\n')
    (folder / "existing" / "1" / "model.onnx").write_bytes(b"onnx")
    return folder


def config(entry: CatalogueEntry, repository: Path, tmp_path: Path, **kwargs: object) -> PullConfig:
    return PullConfig(entry=entry, repository=repository, download_dir=tmp_path / "downloads", threads=1,
                      **kwargs)  # type: ignore[arg-type]


def test_interrupted_transfer_resumes_then_installs_a_servable_model(
    server: FileServer, htdemucs_package: Path, repository: Path, tmp_path: Path
) -> None:
    path = "/demucs/" + htdemucs_package.name
    size = len(server.files[path])
    entry = demucs_entry(htdemucs_package, server.url + path[1:])
    before = snapshot(repository)
    server.cut_once[path] = size // 3
    with pytest.raises(DownloadError, match=rf"interrupted after {size // 3} of {size} bytes.*run the same command"):
        pull(config(entry, repository, tmp_path))
    assert snapshot(repository) == before
    part = tmp_path / "downloads" / "htdemucs" / (htdemucs_package.name + ".part")
    assert part.stat().st_size == size // 3

    progress: list[tuple[int, int | None]] = []
    result = pull(config(entry, repository, tmp_path, progress=lambda name, done, total: progress.append((done, total))))
    assert server.requests[-1] == (path, f"bytes={size // 3}-")  # asked for the rest only
    assert result.files[0].resumed_from == size // 3
    assert result.files[0].sha256 == hashlib.sha256(htdemucs_package.read_bytes()).hexdigest()
    assert progress[-1] == (size, size)
    assert result.parity.passed and result.parity.max_abs_error <= 1e-4
    assert not part.exists() and not (tmp_path / "downloads" / "htdemucs" / htdemucs_package.name).exists()
    assert sorted(p.name for p in repository.iterdir()) == ["existing", "htdemucs"]  # no staging left
    config_text = (repository / "htdemucs" / "config.pbtxt").read_text()
    assert "dynamic_batching" in config_text and parse_pbtxt(config_text)["max_batch_size"] == [8]

    from stemserve.pipeline.separator import Separator

    separator = Separator(settings=Settings(model_repository=(repository,)), model="htdemucs", stems=4)
    rng = np.random.default_rng(0)
    stems = separator.separate(0.1 * rng.standard_normal((2, 30000)).astype(np.float32), sample_rate_hz=44100)
    assert sorted(stems) == ["bass", "drums", "other", "vocals"]
    assert all(s.shape == (2, 30000) and np.isfinite(s).all() for s in stems.values())


def test_wrong_hash_is_refused_and_nothing_is_kept(
    server: FileServer, htdemucs_package: Path, umxhq_folder: Path, repository: Path, tmp_path: Path
) -> None:
    entry = demucs_entry(htdemucs_package, server.url + "umx/" + next(umxhq_folder.glob("*.pth")).name)
    before = snapshot(repository)
    prefix = entry.files[0].sha256_prefix
    with pytest.raises(ChecksumMismatchError, match=f"sha256 must start with {prefix}"):
        pull(config(entry, repository, tmp_path))
    assert snapshot(repository) == before
    assert not any((tmp_path / "downloads").rglob("*.th*"))  # a wrong file is not kept to resume


def test_a_full_pin_that_does_not_match_is_refused(
    server: FileServer, htdemucs_package: Path, repository: Path, tmp_path: Path
) -> None:
    entry = demucs_entry(htdemucs_package, server.url + "demucs/" + htdemucs_package.name)
    before = snapshot(repository)
    with pytest.raises(ChecksumMismatchError, match=r"sha256 must be 0{64} \(pinned\)"):
        pull(config(entry, repository, tmp_path, sha256={htdemucs_package.name: "0" * 64}))
    assert snapshot(repository) == before


def test_truncated_transfer_from_a_server_without_ranges(
    server: FileServer, htdemucs_package: Path, repository: Path, tmp_path: Path
) -> None:
    path = "/demucs/" + htdemucs_package.name
    entry = demucs_entry(htdemucs_package, server.url + path[1:])
    before = snapshot(repository)
    server.honour_range = False
    server.cut_once[path] = 1000
    with pytest.raises(DownloadError, match="interrupted after 1000 of"):
        pull(config(entry, repository, tmp_path))
    server.cut_once[path] = 2000  # no ranges: the retry starts over and is cut again
    with pytest.raises(DownloadError, match="interrupted after 2000 of"):
        pull(config(entry, repository, tmp_path))
    assert server.requests[-1][1] == "bytes=1000-"
    assert snapshot(repository) == before


def test_404_names_the_url(server: FileServer, htdemucs_package: Path, repository: Path, tmp_path: Path) -> None:
    entry = demucs_entry(htdemucs_package, server.url + "demucs/missing.th")
    before = snapshot(repository)
    with pytest.raises(DownloadError, match=r"demucs/missing.th: HTTP 404"):
        pull(config(entry, repository, tmp_path))
    assert snapshot(repository) == before


def test_a_later_mirror_is_tried_after_a_404(
    server: FileServer, htdemucs_package: Path, repository: Path, tmp_path: Path, monkeypatch
) -> None:
    entry = demucs_entry(htdemucs_package, server.url + "demucs/" + htdemucs_package.name)
    file = dataclasses.replace(entry.files[0], urls=(server.url + "gone/x.th",) + entry.files[0].urls)
    entry = dataclasses.replace(entry, files=(file,))
    monkeypatch.setattr("stemserve.export.pull.export_entry", fake_export := FakeExport())
    pull(config(entry, repository, tmp_path))
    assert [p for p, _ in server.requests] == ["/gone/x.th", "/demucs/" + htdemucs_package.name]
    assert fake_export.checkpoint.name == htdemucs_package.name


class FakeExport:
    """Stands in for the export where a test is about the download only."""

    checkpoint = Path()

    def __call__(self, config: PullConfig, checkpoint: Path, repository: Path):
        self.checkpoint = checkpoint
        (repository / config.entry.name).mkdir()
        (repository / config.entry.name / "config.pbtxt").write_text("")
        return ParityReport(max_abs_error=0.0, batch=1, segment_samples=256, tolerance=1e-4)


def test_a_file_that_is_not_a_checkpoint(server: FileServer, repository: Path, tmp_path: Path) -> None:
    data = b"<html>not a checkpoint</html>" * 100
    server.files["/demucs/page.th"] = data
    digest = hashlib.sha256(data).hexdigest()
    entry = dataclasses.replace(CATALOGUE["htdemucs"], files=(
        CatalogueFile(name="955717e8.th", urls=(server.url + "demucs/page.th",)),))
    before = snapshot(repository)
    with pytest.raises(CheckpointError, match="955717e8.th is not a readable torch checkpoint"):
        pull(config(entry, repository, tmp_path, sha256={"955717e8.th": digest}))
    assert snapshot(repository) == before


def test_offline_folder_of_a_multi_file_model(umxhq_folder: Path, repository: Path, tmp_path: Path) -> None:
    entry = umx_entry(umxhq_folder, "http://127.0.0.1:9/unreachable/")  # never contacted with --from
    result = pull(config(entry, repository, tmp_path, source=str(umxhq_folder), architecture=small_umx()))
    assert result.parity.passed
    assert len(result.files) == 4 and all(f.verdict.startswith("matches the published prefix") for f in result.files)
    spec = load_model(repository, "umxhq").spec
    assert spec.stems == ("vocals", "drums", "bass", "other") and spec.max_batch_size == 8
    with pytest.raises(Exception, match="exists: the model is installed"):
        pull(config(entry, repository, tmp_path, source=str(umxhq_folder), architecture=small_umx()))


def run_cli(argv: list[str], repository: Path, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """The commands as ``stemserve models`` registers them."""
    parser = argparse.ArgumentParser()
    add_models_commands(parser.add_subparsers(dest="models_command", required=True))
    code = run_models_command(parser.parse_args(argv), Settings(model_repository=(repository,)))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_pull_of_the_real_entry_refuses_another_file(
    server: FileServer, htdemucs_package: Path, repository: Path, tmp_path: Path, capsys
) -> None:
    before = snapshot(repository)
    code, _, err = run_cli(["pull", "htdemucs", "--from", server.url + "demucs/" + htdemucs_package.name,
                            "--download-dir", str(tmp_path / "dl"), "--no-progress"], repository, capsys)
    actual = hashlib.sha256(htdemucs_package.read_bytes()).hexdigest()
    assert code == 2
    assert f"955717e8-8726e21a.th: sha256 must start with 8726e21a (published in its file name), got {actual}" in err
    assert snapshot(repository) == before


def test_cli_pull_prints_what_it_verified(
    server: FileServer, htdemucs_package: Path, repository: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    entry = demucs_entry(htdemucs_package, server.url + "demucs/" + htdemucs_package.name)
    monkeypatch.setitem(CATALOGUE, "htdemucs", entry)
    monkeypatch.setattr("stemserve.export.pull.export_entry", FakeExport())
    code, out, err = run_cli(["pull", "htdemucs", "--download-dir", str(tmp_path / "dl")], repository, capsys)
    assert code == 0, err
    assert '"sha256": "' + hashlib.sha256(htdemucs_package.read_bytes()).hexdigest() in out
    assert f"matches the published prefix {entry.files[0].sha256_prefix}" in out
    assert htdemucs_package.name in err  # the progress line


def test_cli_available_lists_the_catalogue(repository: Path, capsys) -> None:
    code, out, _ = run_cli(["available"], repository, capsys)
    assert code == 0
    for name in ("htdemucs", "htdemucs_ft", "htdemucs_6s", "umxhq", "umxl"):
        assert f'"name": "{name}"' in out


def test_mdx_net_pull_wraps_the_onnx_file_and_reports_its_settings_key(
    repository: Path, tmp_path: Path
) -> None:
    from benchmarks.synthetic_checkpoints import write_mdx_onnx

    real = CATALOGUE["uvr_mdx_voc_ft"]
    settings = real.settings
    raw = write_mdx_onnx(tmp_path / "UVR-MDX-NET-Voc_FT.onnx", settings["dim_f"], settings["dim_t"], opset=13)
    with FileServer({"/uvr/" + raw.name: raw.read_bytes()}) as mirror:
        # the real entry (its settings and its UVR settings key), from a mirror given with --from
        result = pull(config(real, repository, tmp_path, source=mirror.url + "uvr/",
                             sha256={raw.name: hashlib.sha256(raw.read_bytes()).hexdigest()}))
    assert result.parity.passed
    assert result.files[0].verdict == "matches the pinned sha256"
    # a random file is not the published one: its settings key says so
    assert len(result.warnings) == 1 and "77d07b2667ddf05b9e3175941b4454a0" in result.warnings[0]
    spec = load_model(repository, "uvr_mdx_voc_ft").spec
    assert spec.stems == ("vocals", "instrumental") and spec.segment_samples == 261120


def test_roformer_pull_fetches_checkpoint_and_config(repository: Path, tmp_path: Path) -> None:
    from benchmarks.synthetic_checkpoints import msst_config_yaml, random_roformer, write_roformer_checkpoint

    real = CATALOGUE["bs_roformer_viperx_1297"]
    stem = real.files[0].name.removesuffix(".ckpt")
    small = {"depth": 1, "dim": 32}  # reduced; the published depth 12, width 512 are in the slow export check
    checkpoint, config_file = write_roformer_checkpoint(random_roformer("bs_roformer", **small), tmp_path / "src",
                                                        stem, msst_config_yaml("bs_roformer", chunk_size=22050, **small))
    files = {"/msst/" + p.name: p.read_bytes() for p in (checkpoint, config_file)}
    with FileServer(files) as mirror:
        result = pull(config(real, repository, tmp_path, source=mirror.url + "msst/"))
    assert [f.path.name for f in result.files] == [checkpoint.name, config_file.name]
    assert all(f.verdict.startswith("no published hash") for f in result.files)  # sha256 printed, nothing to check
    assert result.parity.passed and len(result.warnings) == 1  # not the published file: its UVR key differs
    spec = load_model(repository, "bs_roformer_viperx_1297").spec
    assert spec.segment_samples == 22050 and spec.architecture == "bs_roformer"
