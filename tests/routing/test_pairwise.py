"""``routing.pairwise``: the one place a pairwise lease's sides are drawn, shown and read back."""

from __future__ import annotations

import pytest

from veritag.routing import pairwise
from veritag.schema import ArenaSchema, PairwiseSchema


def test_the_side_coin_is_fair_and_fixed_per_lease() -> None:
    draws = [pairwise.swapped(3, lease) for lease in range(1, 401)]
    assert draws == [pairwise.swapped(3, lease) for lease in range(1, 401)]
    assert 150 < sum(draws) < 250
    assert draws != [pairwise.swapped(4, lease) for lease in range(1, 401)]  # salted by project


@pytest.mark.parametrize("lease", range(1, 9))
def test_sides_and_letters_translate_both_ways(lease: int) -> None:
    schema = PairwiseSchema()
    view = pairwise.pair_view(
        schema, 1, lease, {"prompt": "q", "response_a": "ra", "response_b": "rb", "model_a": "m"}
    )
    assert view == {
        "prompt": "q",
        "left": "rb" if pairwise.swapped(1, lease) else "ra",
        "right": "ra" if pairwise.swapped(1, lease) else "rb",
    }
    for side in ("left", "right"):
        letter = pairwise.from_sides(1, lease, f" {side.upper()} ")
        assert view[side] == "r" + letter.lower()
        assert pairwise.to_sides(1, lease, letter) == side
    for other in ("tie", "A", 3, None):
        assert pairwise.from_sides(1, lease, other) == other  # left for the schema to check
    assert pairwise.to_sides(1, lease, "tie") == "tie"


def test_answers_name_sides_then_the_other_outcomes() -> None:
    assert pairwise.answers(PairwiseSchema()) == ["left", "right", "tie"]
    assert pairwise.answers(ArenaSchema()) == ["left", "right", "tie", "both_bad"]
    assert pairwise.pair_view(PairwiseSchema(), 1, 1, None) == {
        "prompt": None,
        "left": None,
        "right": None,
    }
