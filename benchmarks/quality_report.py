"""The listening report of the quality benchmark: an HTML page with, per clip, audio
players for the mix and every estimated stem and a spectrogram image of each."""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import soundfile as sf
from stemserve.train.arrange import STEMS


def _spectrogram_png(signal: np.ndarray, sample_rate_hz: int, path: Path, title: str) -> None:
    mono = signal.mean(axis=0)
    figure, axis = plt.subplots(figsize=(6, 2.2), dpi=80)
    axis.specgram(mono + 1e-9, NFFT=2048, Fs=sample_rate_hz, noverlap=1536, cmap="magma", vmin=-120, vmax=-20)
    axis.set_ylim(0, 8000)
    axis.set_title(title, fontsize=9)
    axis.set_xlabel("s", fontsize=8)
    axis.set_ylabel("Hz", fontsize=8)
    axis.tick_params(labelsize=7)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def write_listening_report(directory: Path, clips: list[dict], sample_rate_hz: int) -> Path:
    """``clips``: dicts with name, style, mix ``(channels, samples)``, estimate
    ``(stems, channels, samples)`` and sdr ``{stem: dB}``. Returns the HTML path."""
    media = directory / "listening"
    media.mkdir(parents=True, exist_ok=True)
    parts = ["<!doctype html><meta charset='utf-8'><title>stemserve-small listening report</title>",
             ("<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
              "td{vertical-align:top;padding:4px}img{width:480px}</style>"),
             "<h1>stemserve-small: listening report</h1>",
             ("<p>Estimated stems of the served model on evaluation clips rendered with a soundfont "
              "that no training song used. SDR per stem in dB (median over 1-s frames).</p>")]
    for clip in clips:
        name = clip["name"]
        parts.append(f"<h2>{html.escape(name)}</h2><p>{html.escape(clip['style'])}</p><table>")
        rows = [("mix", clip["mix"], "")] + [
            (stem, clip["estimate"][i], f"SDR {clip['sdr'].get(stem, float('nan')):.1f} dB")
            for i, stem in enumerate(STEMS)]
        for label, audio, note in rows:
            stem_file = f"{name}-{label}"
            sf.write(media / f"{stem_file}.wav", np.clip(audio.T, -1, 1), sample_rate_hz, subtype="PCM_16")
            _spectrogram_png(audio, sample_rate_hz, media / f"{stem_file}.png", f"{name}: {label}")
            parts.append(
                f"<tr><td><b>{label}</b><br>{note}<br><audio controls preload='none' "
                f"src='listening/{stem_file}.wav'></audio></td>"
                f"<td><img src='listening/{stem_file}.png' alt='spectrogram of {label}'></td></tr>")
        parts.append("</table>")
    path = directory / "quality.html"
    path.write_text("\n".join(parts) + "\n")
    return path
