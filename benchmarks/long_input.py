"""Long input: a 60-minute file separates with bounded memory and the same per-minute
speed as a 4-minute one.

Each length runs in its own process (so peak memory is its own) through the in-process
pipeline with the default model, from a wav file on disk. Targets: peak RSS of the
60-minute run below 1.5 GB, and its seconds per audio minute within 15 % of the
4-minute run's.

``python -m benchmarks.long_input [--minutes 4 60] [--model stemserve-small]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf
from stemserve.pipeline.options import DEFAULT_MODEL

from benchmarks import report
from stemserve.example import SAMPLE_RATE_HZ, example_mix

AUDIO = Path(__file__).resolve().parent / "audio"
TARGET_PEAK_MB = 1_500
TARGET_SPEED_RATIO = 1.15


def long_song(minutes: int) -> Path:
    """A ``minutes`` long wav, written one generated minute at a time."""
    path = AUDIO / f"long-{minutes}min.wav"
    if path.exists():
        return path
    AUDIO.mkdir(parents=True, exist_ok=True)
    minute = example_mix(60.0, seed=3)
    partial = path.with_suffix(".partial")
    with sf.SoundFile(partial, "w", SAMPLE_RATE_HZ, 2, subtype="PCM_16", format="WAV") as handle:
        for _ in range(minutes):
            handle.write(minute)
    partial.rename(path)
    return path


def child(path: Path, model: str) -> None:
    """Separate ``path`` in this process and print its figures as JSON."""
    from stemserve.backends.local import LocalBackend
    from stemserve.core.model_config import load_model
    from stemserve.core.settings import Settings
    from stemserve.pipeline.options import SeparationOptions
    from stemserve.pipeline.run import separate

    backend = LocalBackend(load_model(Settings.load().model_repository, model))
    backend.warm_up()
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        result = separate(path, Path(out), backend, SeparationOptions(model=model))
        wall = time.perf_counter() - started
    print(json.dumps({"wall_s": wall, "audio_s": result.audio_seconds, "peak_rss_mb": report.peak_rss_mb()}))


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, nargs="+", default=[4, 60])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    if args.child:
        child(args.child, args.model)
        return 0
    rows = []
    for minutes in args.minutes:
        path = long_song(minutes)
        command = [sys.executable, "-m", "benchmarks.long_input", "--child", str(path), "--model", args.model]
        figures = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        rows.append(
            {
                "minutes": minutes,
                "wall_s": round(figures["wall_s"], 2),
                "s_per_audio_minute": round(figures["wall_s"] / (figures["audio_s"] / 60), 3),
                "peak_rss_mb": round(figures["peak_rss_mb"], 1),
            }
        )
        print(rows[-1], file=sys.stderr)
    longest, shortest = max(rows, key=lambda r: r["minutes"]), min(rows, key=lambda r: r["minutes"])
    speed_ratio = longest["s_per_audio_minute"] / shortest["s_per_audio_minute"]
    summary = {
        "model": args.model,
        "longest_peak_rss_mb": longest["peak_rss_mb"],
        "speed_ratio_longest_vs_shortest": round(speed_ratio, 3),
        "target_peak_mb": TARGET_PEAK_MB,
        "target_speed_ratio": TARGET_SPEED_RATIO,
        "target_met": longest["peak_rss_mb"] < TARGET_PEAK_MB and speed_ratio <= TARGET_SPEED_RATIO,
    }
    print(report.write("long_input", summary, rows).read_text())
    return 0 if summary["target_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
