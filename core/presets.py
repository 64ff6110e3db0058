"""Stem presets: which stems a request gets and how they come from the model's stems.

- 2 stems: vocals + instrumental, instrumental = mix - vocals (the two sum to the input);
- 4 stems: vocals, drums, bass, other;
- 5 stems: vocals, drums, bass, piano, other.
A model stem that a preset does not name (piano in the 4-stem preset, guitar...) is
folded into ``other``.
"""

from __future__ import annotations

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
    """How each output stem is made: indices of model stems to add up; ``None`` means
    mix minus the sum of every other output stem."""

    names: tuple[str, ...]
    sources: tuple[tuple[int, ...] | None, ...]

    def apply(self, model_stems: np.ndarray, mix: np.ndarray) -> dict[str, np.ndarray]:
        """``model_stems`` (stems, channels, n), ``mix`` (channels, n) -> name: (channels, n)."""
        out: dict[str, np.ndarray] = {}
        for name, indices in zip(self.names, self.sources):
            if indices is not None:
                out[name] = model_stems[indices[0]]  # a view when nothing is folded
                for index in indices[1:]:
                    out[name] = out[name] + model_stems[index]
        for name, indices in zip(self.names, self.sources):
            if indices is None:
                rest = mix.astype(np.float32, copy=True)
                for other in out.values():
                    rest -= other
                out[name] = rest
        return {name: out[name] for name in self.names}


def resolve(nb_stems: int, model_stems: tuple[str, ...], model_name: str = "") -> Preset:
    """The preset for ``nb_stems`` on a model with ``model_stems``; InvalidOptionError when
    the model cannot serve it."""
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
        return Preset(names, ((model_stems.index("vocals"),), None))
    rest = tuple(i for i, stem in enumerate(model_stems) if stem not in needed)
    if not rest:
        raise InvalidOptionError(
            f"the {nb_stems}-stem preset needs an 'other' stem; model {model_name!r} has only {list(model_stems)}"
        )
    return Preset(names, tuple((model_stems.index(n),) for n in needed) + (rest,))
