"""Render procedural songs once into a cache of float16 stems: ``python -m stemserve.train.make_cache``.

Each song is saved as ``<out>/song_<seed>.npy`` with shape (stems, channels, samples) in
the stem order of ``stemserve.train.arrange.STEMS``. Existing files are skipped, so the command is
resumable and can grow a cache while training already reads from it.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
from stemserve.train.arrange import STEMS, generate_song, vary_song
from stemserve.train.ensemble import ensemble_song
from stemserve.train.render import TRAIN_SOUNDFONTS, open_renderers, render_song

log = logging.getLogger(__name__)


def song_path(cache_dir: Path, seed: int) -> Path:
    return cache_dir / f"song_{seed:07d}.npy"


# the songs a cache can hold: (seed, duration_s) -> Song
SONG_KINDS = {
    "plain": generate_song,
    "vary": lambda seed, duration_s: vary_song(generate_song(seed, duration_s)),
    "ensemble": ensemble_song,
    "crossing": lambda seed, duration_s: ensemble_song(seed, duration_s, crossing=True),
    "blend": lambda seed, duration_s: ensemble_song(seed, duration_s, crossing=True, blend=True),
    "unison": lambda seed, duration_s: ensemble_song(seed, duration_s, crossing=True, unison=True),
}


def real_renderer(data_dir: Path, identities: str = "train", split_seed: int = 0):
    """``(seed, duration_s) -> stems``: songs of ``generate_song`` (half through ``vary_song``)
    played by the real recordings of one side of ``real_sources.split`` with effects per stem
    (``stemserve.train.real_render``)."""
    from stemserve.train.real_render import render_real_song
    from stemserve.train.real_sources import index, split

    if identities not in ("train", "valid"):
        raise ValueError(f"identities must be train or valid, got {identities!r}")
    sources = split(index(data_dir), split_seed)[identities == "valid"]
    if not sources:
        raise SystemExit(f"no real recordings in {data_dir}: run python -m stemserve.train.real_sources fetch")
    pool = {stem: [s for s in sources if s.stem == stem] for stem in STEMS}

    def render(seed: int, duration_s: float) -> np.ndarray:
        rng = np.random.default_rng(seed + 104729)
        song = generate_song(seed, duration_s)
        if rng.random() < 0.5:
            song = vary_song(song)
        return render_real_song(song, pool, rng)

    return render


def build_cache(cache_dir: Path, seeds: range, soundfonts: tuple[str, ...] = TRAIN_SOUNDFONTS,
                duration_s: float = 12.0, kind: str = "plain", real_data: Path = Path("data/real"),
                identities: str = "train") -> int:
    """Render every seed not cached yet as a song of ``kind`` (``SONG_KINDS``: the plain
    generator, its songs through ``vary_song``, or ``stemserve.train.ensemble``'s part-writing songs,
    plain, crossing, blend or unison; or ``real``: real recordings of the ``identities`` side of
    the split, ``real_renderer``); returns how many were rendered."""
    if kind not in SONG_KINDS and kind != "real":
        raise ValueError(f"song kind must be one of {sorted(SONG_KINDS) + ['real']}, got {kind!r}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    if kind == "real":
        real = real_renderer(real_data, identities)
    else:
        renderers = open_renderers(soundfonts)
    rendered = 0
    start = time.monotonic()
    for seed in seeds:
        path = song_path(cache_dir, seed)
        if path.exists():
            continue
        stems = real(seed, duration_s) if kind == "real" else render_song(SONG_KINDS[kind](seed, duration_s), renderers)
        peak = float(np.abs(stems.sum(axis=0)).max())
        if peak > 0:
            stems = stems * (0.9 / max(peak, 0.9))  # keep float16 away from overflow
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, stems.astype(np.float16))
        tmp.rename(path)
        rendered += 1
        if rendered % 20 == 0:
            log.info("rendered %d songs (%.2f s/song)", rendered, (time.monotonic() - start) / rendered)
    return rendered


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("train/cache/songs"))
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--duration-s", type=float, default=12.0)
    parser.add_argument("--soundfont", action="append", default=None, metavar="NAME",
                        help="a soundfont in /usr/share/sounds/sf2, repeatable (default: the three training "
                             "soundfonts; any other is for validation and evaluation caches only)")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--vary", action="store_true",
                      help="render the songs through train.arrange.vary_song (higher bass lines, piano in the "
                           "singer's register, choir backing as other)")
    kind.add_argument("--ensemble", action="store_true",
                      help="render part-writing songs of train.ensemble (choirs, chamber ensembles, a singer or "
                           "soloist with piano)")
    kind.add_argument("--crossing", action="store_true",
                      help="render train.ensemble's crossing songs (a bass line in the tenor register, a piano "
                           "left hand in the bass register, pianos in chamber songs)")
    kind.add_argument("--blend", action="store_true",
                      help="render crossing songs as one ensemble: all stems with one soundfont, the inner choir "
                           "voices with the lead's choir patch")
    kind.add_argument("--unison", action="store_true",
                      help="render crossing songs with unison passages: a quick bass figure doubled one or two "
                           "octaves up by the lines above")
    kind.add_argument("--real", action="store_true",
                      help="play the songs with real recordings (voices, drum kits, loops, sampled instruments, "
                           "train.real_sources) with production effects per stem; needs real_sources fetch")
    parser.add_argument("--real-data", type=Path, default=Path("data/real"),
                        help="where python -m stemserve.train.real_sources fetch unpacked the packages")
    parser.add_argument("--identities", choices=("train", "valid"), default="train",
                        help="with --real: the training or the validation side of the split of source identities")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    kinds = [*SONG_KINDS, "real"]
    count = build_cache(args.out, range(args.first_seed, args.first_seed + args.count),
                        tuple(args.soundfont or TRAIN_SOUNDFONTS), args.duration_s,
                        kind=next((kind for kind in kinds if kind != "plain" and getattr(args, kind)), "plain"),
                        real_data=args.real_data, identities=args.identities)
    log.info("done: %d songs rendered into %s", count, args.out)


if __name__ == "__main__":
    main()
