"""``stemserve separate`` as a new user meets it: many inputs, filename templates, two
stems of any kind, exit codes that say what failed, one line per mistake, progress."""

from __future__ import annotations

import errno
import io
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from stemserve.batch import describe
from stemserve.cli import get_parser, main
from stemserve.progress import Progress
from tests.conftest import tone_mix


def song(path, seconds=1.0, rate=44_100, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone_mix(int(seconds * rate), rate, seed=seed), rate, subtype="FLOAT" if path.suffix == ".wav" else "PCM_24")
    return path


def run(repo, *args) -> list[str]:
    return ["--model-repository", str(repo), "separate", "--model", "split5", "--no-progress", *args]


def lines(capsys) -> tuple[list[dict], str]:
    captured = capsys.readouterr()
    return [json.loads(line) for line in captured.out.splitlines()], captured.err


def test_many_inputs_each_in_its_folder_and_a_bad_one_does_not_stop_the_others(tmp_path, repo, capsys):
    a, b = song(tmp_path / "a.wav"), song(tmp_path / "in" / "b.flac", seed=1)
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"not audio" * 50)
    code = main(run(repo, str(a), str(bad), str(b), "-o", str(tmp_path / "out"), "--stems", "2"))
    assert code == 6  # some failed, others were separated
    out, err = lines(capsys)
    assert [line["source"] for line in out] == [str(a), str(bad), str(b)]
    assert out[1]["exit_code"] == 3 and "could not be parsed as audio" in out[1]["error"]
    assert f"stemserve: error: {bad}:" in err and "Traceback" not in err
    for line, name in ((out[0], "a"), (out[2], "b")):
        assert line["stems"]["vocals"]["path"] == str(tmp_path / "out" / name / "vocals.wav")
        assert (tmp_path / "out" / name / "instrumental.wav").is_file()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a", "b"]  # no work folders left


def test_the_filename_template_and_songs_that_would_overwrite_each_other(tmp_path, repo, capsys):
    a, a_flac = song(tmp_path / "a.wav"), song(tmp_path / "x" / "a.flac", seed=2)
    assert main(run(repo, str(a), str(a_flac), "-o", str(tmp_path / "out"))) == 2
    assert "must give each song its own files" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before anything was written
    template = "{stem}/{track}-{input_ext}.{ext}"
    assert main(run(repo, str(a), str(a_flac), "-o", str(tmp_path / "out"), "--filename", template)) == 0
    first, second = lines(capsys)[0]
    assert first["stems"]["drums"]["path"] == str(tmp_path / "out" / "drums" / "a-wav.wav")
    assert second["stems"]["drums"]["path"] == str(tmp_path / "out" / "drums" / "a-flac.wav")
    assert not np.array_equal(sf.read(first["stems"]["drums"]["path"])[0], sf.read(second["stems"]["drums"]["path"])[0])


@pytest.mark.parametrize(("template", "fragment"), [
    ("{track}.{ext}", "must use {stem}"), ("{stem}/{song}.{ext}", "unknown ['song']"),
    ("../{stem}.{ext}", "must stay inside the output folder"),
])
def test_bad_templates_are_usage_errors(tmp_path, repo, capsys, template, fragment):
    assert main(run(repo, str(song(tmp_path / "a.wav")), "--filename", template)) == 2
    assert fragment in capsys.readouterr().err


def test_two_stems_of_any_stem_sum_to_the_input(tmp_path, repo, capsys):
    a = song(tmp_path / "a.wav")
    assert main(run(repo, str(a), "-o", str(tmp_path / "out"), "--two-stems", "drums", "--bit-depth", "float")) == 0
    summary = lines(capsys)[0][0]
    assert list(summary["stems"]) == ["drums", "no_drums"]
    drums, no_drums = (sf.read(tmp_path / "out" / "a" / f"{n}.wav", dtype="float32")[0] for n in ("drums", "no_drums"))
    np.testing.assert_allclose(drums + no_drums, sf.read(a, dtype="float32")[0], atol=1e-6)
    assert abs(np.std(drums) / np.std(drums + no_drums) - 0.25) < 0.01  # split5's drums gain
    assert main(run(repo, str(a), "-o", str(tmp_path / "v"), "--two-stems", "vocals")) == 0
    assert list(lines(capsys)[0][0]["stems"]) == ["vocals", "instrumental"]
    assert main(run(repo, str(a), "--two-stems", "guitar")) == 2
    assert "two_stems must be a stem of model 'split5'" in capsys.readouterr().err


def test_log_level_after_the_subcommand_and_defaults_in_help(tmp_path, repo, capsys):
    args = get_parser().parse_args(["separate", "x.wav", "--log-level", "DEBUG"])
    assert args.log_level == "DEBUG"
    assert get_parser().parse_args(["separate", "x.wav"]).log_level == "WARNING"
    for command in ("separate", "serve", "models", "triton"):
        with pytest.raises(SystemExit):
            get_parser().parse_args([command, "--help"])
        text = capsys.readouterr().out
        assert "(default:" in text, command
    with pytest.raises(SystemExit):
        get_parser().parse_args(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 50051; env STEMSERVE_PORT)" in text and "(default: none; env STEMSERVE_TRITON_URL)" in text
    assert "(default: None)" not in text


def test_an_output_folder_that_is_a_file_is_one_line_and_exit_4(tmp_path, repo, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(run(repo, str(song(tmp_path / "a.wav")), "-o", str(blocker))) == 4
    err = capsys.readouterr().err
    assert "stems must go into a folder, got a file in the way" in err and "Traceback" not in err


def test_disk_full_and_permission_messages():
    assert describe(OSError(errno.ENOSPC, "No space left on device", "/out/a/vocals.wav")) == (
        "stems need free disk space, got none left writing /out/a/vocals.wav")
    assert describe(PermissionError(errno.EACCES, "Permission denied", "/out")) == (
        "stems must go into a writable folder, got no permission for /out")


def test_a_missing_extra_names_the_extra(tmp_path, repo, capsys, monkeypatch):
    for name in [m for m in sys.modules if m == "grpc" or m.startswith(("grpc.", "stemserve.client.client",
                                                                         "stemserve.client.aio"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "grpc", None)
    assert main(run(repo, str(song(tmp_path / "a.wav")), "--server", "localhost:1")) == 2
    err = capsys.readouterr().err
    assert "separate needs the server extra: pip install 'stemserve[server]'" in err and "Traceback" not in err


def test_a_closed_pipe_ends_quietly(repo):
    process = subprocess.Popen([sys.executable, "-m", "stemserve.cli", "--model-repository", str(repo), "models"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # the reader goes away before anything is written
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0 and b"Traceback" not in err and b"Exception ignored" not in err


class Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_is_a_bar_with_eta_on_a_terminal_and_plain_lines_elsewhere():
    now = [0.0]
    terminal = Stream(tty=True)
    bar = Progress("song.wav", stream=terminal, clock=lambda: now[0])
    now[0] = 10.0
    bar(1, 4)
    assert terminal.getvalue() == "\rsong.wav [#######-----------------------] 1/4 windows, ETA 0:30"
    log = Stream(tty=False)
    lines_ = Progress("song.wav", stream=log, clock=lambda: now[0])
    for done, at in ((1, 11.0), (2, 12.0), (3, 16.0), (4, 16.5)):
        now[0] = at
        lines_(done, 4)
    assert "\r" not in log.getvalue()
    assert log.getvalue().splitlines() == ["song.wav: 3/4 windows (75 %)", "song.wav: 4/4 windows (100 %)"]
