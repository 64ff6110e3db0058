"""One separation, end to end in this process: decode -> validate -> stereo -> resample ->
normalize -> windows through the backend -> overlap-add -> preset -> resample -> encode.

Stems are written window by window as the overlap-add finishes them, into hidden partial
files renamed into place only when every stem is complete: a failed or cancelled
separation never leaves a stem that looks finished.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from stemserve.backends.base import Backend
from stemserve.client.records import ProgressFn, SeparationRecord, StemRecord
from stemserve.core.presets import resolve
from stemserve.pipeline.options import SeparationOptions
from stemserve.pipeline.stem_sink import StemSink
from stemserve.preprocess.chunk import StreamedSignal, WindowPlan, separate_windows
from stemserve.preprocess.decode import AudioInfo, AudioReader, DecodeLimits, stream_warnings
from stemserve.preprocess.ingest import model_rate_blocks, scan
from stemserve.preprocess.normalize import clipping_warnings, normalization_gain

log = logging.getLogger(__name__)

SHORT_INPUT_S = 1.0
LOW_CONFIDENCE_RESIDUAL = 0.1  # energy of (mix - sum of stems) relative to the mix


def separate(
    source: bytes | Path,
    out_dir: Path,
    backend: Backend,
    options: SeparationOptions = SeparationOptions(),  # noqa: B008 - frozen, shared safely
    *,
    limits: DecodeLimits = DecodeLimits(),  # noqa: B008 - frozen, shared safely
    progress: ProgressFn | None = None,
) -> SeparationRecord:
    started = time.perf_counter()
    spec = backend.spec
    preset = resolve(options.stems, spec.stems, spec.name, options.two_stems)
    with AudioReader(source, limits) as reader:  # first pass: validate, measure
        input_peak, warnings = scan(reader.blocks())
        info = reader.info
    warnings += stream_warnings(source, info)
    gain = normalization_gain(input_peak) if options.normalize else 1.0
    overlap = spec.default_overlap if options.overlap is None else options.overlap
    nb_samples = round(info.nb_frames * spec.sample_rate_hz / info.sample_rate_hz)
    plan = WindowPlan.for_fraction(nb_samples, spec.segment_samples, overlap)
    if info.duration_s < SHORT_INPUT_S:
        warnings.append(
            f"short input: {info.duration_s:.3f} s is under {SHORT_INPUT_S:g} s; the model has little context"
        )
    out_rate = options.output_rate_hz(info.sample_rate_hz)
    # a third pass, on the sink's thread: the input at the output rate, for the residual stem
    mix_reader = AudioReader(source, limits, log_properties=False)
    sink = StemSink(
        Path(out_dir),
        preset.names,
        residual=preset.residual,
        mix_blocks=model_rate_blocks(mix_reader.blocks(), info.sample_rate_hz, out_rate),
        model_rate_hz=spec.sample_rate_hz,
        out_rate_hz=out_rate,
        nb_out_frames=round(info.nb_frames * out_rate / info.sample_rate_hz),
        options=options.encode,
    )
    reader = AudioReader(source, limits, log_properties=False)  # second pass: stream
    try:
        # (samples, channels) at the model's rate, held a window or two at a time
        signal = StreamedSignal(
            model_rate_blocks(reader.blocks(), info.sample_rate_hz, spec.sample_rate_hz), nb_samples
        )
        undo = np.float32(1.0 / gain)  # exact: the gain is a power of two
        position = 0
        residual_energy = mix_energy = 0.0
        for block in separate_windows(
            signal, plan, backend.infer, batch_size=backend.max_batch_size, gain=gain, prefetch=True, progress=progress
        ):
            n = block.shape[2]
            mix = signal[position : position + n].T  # (channels, n)
            model_stems = block  # (stems, channels, n)
            if undo != 1.0:
                model_stems *= undo
            # every 16th sample is plenty to estimate how much of the mix the stems explain
            sparse_mix = mix[:, ::16]
            residual = sparse_mix - model_stems[:, :, ::16].sum(axis=0)
            residual_energy += float(np.vdot(residual, residual))
            mix_energy += float(np.vdot(sparse_mix, sparse_mix))
            sink.put(preset.named(model_stems))
            position += n
            signal.release(position)
        final = sink.commit()
    except BaseException:
        sink.abort()
        raise
    finally:
        reader.close()
        mix_reader.close()
    warnings += clipping_warnings({name: w.peak for name, w in sink.writers.items()})
    if mix_energy > 0 and residual_energy > LOW_CONFIDENCE_RESIDUAL * mix_energy:
        warnings.append(
            f"low confidence: the model's stems leave {100 * residual_energy / mix_energy:.0f} % of "
            f"the mix's energy unexplained"
        )
    stems = tuple(
        StemRecord(name, str(final[name]), out_rate, sink.writers[name].nb_frames, options.format,
                   final[name].stat().st_size)
        for name in preset.names
    )
    result = SeparationRecord(
        model_name=spec.name,
        model_version=spec.model_version,
        runtime_seconds=round(time.perf_counter() - started, 3),
        device=backend.device,
        audio_seconds=round(info.duration_s, 3),
        input=info.as_log_dict(),
        warnings=tuple(warnings),
        stems=stems,
    )
    log.info("separated %s s of audio in %s s", result.audio_seconds, result.runtime_seconds)
    return result


__all__ = ["AudioInfo", "separate"]
