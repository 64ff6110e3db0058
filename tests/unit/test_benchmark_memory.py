"""A benchmark worker's memory figure is its own, not its parent's."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from benchmarks.report import peak_rss_mb

PARENT_MB = 300


def test_worker_peak_is_not_inherited_from_the_parent() -> None:
    ballast = np.ones(PARENT_MB * 2**20 // 4, dtype=np.float32)  # touched: resident
    assert peak_rss_mb() > PARENT_MB
    del ballast
    code = "from benchmarks.report import peak_rss_mb; print(peak_rss_mb())"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # getrusage's ru_maxrss in the child would report at least the parent's peak
    assert 0 < float(child.stdout.strip()) < PARENT_MB / 2
