"""Safe normalization: scale to a target peak by a power of two, undone exactly.

A power-of-two gain only changes float exponents, so ``x * g / g == x`` bit for bit and
stems come back at exactly the input's level.
"""

from __future__ import annotations

import math

TARGET_PEAK = 0.7


def normalization_gain(peak_value: float, target_peak: float = TARGET_PEAK) -> float:
    """The power of two that brings ``peak_value`` into ``(target/2, target]``; 1 for silence."""
    if peak_value <= 0.0 or not math.isfinite(peak_value):
        return 1.0
    exponent = math.floor(math.log2(target_peak / peak_value))
    exponent = max(min(exponent, 60), -60)
    return float(2.0**exponent)


def clipping_warnings(stem_peaks: dict[str, float]) -> list[str]:
    """Warnings for stems whose peak exceeds full scale (they are never rescaled)."""
    return [
        f"clipping risk: stem {name!r} peaks at {value:.3f} (above full scale 1.0); integer and mp3 "
        f"outputs are clipped, float wav keeps it"
        for name, value in stem_peaks.items()
        if value > 1.0
    ]
