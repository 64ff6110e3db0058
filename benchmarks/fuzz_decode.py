"""Fuzz the decode/validate entry point for a bounded time.

Hypothesis draws a valid encoded file (wav 16/24/float, flac, ogg, mp3; several rates and
channel counts) and a list of mutations (byte flips, truncation, insertions, header fields
overwritten with extreme values, splices, random bytes), then decodes the result under a
4 GiB address-space limit and a 10 s alarm. Anything but success with finite audio or an
``InvalidAudioError`` is a failure: another exception (crash), a timeout (hang), a
MemoryError (unbounded allocation). Exits non-zero on any failure.

``python -m benchmarks.fuzz_decode [--seconds 120]``
"""

from __future__ import annotations

import argparse
import collections
import io
import resource
import signal
import sys
import time
from functools import cache

import numpy as np
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stemserve.core.errors import InvalidAudioError
from stemserve.preprocess.decode import DecodeLimits, decode

from benchmarks import report

BASES = [
    ("WAV", "PCM_16", 44_100, 2),
    ("WAV", "PCM_24", 8_000, 1),
    ("WAV", "FLOAT", 192_000, 2),
    ("WAV", "PCM_16", 48_000, 6),
    ("FLAC", "PCM_16", 44_100, 2),
    ("OGG", "VORBIS", 22_050, 2),
    ("MP3", "MPEG_LAYER_III", 44_100, 2),
]
LIMITS = DecodeLimits(max_bytes=64 * 1024 * 1024, max_duration_s=600.0)
HANG_S = 10


class Hang(Exception):
    pass


@cache
def base_file(index: int) -> bytes:
    fmt, subtype, rate, channels = BASES[index]
    t = np.arange(rate // 4) / rate
    audio = np.stack([0.3 * np.sin(2 * np.pi * (220 + 55 * c) * t) for c in range(channels)], axis=1)
    buffer = io.BytesIO()
    sf.write(buffer, audio.astype(np.float32), rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


EXTREMES = [0, 1, 2**15, 2**16 - 1, 2**31 - 1, 2**32 - 1]
mutation = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.floats(0, 1), st.just(0)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.integers(1, 4096)),
    st.tuples(st.just("header"), st.integers(0, 60), st.sampled_from(EXTREMES)),
    st.tuples(st.just("splice"), st.floats(0, 1), st.integers(0, len(BASES) - 1)),
)


def mutate(data: bytes, mutations: list[tuple], rng: np.random.Generator) -> bytes:
    buffer = bytearray(data)
    for kind, where, value in mutations:
        at = int(where * len(buffer)) if isinstance(where, float) else where
        at = min(at, max(len(buffer) - 1, 0))
        if kind == "flip" and buffer:
            buffer[at] ^= value
        elif kind == "truncate":
            del buffer[at:]
        elif kind == "insert":
            buffer[at:at] = rng.integers(0, 256, value, dtype=np.uint8).tobytes()
        elif kind == "header":
            buffer[at : at + 4] = int(value).to_bytes(4, "little")
        elif kind == "splice":
            other = base_file(value)
            buffer[at:] = other[len(other) // 2 :]
    return bytes(buffer)


def _alarm(signum: int, frame: object) -> None:
    raise Hang()


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, resource.getrlimit(resource.RLIMIT_AS)[1]))
    signal.signal(signal.SIGALRM, _alarm)
    outcomes: collections.Counter[str] = collections.Counter()
    failures: list[str] = []
    rng = np.random.default_rng(args.seed)

    @settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(base=st.integers(0, len(BASES) - 1), mutations=st.lists(mutation, max_size=6), random_bytes=st.booleans())
    def one_input(base: int, mutations: list[tuple], random_bytes: bool) -> None:
        data = (
            rng.integers(0, 256, int(rng.integers(0, 5000)), dtype=np.uint8).tobytes()
            if random_bytes
            else mutate(base_file(base), mutations, rng)
        )
        signal.alarm(HANG_S)
        try:
            audio, _ = decode(data, LIMITS)
            outcomes["decoded" if np.isfinite(audio).all() else "non_finite_output"] += 1
        except InvalidAudioError as exc:
            outcomes[f"rejected:{exc.reason}"] += 1
        except Hang:
            outcomes["hang"] += 1
            failures.append(f"hang on {BASES[base]} {mutations}")
        except MemoryError:
            outcomes["memory"] += 1
            failures.append(f"MemoryError on {BASES[base]} {mutations}")
        except Exception as exc:  # noqa: BLE001 - a crash: anything the decoder should have turned into InvalidAudioError
            outcomes["crash"] += 1
            failures.append(f"{type(exc).__name__}: {exc} on {BASES[base]} {mutations}")
        finally:
            signal.alarm(0)

    started = time.monotonic()
    while time.monotonic() - started < args.seconds:
        one_input()
    tried = sum(outcomes.values())
    bad = outcomes["crash"] + outcomes["hang"] + outcomes["memory"] + outcomes["non_finite_output"]
    figures = {
        "seconds": round(time.monotonic() - started, 1),
        "inputs_tried": tried,
        "failures": bad,
        "failure_examples": failures[:10],
    }
    rows = [{"outcome": k, "count": v} for k, v in sorted(outcomes.items())]
    print(report.write("fuzz_decode", figures, rows).read_text())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
