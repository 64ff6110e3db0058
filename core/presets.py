"""Stem presets: which stems a request gets and how they come from the model's stems.

- 2 stems: vocals + instrumental, instrumental = input - vocals;
- 4 stems: vocals, drums, bass, other = input - the three;
- 5 stems: vocals, drums, bass, piano, other = input - the four.
The last stem of each preset is the residual: made at the output rate from the input
itself, so the stems sum to the input at any rate, and what the model does not name
(piano in the 4-stem preset, guitar, the band above the model's Nyquist frequency, what a
model's stems leave out of the mix) lands in it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from stemserve.core.errors import InvalidOptionError

PRESETS: dict[int, tuple[str, ...]] = {
    2: ("vocals", "instrumental"),
    4: ("vocals", "drums", "bass", "other"),
    5: ("vocals", "drums", "bass", "piano", "other"),
}


@dataclass(frozen=True)
class Preset:
    """Output stems: each named one is a model stem; the last, ``residual``, is the input
    minus all the others."""

    names: tuple[str, ...]
    sources: tuple[int, ...]  # the model stem of each name but the residual

    @property
    def residual(self) -> str:
        return self.names[-1]

    def named(self, model_stems: np.ndarray) -> dict[str, np.ndarray]:
        """``model_stems`` (stems, channels, n) -> name: (channels, n), the residual left out."""
        return {name: model_stems[index] for name, index in zip(self.names, self.sources)}


def residual(mix: np.ndarray, stems: Iterable[np.ndarray]) -> np.ndarray:
    """``mix`` minus ``stems``, all (channels, n) or all (n, channels), in float32."""
    rest = mix.astype(np.float32, copy=True)
    for stem in stems:
        rest -= stem
    return rest


def stem_names(nb_stems: int, two_stems: str | None = None) -> tuple[str, ...]:
    """The output stems of a request, in order, before any model is known."""
    if two_stems is not None:
        return (two_stems, "instrumental" if two_stems == "vocals" else f"no_{two_stems}")
    return PRESETS[nb_stems]


def resolve(nb_stems: int, model_stems: tuple[str, ...], model_name: str = "", two_stems: str | None = None
            ) -> Preset:
    """The preset for ``nb_stems`` on a model with ``model_stems``; InvalidOptionError when
    the model cannot serve it. ``two_stems``: one stem of the model and the rest
    (``no_<stem>``; for vocals the usual vocals + instrumental)."""
    if two_stems is not None:
        if two_stems not in model_stems:
            raise InvalidOptionError(
                f"two_stems must be a stem of model {model_name!r}, one of {list(model_stems)}; got {two_stems!r}"
            )
        return Preset(stem_names(2, two_stems), (model_stems.index(two_stems),))
    if nb_stems not in PRESETS:
        raise InvalidOptionError(f"stems must be one of {sorted(PRESETS)}, not {nb_stems}")
    names = PRESETS[nb_stems]
    needed = [n for n in names if n not in ("other", "instrumental")]
    missing = [n for n in needed if n not in model_stems]
    if missing:
        raise InvalidOptionError(
            f"the {nb_stems}-stem preset needs stems {list(needed)}; model {model_name!r} has "
            f"{list(model_stems)} (missing {missing})"
        )
    if nb_stems == 2:
        return Preset(names, (model_stems.index("vocals"),))
    if not [stem for stem in model_stems if stem not in needed]:
        raise InvalidOptionError(
            f"the {nb_stems}-stem preset needs an 'other' stem; model {model_name!r} has only {list(model_stems)}"
        )
    return Preset(names, tuple(model_stems.index(n) for n in needed))
