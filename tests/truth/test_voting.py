"""Majority and multilabel votes: properties, edge cases and a naive reference implementation."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veritag.truth import VoteResult, majority_vote, multilabel_vote

# --- strategies -------------------------------------------------------------------------------


@st.composite
def claims(
    draw: st.DrawFn, weighted: bool = False
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray | None]:
    """(n_items, items, labels, weights): random COO claims; some items get no vote at all."""
    n_items = draw(st.integers(1, 12))
    n_labels = draw(st.integers(1, 5))
    size = draw(st.integers(0, 60))
    items = np.array(
        draw(st.lists(st.integers(0, n_items - 1), min_size=size, max_size=size)), dtype=np.int64
    )
    labels = np.array(
        draw(st.lists(st.integers(0, n_labels - 1), min_size=size, max_size=size)), dtype=np.int64
    )
    weights = None
    if weighted:
        # small positive whole numbers: exact in floating point, so sums do not depend on order
        weights = np.array(
            draw(st.lists(st.integers(1, 4), min_size=size, max_size=size)), dtype=np.float64
        )
    return n_items, items, labels, weights


@st.composite
def multilabel_claims(draw: st.DrawFn) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray]:
    """Voters per item each pick a label subset; returns (item, label) pairs and voter counts."""
    n_items = draw(st.integers(1, 8))
    n_labels = draw(st.integers(1, 5))
    voters = draw(st.lists(st.integers(0, 6), min_size=n_items, max_size=n_items))
    items, labels = [], []
    for item, n in enumerate(voters):
        for _ in range(n):
            chosen = draw(st.sets(st.integers(0, n_labels - 1)))
            for label in sorted(chosen):
                items.append(item)
                labels.append(label)
    return (
        n_items,
        n_labels,
        np.array(items, dtype=np.int64),
        np.array(labels, dtype=np.int64),
        np.array(voters, dtype=np.int64),
    )


# --- reference implementations ----------------------------------------------------------------


def naive_majority(n_items, items, labels, weights=None):
    weights = [1.0] * len(items) if weights is None else list(weights)
    winner, share, total = [-1] * n_items, [0.0] * n_items, [0.0] * n_items
    for i in range(n_items):
        counts: Counter = Counter()
        for item, label, w in zip(items.tolist(), labels.tolist(), weights):
            if item == i:
                counts[label] += w
        if not counts:
            continue
        best = min(counts, key=lambda label: (-counts[label], label))
        total[i] = sum(counts.values())
        winner[i] = best
        share[i] = counts[best] / total[i] if total[i] else 0.0
    return winner, share, total


def naive_multilabel(n_items, n_labels, items, labels, voters):
    chosen = [[False] * n_labels for _ in range(n_items)]
    agreement = [0.0] * n_items
    for i in range(n_items):
        if voters[i] == 0:
            continue
        fractions = []
        for label in range(n_labels):
            k = sum(
                1 for it, lab in zip(items.tolist(), labels.tolist()) if it == i and lab == label
            )
            frac = k / voters[i]
            chosen[i][label] = frac > 0.5
            fractions.append(max(frac, 1 - frac))
        agreement[i] = sum(fractions) / n_labels
    return chosen, agreement


def assert_same(a: VoteResult, b: VoteResult) -> None:
    np.testing.assert_array_equal(a.label, b.label)
    np.testing.assert_allclose(a.confidence, b.confidence, rtol=0, atol=1e-12)
    np.testing.assert_allclose(a.n_votes, b.n_votes, rtol=0, atol=1e-12)


# --- majority_vote: properties ----------------------------------------------------------------


@settings(max_examples=300)
@given(data=claims(weighted=True), use_weights=st.booleans())
def test_majority_matches_naive_reference(data, use_weights: bool) -> None:
    n_items, items, labels, weights = data
    weights = weights if use_weights else None
    result = majority_vote(items, labels, n_items=n_items, weights=weights)
    winner, share, total = naive_majority(n_items, items, labels, weights)
    assert result.label.tolist() == winner
    np.testing.assert_allclose(result.confidence, share, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result.n_votes, total, rtol=0, atol=1e-12)
    assert result.label.shape == result.confidence.shape == result.n_votes.shape == (n_items,)


@given(data=claims(weighted=True), seed=st.integers(0, 2**32 - 1))
def test_majority_ignores_claim_order(data, seed: int) -> None:
    n_items, items, labels, weights = data
    perm = np.random.default_rng(seed).permutation(items.size)
    assert_same(
        majority_vote(items, labels, n_items=n_items, weights=weights),
        majority_vote(
            items[perm],
            labels[perm],
            n_items=n_items,
            weights=None if weights is None else weights[perm],
        ),
    )


@given(data=claims(), seed=st.integers(0, 2**32 - 1))
def test_relabeling_items_permutes_output(data, seed: int) -> None:
    n_items, items, labels, _ = data
    rename = np.random.default_rng(seed).permutation(n_items)  # item i becomes rename[i]
    before = majority_vote(items, labels, n_items=n_items)
    after = majority_vote(rename[items], labels, n_items=n_items)
    np.testing.assert_array_equal(after.label[rename], before.label)
    np.testing.assert_array_equal(after.confidence[rename], before.confidence)
    np.testing.assert_array_equal(after.n_votes[rename], before.n_votes)


@given(data=claims(weighted=True))
def test_confidence_in_unit_interval_and_winner_has_max_count(data) -> None:
    n_items, items, labels, weights = data
    result = majority_vote(items, labels, n_items=n_items, weights=weights)
    w = np.ones(items.size) if weights is None else weights
    assert np.all((result.confidence >= 0) & (result.confidence <= 1))
    for i in range(n_items):
        mine = items == i
        if not mine.any():
            assert result.label[i] == -1
            assert result.confidence[i] == 0
            assert result.n_votes[i] == 0
            continue
        counts: Counter = Counter()
        for label, weight in zip(labels[mine].tolist(), w[mine].tolist()):
            counts[label] += weight
        top = max(counts.values())
        assert counts[int(result.label[i])] == top
        # ties go to the smallest label that was voted for
        assert result.label[i] == min(label for label, c in counts.items() if c == top)


# Codes this large make ``n_items * classes`` too big for a dense count table, so the votes are
# counted per distinct (item, label) pair instead: both ways must agree.
HUGE = 60_000_000


@given(data=claims(weighted=True))
def test_label_codes_can_be_shifted(data) -> None:
    n_items, items, labels, weights = data
    small = majority_vote(items, labels, n_items=n_items, weights=weights)
    big = majority_vote(items, labels + HUGE, n_items=n_items, weights=weights)
    np.testing.assert_array_equal(big.label, np.where(small.label >= 0, small.label + HUGE, -1))
    np.testing.assert_allclose(big.confidence, small.confidence, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(big.n_votes, small.n_votes)


def test_zero_weight_claims_same_on_both_paths() -> None:
    small = majority_vote([0, 0], [0, 1], n_items=1, weights=[0.0, 0.0])
    big = majority_vote([0, 0], [HUGE, HUGE + 1], n_items=1, weights=[0.0, 0.0])
    assert big.label[0] == (small.label[0] + HUGE if small.label[0] >= 0 else -1)


# --- majority_vote: examples ------------------------------------------------------------------


def test_majority_example() -> None:
    result = majority_vote([0, 0, 0, 1, 1, 3], [2, 2, 1, 0, 1, 5], n_items=5)
    assert result.label.tolist() == [2, 0, -1, 5, -1]
    np.testing.assert_allclose(result.confidence, [2 / 3, 0.5, 0, 1, 0])
    assert result.n_votes.tolist() == [3, 2, 0, 1, 0]
    assert result.label.dtype == np.int64


def test_ties_go_to_smallest_label() -> None:
    result = majority_vote([0, 0, 0, 0], [7, 3, 7, 3], n_items=1)
    assert result.label.tolist() == [3]
    assert result.confidence.tolist() == [0.5]


def test_weights_change_the_winner() -> None:
    result = majority_vote([0, 0, 0], [1, 1, 2], n_items=1, weights=[1, 1, 3])
    assert result.label.tolist() == [2]
    assert result.confidence.tolist() == [0.6]
    assert result.n_votes.tolist() == [5.0]


def test_no_claims_at_all() -> None:
    result = majority_vote([], [], n_items=3)
    assert result.label.tolist() == [-1, -1, -1]
    assert result.confidence.tolist() == [0, 0, 0]
    assert result.n_votes.tolist() == [0, 0, 0]


def test_large_label_codes() -> None:
    # free-text answers can have as many distinct codes as claims
    labels = np.arange(10_000) + 1_000_000
    items = np.zeros(10_000, dtype=np.int64)
    result = majority_vote(
        np.concatenate([items, [0]]), np.concatenate([labels, [1_000_500]]), n_items=1
    )
    assert result.label.tolist() == [1_000_500]


@pytest.mark.parametrize(
    ("items", "labels", "n_items", "weights"),
    [
        ([0, 1], [0], 2, None),
        ([[0, 1]], [[0, 1]], 2, None),
        ([0, 2], [0, 0], 2, None),
        ([-1], [0], 2, None),
        ([0], [-1], 2, None),
        ([0, 1], [0, 0], 2, [1.0]),
        ([0, 1], [0, 0], 2, [1.0, -1.0]),
    ],
)
def test_majority_refuses_bad_input(items, labels, n_items, weights) -> None:
    with pytest.raises(ValueError):
        majority_vote(items, labels, n_items=n_items, weights=weights)


# --- multilabel_vote --------------------------------------------------------------------------


@settings(max_examples=200)
@given(data=multilabel_claims())
def test_multilabel_matches_naive_reference(data) -> None:
    n_items, n_labels, items, labels, voters = data
    chosen, agreement, votes = multilabel_vote(
        items, labels, voters, n_items=n_items, n_labels=n_labels
    )
    ref_chosen, ref_agreement = naive_multilabel(n_items, n_labels, items, labels, voters)
    assert chosen.shape == (n_items, n_labels)
    assert chosen.tolist() == ref_chosen
    np.testing.assert_allclose(agreement, ref_agreement, rtol=0, atol=1e-12)
    assert votes.tolist() == voters.tolist()
    assert np.all((agreement >= 0) & (agreement <= 1))
    assert np.all(agreement[voters > 0] >= 0.5)
    assert not chosen[voters == 0].any()
    assert np.all(agreement[voters == 0] == 0)


@given(data=multilabel_claims(), seed=st.integers(0, 2**32 - 1))
def test_multilabel_ignores_pair_order(data, seed: int) -> None:
    n_items, n_labels, items, labels, voters = data
    perm = np.random.default_rng(seed).permutation(items.size)
    a = multilabel_vote(items, labels, voters, n_items=n_items, n_labels=n_labels)
    b = multilabel_vote(items[perm], labels[perm], voters, n_items=n_items, n_labels=n_labels)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@given(data=multilabel_claims(), seed=st.integers(0, 2**32 - 1))
def test_multilabel_relabeling_items_permutes_output(data, seed: int) -> None:
    n_items, n_labels, items, labels, voters = data
    rename = np.random.default_rng(seed).permutation(n_items)
    new_voters = np.zeros_like(voters)
    new_voters[rename] = voters
    a = multilabel_vote(items, labels, voters, n_items=n_items, n_labels=n_labels)
    b = multilabel_vote(rename[items], labels, new_voters, n_items=n_items, n_labels=n_labels)
    np.testing.assert_array_equal(b[0][rename], a[0])
    np.testing.assert_array_equal(b[1][rename], a[1])
    np.testing.assert_array_equal(b[2][rename], a[2])


def test_multilabel_example() -> None:
    # item 0: 3 voters chose {0}, {0, 1}, {0}; item 1: nobody voted; item 2: 2 voters chose {1}, {}
    chosen, agreement, votes = multilabel_vote(
        [0, 0, 0, 0, 2], [0, 0, 1, 0, 1], [3, 0, 2], n_items=3, n_labels=2
    )
    assert chosen.tolist() == [[True, False], [False, False], [False, False]]
    np.testing.assert_allclose(agreement, [(1 + 2 / 3) / 2, 0, (1 + 0.5) / 2])
    assert votes.tolist() == [3, 0, 2]


def test_multilabel_exactly_half_is_not_chosen() -> None:
    chosen, _, _ = multilabel_vote([0], [0], [2], n_items=1, n_labels=1)
    assert chosen.tolist() == [[False]]


def test_multilabel_refuses_label_codes_outside_n_labels() -> None:
    with pytest.raises(ValueError):
        multilabel_vote([0], [2], [1, 0], n_items=2, n_labels=2)
