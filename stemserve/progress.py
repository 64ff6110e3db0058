"""Progress of ``stemserve separate`` on stderr: a redrawn bar with an ETA on a terminal, a
plain line every few seconds otherwise (logs, CI), nothing with ``--no-progress``."""

from __future__ import annotations

import sys
import time
from typing import TextIO

LINE_EVERY_S = 5.0


class Progress:
    """A ``ProgressFn`` for one song: call it with (windows done, windows in all)."""

    def __init__(self, label: str, *, enabled: bool = True, stream: TextIO | None = None, width: int = 30,
                 clock=time.monotonic) -> None:
        self.label, self.enabled, self.width, self.clock = label, enabled, width, clock
        self.stream = sys.stderr if stream is None else stream
        self.terminal = self.stream.isatty()
        self.started = clock()
        self._last_line = self.started

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        now = self.clock()
        if self.terminal:
            filled = self.width * done // total
            bar = "#" * filled + "-" * (self.width - filled)
            end = "\n" if done >= total else ""
            self.stream.write(f"\r{self.label} [{bar}] {done}/{total} windows{self._eta(done, total, now)}{end}")
        elif done >= total or now - self._last_line >= LINE_EVERY_S:
            self._last_line = now
            self.stream.write(f"{self.label}: {done}/{total} windows ({100 * done // total} %)\n")
        self.stream.flush()

    def _eta(self, done: int, total: int, now: float) -> str:
        if done == 0 or done >= total:
            return ""
        left_s = (now - self.started) * (total - done) / done
        return f", ETA {int(left_s) // 60}:{int(left_s) % 60:02d}"
