"""The listening report of the quality benchmark: an HTML page with, per clip, an audio
player and a spectrogram (0-16 kHz, a dB colour scale) of the mix, and of every reference
stem beside the model's estimate of it, so a listener hears what was missed and what leaked."""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import soundfile as sf
from stemserve.train.arrange import STEMS

TOP_HZ = 16_000
LEVELS_DB = (-120.0, -20.0)  # one colour scale for every image, so levels compare across them


def spectrogram_png(signal: np.ndarray, sample_rate_hz: int, path: Path, title: str) -> None:
    # a noise floor far below the scale, so silent bins draw as its bottom colour, not as gaps
    mono = signal.mean(axis=0) + 1e-8 * np.random.default_rng(0).standard_normal(signal.shape[-1])
    figure, axis = plt.subplots(figsize=(6.4, 2.4), dpi=80)
    *_, image = axis.specgram(mono, NFFT=2048, Fs=sample_rate_hz, noverlap=1536, cmap="magma",
                              vmin=LEVELS_DB[0], vmax=LEVELS_DB[1])
    axis.set_ylim(0, min(TOP_HZ, sample_rate_hz / 2))
    axis.set_title(title, fontsize=9)
    axis.set_xlabel("s", fontsize=8)
    axis.set_ylabel("Hz", fontsize=8)
    axis.tick_params(labelsize=7)
    bar = figure.colorbar(image, ax=axis, pad=0.02)
    bar.set_label("dB", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _cell(media: Path, stem_file: str, audio: np.ndarray, sample_rate_hz: int, title: str, note: str) -> str:
    sf.write(media / f"{stem_file}.wav", np.clip(audio.T, -1, 1), sample_rate_hz, subtype="PCM_16")
    spectrogram_png(audio, sample_rate_hz, media / f"{stem_file}.png", title)
    return (f"<td>{note}<br><audio controls preload='none' src='listening/{stem_file}.wav'></audio><br>"
            f"<img src='listening/{stem_file}.png' alt='spectrogram of {html.escape(title)}'></td>")


def write_listening_report(directory: Path, clips: list[dict], sample_rate_hz: int) -> Path:
    """``clips``: dicts with name, style, mix ``(channels, samples)``, reference and estimate
    ``(stems, channels, samples)`` and sdr ``{stem: dB}``. Returns the HTML path."""
    media = directory / "listening"
    media.mkdir(parents=True, exist_ok=True)
    parts = ["<!doctype html><meta charset='utf-8'><title>stemserve-small listening report</title>",
             ("<style>body{font-family:sans-serif;max-width:1200px;margin:auto}"
              "td{vertical-align:top;padding:4px}img{width:520px}</style>"),
             "<h1>stemserve-small: listening report</h1>",
             ("<p>The served model's stems on evaluation clips (sets a and b: rendered with a soundfont no "
              "training song used; set r: real recordings of sources no training song used), each beside "
              "the reference stem. SDR per stem in dB (median over 1-s frames). Spectrograms up to "
              f"{TOP_HZ // 1000} kHz, colour scale {LEVELS_DB[0]:g} to {LEVELS_DB[1]:g} dB.</p>")]
    for clip in clips:
        name = clip["name"]
        parts.append(f"<h2>{html.escape(name)}</h2><p>{html.escape(clip['style'])}</p><table>")
        parts.append("<tr><th></th><th>reference</th><th>estimate</th></tr>")
        parts.append(f"<tr><td><b>mix</b></td>{_cell(media, f'{name}-mix', clip['mix'], sample_rate_hz, f'{name}: mix', '')}</tr>")
        for i, stem in enumerate(STEMS):
            sdr = f"SDR {clip['sdr'].get(stem, float('nan')):.1f} dB"
            reference = _cell(media, f"{name}-{stem}-reference", clip["reference"][i], sample_rate_hz,
                              f"{name}: {stem} (reference)", "")
            estimate = _cell(media, f"{name}-{stem}", clip["estimate"][i], sample_rate_hz,
                             f"{name}: {stem} (estimate)", sdr)
            parts.append(f"<tr><td><b>{stem}</b></td>{reference}{estimate}</tr>")
        parts.append("</table>")
    path = directory / "quality.html"
    path.write_text("\n".join(parts) + "\n")
    return path
