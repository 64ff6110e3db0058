"""Resample and encode stems on a worker thread while the model runs the next windows.

Files are written under hidden ``.NAME.partial`` names and renamed into place only by
``commit``, once every stem is complete; ``abort`` removes them."""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path

import numpy as np
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
        model_rate_hz: int,
        out_rate_hz: int,
        nb_out_frames: int,
        options: EncodeOptions,
    ) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.final = {name: out_dir / f"{name}.{options.extension}" for name in names}
        self._partial = {name: out_dir / f".{path.name}.partial" for name, path in self.final.items()}
        self._resamplers = {name: StreamResampler(model_rate_hz, out_rate_hz, 2, nb_out_frames) for name in names}
        self.writers = {name: StemWriter(self._partial[name], out_rate_hz, 2, options) for name in names}
        self._queue: queue.Queue[object] = queue.Queue(maxsize=_QUEUE_BLOCKS)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="stem-encoder", daemon=True)
        self._thread.start()

    def put(self, stems: dict[str, np.ndarray]) -> None:
        """Queue one block ``name -> (channels, n)``; the arrays must not change afterwards."""
        self._raise_if_failed()
        self._queue.put(stems)

    def _run(self) -> None:
        done = False
        try:
            while not (done := (item := self._queue.get()) is _DONE):
                for name, stem in item.items():  # type: ignore[union-attr]
                    self._encode(name, stem.T)  # (n, channels)
            for name in self.writers:
                self._encode(name, np.zeros((0, 2), np.float32), last=True)
        except BaseException as exc:  # noqa: BLE001 - reported to the producer by put/commit
            self._error = exc
            while not done:  # drain so the producer never blocks
                done = self._queue.get() is _DONE

    def _encode(self, name: str, block: np.ndarray, last: bool = False) -> None:
        resampler = self._resamplers[name]
        if resampler.from_hz != resampler.to_hz:
            block = np.ascontiguousarray(block)
        self.writers[name].write(resampler.push(block, last=last))

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
