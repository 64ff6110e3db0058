"""The batching benchmark's in-process ceiling: real windows, both batch sizes run."""

from __future__ import annotations

import numpy as np

from benchmarks.triton_batching import SYNTHETIC, example_windows, onnxruntime_batch_gain, write_mlp_mask_model
from stemserve.example import example_mix


def test_example_windows_are_consecutive_slices_of_the_song() -> None:
    segment = 1_000
    windows = example_windows(segment, 3)
    song = example_mix(3 * segment / 44_100 + 1.0, 0)
    assert windows.shape == (3, 2, segment)
    for index in range(3):
        np.testing.assert_array_equal(windows[index], song[index * segment : (index + 1) * segment].T)


def test_batch_gain_times_one_window_and_a_full_batch(tmp_path) -> None:
    write_mlp_mask_model(tmp_path, segment=4_096)  # max_batch_size 8
    figures = onnxruntime_batch_gain(tmp_path, SYNTHETIC, threads=1, repeats=1)
    assert set(figures) == {
        "onnxruntime_ms_per_window_batch_1", "onnxruntime_ms_per_window_batch_8", "onnxruntime_batch_gain",
    }
    assert figures["onnxruntime_ms_per_window_batch_1"] > 0 and figures["onnxruntime_ms_per_window_batch_8"] > 0
