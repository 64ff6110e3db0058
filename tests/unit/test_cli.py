import json

import numpy as np
import soundfile as sf

from stemserve.cli import main
from stemserve.example import write_example


def test_separate_end_to_end_on_a_generated_clip(tmp_path, repo, capsys):
    clip = write_example(tmp_path / "clip.wav", seconds=3.0)
    mix, _ = sf.read(clip, dtype="float32")
    code = main(
        [
            "--model-repository",
            str(repo),
            "separate",
            str(clip),
            "-o",
            str(tmp_path / "out"),
            "--model",
            "split5",
            "--stems",
            "5",
            "--sample-rate",
            "48000",
            "--format",
            "flac",
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["model_name"] == "split5" and summary["device"] == "cpu"
    assert summary["audio_seconds"] == 3.0 and summary["runtime_seconds"] > 0
    assert summary["model_version"] and summary["warnings"] == []
    assert "windows" in captured.err  # the progress bar
    assert sorted(summary["stems"]) == ["bass", "drums", "other", "piano", "vocals"]
    total = 0
    for name, gain in (("vocals", 0.4), ("drums", 0.25), ("bass", 0.15), ("piano", 0.1), ("other", 0.1)):
        audio, rate = sf.read(tmp_path / "out" / "clip" / f"{name}.flac", dtype="float32")
        assert rate == 48_000 and len(audio) == 3 * 48_000 == summary["stems"][name]["nb_frames"]
        total = total + audio
        ratio = np.sqrt(np.mean(audio**2)) / np.sqrt(np.mean(mix**2))
        assert abs(ratio - gain) < 0.01
    assert abs(np.sqrt(np.mean(total**2)) / np.sqrt(np.mean(mix**2)) - 1.0) < 0.01


def test_errors_go_to_stderr_with_exit_code_2(tmp_path, repo, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"garbage" * 100)
    assert main(["--model-repository", str(repo), "separate", str(bad), "--model", "split5"]) == 3  # bad input
    assert "could not be parsed as audio" in capsys.readouterr().err
    assert main(["--model-repository", str(repo), "separate", str(bad), "--model", "nope"]) == 2
    assert "model must be one of" in capsys.readouterr().err


def test_models_lists_stems_and_versions(repo, capsys):
    assert main(["--model-repository", str(repo), "models"]) == 0
    listing = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert listing["split4"]["stems"] == ["vocals", "drums", "bass", "other"]
    assert len(listing["split5"]["model_version"]) == 12


def test_the_example_song_is_made_for_any_seed_and_length():
    from stemserve.example import example_mix

    for seed in (0, 5057, 12345):  # 5057 ends a vocal note within its attack at 8 s
        mix = example_mix(8.0, seed=seed)
        assert mix.shape == (8 * 44_100, 2) and abs(float(np.abs(mix).max()) - 0.8) < 1e-6
