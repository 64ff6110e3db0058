"""Triton's dynamic batching vs batching off, 8 songs in flight together, in one run.

Both runs use the same model, songs and client (TritonBackend, every window its own
request); only Triton's configuration differs: the model's own ``max_batch_size`` with
dynamic batching, then ``max_batch_size 1``. Reports the throughput ratio, p50/p95 latency
per song, and the mean batch Triton executed, from its own metrics
(``nv_inference_count`` / ``nv_inference_exec_count``). Target: >= 1.3x throughput.

Beside it, the ceiling: the same model in ONNX Runtime alone (``LocalBackend``, same thread
count), the time per window of one batch of ``max_batch_size`` windows against the same
windows one at a time. Batching cannot make Triton gain more than the model itself does.

The model is the default one when the repository has it; otherwise (or with
``--synthetic``) a generated frame-wise MLP mask model, heavy enough that a batch costs
less than its windows one by one, as a separator's does.

``python -m benchmarks.triton_batching [--songs 8] [--seconds 20] [--rounds 3] [--model NAME] [--synthetic]``
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
from stemserve.backends.local import LocalBackend
from stemserve.backends.triton import TritonBackend, TritonClientConfig
from stemserve.core.model_config import ModelSpec, file_sha256, list_model_names, load_model, render_config
from stemserve.core.settings import Settings
from stemserve.pipeline.options import DEFAULT_MODEL, SeparationOptions
from stemserve.pipeline.run import separate
from stemserve.server.triton.process import TritonConfig, TritonProcess
from stemserve.server.triton.repository import CpuVariantOptions

from benchmarks import report
from stemserve.example import example_mix, example_wav_bytes

log = logging.getLogger(__name__)
TARGET_RATIO = 1.3
SYNTHETIC = "mlp-mask"
SYNTHETIC_SEGMENT = 8_192  # samples; short windows make a batch much cheaper than its windows one by one
SAMPLE_RATE_HZ = 44_100


def write_mlp_mask_model(
    repository: Path, *, segment: int = SYNTHETIC_SEGMENT, frame: int = 2_048, hidden: int = 1_024
) -> None:
    """stems = mix * sigmoid(relu(frames @ w1) @ w2): a frame-wise mask, 5 stems, random weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nb_stems, nb_frames = 5, segment // frame
    rng = np.random.default_rng(0)
    w1 = (rng.standard_normal((frame, hidden)) / np.sqrt(frame)).astype(np.float32)
    w2 = (rng.standard_normal((hidden, nb_stems * frame)) / np.sqrt(hidden)).astype(np.float32)
    shape = lambda name, values: numpy_helper.from_array(np.array(values, np.int64), name)
    nodes = [
        helper.make_node("Reshape", ["mix", "frames_shape"], ["frames"]),  # (batch, 2, frames, frame)
        helper.make_node("MatMul", ["frames", "w1"], ["h"]),  # (batch, 2, frames, hidden)
        helper.make_node("Relu", ["h"], ["h_relu"]),
        helper.make_node("MatMul", ["h_relu", "w2"], ["logits"]),  # (batch, 2, frames, stems * frame)
        helper.make_node("Sigmoid", ["logits"], ["masks"]),
        helper.make_node("Reshape", ["masks", "masks_shape"], ["masks_5d"]),  # (batch, 2, frames, stems, frame)
        helper.make_node("Transpose", ["masks_5d"], ["masks_t"], perm=[0, 3, 1, 2, 4]),  # (batch, stems, 2, ...)
        helper.make_node("Unsqueeze", ["frames", "axis1"], ["frames_5d"]),  # (batch, 1, 2, frames, frame)
        helper.make_node("Mul", ["masks_t", "frames_5d"], ["stems_5d"]),
        helper.make_node("Reshape", ["stems_5d", "stems_shape"], ["stems"]),  # (batch, stems, 2, segment)
    ]
    graph = helper.make_graph(
        nodes,
        "mlp_mask",
        [helper.make_tensor_value_info("mix", TensorProto.FLOAT, ["batch", 2, segment])],
        [helper.make_tensor_value_info("stems", TensorProto.FLOAT, ["batch", nb_stems, 2, segment])],
        initializer=[
            numpy_helper.from_array(w1, "w1"),
            numpy_helper.from_array(w2, "w2"),
            shape("frames_shape", [-1, 2, nb_frames, frame]),
            shape("masks_shape", [-1, 2, nb_frames, nb_stems, frame]),
            shape("stems_shape", [-1, nb_stems, 2, segment]),
            shape("axis1", [1]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    folder = repository / SYNTHETIC
    (folder / "1").mkdir(parents=True, exist_ok=True)
    onnx.save(model, folder / "1" / "model.onnx")
    spec = ModelSpec(
        name=SYNTHETIC,
        stems=("vocals", "drums", "bass", "piano", "other"),
        sample_rate_hz=SAMPLE_RATE_HZ,
        segment_samples=segment,
        default_overlap=0.25,
        model_version=file_sha256(folder / "1" / "model.onnx")[:12],
        architecture="benchmark-mlp-mask",
        license="benchmark fixture",
        max_batch_size=8,
    )
    (folder / "config.pbtxt").write_text(render_config(spec))


def counters(metrics_url: str, model: str) -> dict[str, float]:
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    pattern = re.compile(rf'^(nv_inference_\w+)\{{model="{re.escape(model)}",version="1"\}} (\S+)$', re.MULTILINE)
    return {name: float(value) for name, value in pattern.findall(text)}


def run_songs(backend: TritonBackend, songs: list[bytes], options: SeparationOptions) -> tuple[float, list[float]]:
    """Separate every song at once, one thread each; (wall seconds, per-song seconds)."""
    latencies: list[float] = [0.0] * len(songs)
    errors: list[BaseException] = []
    with tempfile.TemporaryDirectory() as out:

        def one(index: int) -> None:
            started = time.perf_counter()
            try:
                separate(songs[index], Path(out) / str(index), backend, options)
            except Exception as exc:  # noqa: BLE001 - re-raised below, after every thread is done
                errors.append(exc)
            latencies[index] = time.perf_counter() - started

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(songs))]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
    if errors:
        raise errors[0]
    return wall, latencies


def summarize(label: str, max_batch: object, walls: list[float], latencies: list[float], delta: dict) -> dict:
    requests = max(delta["nv_inference_request_success"], 1.0)
    executions = max(delta["nv_inference_exec_count"], 1.0)
    ordered = sorted(latencies)
    wall = statistics.median(walls)
    return {
        "mode": label,
        "max_batch_size": max_batch,
        "median_round_s": round(wall, 3),
        "rounds_s": " ".join(f"{w:.2f}" for w in walls),
        "songs_per_min": round(60 * len(latencies) / sum(walls), 2),
        "p50_song_s": round(statistics.median(ordered), 3),
        "p95_song_s": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 3),
        "windows": int(delta["nv_inference_count"]),
        "executions": int(executions),
        "mean_batch_windows": round(delta["nv_inference_count"] / executions, 2),
        "requests_per_execution": round(requests / executions, 2),
        # Triton books a batch's durations to each of its requests: per request = per execution
        "queue_ms_per_request": round(delta["nv_inference_queue_duration_us"] / requests / 1e3, 2),
        "compute_ms_per_execution": round(delta["nv_inference_compute_infer_duration_us"] / requests / 1e3, 2),
    }


def compare(configs: dict[str, TritonConfig], model: str, songs: list[bytes], rounds: int) -> list[dict]:
    """Both servers up at once; rounds alternate between them so that both see the same load."""
    options = SeparationOptions(model=model, stems=4)
    with contextlib.ExitStack() as stack:
        servers = {label: stack.enter_context(TritonProcess(config)) for label, config in configs.items()}
        windows_per_call = max(load_model(next(iter(configs.values())).model_repository, model).spec.max_batch_size, 1)
        backends = {}
        for label, triton in servers.items():
            # the same client in both runs: as many windows per call and song as the model batches
            client = TritonClientConfig(url=triton.grpc_url, windows_per_call=windows_per_call, request_timeout_s=600)
            backends[label] = stack.enter_context(TritonBackend(model, client))
            run_songs(backends[label], songs[:1], options)  # warm-up: connections, arenas
        before = {label: counters(triton.metrics_url, model) for label, triton in servers.items()}
        walls: dict[str, list[float]] = {label: [] for label in configs}
        latencies: dict[str, list[float]] = {label: [] for label in configs}
        for round_index in range(rounds):
            for label in configs:
                wall, song_latencies = run_songs(backends[label], songs, options)
                walls[label].append(wall)
                latencies[label] += song_latencies
                print(f"round {round_index + 1} {label}: {wall:.2f} s", file=sys.stderr)
        after = {label: counters(triton.metrics_url, model) for label, triton in servers.items()}
    rows = []
    for label, config in configs.items():
        delta = {name: after[label][name] - before[label].get(name, 0.0) for name in after[label]}
        max_batch = config.variant.max_batch_size or "model's"
        rows.append(summarize(label, max_batch, walls[label], latencies[label], delta))
    return rows


def onnxruntime_batch_gain(repository: Path, model: str, threads: int, repeats: int = 3) -> dict[str, float]:
    """Per-window seconds (best of ``repeats``) of the model's windows run one at a time and
    as one batch of ``max_batch_size``, in this process; their ratio is the most batching
    can give."""
    entry = load_model(repository, model)
    batch = max(entry.spec.max_batch_size, 1)
    windows = example_windows(entry.spec.segment_samples, batch)
    per_window = {}
    for size in (1, batch):
        backend = LocalBackend(entry, intra_op_threads=threads, batch_size=size)
        backend.infer(windows)  # warm-up: the arena grows to this batch
        best = min(_timed(backend.infer, windows) for _ in range(repeats))
        per_window[size] = best / batch
    return {
        "onnxruntime_ms_per_window_batch_1": round(per_window[1] * 1e3, 1),
        f"onnxruntime_ms_per_window_batch_{batch}": round(per_window[batch] * 1e3, 1),
        "onnxruntime_batch_gain": round(per_window[1] / per_window[batch], 3),
    }


def example_windows(segment: int, count: int) -> np.ndarray:
    """``count`` consecutive windows of the generated example song, ``(count, 2, segment)``."""
    audio = example_mix(count * segment / SAMPLE_RATE_HZ + 1.0, 0)[: count * segment].astype(np.float32)
    return np.ascontiguousarray(audio.T.reshape(2, count, segment).transpose(1, 0, 2))


def _timed(fn, *args) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=8, help="songs in flight together")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each song")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="used when the repository has it")
    parser.add_argument("--synthetic", action="store_true", help="the generated MLP mask model even if --model exists")
    parser.add_argument(
        "--segment", type=int, default=SYNTHETIC_SEGMENT, help="window length of the generated model, samples"
    )
    parser.add_argument("--model-repository", type=Path)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per mode, alternating between the modes")
    parser.add_argument("--intra-op-threads", type=int, default=1, help="ONNX Runtime threads per Triton (0: all)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    settings = Settings.load({"model_repository": args.model_repository})
    with tempfile.TemporaryDirectory() as work:
        repository, model = settings.model_repository, args.model
        if args.synthetic or model not in list_model_names(repository):
            repository, model = Path(work) / "models", SYNTHETIC
            write_mlp_mask_model(repository, segment=args.segment)
        songs = [example_wav_bytes(args.seconds, seed) for seed in range(args.songs)]
        configs = {
            label: TritonConfig(
                model_repository=repository,
                build_dir=Path(work) / label.replace(" ", "-"),
                host="127.0.0.1",
                grpc_port=0,
                http_port=0,
                metrics_port=0,
                variant=CpuVariantOptions(
                    models=(model,), max_batch_size=max_batch, intra_op_threads=args.intra_op_threads
                ),
            )
            for label, max_batch in (("dynamic batching", None), ("batching off", 1))
        }
        rows = compare(configs, model, songs, args.rounds)
        ceiling = onnxruntime_batch_gain(repository, model, args.intra_op_threads)
    ratio = rows[1]["median_round_s"] / rows[0]["median_round_s"]
    figures = {
        "model": model,
        "songs": args.songs,
        "song_seconds": args.seconds,
        "rounds": args.rounds,
        "throughput_ratio": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
        "target_met": ratio >= TARGET_RATIO,
        **ceiling,
    }
    path = report.write("triton_batching", figures, rows)
    print(path.read_text())
    return 0 if figures["target_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
