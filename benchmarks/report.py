"""Write a benchmark's figures as JSON and a markdown table under benchmarks/results/."""

from __future__ import annotations

import json
import resource
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
