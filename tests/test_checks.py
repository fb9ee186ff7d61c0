"""The shared argument checks (veritag.checks): what each accepts, and that automation and routing
refuse the same argument in the same words."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from veritag.automation.audit import bias_audit
from veritag.automation.policy import automate, choose_threshold
from veritag.checks import bool_mask, confidences, level, posteriors, slice_codes
from veritag.routing.gain import expected_gain
from veritag.routing.policy import RoutingConfig

_NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-0.5, max_value=1.5),
    st.sampled_from([0.0, 1.0, -0.0, 5e-324, 1.0 - 2**-53, 1.0 + 2**-52]),
)


@given(value=_NUMBERS, zero=st.booleans(), one=st.booleans())
def test_a_level_is_accepted_exactly_inside_its_interval(
    value: float, zero: bool, one: bool
) -> None:
    inside = (0.0 <= value if zero else 0.0 < value) and (value <= 1.0 if one else value < 1.0)
    if inside:
        assert level("x", value, zero=zero, one=one) == value
    else:
        with pytest.raises(ValueError, match=r"^x must lie ") as refused:
            level("x", value, zero=zero, one=one)
        assert str(refused.value).endswith(f", got {value!r}")


@pytest.mark.parametrize(
    ("zero", "one", "words"),
    [
        (False, False, "strictly between 0 and 1"),
        (True, False, "in [0, 1)"),
        (False, True, "in (0, 1]"),
        (True, True, "in [0, 1]"),
    ],
)
def test_a_level_names_its_interval(zero: bool, one: bool, words: str) -> None:
    with pytest.raises(ValueError) as refused:
        level("delta", 2, zero=zero, one=one)
    assert str(refused.value) == f"delta must lie {words}, got 2.0"


@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4)))
def test_confidences_are_one_finite_number_per_item(values: np.ndarray) -> None:
    if values.ndim == 1 and np.isfinite(values).all():
        assert np.array_equal(confidences(values), values)
    else:
        with pytest.raises(ValueError, match=r"^c must be (a 1-d array|finite)"):
            confidences(values, "c")


@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4)))
def test_posteriors_are_items_by_classes(values: np.ndarray) -> None:
    if values.ndim == 2:
        assert posteriors(values).shape == values.shape
    else:
        with pytest.raises(ValueError, match=r"posterior must be \(items, classes\), got shape"):
            posteriors(values)


@given(
    codes=hnp.arrays(np.int64, st.integers(0, 6), elements=st.integers(-3, 5)),
    n=st.one_of(st.none(), st.integers(0, 6)),
)
def test_slice_codes_are_ints_from_minus_one(codes: np.ndarray, n: int | None) -> None:
    if n is not None and n != codes.size:
        with pytest.raises(ValueError, match=rf"slices must have shape \({n},\) to match"):
            slice_codes(codes, n)
    elif codes.size and codes.min() < -1:
        with pytest.raises(ValueError, match="slice codes must be >= 0, or -1 for no slice"):
            slice_codes(codes, n)
    else:
        got = slice_codes(codes.astype(np.int32), n)
        assert got.dtype == np.int64 and np.array_equal(got, codes)


def test_slice_codes_and_masks_refuse_the_wrong_kind_of_array() -> None:
    with pytest.raises(ValueError, match="integer slice codes"):
        slice_codes(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="slices must be a 1-d array"):
        slice_codes(np.zeros((2, 2), dtype=int))
    assert slice_codes(np.array([], dtype=float)).dtype == np.int64  # nothing to refuse
    with pytest.raises(ValueError, match=r"m must have shape \(3,\) to match slices, got \(2,\)"):
        bool_mask(np.array([True, False]), 3, "m", "slices")
    with pytest.raises(ValueError, match="m must be a boolean array, got dtype int64"):
        bool_mask(np.array([1, 0], dtype=np.int64), 2, "m", "slices")


def _message(call: object) -> str:
    with pytest.raises(ValueError) as refused:
        call()  # type: ignore[operator]
    return str(refused.value)


def test_automation_and_routing_refuse_an_argument_in_the_same_words() -> None:
    conf = np.array([0.9, 0.8, 0.7])
    mask = np.array([True, True, False])
    ok = np.array([True, True, True])
    assert _message(lambda: choose_threshold(conf, ok, target=0.9, delta=1.0)) == (
        "delta must lie strictly between 0 and 1, got 1.0"
    )
    assert (
        _message(lambda: bias_audit([0], [False], [True], [True], would_auto=[True], delta=1))
        == "delta must lie strictly between 0 and 1, got 1.0"
    )
    assert _message(lambda: RoutingConfig(target=0.0)) == "target must lie in (0, 1], got 0.0"
    bad_slices = np.array([0, -2, 1])
    assert (
        _message(lambda: automate(conf, mask, ok, target=0.5, delta=0.1, slices=bad_slices))
        == _message(
            lambda: bias_audit(
                bad_slices, ~ok, mask, ok, would_auto=np.ones(3, dtype=bool), delta=0.1
            )
        )
        == "slice codes must be >= 0, or -1 for no slice"
    )
    assert _message(lambda: automate(conf, mask.astype(int), ok, target=0.5, delta=0.1)) == (
        "audit_mask must be a boolean array, got dtype int64"
    )
    assert _message(lambda: expected_gain(np.ones(3), np.ones((1, 3, 3)))) == (
        "posterior must be (items, classes), got shape (3,)"
    )
