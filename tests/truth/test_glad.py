"""fit_glad: agreement with crowd-kit 1.4.2's GLAD, properties, edge cases.

The expected numbers below were computed with crowd-kit 1.4.2 (``GLAD().fit_predict_proba`` on
the toy frame ``TOY`` as columns task, worker, label; rows sorted by task/worker/label index) and
pasted here: crowd-kit is not a test dependency.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from truth_synth import crowd, relabel, toy

from veritag.truth.claims import Claims
from veritag.truth.glad import GladResult, fit_glad

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# A converged M-step makes the fit a smooth function of the claims, so re-ordering them (which
# re-orders the optimiser's sums) moves it by rounding only; crowd-kit's default 25 capped
# conjugate-gradient steps are path-sensitive (see the module docstring).
EXACT_M_STEP = {"m_step_tol": 1e-12, "m_step_max_iter": 500}


CK_POSTERIOR = [
    [0.9989044335215559, 0.00048502395079169023, 0.0006105425276522676],
    [1.0740216070356369e-05, 0.9999785195678593, 1.0740216070356369e-05],
    [0.3317792547715169, 0.05571850108661825, 0.6125022441418648],
    [0.999390422748225, 0.0003385342908821708, 0.0002710429608928992],
    [0.006572574184975209, 0.03221539378190749, 0.961212032033117],
    [0.6272601557801395, 0.30173647331883247, 0.07100337090102793],
]
CK_ALPHA = [0.8674996385036713, -0.2188074319619074, 0.4945778541345377, 0.9053595046405459]
CK_BETA = [
    1.5407749556270127,
    1.418434911695534,
    0.2755264013941455,
    1.534327807840731,
    0.5882178721712963,
    0.45081339782991764,
]
CK_LOSS = [-0.4184911557191395, -0.41786105916380234, -0.418843757343116]

# GLAD(n_iter=20, tol=1e-9, m_step_max_iter=200, m_step_tol=1e-10,
#      alphas_priors_mean=pd.Series([0.5, 1, 1.5, 2.0], index=[0, 1, 2, 3]))
CK2_POSTERIOR = [
    [0.9985942814389285, 0.0006266673625834014, 0.0007790511984882564],
    [5.769099298192077e-07, 0.9999988461801402, 5.769099298192077e-07],
    [0.11512804275244805, 0.024997151141059378, 0.8598748061064924],
    [0.999983291948779, 8.861470790939835e-06, 7.846580429881998e-06],
    [0.002927477072650441, 0.015116367217587703, 0.9819561557097621],
    [0.8185605681141501, 0.14784447940713913, 0.03359495247871058],
]
CK2_ALPHA = [0.6362133719540956, -0.1917043245347958, 0.5781839607495991, 1.8328783515699945]
CK2_BETA = [
    1.5583771721822055,
    1.3942240913121995,
    0.2708622397961698,
    1.4469656647896123,
    0.4949784238489859,
    0.3104151120933173,
]
CK2_LOSS = [
    -0.427260580155253,
    -0.4192958438256947,
    -0.41770541500373864,
    -0.41691615107463315,
    -0.4164358577552073,
    -0.41615232645405026,
    -0.4159885975342248,
    -0.41589506527744186,
    -0.41584191754573224,
    -0.41581179854571754,
    -0.41579475321663645,
    -0.4157851135952159,
    -0.41577966398861554,
    -0.4157765837059407,
    -0.41577484253447894,
    -0.4157738587520466,
    -0.41577330269701734,
    -0.41577298850884437,
    -0.4157728109849354,
    -0.41577271055861253,
]


def test_matches_crowdkit_on_toy() -> None:
    r = fit_glad(toy())
    np.testing.assert_allclose(r.posterior, CK_POSTERIOR, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r.alpha, CK_ALPHA, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r.beta, CK_BETA, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r.loss_history, CK_LOSS, rtol=0, atol=1e-13)
    # Q fell in the third round: crowd-kit stops on any change below tol, falls included.
    assert r.n_iter == 3 and r.converged
    np.testing.assert_allclose(r.prior, np.full(3, 1 / 3))


def test_matches_crowdkit_with_prior_means_and_a_converging_m_step() -> None:
    r = fit_glad(
        toy(),
        n_iter=20,
        tol=1e-9,
        m_step_max_iter=200,
        m_step_tol=1e-10,
        alphas_priors_mean=[0.5, 1, 1.5, 2.0],
    )
    np.testing.assert_allclose(r.posterior, CK2_POSTERIOR, rtol=0, atol=1e-7)
    np.testing.assert_allclose(r.alpha, CK2_ALPHA, rtol=0, atol=1e-7)
    np.testing.assert_allclose(r.beta, CK2_BETA, rtol=0, atol=1e-7)
    np.testing.assert_allclose(r.loss_history, CK2_LOSS, rtol=0, atol=1e-9)
    assert r.n_iter == 20 and not r.converged


@st.composite
def problems(draw: st.DrawFn) -> Claims:
    """Small random claims; some sources and items have none, sometimes there is one class."""
    n, s, k = draw(st.integers(1, 8)), draw(st.integers(1, 5)), draw(st.integers(1, 4))
    m = draw(st.integers(0, 30))
    ints = st.lists(st.integers(0, 10**6), min_size=m, max_size=m)
    item, source, label = (np.array(draw(ints), dtype=np.int64) % size for size in (n, s, k))
    return Claims.from_arrays(item, source, label, n_items=n, n_sources=s, n_classes=k)


def _check_sane(r: GladResult, c: Claims) -> None:
    assert r.posterior.shape == (c.n_items, c.n_classes)
    assert np.isfinite(r.posterior).all() and (r.posterior >= 0).all()
    np.testing.assert_allclose(r.posterior.sum(axis=1), 1.0, atol=1e-12)
    has_source = np.bincount(c.source, minlength=c.n_sources) > 0
    has_item = np.bincount(c.item, minlength=c.n_items) > 0
    assert np.array_equal(np.isfinite(r.alpha), has_source)
    assert np.array_equal(np.isfinite(r.beta), has_item)
    np.testing.assert_allclose(
        r.posterior[~has_item], np.broadcast_to(r.prior, r.posterior[~has_item].shape)
    )
    assert len(r.loss_history) == r.n_iter and np.isfinite(r.loss_history).all()


@FAST
@given(problems())
def test_posteriors_are_distributions(c: Claims) -> None:
    _check_sane(fit_glad(c), c)


@FAST
@given(problems(), st.randoms(use_true_random=False))
def test_relabelling_sources_and_items_permutes_the_result(c: Claims, rnd) -> None:
    items, sources = np.arange(c.n_items), np.arange(c.n_sources)
    rnd.shuffle(items)
    rnd.shuffle(sources)
    a, b = fit_glad(c), fit_glad(relabel(c, items, sources))
    np.testing.assert_allclose(b.posterior[items], a.posterior, rtol=0, atol=1e-12)
    np.testing.assert_allclose(b.alpha[sources], a.alpha, rtol=0, atol=1e-12)
    np.testing.assert_allclose(b.beta[items], a.beta, rtol=0, atol=1e-12)
    assert a.n_iter == b.n_iter


@FAST
@given(problems(), st.randoms(use_true_random=False))
def test_claim_order_does_not_matter(c: Claims, rnd) -> None:
    order = list(range(c.item.size))
    rnd.shuffle(order)
    shuffled = Claims.from_arrays(
        c.item[order],
        c.source[order],
        c.label[order],
        n_items=c.n_items,
        n_sources=c.n_sources,
        n_classes=c.n_classes,
    )
    a, b = fit_glad(c, **EXACT_M_STEP), fit_glad(shuffled, **EXACT_M_STEP)
    np.testing.assert_allclose(b.posterior, a.posterior, rtol=0, atol=1e-6)
    np.testing.assert_allclose(b.alpha, a.alpha, rtol=0, atol=1e-5)


@FAST
@given(st.integers(1, 12), st.integers(1, 5), st.integers(2, 4), st.data())
def test_perfect_sources_give_the_truth(n: int, s: int, k: int, data: st.DataObject) -> None:
    truth = np.array(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    per_item = [data.draw(st.sets(st.integers(0, s - 1), min_size=1, max_size=s)) for _ in range(n)]
    item = np.repeat(np.arange(n), [len(p) for p in per_item])
    source = np.concatenate([sorted(p) for p in per_item]).astype(np.int64)
    r = fit_glad(Claims.from_arrays(item, source, truth[item], n_items=n, n_sources=s, n_classes=k))
    assert np.array_equal(r.labels(), truth)
    assert (r.posterior[np.arange(n), truth] > 0.5).all()


def test_beats_majority_vote_on_a_synthetic_crowd() -> None:
    c = crowd(5, n_items=400, n_sources=8, k=3, per_item=5, acc=(0.45, 0.9))
    votes = np.zeros((400, 3))
    np.add.at(votes, (c.claims.item, c.claims.label), 1)
    r = fit_glad(c.claims)
    assert np.mean(r.labels() == c.truth) > np.mean(votes.argmax(axis=1) == c.truth) + 0.03
    assert np.corrcoef(r.alpha, c.accuracy)[0, 1] > 0.9


def test_edge_cases_source_and_item_without_claims() -> None:
    c = Claims.from_arrays(
        [0, 0, 1, 1, 3], [0, 1, 0, 1, 0], [1, 1, 0, 1, 1], n_items=5, n_sources=3, n_classes=2
    )
    r = fit_glad(c, labels_priors=[0.25, 0.75])
    assert np.isnan(r.alpha[2]) and np.isfinite(r.alpha[:2]).all()
    assert np.isnan(r.beta[[2, 4]]).all() and np.isfinite(r.beta[[0, 1, 3]]).all()
    np.testing.assert_allclose(r.posterior[[2, 4]], [[0.25, 0.75], [0.25, 0.75]])
    np.testing.assert_allclose(r.prior, [0.25, 0.75])


def test_one_class_is_certain() -> None:
    r = fit_glad(Claims.from_arrays([0, 0, 1], [0, 1, 1], [0, 0, 0]))
    np.testing.assert_array_equal(r.posterior, np.ones((2, 1)))
    assert (
        np.isfinite(r.alpha).all() and (r.alpha > 1).all()
    )  # always right: abilities rise above the prior mean


def test_no_claims() -> None:
    r = fit_glad(Claims.from_arrays([], [], [], n_items=2, n_sources=1, n_classes=3))
    np.testing.assert_allclose(r.posterior, np.full((2, 3), 1 / 3))
    assert (
        r.n_iter == 0
        and r.loss_history == []
        and np.isnan(r.alpha).all()
        and np.isnan(r.beta).all()
    )


def test_scalar_prior_means_equal_arrays() -> None:
    a = fit_glad(toy(), alphas_priors_mean=2.0, betas_priors_mean=0.5)
    b = fit_glad(toy(), alphas_priors_mean=np.full(4, 2.0), betas_priors_mean=np.full(6, 0.5))
    np.testing.assert_array_equal(a.posterior, b.posterior)
    assert not np.allclose(a.alpha, fit_glad(toy()).alpha)


def test_class_prior_moves_the_posterior() -> None:
    c = Claims.from_arrays([0, 0], [0, 1], [0, 1], n_classes=2)
    even, skewed = fit_glad(c), fit_glad(c, labels_priors=[1.0, 3.0])
    np.testing.assert_allclose(even.posterior, [[0.5, 0.5]], atol=1e-12)
    assert skewed.posterior[0, 1] > 0.7


def test_gold_labels_decide_who_is_right() -> None:
    # Two sources that always disagree: without gold the items are coin flips; gold on a few
    # items shows source 0 is right, and the other items follow it.
    item = np.repeat(np.arange(10), 2)
    source = np.tile([0, 1], 10)
    label = np.column_stack([np.arange(10) % 2, 1 - np.arange(10) % 2]).ravel()
    c = Claims.from_arrays(item, source, label)
    plain = fit_glad(c)
    np.testing.assert_allclose(plain.posterior, 0.5, atol=1e-9)
    gold = fit_glad(c, gold_items=[0, 1, 2], gold_labels=[0, 1, 0])
    np.testing.assert_array_equal(gold.posterior[[0, 1, 2]], [[1, 0], [0, 1], [1, 0]])
    assert gold.alpha[0] > gold.alpha[1]
    assert np.array_equal(gold.labels(), np.arange(10) % 2)


def test_soft_claims_are_read_as_their_argmax() -> None:
    hard = Claims.from_arrays([0, 0, 1, 1], [0, 1, 0, 1], [1, 1, 0, 1], n_sources=3)
    soft = Claims.from_arrays(
        [0, 0, 1],
        [0, 1, 0],
        [1, 1, 0],
        n_sources=3,
        prob_item=[1],
        prob_source=[1],
        probs=[[0.2, 0.8]],
    )
    a, b = fit_glad(hard), fit_glad(soft)
    np.testing.assert_allclose(a.posterior, b.posterior)
    np.testing.assert_allclose(a.alpha, b.alpha, equal_nan=True)


@pytest.mark.parametrize(
    "kw",
    [
        {"labels_priors": [1.0]},
        {"labels_priors": [1.0, -1.0, 1.0]},
        {"alphas_priors_mean": [1.0, 2.0]},
        {"betas_priors_mean": [1.0]},
        {"alphas_priors_mean": float("nan")},
        {"gold_items": [0]},
        {"gold_items": [0, 0], "gold_labels": [1, 2]},
        {"gold_items": [9], "gold_labels": [0]},
        {"n_iter": -1},
    ],
)
def test_rejects_bad_arguments(kw: dict) -> None:
    with pytest.raises(ValueError):
        fit_glad(toy(), **kw)
