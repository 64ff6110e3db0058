"""``stemserve separate --server``: the deadline is the caller's, and the summary says when
the server answered from its cache."""

from __future__ import annotations

import json

from stemserve.cli import main
from tests.integration import test_service_support as support
from tests.integration.test_service_support import Gate, wait_until

start_server = support.start_server  # the fixture, shared


def args(server, song, out, *more: str) -> list[str]:
    return ["separate", str(song), "-o", str(out), "--server", f"127.0.0.1:{server.port}", "--model", "split5",
            "--no-progress", *more]


def test_timeout_is_the_deadline_of_each_song(tmp_path, start_server, capsys):
    gate = Gate()
    server = start_server(gate=gate)
    song = tmp_path / "song.wav"
    song.write_bytes(support.wav_bytes(0.5))
    assert main(args(server, song, tmp_path / "out", "--timeout", "0.5")) == 5
    err = capsys.readouterr().err
    assert "DEADLINE_EXCEEDED" in err and "Traceback" not in err
    assert gate.entered.is_set()
    gate.open.set()
    wait_until(lambda: support.sample(server, "stemserve_songs_in_flight") == 0)
    assert not (tmp_path / "out" / "song").exists()  # nothing half-written


def test_the_summary_says_cache_hit(tmp_path, start_server, capsys):
    server = start_server()
    song = tmp_path / "song.wav"
    song.write_bytes(support.wav_bytes(0.5))
    assert main(args(server, song, tmp_path / "a")) == 0
    assert json.loads(capsys.readouterr().out)["cache_hit"] is False
    assert main(args(server, song, tmp_path / "b", "--timeout", "30")) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["cache_hit"] is True and summary["stems"]["vocals"]["path"] == str(tmp_path / "b" / "song" / "vocals.wav")
