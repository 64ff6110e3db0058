"""Chunk a signal into fixed windows and overlap-add the model's outputs back.

Windows of ``segment`` samples start every ``hop = segment - overlap`` samples; the last
one is zero-padded. With an overlap of at most half a window, at most two windows cover
any sample, and adjacent windows cross-fade with complementary raised-cosine ramps
(``sin^2 + cos^2 = 1``), so the weights sum to one everywhere. The first window has no
fade-in and the last no fade-out.

``separate_windows`` streams: it holds one batch of windows and one window of pending
output, and yields finished output blocks in order, so memory does not grow with the
length of the song.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from stemserve.client.records import ProgressFn
from stemserve.preprocess.prefetch import prefetched

InferFn = Callable[[np.ndarray], np.ndarray]
"""(batch, channels, segment) -> (batch, stems, channels, segment)"""


@dataclass(frozen=True)
class WindowPlan:
    nb_samples: int
    segment: int
    overlap: int  # samples shared by adjacent windows

    def __post_init__(self) -> None:
        if self.nb_samples < 1:
            raise ValueError(f"nb_samples must be >= 1, got {self.nb_samples}")
        if not 0 <= self.overlap <= self.segment // 2:
            raise ValueError(f"overlap must be within 0..segment/2, got {self.overlap} for {self.segment}")

    @classmethod
    def for_fraction(cls, nb_samples: int, segment: int, overlap_fraction: float) -> WindowPlan:
        """``overlap_fraction`` comes validated (SeparationOptions, ModelSpec)."""
        return cls(nb_samples, segment, round(segment * overlap_fraction))

    @property
    def hop(self) -> int:
        return self.segment - self.overlap

    @property
    def nb_windows(self) -> int:
        if self.nb_samples <= self.segment:
            return 1
        return 1 + math.ceil((self.nb_samples - self.segment) / self.hop)

    def start(self, index: int) -> int:
        return index * self.hop

    def weights(self, index: int) -> np.ndarray:
        """Cross-fade weights of window ``index``, float32 ``(segment,)``."""
        weight = np.ones(self.segment, dtype=np.float64)
        if self.overlap:
            t = (np.arange(self.overlap) + 0.5) / self.overlap
            fade_in = np.sin(0.5 * np.pi * t) ** 2
            if index > 0:
                weight[: self.overlap] = fade_in
            if index < self.nb_windows - 1:
                weight[-self.overlap :] = 1.0 - fade_in
        return weight.astype(np.float32)


class StreamedSignal:
    """A ``(samples, channels)`` signal of known length that arrives block by block, sliced
    like an array (``signal[a:b]``, zeros past its end) while holding only what lies between
    ``release(before)`` and the furthest slice taken: a window or two, not the song.
    Thread-safe: the model's thread reads windows ahead while the caller reads the mix."""

    def __init__(self, blocks: Iterable[np.ndarray], nb_samples: int, nb_channels: int = 2) -> None:
        self._blocks = iter(blocks)
        self.shape = (nb_samples, nb_channels)
        self.ndim = 2
        self._held: list[np.ndarray] = []  # consecutive blocks from sample `_start` on
        self._start = 0
        self._end = 0  # one past the last sample held
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: slice) -> np.ndarray:
        start, stop = index.start or 0, index.stop
        if index.step not in (None, 1) or stop is None or start < 0:
            raise ValueError(f"a streamed signal takes [start:stop] slices, got {index}")
        with self._lock:
            if start < self._start:
                raise ValueError(f"samples before {self._start} were released; asked for {start}")
            while self._end < min(stop, self.shape[0]):
                block = next(self._blocks, None)
                if block is None:
                    break
                self._held.append(block)
                self._end += len(block)
            out = np.zeros((max(stop - start, 0), self.shape[1]), np.float32)
            offset = self._start
            for block in self._held:
                lo, hi = max(start, offset), min(stop, offset + len(block), self.shape[0])
                if lo < hi:
                    out[lo - start : hi - start] = block[lo - offset : hi - offset]
                offset += len(block)
            return out

    def release(self, before: int) -> None:
        """Forget the samples before ``before``: no slice will start earlier."""
        with self._lock:
            while self._held and self._start + len(self._held[0]) <= before:
                self._start += len(self._held.pop(0))


def window(signal: np.ndarray | StreamedSignal, plan: WindowPlan, index: int) -> np.ndarray:
    """Window ``index`` of ``signal`` ``(samples, channels)`` as ``(channels, segment)``,
    zero-padded past the end."""
    start = plan.start(index)
    piece = signal[start : start + plan.segment].T  # (channels, n)
    if piece.shape[1] == plan.segment:
        return piece
    padded = np.zeros((signal.shape[1], plan.segment), dtype=np.float32)
    padded[:, : piece.shape[1]] = piece
    return padded


def _inferred(
    signal: np.ndarray | StreamedSignal, plan: WindowPlan, infer: InferFn, batch_size: int, gain: float
) -> Iterator[tuple[range, np.ndarray]]:
    """(window indices, model outputs) batch after batch."""
    for first in range(0, plan.nb_windows, batch_size):
        indices = range(first, min(first + batch_size, plan.nb_windows))
        batch = np.stack([window(signal, plan, i) for i in indices])  # (batch, channels, segment)
        if gain != 1.0:
            batch *= np.float32(gain)
        outputs = infer(batch)  # (batch, stems, channels, segment)
        if outputs.ndim != 4 or outputs.shape[0] != len(indices) or outputs.shape[2:] != batch.shape[1:]:
            raise ValueError(
                f"model output must be (batch={len(indices)}, stems, {batch.shape[1]}, {plan.segment}), "
                f"got {outputs.shape}"
            )
        yield indices, outputs


def separate_windows(
    signal: np.ndarray | StreamedSignal,
    plan: WindowPlan,
    infer: InferFn,
    *,
    batch_size: int = 4,
    gain: float = 1.0,
    prefetch: bool = False,
    progress: ProgressFn | None = None,
) -> Iterator[np.ndarray]:
    """Run ``infer`` over the windows of ``signal`` ``(samples, channels)``, each scaled
    by ``gain``, and yield the overlap-added output in consecutive blocks ``(stems,
    channels, n)`` whose lengths add up to exactly ``plan.nb_samples``. Blocks are views
    of the model's outputs and are not modified after they are yielded.

    ``prefetch``: run the model on the next batch (from a worker thread) while the caller
    consumes this one; at most two batches are alive at a time."""
    if signal.ndim != 2 or signal.shape[0] != plan.nb_samples:
        raise ValueError(f"signal must be ({plan.nb_samples}, channels), got {signal.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    total, hop, overlap = plan.nb_windows, plan.hop, plan.overlap
    fade_in = plan.weights(1)[:overlap]  # the next window's fade-out is 1 - fade_in
    tail: np.ndarray | None = None  # (stems, channels, overlap): previous window's faded end
    batches = _inferred(signal, plan, infer, batch_size, gain)
    for indices, outputs in prefetched(batches) if prefetch else batches:
        for offset, index in enumerate(indices):
            out = outputs[offset]  # (stems, channels, segment)
            is_last = index == total - 1
            block = out[:, :, : plan.nb_samples - plan.start(index)] if is_last else out[:, :, :hop]
            if tail is not None:
                head = block[:, :, :overlap]  # shorter than the overlap only in a short last window
                head *= fade_in[: head.shape[2]]
                head += tail[:, :, : head.shape[2]]
            if not is_last:
                tail = out[:, :, hop:] * (1.0 - fade_in)
            yield block
            if progress is not None:
                progress(index + 1, total)
