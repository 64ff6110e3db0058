"""Resample and encode stems on a worker thread while the model runs the next windows.

The named stems come from the model and are resampled to the output rate; the residual
stem (instrumental, other) is made there, from the input itself at the output rate minus
the named stems, so that the stems sum to the input at the output rate whatever the two
rates are.

Files are written under hidden ``.NAME.partial`` names and renamed into place only by
``commit``, once every stem is complete; ``abort`` removes them."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from stemserve.core.presets import residual
from stemserve.preprocess.encode import EncodeOptions, StemWriter
from stemserve.preprocess.resample import StreamResampler

_QUEUE_BLOCKS = 4  # blocks waiting to be encoded: bounds memory, lets encoding overlap inference
_DONE = object()


class StemSink:
    def __init__(
        self,
        out_dir: Path,
        names: tuple[str, ...],
        *,
        residual: str,
        mix_blocks: Iterator[np.ndarray],
        model_rate_hz: int,
        out_rate_hz: int,
        nb_out_frames: int,
        options: EncodeOptions,
    ) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.final = {name: out_dir / f"{name}.{options.extension}" for name in names}
        self._partial = {name: out_dir / f".{path.name}.partial" for name, path in self.final.items()}
        self.names, self.residual = names, residual
        self._mix = _Frames(mix_blocks)  # stereo (n, 2) blocks of the input at the output rate
        self._resamplers = {
            name: StreamResampler(model_rate_hz, out_rate_hz, 2, nb_out_frames) for name in names if name != residual
        }
        self.writers = {name: StemWriter(self._partial[name], out_rate_hz, 2, options) for name in names}
        self._queue: queue.Queue[object] = queue.Queue(maxsize=_QUEUE_BLOCKS)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="stem-encoder", daemon=True)
        self._thread.start()

    def put(self, stems: dict[str, np.ndarray]) -> None:
        """Queue one block of the named stems ``name -> (channels, n)`` at the model's rate;
        the arrays must not change afterwards."""
        self._raise_if_failed()
        self._queue.put(stems)

    def _run(self) -> None:
        done = False
        try:
            while not (done := (item := self._queue.get()) is _DONE):
                self._encode({name: stem.T for name, stem in item.items()})  # type: ignore[union-attr]
            self._encode({name: np.zeros((0, 2), np.float32) for name in self._resamplers}, last=True)
        except BaseException as exc:  # noqa: BLE001 - reported to the producer by put/commit
            self._error = exc
            while not done:  # drain so the producer never blocks
                done = self._queue.get() is _DONE

    def _encode(self, blocks: dict[str, np.ndarray], last: bool = False) -> None:
        """``blocks``: name -> (n, channels) at the model's rate, every named stem."""
        out = {}
        for name, block in blocks.items():
            resampler = self._resamplers[name]
            if resampler.from_hz != resampler.to_hz:
                block = np.ascontiguousarray(block)
            out[name] = resampler.push(block, last=last)
        nb_frames = len(next(iter(out.values())))
        out[self.residual] = residual(self._mix.take(nb_frames, last=last), out.values())
        for name in self.names:
            self.writers[name].write(out[name])

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def commit(self) -> dict[str, Path]:
        """Wait for the encoder, close every file and rename them into place."""
        self._queue.put(_DONE)
        self._thread.join()
        for writer in self.writers.values():
            writer.close()
        self._raise_if_failed()
        for name, path in self.final.items():
            os.replace(self._partial[name], path)
        return self.final

    def abort(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_DONE)
            self._thread.join()
        for writer in self.writers.values():
            writer.close()
        for path in self._partial.values():
            path.unlink(missing_ok=True)


class _Frames:
    """Frames taken from an iterator of ``(n, channels)`` blocks, in runs of any length."""

    def __init__(self, blocks: Iterator[np.ndarray]) -> None:
        self._blocks, self._held = blocks, np.zeros((0, 2), np.float32)

    def take(self, nb_frames: int, last: bool = False) -> np.ndarray:
        parts, have = [self._held], len(self._held)
        while have < nb_frames and (block := next(self._blocks, None)) is not None:
            parts.append(block)
            have += len(block)
        frames = np.concatenate(parts) if len(parts) > 1 else self._held
        if len(frames) < nb_frames:
            raise ValueError(f"the input must give {nb_frames} frames at the output rate, it gave {len(frames)}")
        self._held = frames[nb_frames:]
        if last and (len(self._held) or next(self._blocks, None) is not None):
            raise ValueError("the input gave more frames at the output rate than the stems")
        return frames[:nb_frames]
