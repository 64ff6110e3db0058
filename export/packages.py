"""Import the model code of ``demucs`` and ``openunmix`` without their audio I/O stacks.

Both packages are installed without their dependency lists (``export/requirements-install.sh``),
because those pull ``torchaudio``, whose wheels pin a torch build of their own. The model
code needs none of it: ``openunmix`` imports ``torchaudio`` at the top of
``openunmix/utils.py`` and ``openunmix/transforms.py`` but uses it only to load, save and
resample files. When ``torchaudio`` cannot be imported, a placeholder module stands in for
it, and any use of it raises an ImportError that says so.
"""

from __future__ import annotations

import importlib
import logging
import sys
import types
from typing import Any

from stemserve.export.errors import ExportError

logger = logging.getLogger(__name__)

_PLACEHOLDER_NAME = "torchaudio"


class _MissingTorchaudio(types.ModuleType):
    """Stands in for torchaudio; touching any attribute says why it is missing."""

    def __init__(self, reason: str) -> None:
        super().__init__(_PLACEHOLDER_NAME)
        self.__stemserve_placeholder__ = True
        self._reason = reason

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise ImportError(
            f"torchaudio.{name} is not available here ({self._reason}); stemserve only uses "
            "the model code of openunmix, which does not need it"
        )


def _ensure_torchaudio_importable() -> None:
    if _PLACEHOLDER_NAME in sys.modules:
        return
    try:
        importlib.import_module(_PLACEHOLDER_NAME)
    except (ImportError, OSError) as exc:  # absent, or a build for another torch
        sys.modules.pop(_PLACEHOLDER_NAME, None)
        logger.debug("torchaudio unusable (%s); installing a placeholder", exc)
        sys.modules[_PLACEHOLDER_NAME] = _MissingTorchaudio(f"{type(exc).__name__}: {exc}")


def openunmix_model() -> types.ModuleType:
    """``openunmix.model`` (OpenUnmix, Separator)."""
    _ensure_torchaudio_importable()
    try:
        return importlib.import_module("openunmix.model")
    except ImportError as exc:
        raise ExportError(
            f"the openunmix package is needed for umx exports ({exc}); install it with export/requirements-install.sh"
        ) from exc


def demucs_module(name: str) -> types.ModuleType:
    """``demucs.<name>`` (htdemucs, apply, states)."""
    try:
        return importlib.import_module(f"demucs.{name}")
    except ImportError as exc:
        raise ExportError(
            f"the demucs package is needed for HT-Demucs exports ({exc}); "
            "install it with export/requirements-install.sh"
        ) from exc
