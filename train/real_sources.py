"""Real recorded sources from Debian packages: fetch, index by source identity, split.

``python -m stemserve.train.real_sources fetch`` downloads the packages of ``PACKAGES`` with
``apt-get download`` and unpacks them with ``dpkg-deb -x`` under ``data/real/`` (gitignored;
a package already unpacked is skipped). ``python -m stemserve.train.real_sources list`` prints
the index: every recording grouped by the identity it was recorded from (a speaker, a drum
kit, a sampled instrument, a sample family) and the side of the split each identity is on.

The split is by identity, never by file: a validation identity (a voice, a kit, an
instrument) is never heard in training. It is deterministic: identities are ranked by a
seeded hash within each (stem, kind) group and the first ``valid_fraction`` of each group
goes to validation.

Reserved for independent evaluation and never selected, for training or validation: the
packages, kits, loops and soundfonts of ``RESERVED_*``. The check is in ``index`` and again
in ``split``: a reserved package is never fetched, a reserved kit or loop never indexed, and a
kit that shares any recording (by content hash) with a reserved kit is reserved with it
(GMRockKit of ``hydrogen-data`` holds The Black Pearl's samples). ``loop_amen`` is a cut of
the reserved ``loop_amen_full`` and the ``tabla_*`` one-shots come from the reserved
``loop_tabla``'s instrument, so both are left out too.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import re
import subprocess
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

DATA_DIR = Path("data/real")
# package -> what it gives (each a few tens of MB unpacked, hydrogen-drumkits ~220 MB)
PACKAGES = {
    "klettres-data": "recorded letters and syllables, one speaker per language",
    "hydrogen-drumkits": "multi-sample Hydrogen drum kits",
    "hydrogen-data": "Hydrogen's own kits",
    "sonic-pi-samples": "recorded loops and one-shots",
    "freepats": "sampled instruments (GUS patches)",
}
RESERVED_PACKAGES = frozenset({
    "csoundqt-examples", "qabcs-data", "hedgewars-data", "fretsonfire-songs-muldjord",
    "fretsonfire-songs-sectoid", "singularity-music", "simutrans-data", "openttd-openmsx",
    "planetblupi-music-midi", "freedoom", "musescore-general-soundfont", "musescore-general-soundfont-small",
    "musescore-general-soundfont-lossless",
})
RESERVED_KITS = ("ColomboAcousticDrumkit", "The Black Pearl")  # prefixes of kit folder names
RESERVED_SAMPLES = frozenset({"loop_amen_full", "loop_compus", "loop_tabla"})
# same recordings or instrument as a reserved loop
RESERVED_WITH_SAMPLES = frozenset({"loop_amen"})
RESERVED_SAMPLE_PREFIXES = ("tabla_",)
RESERVED_SOUNDFONTS = ("MuseScore_General",)  # prefixes of soundfont file names

STEMS = ("vocals", "drums", "bass", "piano", "other")

# sonic-pi samples by name: (regex, stem, kind); the first match wins, unmatched ones are unused
_SONIC_PI = (
    (r"^loop_(breakbeat|industrial|perc1|perc2|safari|mehackit1|mehackit2)$", "drums", "loop"),
    (r"^(bd|sn|drum)_", "drums", "one-shot"),
    (r"^elec_(filt_snare|hi_snare|lo_snare|mid_snare|snare|hollow_kick|soft_kick|cymbal|fuzz_tom)$", "drums",
     "one-shot"),
    (r"^bass_", "bass", "one-shot"),
    (r"^guit_", "other", "one-shot"),
    (r"^ambi_piano$", "piano", "one-shot"),
)
# GM program -> stem for sampled instruments (melodic patches only)
_PIANO_PROGRAMS = range(8)
_BASS_PROGRAMS = range(32, 40)
_OTHER_PROGRAMS = tuple(range(8, 32)) + tuple(range(40, 52)) + tuple(range(56, 96)) + (104, 105, 106, 107, 108)
# freepats patches recorded from one instrument: one identity
_FREEPATS_SAME = {1: 0}


def reserved_name(name: str) -> bool:
    """Whether a package, kit, loop or soundfont name is reserved for evaluation."""
    return (name in RESERVED_PACKAGES or name in RESERVED_SAMPLES or name in RESERVED_WITH_SAMPLES
            or name.startswith(RESERVED_KITS) or name.startswith(RESERVED_SAMPLE_PREFIXES)
            or name.startswith(RESERVED_SOUNDFONTS))


@dataclass(frozen=True)
class Recording:
    path: Path
    label: str = ""  # the instrument of a kit, the letter of a voice, the note of a patch


@dataclass
class Source:
    """One identity: recordings from one speaker, kit, instrument or sample family."""

    identity: str  # "<package>/<name>"
    stem: str
    kind: str  # voice, kit, loop, one-shot, patch
    recordings: list[Recording] = field(default_factory=list)
    program: int | None = None  # GM program of a patch

    @property
    def package(self) -> str:
        return self.identity.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.identity.split("/", 1)[1]


class ReservedSourceError(ValueError):
    """A source reserved for independent evaluation was about to be used."""


def fetch(data_dir: Path = DATA_DIR, packages: tuple[str, ...] = tuple(PACKAGES)) -> list[str]:
    """Download and unpack each package not unpacked yet; returns those unpacked now."""
    for package in packages:
        if reserved_name(package):
            raise ReservedSourceError(f"package {package} is reserved for evaluation and is never fetched")
    debs, unpacked = data_dir / "debs", data_dir / "pkgs"
    debs.mkdir(parents=True, exist_ok=True)
    done = []
    for package in packages:
        target = unpacked / package
        if (target / ".complete").exists():
            continue
        found = sorted(debs.glob(f"{package}_*.deb"))
        if not found:
            subprocess.run(["apt-get", "download", package], cwd=debs, check=True)
            found = sorted(debs.glob(f"{package}_*.deb"))
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg-deb", "-x", str(found[-1]), str(target)], check=True)
        (target / ".complete").touch()
        done.append(package)
        log.info("unpacked %s", package)
    return done


def _file_hash(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def hydrogen_kits(root: Path) -> dict[str, list[Recording]]:
    """Kit folder name -> its recordings labelled by instrument name (``drumkit.xml``)."""
    kits = {}
    for xml in sorted(root.glob("*/usr/share/hydrogen/data/drumkits/*/drumkit.xml")):
        folder = xml.parent
        recordings = []
        for instrument in ET.parse(xml).getroot().iter():
            if _local(instrument.tag) != "instrument":
                continue
            names = [child.text or "" for child in instrument if _local(child.tag) == "name"]
            for node in instrument.iter():
                if _local(node.tag) == "filename" and node.text:
                    path = folder / node.text.strip()
                    if path.is_file():
                        recordings.append(Recording(path, names[0].strip() if names else ""))
        if recordings:
            kits[folder.name] = recordings
    return kits


def _kit_groups(kits: dict[str, list[Recording]]) -> tuple[dict[str, str], set[str]]:
    """Kits sharing any recording (by content), or the first word of their name, form one
    identity: kit -> group name, and the kits tainted by a reserved kit."""
    parent = {kit: kit for kit in kits}

    def find(kit: str) -> str:
        while parent[kit] != kit:
            kit = parent[kit]
        return kit

    def join(one: str, other: str) -> None:
        a, b = find(one), find(other)
        parent[max(a, b)] = min(a, b)

    owner: dict[str, str] = {}
    for kit, recordings in kits.items():
        for recording in recordings:
            digest = _file_hash(recording.path)
            if digest in owner:
                join(owner[digest], kit)
            else:
                owner[digest] = kit
    family: dict[str, str] = {}  # one author's kits ("Millo-Drums_v.1", "Millo_MultiLayered2"): one identity
    for kit in sorted(kits):
        key = re.split(r"[-_ ]", kit)[0].lower()
        if key in family:
            join(family[key], kit)
        else:
            family[key] = kit
    members = defaultdict(list)
    for kit in kits:
        members[find(kit)].append(kit)
    group_of, tainted = {}, set()
    for kits_of_group in members.values():
        name = "+".join(sorted(kits_of_group))
        if any(reserved_name(kit) for kit in kits_of_group):
            tainted.update(kits_of_group)
        for kit in kits_of_group:
            group_of[kit] = name
    return group_of, tainted


def _program_stem(program: int) -> str | None:
    if program in _PIANO_PROGRAMS:
        return "piano"
    if program in _BASS_PROGRAMS:
        return "bass"
    if program in _OTHER_PROGRAMS:
        return "other"
    return None


def index(data_dir: Path = DATA_DIR) -> list[Source]:
    """Every usable recording of the unpacked packages, grouped by identity; reserved ones left out."""
    root = data_dir / "pkgs"
    sources: dict[str, Source] = {}

    def add(identity: str, stem: str, kind: str, recording: Recording, program: int | None = None) -> None:
        if reserved_name(identity.split("/", 1)[0]) or any(reserved_name(p) for p in identity.split("/")[1].split("+")):
            raise ReservedSourceError(f"{identity} is reserved for evaluation")
        source = sources.setdefault(identity, Source(identity, stem, kind, program=program))
        source.recordings.append(recording)

    for package in sorted(p.name for p in root.glob("*") if p.is_dir()):
        if reserved_name(package):
            log.warning("skipping %s: reserved for evaluation", package)
    # voices: one speaker per language folder of klettres
    for ogg in sorted(root.glob("klettres-data/usr/share/klettres/*/*/*.ogg")):
        language = ogg.parent.parent.name
        add(f"klettres-data/{language}", "vocals", "voice", Recording(ogg, ogg.stem))
    # drum kits, grouped by shared recordings; those sharing one with a reserved kit are out
    kits = hydrogen_kits(root)
    group_of, tainted = _kit_groups(kits)
    for kit in sorted(kits):
        if kit in tainted:
            log.info("kit %s is reserved (or shares recordings with a reserved kit)", kit)
            continue
        for recording in kits[kit]:
            add(f"hydrogen/{group_of[kit]}", "drums", "kit", recording)
    # sonic-pi loops and one-shots: a loop is its own identity, one-shots by family
    for flac in sorted(root.glob("sonic-pi-samples/usr/share/sonic-pi/samples/*.flac")):
        name = flac.stem
        if reserved_name(name):
            continue
        for pattern, stem, kind in _SONIC_PI:
            if re.search(pattern, name):
                family = name if kind == "loop" else name.split("_")[0]
                add(f"sonic-pi-samples/{family}", stem, kind, Recording(flac, name))
                break
    # freepats: one identity per instrument
    for pat in sorted(root.glob("freepats/usr/share/midi/freepats/Tone_000/*.pat")):
        program = int(pat.name[:3])
        stem = _program_stem(program)
        if stem is None:
            continue
        owner = _FREEPATS_SAME.get(program, program)
        add(f"freepats/{owner:03d}", stem, "patch", Recording(pat, pat.stem), program)
    return sorted(sources.values(), key=lambda s: s.identity)


def _rank(identity: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{identity}".encode()).hexdigest()


def split(sources: list[Source], seed: int = 0, valid_fraction: float = 0.3) -> tuple[list[Source], list[Source]]:
    """(training, validation) identities: in each (stem, kind) group of two or more identities
    the ``valid_fraction`` (at least one) ranked first by a seeded hash go to validation."""
    for source in sources:
        if reserved_name(source.package) or any(reserved_name(p) for p in source.name.split("+")):
            raise ReservedSourceError(f"{source.identity} is reserved for evaluation")
    groups: dict[tuple[str, str], list[Source]] = defaultdict(list)
    for source in sources:
        groups[(source.stem, source.kind)].append(source)
    train, valid = [], []
    for key in sorted(groups):
        ranked = sorted(groups[key], key=lambda s: _rank(s.identity, seed))
        nb_valid = 0 if len(ranked) < 2 else max(1, round(valid_fraction * len(ranked)))
        valid.extend(ranked[:nb_valid])
        train.extend(ranked[nb_valid:])
    return sorted(train, key=lambda s: s.identity), sorted(valid, key=lambda s: s.identity)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("fetch", "list"))
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.action == "fetch":
        fetch(args.data_dir)
        return
    train, valid = split(index(args.data_dir), args.seed)
    for side, sources in (("train", train), ("valid", valid)):
        for source in sources:
            print(f"{side}\t{source.stem}\t{source.kind}\t{source.identity}\t{len(source.recordings)}")


if __name__ == "__main__":
    main()
