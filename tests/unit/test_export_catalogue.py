"""The catalogue of published models: consistent with the exporters, honest about hashes."""

from __future__ import annotations

import re

import pytest
import yaml
from stemserve.core.model_config import KNOWN_STEMS
from stemserve.export.architectures import ARCHITECTURES
from stemserve.export.catalogue import CATALOGUE, HTDEMUCS_FT_YAML, get_entry
from stemserve.export.download import Expected
from stemserve.export.errors import ChecksumMismatchError

REQUIRED = {"htdemucs", "htdemucs_ft", "htdemucs_6s", "umxhq", "umxl", "uvr_mdx_voc_ft", "uvr_mdx_inst_hq_3",
            "bs_roformer_viperx_1297", "mel_roformer_viperx_1143"}


def test_required_models_are_listed() -> None:
    assert REQUIRED <= set(CATALOGUE)


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_entry_is_complete_and_sourced(name: str) -> None:
    entry = get_entry(name)
    assert entry.stems and entry.license and entry.quality and entry.quality_source and entry.sources
    assert all(stem in KNOWN_STEMS or stem == "instrumental" for stem in entry.stems)
    for file in entry.files:
        assert file.hash_source, f"{file.name}: say where its hash comes from, or that there is none"
        assert not file.sha256, "no upstream publishes a full sha256: a pin must not be invented"
        assert all(url.startswith("https://") and url.endswith("/" + file.name) for url in file.urls)
        match = re.fullmatch(r".+-([0-9a-f]{8})\.(th|pth)", file.name)
        # the published prefix is exactly the hex part of the upstream file name
        assert file.sha256_prefix == (match.group(1) if match else "")


@pytest.mark.parametrize("name", sorted(n for n in CATALOGUE if n in ARCHITECTURES))
def test_entry_agrees_with_its_export_architecture(name: str) -> None:
    entry, arch = CATALOGUE[name], ARCHITECTURES[name]
    assert entry.architecture == arch.name
    assert set(entry.stems) == set(arch.stems)
    assert len(entry.files) == (4 if arch.family == "umx" else arch.nb_models)


def test_the_bag_description_is_upstream_htdemucs_ft() -> None:
    bag = yaml.safe_load(HTDEMUCS_FT_YAML)
    assert bag["models"] == ["f7e0c4bc", "d12395a8", "92cfc3b6", "04573f0d"]
    assert bag["weights"] == [[float(i == j) for j in range(4)] for i in range(4)]
    files = [f.name.split("-")[0] for f in CATALOGUE["htdemucs_ft"].files]
    assert files == bag["models"]


def test_unknown_name_lists_the_catalogue() -> None:
    with pytest.raises(Exception, match="htdemucs_ft"):
        get_entry("htdemucs_7s")


def test_expected_checks_prefix_and_pin() -> None:
    digest = "ab" * 32
    assert "prefix" in Expected(sha256_prefix="abab").check("f", digest)
    assert "pinned" in Expected(sha256=digest, sha256_prefix="abab").check("f", digest)
    assert "no published hash" in Expected().check("f", digest)
    with pytest.raises(ChecksumMismatchError, match="must start with abcd"):
        Expected(sha256=digest, sha256_prefix="abcd").check("f", digest)
    with pytest.raises(ChecksumMismatchError, match="pinned"):
        Expected(sha256="cd" * 32).check("f", digest)
