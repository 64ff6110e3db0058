"""Write a benchmark's figures as JSON and a markdown table under benchmarks/results/."""

from __future__ import annotations

import json
import resource
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def peak_rss_mb() -> float:
    """Peak resident memory of this process's own address space so far. ``VmHWM``, not
    ``getrusage``: a subprocess inherits its parent's ``ru_maxrss`` through fork / exec, so a
    benchmark worker would report at least its driver's peak."""
    try:
        with open("/proc/self/status") as status:
            kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):  # not Linux
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024


def write(name: str, figures: dict[str, object], rows: list[dict[str, object]]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({**figures, "rows": rows}, indent=2) + "\n")
    lines = []
    if rows:
        header = list(rows[0])
        lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        lines += ["| " + " | ".join(str(row[h]) for h in header) + " |" for row in rows]
    lines += ["", *(f"- {key}: {value}" for key, value in figures.items())]
    path = RESULTS / f"{name}.md"
    path.write_text("\n".join(lines) + "\n")
    return path
