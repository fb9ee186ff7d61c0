"""Properties of fit_truth that hold for every method on any claims (hypothesis)."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from truth_synth import relabel

from veritag.truth import Claims, ConvergenceWarning, TruthResult, fit_truth

#: The methods these tests hold to this module's contract (claims-only EM and votes). GLAD and MACE
#: are crowd-kit's and pinned in test_glad/test_mace; ``auto`` chooses among all, see test_choice.
METHODS = ("mv", "wmv", "onecoin", "ds", "ds-shrunk")
EM = ("onecoin", "ds", "ds-shrunk")
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _fit(claims: Claims, method: str, **kw) -> TruthResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit_truth(claims, method, **kw)


def _ints(draw: st.DrawFn, size: int, high: int) -> np.ndarray:
    return np.array(
        draw(st.lists(st.integers(0, high - 1), min_size=size, max_size=size)), dtype=np.int64
    )


@st.composite
def problems(draw: st.DrawFn, *, models: bool = True, gold: bool = True) -> tuple[Claims, dict]:
    """Random claims: some items and sources without claims, sometimes model rows, sometimes gold.

    Probability rows are small whole numbers over their sum, so confidences tie often (the
    binning must treat ties alike) and rows are exact in floating point.
    """
    n, s, k = draw(st.integers(1, 10)), draw(st.integers(1, 5)), draw(st.integers(1, 4))
    m = draw(st.integers(0, 40))
    item, source, label = _ints(draw, m, n), _ints(draw, m, s), _ints(draw, m, k)
    soft: dict = {}
    if models and draw(st.booleans()):
        n_models = draw(st.integers(1, 2))
        rows = draw(st.integers(1, 15))
        weights = draw(
            st.lists(
                st.lists(st.integers(0, 4), min_size=k, max_size=k).filter(any),
                min_size=rows,
                max_size=rows,
            )
        )
        # A model may share its index with a human source (the engine keeps them apart).
        soft = {
            "prob_item": _ints(draw, rows, n),
            "prob_source": _ints(draw, rows, s + n_models),
            "probs": np.array(weights, dtype=np.float64),
        }
        s += n_models
    claims = Claims.from_arrays(item, source, label, n_items=n, n_sources=s, n_classes=k, **soft)
    gold_kw: dict = {}
    if gold and draw(st.booleans()):
        items = draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n))
        gold_kw = {
            "gold_items": np.array(items, dtype=np.int64),
            "gold_labels": _ints(draw, len(items), k),
        }
    return claims, gold_kw


def _assert_sane(r: TruthResult, claims: Claims) -> None:
    """Probabilities are probabilities, nothing is NaN or infinite (accuracy is, without claims)."""
    assert (
        np.isfinite(r.posterior).all()
        and np.isfinite(r.confusion).all()
        and np.isfinite(r.prior).all()
    )
    assert np.all((r.posterior >= 0) & (r.posterior <= 1))
    np.testing.assert_allclose(r.posterior.sum(axis=1), 1.0, atol=1e-9)
    assert np.all((r.confusion >= 0) & (r.confusion <= 1))
    np.testing.assert_allclose(r.confusion.sum(axis=2), 1.0, atol=1e-9)
    np.testing.assert_allclose(r.prior.sum(), 1.0, atol=1e-9)
    has_claims = r.n_claims > 0
    assert np.isfinite(r.accuracy[has_claims]).all() and np.isnan(r.accuracy[~has_claims]).all()
    assert np.all((r.accuracy[has_claims] >= 0) & (r.accuracy[has_claims] <= 1 + 1e-12))
    assert r.n_claims.sum() == claims.n_claims
    if r.method in EM:
        assert np.isfinite(r.log_likelihood) and r.log_likelihood <= 1e-9
    else:
        assert np.isnan(r.log_likelihood)


# --- relabeling ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@FAST
@given(problem=problems(), data=st.data())
def test_relabeling_items_and_sources_only_permutes_the_output(method: str, problem, data) -> None:
    claims, gold = problem
    items = np.array(data.draw(st.permutations(range(claims.n_items))), dtype=np.int64)
    sources = np.array(data.draw(st.permutations(range(claims.n_sources))), dtype=np.int64)
    moved_gold = (
        {"gold_items": items[gold["gold_items"]], "gold_labels": gold["gold_labels"]}
        if gold
        else {}
    )
    a = _fit(claims, method, **gold)
    b = _fit(relabel(claims, items, sources), method, **moved_gold)
    # b's item items[i] is a's item i; b's source sources[s] is a's source s.
    np.testing.assert_allclose(b.posterior[items], a.posterior, atol=1e-9)
    np.testing.assert_allclose(b.confusion[sources], a.confusion, atol=1e-9)
    np.testing.assert_allclose(b.accuracy[sources], a.accuracy, atol=1e-9)
    np.testing.assert_array_equal(b.n_claims[sources], a.n_claims)
    np.testing.assert_allclose(b.prior, a.prior, atol=1e-9)
    np.testing.assert_allclose(b.log_likelihood, a.log_likelihood, rtol=1e-9, atol=1e-9)
    assert (b.n_iter, b.converged, b.method) == (a.n_iter, a.converged, a.method)


@pytest.mark.parametrize("method", METHODS)
@FAST
@given(problem=problems(), data=st.data())
def test_the_order_of_the_claims_does_not_matter(method: str, problem, data) -> None:
    claims, gold = problem
    hard = np.array(data.draw(st.permutations(range(claims.item.size))), dtype=np.int64)
    soft = np.array(data.draw(st.permutations(range(claims.prob_item.size))), dtype=np.int64)
    shuffled = replace(
        claims,
        item=claims.item[hard],
        source=claims.source[hard],
        label=claims.label[hard],
        prob_item=claims.prob_item[soft],
        prob_source=claims.prob_source[soft],
        probs=claims.probs[soft],
    )
    a, b = _fit(claims, method, **gold), _fit(shuffled, method, **gold)
    np.testing.assert_allclose(b.posterior, a.posterior, atol=1e-9)
    np.testing.assert_allclose(b.confusion, a.confusion, atol=1e-9)
    np.testing.assert_allclose(b.accuracy, a.accuracy, atol=1e-9)
    np.testing.assert_allclose(b.log_likelihood, a.log_likelihood, rtol=1e-9, atol=1e-9)


# --- always-valid output ------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@FAST
@given(problem=problems())
def test_output_is_always_a_valid_distribution(method: str, problem) -> None:
    claims, gold = problem
    r = _fit(claims, method, **gold)
    _assert_sane(r, claims)
    if gold:
        np.testing.assert_array_equal(
            r.posterior[gold["gold_items"]], np.eye(claims.n_classes)[gold["gold_labels"]]
        )


@pytest.mark.parametrize("method", METHODS)
@settings(max_examples=25, deadline=None)
@given(problem=problems())
def test_two_fits_are_identical(method: str, problem) -> None:
    claims, gold = problem
    a, b = _fit(claims, method, **gold), _fit(claims, method, **gold)
    np.testing.assert_array_equal(a.posterior, b.posterior)
    np.testing.assert_array_equal(a.confusion, b.confusion)
    np.testing.assert_array_equal(a.accuracy, b.accuracy)
    np.testing.assert_array_equal(a.log_likelihood, b.log_likelihood)


def _edge_cases() -> dict[str, tuple[Claims, dict]]:
    rng = np.random.default_rng(0)
    n, k = 30, 3
    item = np.repeat(np.arange(n), 3)
    source = rng.integers(0, 6, item.size)
    label = rng.integers(0, k, item.size)
    probs = rng.dirichlet(np.ones(k), n)
    return {
        # source 6 labels a single item; nothing else about it is known
        "source_labels_one_item": (
            Claims.from_arrays(np.r_[item, 4], np.r_[source, 6], np.r_[label, 2], n_classes=k),
            {},
        ),
        # class 3 of 4 never appears in any claim
        "class_never_appears": (Claims.from_arrays(item, source, label, n_classes=4), {}),
        # items 30..34 have no claims
        "items_without_claims": (
            Claims.from_arrays(item, source, label, n_items=n + 5, n_classes=k),
            {},
        ),
        "gold_on_every_item": (
            Claims.from_arrays(item, source, label, n_classes=k),
            {"gold_items": np.arange(n), "gold_labels": rng.integers(0, k, n)},
        ),
        "model_source_only": (
            Claims.from_arrays(
                [],
                [],
                [],
                n_items=n,
                n_sources=1,
                n_classes=k,
                prob_item=np.arange(n),
                prob_source=np.zeros(n, np.int64),
                probs=probs,
            ),
            {},
        ),
        "two_models_only": (
            Claims.from_arrays(
                [],
                [],
                [],
                n_items=n,
                n_sources=2,
                n_classes=k,
                prob_item=np.r_[np.arange(n), np.arange(n)],
                prob_source=np.repeat([0, 1], n),
                probs=np.r_[probs, rng.dirichlet(np.ones(k), n)],
            ),
            {},
        ),
        "model_and_items_without_humans": (
            Claims.from_arrays(
                item[:30],
                source[:30],
                label[:30],
                n_items=n,
                n_sources=7,
                n_classes=k,
                prob_item=np.arange(n),
                prob_source=np.full(n, 6),
                probs=probs,
            ),
            {},
        ),
        "one_claim_per_item": (
            Claims.from_arrays(np.arange(n), source[:n], label[:n], n_classes=k),
            {},
        ),
        "one_class": (Claims.from_arrays(item, source, np.zeros_like(label), n_classes=1), {}),
        "one_hot_model_rows": (
            Claims.from_arrays(
                item,
                source,
                label,
                n_sources=7,
                n_classes=k,
                prob_item=np.arange(n),
                prob_source=np.full(n, 6),
                probs=np.eye(k)[rng.integers(0, k, n)],
            ),
            {},
        ),
        "no_claims_at_all": (
            Claims.from_arrays([], [], [], n_items=4, n_sources=2, n_classes=2),
            {},
        ),
        "nothing": (Claims.from_arrays([], [], []), {}),
    }


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", list(_edge_cases()))
def test_no_nan_or_inf_in_edge_cases(case: str, method: str) -> None:
    claims, gold = _edge_cases()[case]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no 0/0 or log(0) on the way either
        r = _fit(claims, method, **gold)
    _assert_sane(r, claims)


# --- a perfectly reliable source ----------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@FAST
@given(n=st.integers(1, 30), k=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_a_perfect_source_alone_is_the_truth(method: str, n: int, k: int, seed: int) -> None:
    truth = np.random.default_rng(seed).integers(0, k, n)
    r = _fit(Claims.from_arrays(np.arange(n), np.zeros(n, np.int64), truth, n_classes=k), method)
    np.testing.assert_array_equal(r.labels(), truth)


@st.composite
def perfect_source_in_a_crowd(draw: st.DrawFn) -> tuple[np.ndarray, Claims]:
    """One source answers every item correctly; 2-5 others each label at least half the items
    and make isolated mistakes: at most one wrong claim per item, and only on an item another
    of them gets right.

    Nothing marks a source as perfect but its agreement with the others, so the claim needs
    such a crowd. With only one other source, with others near chance, or with few items
    and errors that coincide, a different explanation of the claims is as likely or likelier,
    and Dawid-Skene (this engine's and the textbook version alike) can overrule the perfect
    source on a few items: 30-60 items and isolated errors keep the evidence decisive. Every
    class is the truth of a few items: an error into a class that no item has is, for
    Dawid-Skene, as well explained by a rare class that only the erring source recognises
    (crowd-kit's DS calls such an item a coin toss)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n, k = draw(st.integers(30, 60)), draw(st.integers(2, 4))
    others = draw(st.integers(2, 5))
    error_rate = draw(st.floats(0.0, 0.3))
    truth = rng.permutation(np.r_[np.repeat(np.arange(k), 3), rng.integers(0, k, n - 3 * k)])
    cover = rng.random((others, n)) < rng.uniform(0.5, 1.0)
    src, item = np.nonzero(cover)
    label = truth[item].copy()
    for i in range(n):
        mine = np.flatnonzero(item == i)
        if mine.size >= 2 and rng.random() < error_rate:
            j = rng.choice(mine)
            label[j] = (truth[i] + rng.integers(1, k)) % k
    perfect = draw(st.integers(0, others))
    src = np.where(src >= perfect, src + 1, src)
    claims = Claims.from_arrays(
        np.r_[np.arange(n), item],
        np.r_[np.full(n, perfect), src],
        np.r_[truth, label],
        n_items=n,
        n_sources=others + 1,
        n_classes=k,
    )
    return truth, claims


@pytest.mark.parametrize("method", METHODS)
@FAST
@given(case=perfect_source_in_a_crowd())
def test_a_perfect_source_in_a_noisy_crowd_recovers_the_truth(method: str, case) -> None:
    truth, claims = case
    r = _fit(claims, method)
    np.testing.assert_array_equal(r.labels(), truth)


@pytest.mark.parametrize("method", ["ds", "onecoin"])
def test_one_class_with_an_unclaimed_item_stays_a_distribution(method: str) -> None:
    """Found by hypothesis: nine items answered, one not, one class. The prior is a mean of nine
    ones and must come out exactly 1 (summing 1/9 shares rounded it just above)."""
    claims = Claims.from_arrays(
        np.arange(9),
        np.zeros(9, np.int64),
        np.zeros(9, np.int64),
        n_items=10,
        n_sources=1,
        n_classes=1,
    )
    r = _fit(claims, method)
    _assert_sane(r, claims)
    assert np.all(r.posterior == 1.0)
