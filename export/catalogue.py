"""The published models ``stemserve models pull NAME`` installs, and where every fact comes from.

One entry per model: architecture (a key of :data:`stemserve.export.architectures.ARCHITECTURES`
or of the wrapped families), stems, the upstream files with their URLs and what upstream
publishes about their content, the licence of the weights, and a short quality note with
its source. Every value was read from an upstream project's own files (``sources``); what
comes from a third party is said to.

Hashes. No upstream publishes a full sha256 of these files:

- demucs and open-unmix name their files ``<name>-<sha256[:8]>.<ext>`` (torch.hub style);
  the catalogue records that 8-hex prefix (``sha256_prefix``) and ``pull`` checks it;
- the UVR MDX-Net ONNX files and the RoFormer checkpoints come with no hash at all
  (UVR's ``model_data_new.json`` keys its settings by an MD5 of the file's last
  10,240,000 bytes, a lookup key, recorded here as ``uvr_settings_key`` for reference).

``pull`` prints the full sha256 it computed for every file; ``--sha256`` pins a full one
(a mirror, an offline copy, or a value the operator verified). ``sha256`` (a full pin) is
empty for every entry: nothing upstream states one, and none is invented here.

This module imports nothing heavy: ``stemserve models available`` runs without torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from stemserve.core.errors import ModelNotFoundError

DEMUCS_ROOT = "https://dl.fbaipublicfiles.com/demucs/hybrid_transformer/"
UVR_ROOT = "https://github.com/TRvlvr/model_repo/releases/download/all_public_uvr_models/"
# python-audio-separator's fallback host for the same files (separator.py download_model_files)
AUDIO_SEPARATOR_ROOT = "https://github.com/nomadkaraoke/python-audio-separator/releases/download/model-configs/"
MSST_CONFIGS = "https://raw.githubusercontent.com/ZFTurbo/Music-Source-Separation-Training/main/configs/"

# the upstream files each fact below was read from (repository, path, commit)
DEMUCS_SOURCE = (
    "facebookresearch/demucs@e976d93e: demucs/pretrained.py (ROOT_URL), demucs/remote/files.txt "
    "(root: hybrid_transformer/, file names), demucs/remote/<name>.yaml (bags), demucs/repo.py "
    "(check_checksum: sha256 prefix of the file name), README.md (licence, SDR)"
)
UMX_SOURCE = (
    "sigsep/open-unmix-pytorch@fb672c95: openunmix/__init__.py (umxhq_spec / umxl_spec URLs), "
    "README.md (licence, scores)"
)
UVR_SOURCE = (
    "nomadkaraoke/python-audio-separator@0a644dbb: audio_separator/separator/separator.py (download "
    "URLs, get_model_hash), audio_separator/models-scores.json (scores); TRvlvr/application_data@3826b05b: "
    "filelists/download_checks.json (file names), mdx_model_data/model_data_new.json (settings)"
)
MSST_SOURCE = (
    "ZFTurbo/Music-Source-Separation-Training@ccc011ab: docs/pretrained_models.md (URLs, Multisong SDR), "
    "configs/viperx/*.yaml (hyper-parameters), LICENSE (code: MIT)"
)


@dataclass(frozen=True, kw_only=True)
class CatalogueFile:
    """One upstream file of a model."""

    name: str  # the upstream file name; the exporter finds files by it
    urls: tuple[str, ...]  # tried in order
    sha256_prefix: str = ""  # what upstream publishes (the name's hex part); "" when nothing
    sha256: str = ""  # a full pin; "" for every published model (none is published)
    hash_source: str = ""  # where sha256_prefix / sha256 come from, or why there is none
    uvr_settings_key: str = ""  # UVR: MD5 of the last 10,240,000 bytes (a settings key, not checked)

    def __post_init__(self) -> None:
        for value, lengths in ((self.sha256_prefix, range(65)), (self.sha256, (0, 64))):
            if len(value) not in lengths or any(c not in "0123456789abcdef" for c in value):
                raise ValueError(f"{self.name}: hashes are lowercase hex, got {value!r}")
        if not self.urls:
            raise ValueError(f"{self.name}: at least one URL")


@dataclass(frozen=True, kw_only=True)
class CatalogueEntry:
    """One published model."""

    name: str
    architecture: str  # an export architecture (``architectures.ARCHITECTURES``) or ``mdx`` / ``roformer`` kinds
    stems: tuple[str, ...]  # the served model's stems, in output order
    files: tuple[CatalogueFile, ...]
    layout: str  # how the files become a checkpoint: "file", "demucs_bag", "umx_folder", "mdx_onnx"
    license: str  # of the weights
    quality: str  # one line, with the figure's conditions
    quality_source: str
    sources: str  # the upstream files the entry was read from
    size_note: str = "not published upstream; pull prints the size it received"
    notes: str = ""
    generated_files: Mapping[str, str] = field(default_factory=dict)  # written from catalogue data
    settings: Mapping[str, Any] = field(default_factory=dict)  # model-specific (MDX-Net STFT settings)

    def __post_init__(self) -> None:
        object.__setattr__(self, "generated_files", MappingProxyType(dict(self.generated_files)))
        object.__setattr__(self, "settings", MappingProxyType(dict(self.settings)))


def _demucs_file(signature: str, sha256_prefix: str) -> CatalogueFile:
    name = f"{signature}-{sha256_prefix}.th"
    return CatalogueFile(
        name=name,
        urls=(DEMUCS_ROOT + name,),
        sha256_prefix=sha256_prefix,
        hash_source="demucs/remote/files.txt: file name <signature>-<sha256[:8]>.th (checked by demucs repo.py)",
    )


def _umx_file(record: int, stem: str, sha256_prefix: str) -> CatalogueFile:
    name = f"{stem}-{sha256_prefix}.pth"
    return CatalogueFile(
        name=name,
        urls=(f"https://zenodo.org/records/{record}/files/{name}",),
        sha256_prefix=sha256_prefix,
        hash_source="openunmix/__init__.py: file name <target>-<sha256[:8]>.pth (torch.hub style; "
        "open-unmix itself never checks it)",
    )


def _uvr_file(name: str, settings_key: str = "") -> CatalogueFile:
    return CatalogueFile(
        name=name,
        urls=(UVR_ROOT + name, AUDIO_SEPARATOR_ROOT + name),
        hash_source="none published (TRvlvr/model_repo has no checksum list; python-audio-separator "
        "downloads without a check)",
        uvr_settings_key=settings_key,
    )


# demucs/remote/htdemucs_ft.yaml: the four signatures and the per-model per-stem weights
HTDEMUCS_FT_YAML = (
    "models: ['f7e0c4bc', 'd12395a8', '92cfc3b6', '04573f0d']\n"
    "weights: [\n"
    "  [1., 0., 0., 0.],\n"
    "  [0., 1., 0., 0.],\n"
    "  [0., 0., 1., 0.],\n"
    "  [0., 0., 0., 1.],\n"
    "]\n"
)

_DEMUCS_STEMS = ("drums", "bass", "other", "vocals")
_UMX_STEMS = ("vocals", "drums", "bass", "other")
_UMXHQ = {"bass": "8d85a5bd", "drums": "9619578f", "other": "b52fbbf7", "vocals": "b62c91ce"}
_UMXL = {"bass": "2ca1ce51", "drums": "69e0ebd4", "other": "c8c5b3e6", "vocals": "bccbd9aa"}

CATALOGUE: dict[str, CatalogueEntry] = {
    entry.name: entry
    for entry in (
        CatalogueEntry(
            name="htdemucs",
            architecture="htdemucs",
            stems=_DEMUCS_STEMS,
            files=(_demucs_file("955717e8", "8726e21a"),),
            layout="file",
            license="MIT (demucs README: 'Demucs is released under the MIT license'; no separate weight licence)",
            quality="9.00 dB SDR on MUSDB HQ test (trained on MUSDB + 800 songs)",
            quality_source="demucs README.md",
            sources=DEMUCS_SOURCE,
        ),
        CatalogueEntry(
            name="htdemucs_ft",
            architecture="htdemucs_ft",
            stems=_DEMUCS_STEMS,
            files=tuple(
                _demucs_file(sig, prefix)
                for sig, prefix in (
                    ("f7e0c4bc", "ba3fe64a"),
                    ("d12395a8", "e57c48e6"),
                    ("92cfc3b6", "ef3bcb9c"),
                    ("04573f0d", "f3cf25b2"),
                )
            ),
            layout="demucs_bag",
            generated_files={"htdemucs_ft.yaml": HTDEMUCS_FT_YAML},
            license="MIT (demucs README; no separate weight licence)",
            quality="Multisong SDR drums 11.13, bass 11.96, other 5.85, vocals 8.38 dB (third-party measure); "
            "upstream: per-source fine-tuned HT Demucs",
            quality_source="ZFTurbo Music-Source-Separation-Training docs/pretrained_models.md (downstream)",
            sources=DEMUCS_SOURCE,
            notes="a bag of 4 models, model i weighted only on stem i (demucs/remote/htdemucs_ft.yaml)",
        ),
        CatalogueEntry(
            name="htdemucs_6s",
            architecture="htdemucs_6s",
            stems=_DEMUCS_STEMS + ("guitar", "piano"),
            files=(_demucs_file("5c90dfd2", "34c22ccb"),),
            layout="file",
            license="MIT (demucs README; no separate weight licence)",
            quality="no figure published; README: 'piano source is not working great'",
            quality_source="demucs README.md",
            sources=DEMUCS_SOURCE,
            notes="stem order guitar=4, piano=5 is downstream evidence (ZFTurbo config, python-audio-separator); "
            "the loader reads the order from the checkpoint itself",
        ),
        CatalogueEntry(
            name="umxhq",
            architecture="umxhq",
            stems=_UMX_STEMS,
            files=tuple(_umx_file(3370489, stem, _UMXHQ[stem]) for stem in _UMX_STEMS),
            layout="umx_folder",
            license="MIT (open-unmix code); the README states no separate weight licence (see Zenodo record 3370489)",
            quality="SDR vocals 6.25, drums 6.04, bass 5.07, other 4.28 dB (MUSDB18 test, median of frames and tracks)",
            quality_source="open-unmix-pytorch README.md",
            sources=UMX_SOURCE,
        ),
        CatalogueEntry(
            name="umxl",
            architecture="umxl",
            stems=_UMX_STEMS,
            files=tuple(_umx_file(5069601, stem, _UMXL[stem]) for stem in _UMX_STEMS),
            layout="umx_folder",
            license="CC BY-NC-SA 4.0, non-commercial use only (open-unmix README)",
            quality="SDR vocals 7.21, drums 7.15, bass 6.02, other 4.89 dB (MUSDB18 test, median of frames and tracks)",
            quality_source="open-unmix-pytorch README.md",
            sources=UMX_SOURCE,
        ),
    )
}


_UVR_LICENSE = "none published for the weights (TRvlvr/model_repo has no licence file)"
_UVR_SETTINGS_SOURCE = (
    "settings: TRvlvr/application_data mdx_model_data/model_data_new.json under the key {key}; "
    "the file name <-> key mapping is third-party: {mapping}"
)

CATALOGUE.update(
    {
        entry.name: entry
        for entry in (
            CatalogueEntry(
                name="uvr_mdx_voc_ft",
                architecture="mdx_net",
                stems=("vocals", "instrumental"),
                files=(_uvr_file("UVR-MDX-NET-Voc_FT.onnx", "77d07b2667ddf05b9e3175941b4454a0"),),
                layout="mdx_onnx",
                license=_UVR_LICENSE,
                quality="median SDR vocals 10.15, instrumental 15.43 dB (python-audio-separator's own test set, "
                "about 40 tracks)",
                quality_source="python-audio-separator audio_separator/models-scores.json",
                sources=UVR_SOURCE + "; "
                + _UVR_SETTINGS_SOURCE.format(
                    key="77d07b2667ddf05b9e3175941b4454a0",
                    mapping="docs/deton24-audio-separation-info-2026-03-15.md vendored in python-audio-separator",
                ),
                notes="UVR-MDX-NET Voc FT (download_checks.json); primary stem vocals, instrumental = mix - "
                "1.021 * vocals",
                settings={"n_fft": 7680, "dim_f": 3072, "dim_t": 256, "compensate": 1.021, "primary_stem": "vocals"},
            ),
            CatalogueEntry(
                name="uvr_mdx_inst_hq_3",
                architecture="mdx_net",
                stems=("vocals", "instrumental"),
                files=(_uvr_file("UVR-MDX-NET-Inst_HQ_3.onnx", "55657dd70583b0fedfba5f67df11d711"),),
                layout="mdx_onnx",
                license=_UVR_LICENSE,
                quality="median SDR vocals 8.81, instrumental 15.42 dB (python-audio-separator's own test set, "
                "about 40 tracks)",
                quality_source="python-audio-separator audio_separator/models-scores.json",
                sources=UVR_SOURCE + "; "
                + _UVR_SETTINGS_SOURCE.format(
                    key="55657dd70583b0fedfba5f67df11d711",
                    mapping="unrelated third-party projects; upstream names no key for Inst_HQ_3, and the "
                    "deton24 guide's 'older HQ fullbands: n_fft 6144, dim_f 3072, dim_t 8' agrees",
                ),
                notes="UVR-MDX-NET Inst HQ 3 (download_checks.json); primary stem instrumental, vocals = mix - "
                "1.022 * instrumental. Its settings key is third-party: pull reports the file's own key",
                settings={
                    "n_fft": 6144,
                    "dim_f": 3072,
                    "dim_t": 256,
                    "compensate": 1.022,
                    "primary_stem": "instrumental",
                },
            ),
        )
    }
)


_MSST_LICENSE = "none published for the weights (MSST code is MIT; TRvlvr/model_repo has no licence file)"


def _roformer_files(stem: str, settings_key: str) -> tuple[CatalogueFile, CatalogueFile]:
    checkpoint = CatalogueFile(
        name=f"{stem}.ckpt",
        urls=(UVR_ROOT + f"{stem}.ckpt",),
        hash_source="none published (MSST docs/pretrained_models.md and TRvlvr/model_repo give no hash)",
        uvr_settings_key=settings_key,
    )
    config = CatalogueFile(
        name=f"{stem}.yaml",
        urls=(MSST_CONFIGS + f"viperx/{stem}.yaml",
              f"https://raw.githubusercontent.com/TRvlvr/application_data/main/mdx_model_data/mdx_c_configs/{stem}.yaml"),
        hash_source="none published (a text file of the MSST repository)",
    )
    return checkpoint, config


CATALOGUE.update(
    {
        entry.name: entry
        for entry in (
            CatalogueEntry(
                name="bs_roformer_viperx_1297",
                architecture="bs_roformer",
                stems=("vocals", "instrumental"),
                files=_roformer_files("model_bs_roformer_ep_317_sdr_12.9755", "53f707017bfcbb56f5e1bfac420d6732"),
                layout="roformer",
                license=_MSST_LICENSE,
                quality="vocals SDR 10.87 dB on the Multisong dataset (mvsep.com); python-audio-separator's own "
                "test set: median vocals SDR 11.77 dB",
                quality_source="MSST docs/pretrained_models.md; python-audio-separator models-scores.json",
                sources=MSST_SOURCE + "; TRvlvr/application_data filelists/download_checks.json "
                "('BS-Roformer-Viperx-1297')",
                notes="BS-RoFormer viperx edition, vocals; instrumental = mix - vocals (MSST --extract_instrumental)",
                settings={"kind": "bs_roformer"},
            ),
            CatalogueEntry(
                name="mel_roformer_viperx_1143",
                architecture="mel_band_roformer",
                stems=("vocals", "instrumental"),
                files=_roformer_files("model_mel_band_roformer_ep_3005_sdr_11.4360",
                                      "63e41acc264bf681a73aa9f7e5f606cc"),
                layout="roformer",
                license=_MSST_LICENSE,
                quality="vocals SDR 9.67 dB on the Multisong dataset (mvsep.com); python-audio-separator's own "
                "test set: median vocals SDR 10.54 dB",
                quality_source="MSST docs/pretrained_models.md; python-audio-separator models-scores.json",
                sources=MSST_SOURCE + "; TRvlvr/application_data filelists/download_checks.json "
                "('Mel-Roformer-Viperx-1143')",
                notes="Mel-Band RoFormer viperx edition, vocals; instrumental = mix - vocals",
                settings={"kind": "mel_band_roformer"},
            ),
        )
    }
)


def get_entry(name: str) -> CatalogueEntry:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise ModelNotFoundError(f"model must be one of the catalogue's {sorted(CATALOGUE)}, not {name!r}") from None


def describe(entry: CatalogueEntry) -> dict[str, object]:
    """The entry as ``stemserve models available`` prints it."""
    return {
        "name": entry.name,
        "architecture": entry.architecture,
        "stems": list(entry.stems),
        "files": [
            {
                "name": f.name,
                "urls": list(f.urls),
                "sha256": f.sha256 or None,
                "sha256_prefix": f.sha256_prefix or None,
                "hash_source": f.hash_source,
            }
            for f in entry.files
        ],
        "size": entry.size_note,
        "license": entry.license,
        "quality": entry.quality,
        "quality_source": entry.quality_source,
        "sources": entry.sources,
    }
