"""Agreement statistics: reference packages, published worked examples, properties, bad input."""

from __future__ import annotations

import warnings

import krippendorff
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score

from veritag.truth.agreement import (
    cohen_kappa,
    fleiss_kappa,
    fleiss_kappa_table,
    krippendorff_alpha,
    pairwise_cohen_kappa,
)

LEVELS = ["nominal", "ordinal", "interval", "ratio"]


def close(expected: float) -> object:
    """1e-9 relative, with a tiny absolute floor for values at or near zero."""
    return pytest.approx(expected, rel=1e-9, abs=1e-12)


def to_coo(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(items, sources, labels) from a sources x items matrix with -1 for missing."""
    sources, items = np.nonzero(matrix >= 0)
    return items, sources, matrix[sources, items]


def reference_alpha(matrix: np.ndarray, level: str) -> float:
    """The krippendorff package on the same data; ratio is fed values 1..K (see ratio_values)."""
    data = np.where(matrix >= 0, matrix.astype(np.float64), np.nan)
    if level == "ratio":
        data = data + 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(krippendorff.alpha(reliability_data=data, level_of_measurement=level))


def ratio_values(level: str, n_classes: int) -> dict:
    """Ratio distances depend on the zero point, so both sides use values 1..K."""
    return {"values": np.arange(1, n_classes + 1, dtype=np.float64)} if level == "ratio" else {}


# Krippendorff's worked example (4 coders x 12 units, values 1..5, missing data); "Computing
# Krippendorff's alpha-reliability" (2011) and the krippendorff package's doctests.
_NA = -1
KRIPPENDORFF_EXAMPLE = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, _NA, _NA, _NA],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, _NA, 3],
        [_NA, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, _NA],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, _NA],
    ]
)
KRIPPENDORFF_CLASSES = np.where(KRIPPENDORFF_EXAMPLE >= 0, KRIPPENDORFF_EXAMPLE - 1, -1)

# Fleiss (1971) as reproduced on Wikipedia: 10 subjects, 14 raters, 5 categories, kappa 0.210.
FLEISS_EXAMPLE = np.array(
    [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
)


def table_to_coo(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(items, labels) with one claim per counted rating."""
    item, label = np.nonzero(table)
    reps = table[item, label]
    return np.repeat(item, reps), np.repeat(label, reps)


# --- strategies -------------------------------------------------------------------------------


@st.composite
def rating_matrices(draw: st.DrawFn, min_sources: int = 1) -> tuple[np.ndarray, int]:
    """(sources x items matrix with -1 for missing, n_classes)."""
    n_sources = draw(st.integers(min_sources, 5))
    n_items = draw(st.integers(1, 12))
    n_classes = draw(st.integers(1, 5))
    cells = draw(
        st.lists(
            st.integers(-1, n_classes - 1),
            min_size=n_sources * n_items,
            max_size=n_sources * n_items,
        )
    )
    return np.array(cells, dtype=np.int64).reshape(n_sources, n_items), n_classes


@st.composite
def label_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int]:
    """Two aligned label vectors (at least one item) and a class count."""
    n_classes = draw(st.integers(1, 5))
    size = draw(st.integers(1, 40))
    labels = st.lists(st.integers(0, n_classes - 1), min_size=size, max_size=size)
    return np.array(draw(labels)), np.array(draw(labels)), n_classes


def sklearn_kappa(a: np.ndarray, b: np.ndarray, n_classes: int, weights: str | None) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(cohen_kappa_score(a, b, labels=np.arange(n_classes), weights=weights))


def naive_fleiss(items: np.ndarray, labels: np.ndarray, n_items: int, n_classes: int) -> float:
    """The generalised definition, item by item, in plain Python."""
    per_item = [[int(lab) for it, lab in zip(items, labels) if it == i] for i in range(n_items)]
    rated = [labs for labs in per_item if len(labs) >= 2]
    if not rated:
        return float("nan")
    p_items = []
    for labs in rated:
        n = len(labs)
        p_items.append(
            sum(labs.count(k) * (labs.count(k) - 1) for k in range(n_classes)) / (n * (n - 1))
        )
    total = sum(len(labs) for labs in rated)
    p_e = sum((sum(labs.count(k) for labs in rated) / total) ** 2 for k in range(n_classes))
    if p_e == 1:
        return float("nan")
    return (sum(p_items) / len(p_items) - p_e) / (1 - p_e)


# --- Krippendorff's alpha ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "published"),
    [
        ("nominal", 0.743),
        ("ordinal", 0.815),
        ("interval", 0.849),
        ("ratio", 0.797),
    ],
)
def test_alpha_krippendorff_worked_example(level: str, published: float) -> None:
    items, sources, labels = to_coo(KRIPPENDORFF_CLASSES)
    alpha = krippendorff_alpha(
        items, sources, labels, n_items=12, n_classes=5, level=level, **ratio_values(level, 5)
    )
    assert round(alpha, 3) == published
    assert alpha == close(reference_alpha(KRIPPENDORFF_CLASSES, level))


def test_alpha_nominal_worked_example_is_exact() -> None:
    # Krippendorff (2011), nominal: n = 40 pairable values (unit 12 has one), 32 of them matched
    # within their unit (trace of o), marginals 9, 13, 10, 5, 3 (sum of squares 384), so
    # alpha = 1 - 39 * (40 - 32) / (40**2 - 384) = 113 / 152.
    items, sources, labels = to_coo(KRIPPENDORFF_CLASSES)
    alpha = krippendorff_alpha(items, sources, labels, n_items=12, n_classes=5)
    assert alpha == close(113 / 152)


@pytest.mark.parametrize("level", LEVELS)
@settings(max_examples=150, deadline=None)
@given(data=rating_matrices(min_sources=2))
def test_alpha_matches_krippendorff_package(level: str, data: tuple[np.ndarray, int]) -> None:
    matrix, n_classes = data
    observed = matrix[matrix >= 0]
    pairable_units = ((matrix >= 0).sum(axis=0) >= 2).any()
    # the package refuses a single-value domain or data without a pairable unit
    assume(np.unique(observed).size >= 2 and pairable_units)
    items, sources, labels = to_coo(matrix)
    ours = krippendorff_alpha(
        items,
        sources,
        labels,
        n_items=matrix.shape[1],
        n_classes=n_classes,
        level=level,
        **ratio_values(level, n_classes),
    )
    reference = reference_alpha(matrix, level)
    if np.isnan(ours):
        # undefined: only one value among pairable units, so the package divides 0 by 0
        assert not np.isfinite(reference)
    else:
        assert ours == close(reference)


@pytest.mark.parametrize("level", LEVELS)
def test_alpha_perfect_agreement_is_one(level: str) -> None:
    items = np.array([0, 0, 1, 1, 1, 2, 2, 3])
    sources = np.array([0, 1, 0, 1, 2, 1, 2, 0])
    labels = np.array([0, 0, 2, 2, 2, 1, 1, 2])
    assert krippendorff_alpha(
        items, sources, labels, n_items=4, n_classes=3, level=level, **ratio_values(level, 3)
    ) == close(1.0)


@pytest.mark.parametrize("level", LEVELS)
def test_alpha_undefined_is_nan(level: str) -> None:
    kw = dict(n_classes=3, level=level, **ratio_values(level, 3))
    # one class throughout: no disagreement expected
    assert np.isnan(krippendorff_alpha([0, 0, 1, 1], [0, 1, 0, 1], [2, 2, 2, 2], n_items=2, **kw))
    # no item with two values: nothing pairable
    assert np.isnan(krippendorff_alpha([0, 1, 2], [0, 1, 0], [0, 1, 2], n_items=3, **kw))
    assert np.isnan(krippendorff_alpha([], [], [], n_items=0, **kw))


@pytest.mark.parametrize("level", LEVELS)
@settings(max_examples=60, deadline=None)
@given(data=rating_matrices(min_sources=2), seed=st.integers(0, 2**32 - 1))
def test_alpha_invariant_to_item_and_source_order(
    level: str, data: tuple[np.ndarray, int], seed: int
) -> None:
    matrix, n_classes = data
    rng = np.random.default_rng(seed)
    kw = dict(
        n_items=matrix.shape[1], n_classes=n_classes, level=level, **ratio_values(level, n_classes)
    )
    items, sources, labels = to_coo(matrix)
    shuffled = to_coo(matrix[rng.permutation(matrix.shape[0])][:, rng.permutation(matrix.shape[1])])
    claim_order = rng.permutation(items.size)
    expected = krippendorff_alpha(items, sources, labels, **kw)
    for got in (
        krippendorff_alpha(*shuffled, **kw),
        krippendorff_alpha(items[claim_order], sources[claim_order], labels[claim_order], **kw),
    ):
        assert got == close(expected) or (np.isnan(got) and np.isnan(expected))


@settings(max_examples=60, deadline=None)
@given(data=rating_matrices(min_sources=2), seed=st.integers(0, 2**32 - 1))
def test_alpha_nominal_invariant_to_class_relabelling(
    data: tuple[np.ndarray, int], seed: int
) -> None:
    matrix, n_classes = data
    relabel = np.random.default_rng(seed).permutation(n_classes)
    items, sources, labels = to_coo(matrix)
    kw = {"n_items": matrix.shape[1], "n_classes": n_classes}
    expected = krippendorff_alpha(items, sources, labels, **kw)
    got = krippendorff_alpha(items, sources, relabel[labels], **kw)
    assert got == close(expected) or (np.isnan(got) and np.isnan(expected))


def test_alpha_interval_uses_values() -> None:
    items, sources, labels = to_coo(KRIPPENDORFF_CLASSES)
    # an affine map of the values leaves interval alpha unchanged...
    base = krippendorff_alpha(items, sources, labels, n_items=12, n_classes=5, level="interval")
    moved = krippendorff_alpha(
        items,
        sources,
        labels,
        n_items=12,
        n_classes=5,
        level="interval",
        values=3.0 * np.arange(5) - 7,
    )
    assert moved == close(base)
    # ...while uneven spacing changes it, matching the package given the same values
    spaced = np.array([0.0, 1.0, 2.0, 10.0, 11.0])
    data = np.where(KRIPPENDORFF_CLASSES >= 0, spaced[KRIPPENDORFF_CLASSES], np.nan)
    got = krippendorff_alpha(
        items, sources, labels, n_items=12, n_classes=5, level="interval", values=spaced
    )
    assert got == close(krippendorff.alpha(reliability_data=data, level_of_measurement="interval"))
    assert got != close(base)


# --- Cohen's kappa ----------------------------------------------------------------------------


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
@settings(max_examples=200, deadline=None)
@given(data=label_pairs())
def test_cohen_matches_sklearn(
    weights: str | None, data: tuple[np.ndarray, np.ndarray, int]
) -> None:
    a, b, n_classes = data
    ours = cohen_kappa(a, b, n_classes=n_classes, weights=weights)
    reference = sklearn_kappa(a, b, n_classes, weights)
    if np.isnan(reference):
        assert np.isnan(ours)
    else:
        assert ours == close(reference)


def test_cohen_textbook_values() -> None:
    # 50 items, yes/no: 20 both yes, 15 both no, 5 + 10 disagreements -> kappa 0.4 (Wikipedia)
    a = np.array([1] * 20 + [0] * 15 + [1] * 5 + [0] * 10)
    b = np.array([1] * 20 + [0] * 15 + [0] * 5 + [1] * 10)
    assert cohen_kappa(a, b) == close(0.4)
    assert cohen_kappa(a, a) == close(1.0)
    assert cohen_kappa([0, 1], [1, 0]) == close(-1.0)


def test_cohen_default_n_classes_and_undefined() -> None:
    assert cohen_kappa([0, 2, 2], [0, 2, 1], weights="linear") == close(
        sklearn_kappa(np.array([0, 2, 2]), np.array([0, 2, 1]), 3, "linear")
    )
    assert np.isnan(cohen_kappa([1, 1, 1], [1, 1, 1]))
    assert np.isnan(cohen_kappa([], []))
    assert np.isnan(cohen_kappa([2, 2], [2, 2], n_classes=4, weights="quadratic"))


@settings(max_examples=100, deadline=None)
@given(data=label_pairs(), seed=st.integers(0, 2**32 - 1))
def test_cohen_invariances(data: tuple[np.ndarray, np.ndarray, int], seed: int) -> None:
    a, b, n_classes = data
    rng = np.random.default_rng(seed)
    order = rng.permutation(a.size)
    relabel = rng.permutation(n_classes)
    expected = cohen_kappa(a, b, n_classes=n_classes)
    for got in (
        cohen_kappa(a[order], b[order], n_classes=n_classes),
        cohen_kappa(relabel[a], relabel[b], n_classes=n_classes),
        cohen_kappa(b, a, n_classes=n_classes),
    ):
        assert got == close(expected) or (np.isnan(got) and np.isnan(expected))


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
@settings(max_examples=120, deadline=None)
@given(data=rating_matrices())
def test_pairwise_matches_sklearn_per_pair(
    weights: str | None, data: tuple[np.ndarray, int]
) -> None:
    matrix, n_classes = data
    n_sources, n_items = matrix.shape
    items, sources, labels = to_coo(matrix)
    got = pairwise_cohen_kappa(
        items,
        sources,
        labels,
        n_items=n_items,
        n_sources=n_sources,
        n_classes=n_classes,
        weights=weights,
    )
    assert got.shape == (n_sources, n_sources)
    assert np.isnan(np.diag(got)).all()
    np.testing.assert_array_equal(got, got.T)
    for s in range(n_sources):
        for t in range(s + 1, n_sources):
            shared = (matrix[s] >= 0) & (matrix[t] >= 0)
            if shared.sum() < 2:
                assert np.isnan(got[s, t])
                continue
            expected = sklearn_kappa(matrix[s, shared], matrix[t, shared], n_classes, weights)
            if np.isnan(expected):
                assert np.isnan(got[s, t])
            else:
                assert got[s, t] == close(expected)


def test_pairwise_small_case_by_hand() -> None:
    # rater 0 and 1 share items 0..3 (kappa 0.5); rater 2 shares only item 0 with each
    items = np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 4])
    sources = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    labels = np.array([0, 0, 1, 1, 0, 1, 1, 1, 1, 0])
    got = pairwise_cohen_kappa(items, sources, labels, n_items=5, n_sources=4, n_classes=2)
    assert got[0, 1] == close(0.5) and got[1, 0] == close(0.5)
    assert np.isnan(got[0, 2]) and np.isnan(got[1, 2])
    assert np.isnan(got[3]).all() and np.isnan(got[:, 3]).all()  # rater 3 never labelled
    empty = pairwise_cohen_kappa([], [], [], n_items=0, n_sources=2, n_classes=2)
    assert empty.shape == (2, 2) and np.isnan(empty).all()


# --- Fleiss' kappa ----------------------------------------------------------------------------


def test_fleiss_wikipedia_example() -> None:
    kappa = fleiss_kappa_table(FLEISS_EXAMPLE)
    assert round(kappa, 3) == 0.210
    # exact: P_bar = 0.37802..., P_e = 0.21344...
    p_bar = ((FLEISS_EXAMPLE * (FLEISS_EXAMPLE - 1)).sum(axis=1) / (14 * 13)).mean()
    p_e = ((FLEISS_EXAMPLE.sum(axis=0) / 140) ** 2).sum()
    assert kappa == close((p_bar - p_e) / (1 - p_e))
    items, labels = table_to_coo(FLEISS_EXAMPLE)
    assert fleiss_kappa(items, labels, n_items=10, n_classes=5) == close(kappa)


def test_fleiss_variable_raters_by_hand() -> None:
    # item 0: [0, 0, 1]  P = 2 / 6;  item 1: [1, 1]  P = 1;  item 2: [0] (not pairable)
    # item 3: [0, 1, 1, 1]  P = 6 / 12;  P_bar = 11 / 18
    # pooled over pairable items: class 0: 3, class 1: 6 -> P_e = 5 / 9;  kappa = 1 / 8
    items = np.array([0, 0, 0, 1, 1, 2, 3, 3, 3, 3])
    labels = np.array([0, 0, 1, 1, 1, 0, 0, 1, 1, 1])
    assert fleiss_kappa(items, labels, n_items=5, n_classes=2) == close(0.125)
    table = np.array([[2, 1], [0, 2], [1, 0], [1, 3], [0, 0]])
    assert fleiss_kappa_table(table) == close(0.125)


@settings(max_examples=200, deadline=None)
@given(data=rating_matrices())
def test_fleiss_matches_naive_definition(data: tuple[np.ndarray, int]) -> None:
    matrix, n_classes = data
    items, _, labels = to_coo(matrix)
    n_items = matrix.shape[1]
    got = fleiss_kappa(items, labels, n_items=n_items, n_classes=n_classes)
    expected = naive_fleiss(items, labels, n_items, n_classes)
    assert got == close(expected) or (np.isnan(got) and np.isnan(expected))
    table = np.zeros((n_items, n_classes), dtype=np.int64)
    np.add.at(table, (items, labels), 1)
    from_table = fleiss_kappa_table(table)
    assert from_table == close(expected) or (np.isnan(from_table) and np.isnan(expected))


@settings(max_examples=100, deadline=None)
@given(data=rating_matrices(), seed=st.integers(0, 2**32 - 1))
def test_fleiss_invariant_to_item_and_class_order(data: tuple[np.ndarray, int], seed: int) -> None:
    matrix, n_classes = data
    rng = np.random.default_rng(seed)
    n_items = matrix.shape[1]
    items, _, labels = to_coo(matrix)
    item_map, class_map = rng.permutation(n_items), rng.permutation(n_classes)
    kw = {"n_items": n_items, "n_classes": n_classes}
    expected = fleiss_kappa(items, labels, **kw)
    got = fleiss_kappa(item_map[items], class_map[labels], **kw)
    assert got == close(expected) or (np.isnan(got) and np.isnan(expected))


def test_fleiss_perfect_and_undefined() -> None:
    assert fleiss_kappa([0, 0, 0, 1, 1], [1, 1, 1, 0, 0], n_items=2, n_classes=2) == close(1.0)
    assert fleiss_kappa_table([[3, 0], [0, 3]]) == close(1.0)
    assert np.isnan(fleiss_kappa([0, 0, 1, 1], [1, 1, 1, 1], n_items=2, n_classes=3))
    assert np.isnan(fleiss_kappa([0, 1], [0, 1], n_items=2, n_classes=2))  # nothing pairable
    assert np.isnan(fleiss_kappa([], [], n_items=0, n_classes=2))
    assert np.isnan(fleiss_kappa_table(np.zeros((3, 2))))
    assert np.isnan(fleiss_kappa_table([[4, 0], [2, 0]]))


# --- malformed input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: cohen_kappa([0, 1], [0]), "same length"),
        (lambda: cohen_kappa([0, -1], [0, 1]), "non-negative"),
        (lambda: cohen_kappa([0, 3], [0, 1], n_classes=3), "n_classes"),
        (lambda: cohen_kappa([0.0, 1.0], [0, 1]), "integers"),
        (lambda: cohen_kappa([[0, 1]], [[0, 1]]), "1-d"),
        (lambda: cohen_kappa([0, 1], [0, 1], weights="cubic"), "weights"),
        (
            lambda: pairwise_cohen_kappa([0, 1], [0, 1], [0], n_items=2, n_sources=2, n_classes=2),
            "same length",
        ),
        (
            lambda: pairwise_cohen_kappa(
                [0, 1], [0, 2], [0, 1], n_items=2, n_sources=2, n_classes=2
            ),
            "n_sources",
        ),
        (
            lambda: pairwise_cohen_kappa(
                [0, 0], [1, 1], [0, 1], n_items=1, n_sources=2, n_classes=2
            ),
            "more than once",
        ),
        (
            lambda: pairwise_cohen_kappa([0], [0], [0], n_items=-1, n_sources=2, n_classes=2),
            "n_items",
        ),
        (lambda: fleiss_kappa([0, 2], [0, 1], n_items=2, n_classes=2), "n_items"),
        (lambda: fleiss_kappa([0, 1], [0, -1], n_items=2, n_classes=2), "non-negative"),
        (lambda: fleiss_kappa([0, 1, 1], [0, 1], n_items=2, n_classes=2), "same length"),
        (lambda: fleiss_kappa([0, 1], [0, 1], n_items=2.5, n_classes=2), "integer"),
        (lambda: fleiss_kappa_table([1, 2, 3]), "2-d"),
        (lambda: fleiss_kappa_table([[1, -2]]), "non-negative"),
        (lambda: fleiss_kappa_table([[1.5, 2]]), "whole"),
        (lambda: fleiss_kappa_table([[np.nan, 2]]), "non-negative"),
        (lambda: krippendorff_alpha([0, 0], [0, 1], [0, 5], n_items=1, n_classes=5), "n_classes"),
        (
            lambda: krippendorff_alpha([0, 0], [0, 0], [0, 1], n_items=1, n_classes=2),
            "more than once",
        ),
        (
            lambda: krippendorff_alpha(
                [0, 0], [0, 1], [0, 1], n_items=1, n_classes=2, level="nice"
            ),
            "level",
        ),
        (
            lambda: krippendorff_alpha(
                [0, 0], [0, 1], [0, 1], n_items=1, n_classes=2, level="interval", values=[1.0]
            ),
            "values",
        ),
        (
            lambda: krippendorff_alpha(
                [0, 0], [0, 1], [0, 1], n_items=1, n_classes=2, level="ordinal", values=[1.0, 2.0]
            ),
            "values",
        ),
        (
            lambda: krippendorff_alpha(
                [0, 0], [0, 1], [0, 1], n_items=1, n_classes=2, level="ratio", values=[-1.0, 2.0]
            ),
            "non-negative",
        ),
        (
            lambda: krippendorff_alpha([0, 0], [0, -1], [0, 1], n_items=1, n_classes=2),
            "non-negative",
        ),
    ],
)
def test_bad_input_raises(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
