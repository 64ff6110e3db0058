"""stemserve: a music source separation inference service.

    from stemserve import Separator
    separator = Separator()                       # the bundled default model, loaded once
    stems = separator.separate("song.mp3")        # {"vocals": array (channels, samples), ...}

Importing ``stemserve`` loads nothing heavy: ``Separator`` is imported on first use, so the
light client (``stemserve.client``) needs grpcio and protobuf alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from stemserve.pipeline.separator import Separator

__all__ = ["Separator", "__version__"]


def __getattr__(name: str) -> object:
    if name == "Separator":
        from stemserve.pipeline.separator import Separator

        return Separator
    raise AttributeError(f"module 'stemserve' has no attribute {name!r}")
