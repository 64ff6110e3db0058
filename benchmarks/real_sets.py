"""The real-recording validation set of the quality benchmark (set r), and its routing table.

Each clip is a held-out procedural song (``stemserve.train.arrange``, seeds from
``REAL_FIRST_SEED``) played by real recordings of the validation identities of
``stemserve.train.real_sources.split`` only: voices (klettres speakers sung through the WORLD
vocoder), Hydrogen kits and recorded loops, sampled instruments (freepats) and one-shots,
with production effects per stem (``stemserve.train.real_render``). The mix is the exact sum
of the stems. No identity of the set is a training identity, and no reserved evaluation
source is ever used (``real_sources`` refuses them).

The routing table feeds each real stem of each clip alone to a separator and measures the
share of its energy in each output stem: where a voice, a piano or a guitar ends up.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from stemserve.train.arrange import STEMS, generate_song
from stemserve.train.real_render import render_real_song
from stemserve.train.real_sources import DATA_DIR, Source, index, split

from benchmarks.quality_sets import Clip

log = logging.getLogger(__name__)

REAL_FIRST_SEED = 6_000_000
SPLIT_SEED = 0  # the split training uses: the set takes its validation side


def validation_pool(data_dir: Path = DATA_DIR, split_seed: int = SPLIT_SEED) -> tuple[dict[str, list[Source]], set[str]]:
    """(stem -> validation sources, the training identities)."""
    train, valid = split(index(data_dir), split_seed)
    return {stem: [s for s in valid if s.stem == stem] for stem in STEMS}, {s.identity for s in train}


def real_clips(nb_clips: int, duration_s: float = 12.0, data_dir: Path = DATA_DIR,
               split_seed: int = SPLIT_SEED, first_seed: int = REAL_FIRST_SEED) -> list[Clip]:
    """``nb_clips`` clips of set r; each clip's ``style`` names the identities of its stems."""
    pool, training = validation_pool(data_dir, split_seed)
    clips = []
    for index_ in range(nb_clips):
        seed = first_seed + index_
        used: list = []
        stems = render_real_song(generate_song(seed, duration_s), pool, np.random.default_rng(seed), log=used)
        for _, identities, _ in used:
            leaked = set(identities) & training
            if leaked:
                raise AssertionError(f"real validation clip {seed} uses training identities {sorted(leaked)}")
        style = "; ".join(f"{stem}: {', '.join(ids)}" + (f" ({', '.join(fx)})" if fx else "") for stem, ids, fx in used)
        peak = float(np.abs(stems.sum(axis=0)).max())
        stems = (stems * (0.8 / peak if peak > 0 else 1.0)).astype(np.float32)
        clips.append(Clip(f"real-{seed}", "r", style, stems))
        log.info("real-%d: %s", seed, style)
    return clips


def routing(clips: list[Clip], separate) -> dict:
    """Each stem of each clip fed alone to ``separate(mix, stems)``: the share of its energy in
    each output stem. -> {"summary": {source stem: {output stem: mean share}}, "clips": [...]}.
    A stem silent in a clip is not fed."""
    rows = []
    for clip in clips:
        for index_, stem in enumerate(STEMS):
            alone = clip.stems[index_]
            if float(np.sum(alone.astype(np.float64) ** 2)) <= 0:
                continue
            estimate = np.asarray(separate(alone, None), dtype=np.float64)
            energy = (estimate ** 2).sum(axis=tuple(range(1, estimate.ndim)))
            shares = energy / max(float(energy.sum()), 1e-20)
            rows.append({"clip": clip.name, "source": stem, "shares": dict(zip(STEMS, map(float, shares)))})
    summary = {}
    for stem in STEMS:
        mine = [r["shares"] for r in rows if r["source"] == stem]
        if mine:
            summary[stem] = {out: float(np.mean([m[out] for m in mine])) for out in STEMS}
    return {"summary": summary, "clips": rows}


def routing_rows(summary: dict) -> list[dict]:
    """The routing table as rows: source stem, then the percentage in each output stem."""
    return [{"real source alone": stem, **{f"% in {out}": f"{100 * shares[out]:.1f}" for out in STEMS}}
            for stem, shares in summary.items()]
