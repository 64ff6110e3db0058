import numpy as np
import pytest
from stemserve.core.errors import InvalidOptionError
from stemserve.core.presets import residual, resolve


def every_stem(preset, model_stems: np.ndarray, mix: np.ndarray) -> dict[str, np.ndarray]:
    """The preset's stems at one rate: the named ones, then the residual from ``mix``."""
    named = preset.named(model_stems)
    return {**named, preset.residual: residual(mix, named.values())}


FIVE = ("vocals", "drums", "bass", "piano", "other")
SIX = ("vocals", "drums", "bass", "guitar", "piano", "other")


def model_output(nb_stems: int) -> np.ndarray:
    # stem s holds the constant s + 1, so folds are visible as sums
    return np.stack([np.full((2, 3), s + 1.0, np.float32) for s in range(nb_stems)])


def test_two_stems_sum_exactly_to_the_mix():
    rng = np.random.default_rng(1)
    stems = rng.standard_normal((5, 2, 1000)).astype(np.float32)
    mix = rng.standard_normal((2, 1000)).astype(np.float32)
    out = every_stem(resolve(2, FIVE), stems, mix)
    assert list(out) == ["vocals", "instrumental"]
    np.testing.assert_array_equal(out["vocals"], stems[0])
    np.testing.assert_array_equal(out["instrumental"], mix - stems[0])
    np.testing.assert_allclose(out["vocals"] + out["instrumental"], mix, atol=1e-6)


def test_four_stems_fold_piano_into_other():
    stems = model_output(5)
    out = every_stem(resolve(4, FIVE), stems, stems.sum(axis=0))  # a model whose stems sum to the mix
    assert list(out) == ["vocals", "drums", "bass", "other"]
    assert [float(v[0, 0]) for v in out.values()] == [1.0, 2.0, 3.0, 4.0 + 5.0]


def test_six_stem_model_folds_guitar_and_piano_for_four_and_guitar_for_five():
    stems = model_output(6)
    four = every_stem(resolve(4, SIX), stems, stems.sum(axis=0))
    assert float(four["other"][0, 0]) == 4.0 + 5.0 + 6.0
    five = every_stem(resolve(5, SIX), stems, stems.sum(axis=0))
    assert [float(v[0, 0]) for v in five.values()] == [1.0, 2.0, 3.0, 5.0, 4.0 + 6.0]


def test_preset_a_model_cannot_serve_is_a_clear_error():
    with pytest.raises(InvalidOptionError, match=r"5-stem preset needs stems .*missing \['piano'\]"):
        resolve(5, ("vocals", "drums", "bass", "other"), "umx")
    with pytest.raises(InvalidOptionError, match="stems must be one of \\[2, 4, 5\\], not 3"):
        resolve(3, FIVE)


def test_what_the_model_leaves_out_of_the_mix_lands_in_the_residual():
    stems = model_output(5)
    mix = stems.sum(axis=0) + 0.5  # the model explains all but 0.5
    for nb_stems, last in ((2, "instrumental"), (4, "other"), (5, "other")):
        out = every_stem(resolve(nb_stems, FIVE), stems, mix)
        np.testing.assert_array_equal(sum(out.values()), mix)
        assert resolve(nb_stems, FIVE).residual == last
