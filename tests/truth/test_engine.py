"""fit_truth and Claims: result layout, validation, gold, models as sources, convergence, scale."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from truth_synth import add_model, crowd, wrong_label

from veritag.truth import Claims, ConvergenceWarning, TruthResult, fit_truth

#: The methods these tests hold to this module's contract (claims-only EM and votes). GLAD and MACE
#: are crowd-kit's and pinned in test_glad/test_mace; ``auto`` chooses among all, see test_choice.
METHODS = ("mv", "wmv", "onecoin", "ds", "ds-shrunk")
EM = ("onecoin", "ds", "ds-shrunk")


def _fit(claims: Claims, method: str, **kw) -> TruthResult:
    """fit_truth with convergence warnings silenced (small crowds may stop at max_iter)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit_truth(claims, method, **kw)


def _acc(result: TruthResult, truth: np.ndarray) -> float:
    return float((result.labels() == truth).mean())


# --- Claims -----------------------------------------------------------------------------------


def test_claims_sizes_default_to_one_past_the_largest_index() -> None:
    c = Claims.from_arrays([0, 3], [1, 0], [2, 0])
    assert (c.n_items, c.n_sources, c.n_classes) == (4, 2, 3)
    soft = Claims.from_arrays([0], [0], [0], prob_item=[5], prob_source=[2], probs=[[1, 1, 2, 0]])
    assert (soft.n_items, soft.n_sources, soft.n_classes) == (6, 3, 4)
    empty = Claims.from_arrays([], [], [])
    assert (empty.n_items, empty.n_sources, empty.n_classes, empty.n_claims) == (0, 0, 1, 0)


def test_claims_normalise_probability_rows_and_keep_int_indices() -> None:
    c = Claims.from_arrays(
        [0.0, 1.0], [0, 0], [1, 0], prob_item=[1], prob_source=[1], probs=[[1, 3]]
    )
    np.testing.assert_allclose(c.probs, [[0.25, 0.75]])
    assert c.item.dtype == np.int64 and c.prob_item.dtype == np.int64


def test_claims_helpers() -> None:
    c = Claims.from_arrays(
        [0, 0, 2],
        [0, 1, 0],
        [1, 0, 1],
        n_items=4,
        prob_item=[2, 3],
        prob_source=[2, 2],
        probs=[[0.7, 0.3], [0.1, 0.9]],
    )
    assert c.n_claims == 5
    np.testing.assert_array_equal(c.claims_per_item(), [2, 0, 2, 1])
    hard = c.drop_soft()
    assert hard.n_claims == 3 and hard.probs.shape == (0, 2) and hard.n_sources == 3
    votes = c.hard_only()
    np.testing.assert_array_equal(votes.item, [0, 0, 2, 2, 3])
    np.testing.assert_array_equal(votes.source, [0, 1, 0, 2, 2])
    np.testing.assert_array_equal(votes.label, [1, 0, 1, 0, 1])
    assert votes.prob_item.size == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"item": [0, 1], "source": [0], "label": [0, 0]}, "same length"),
        ({"item": [[0]], "source": [[0]], "label": [[0]]}, "1-d array"),
        ({"item": [0.5], "source": [0], "label": [0]}, "integer indices"),
        (
            {"item": [2], "source": [0], "label": [0], "n_items": 2},
            r"item must lie in \[0, n_items=2\)",
        ),
        (
            {"item": [-1], "source": [0], "label": [0], "n_items": 2},
            r"item must lie in \[0, n_items=2\)",
        ),
        (
            {"item": [0], "source": [3], "label": [0], "n_sources": 3},
            r"source must lie in \[0, n_sources=3\)",
        ),
        (
            {"item": [0], "source": [0], "label": [2], "n_classes": 2},
            r"label must lie in \[0, n_classes=2\)",
        ),
        ({"item": [0], "source": [0], "label": [0], "n_items": -1}, "non-negative"),
        ({"prob_item": [0], "prob_source": [0]}, "need probs"),
        ({"prob_item": [0, 1], "prob_source": [0], "probs": [[1, 0]]}, "one row per"),
        ({"prob_item": [0], "prob_source": [0], "probs": [1, 0]}, "2-d array"),
        (
            {"prob_item": [0], "prob_source": [0], "probs": [[0.5, 0.5]], "n_classes": 3},
            "probs rows have 2 columns but there are 3 classes",
        ),
        (
            {
                "item": [0],
                "source": [0],
                "label": [2],
                "prob_item": [0],
                "prob_source": [1],
                "probs": [[0.5, 0.5]],
            },
            "probs rows have 2 columns but there are 3 classes",
        ),
        ({"prob_item": [0], "prob_source": [0], "probs": [[-0.1, 1.1]]}, "finite and non-negative"),
        (
            {"prob_item": [0], "prob_source": [0], "probs": [[np.nan, 1.0]]},
            "finite and non-negative",
        ),
        (
            {"prob_item": [0], "prob_source": [0], "probs": [[np.inf, 1.0]]},
            "finite and non-negative",
        ),
        (
            {"prob_item": [0, 1], "prob_source": [0, 0], "probs": [[0.5, 0.5], [0, 0]]},
            "probs row 1 sums to 0",
        ),
        (
            {"prob_item": [3], "prob_source": [0], "probs": [[1, 0]], "n_items": 2},
            r"prob_item must lie in \[0, n_items=2\)",
        ),
        (
            {"prob_item": [0], "prob_source": [4], "probs": [[1, 0]], "n_sources": 2},
            r"prob_source must lie in \[0, n_sources=2\)",
        ),
    ],
)
def test_claims_reject_bad_input(kwargs: dict, message: str) -> None:
    args = {"item": [], "source": [], "label": [], **kwargs}
    with pytest.raises(ValueError, match=message):
        Claims.from_arrays(args.pop("item"), args.pop("source"), args.pop("label"), **args)


# --- fit_truth: validation --------------------------------------------------------------------


SMALL = Claims.from_arrays([0, 0, 1, 1, 2], [0, 1, 0, 1, 2], [0, 0, 1, 2, 1], n_classes=3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "em"}, r"method must be one of mv, wmv, onecoin, ds, ds-shrunk.*; got 'em'"),
        ({"method": "DS"}, "method must be one of"),
        ({"max_iter": -1}, "max_iter and bins must be >= 1"),
        ({"method": "ds-shrunk", "max_iter": 0}, "max_iter and bins must be >= 1"),
        ({"bins": 0}, "max_iter and bins must be >= 1"),
        ({"tol": -1e-9}, "tol and shrinkage >= 0"),
        ({"shrinkage": -0.5}, "tol and shrinkage >= 0"),
        ({"prior": [0.5, 0.5]}, "prior must be 3 positive numbers"),
        ({"prior": [0.5, 0.5, 0.0]}, "prior must be 3 positive numbers"),
        ({"prior": [[0.2, 0.3, 0.5]]}, "prior must be 3 positive numbers"),
        ({"gold_items": [0, 1], "gold_labels": [0]}, "same length"),
        ({"gold_items": [3], "gold_labels": [0]}, r"gold_items must lie in \[0, n_items=3\)"),
        ({"gold_items": [-1], "gold_labels": [0]}, r"gold_items must lie in \[0, n_items=3\)"),
        ({"gold_items": [0], "gold_labels": [3]}, r"gold_labels must lie in \[0, n_classes=3\)"),
        ({"gold_items": [0], "gold_labels": [-1]}, r"gold_labels must lie in \[0, n_classes=3\)"),
        ({"gold_items": [1, 0, 1], "gold_labels": [0, 1, 0]}, "more than one gold label"),
        ({"gold_items": [1, 1], "gold_labels": [2, 2]}, "more than one gold label"),
        ({"gold_items": [0]}, "given together"),
        ({"gold_labels": [0]}, "given together"),
    ],
)
def test_fit_truth_rejects_bad_input(kwargs: dict, message: str) -> None:
    method = kwargs.pop("method", "ds")
    with pytest.raises(ValueError, match=message):
        fit_truth(SMALL, method, **kwargs)


@pytest.mark.parametrize("method", METHODS)
def test_bad_gold_is_rejected_by_every_method(method: str) -> None:
    with pytest.raises(ValueError, match="more than one gold label"):
        fit_truth(SMALL, method, gold_items=[2, 2], gold_labels=[0, 1])


# --- fit_truth: the result --------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_result_layout(method: str) -> None:
    cr = crowd(0, n_items=60, n_sources=6, k=3, per_item=3)
    claims = add_model(cr.claims, np.random.default_rng(0).dirichlet(np.ones(3), 60))
    r = _fit(claims, method)
    n, s, k = claims.n_items, claims.n_sources, claims.n_classes
    assert r.method == method
    assert r.posterior.shape == (n, k) and r.posterior.dtype == np.float64
    assert r.confusion.shape == (s, k, k)
    assert r.prior.shape == (k,) and r.accuracy.shape == (s,)
    np.testing.assert_array_equal(r.n_claims, [*np.bincount(cr.claims.source, minlength=6), 60])
    np.testing.assert_allclose(r.posterior.sum(axis=1), 1.0)
    np.testing.assert_allclose(r.confusion.sum(axis=2), 1.0)
    np.testing.assert_allclose(r.prior.sum(), 1.0)
    np.testing.assert_array_equal(r.labels(), r.posterior.argmax(axis=1))
    np.testing.assert_array_equal(r.confidence(), r.posterior.max(axis=1))
    assert np.all((r.accuracy >= 0) & (r.accuracy <= 1))
    if method in EM:
        assert np.isfinite(r.log_likelihood) and r.log_likelihood <= 0
        assert 1 <= r.n_iter <= 100
    else:
        assert np.isnan(r.log_likelihood) and r.n_iter == 0 and r.converged


def test_labels_break_ties_toward_the_smallest_class() -> None:
    c = Claims.from_arrays([0, 0, 1, 1], [0, 1, 0, 1], [2, 1, 0, 2], n_classes=3)
    np.testing.assert_array_equal(fit_truth(c, "mv").labels(), [1, 0])


def test_majority_vote_posterior_is_the_vote_share() -> None:
    c = Claims.from_arrays([0, 0, 0, 1], [0, 1, 2, 0], [0, 0, 1, 1], n_items=3, n_classes=2)
    r = fit_truth(c, "mv")
    np.testing.assert_allclose(r.posterior, [[2 / 3, 1 / 3], [0, 1], [0.5, 0.5]])
    np.testing.assert_array_equal(r.labels(), [0, 1, 0])


def test_majority_vote_counts_a_model_row_as_fractional_votes() -> None:
    c = Claims.from_arrays(
        [0],
        [0],
        [0],
        n_items=2,
        prob_item=[0, 1],
        prob_source=[1, 1],
        probs=[[0.2, 0.8], [0.3, 0.7]],
    )
    r = fit_truth(c, "mv")
    np.testing.assert_allclose(r.posterior, [[0.6, 0.4], [0.3, 0.7]])


def test_weighted_vote_weighs_sources_by_agreement_with_the_majority() -> None:
    # Sources 0 and 1 always agree with the majority; source 2 agrees on one item of four (item 3
    # is a tie, which the majority gives to class 0).
    c = Claims.from_arrays(
        [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3],
        [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 2],
        [0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 1],
        n_classes=2,
    )
    r = fit_truth(c, "wmv")
    w2 = 1 / 4
    np.testing.assert_allclose(r.posterior[0], [2 / (2 + w2), w2 / (2 + w2)])
    np.testing.assert_allclose(r.posterior[3], [1 / (1 + w2), w2 / (1 + w2)])


@pytest.mark.parametrize("method", EM)
def test_items_without_claims_get_the_prior(method: str) -> None:
    cr = crowd(1, n_items=80, n_sources=5, k=3, per_item=3)
    claims = Claims.from_arrays(
        cr.claims.item, cr.claims.source, cr.claims.label, n_items=83, n_classes=3
    )
    r = _fit(claims, method)
    np.testing.assert_allclose(r.posterior[80:], np.tile(r.prior, (3, 1)))


@pytest.mark.parametrize("method", METHODS)
def test_a_fixed_prior_is_kept(method: str) -> None:
    cr = crowd(2, n_items=50, n_sources=5, k=3)
    r = _fit(cr.claims, method, prior=[2, 1, 1])
    np.testing.assert_allclose(r.prior, [0.5, 0.25, 0.25])


@pytest.mark.parametrize("method", METHODS)
def test_accuracy_is_nan_only_for_sources_without_claims(method: str) -> None:
    cr = crowd(3, n_items=40, n_sources=4, k=2)
    claims = Claims.from_arrays(
        cr.claims.item, cr.claims.source, cr.claims.label, n_sources=6, n_classes=2
    )
    r = _fit(claims, method)
    assert np.isnan(r.accuracy[4:]).all() and np.isfinite(r.accuracy[:4]).all()
    np.testing.assert_array_equal(r.n_claims[4:], 0)
    np.testing.assert_allclose(r.confusion[4:], 0.5)


def test_ds_beats_majority_vote_on_a_skewed_crowd() -> None:
    """Two good workers and three spammers who label every item: DS finds the good ones."""
    rng = np.random.default_rng(4)
    n, k = 400, 3
    truth = rng.integers(0, k, n)
    acc = np.array([0.9, 0.85, 0.34, 0.34, 0.34])
    item, source = np.repeat(np.arange(n), 5), np.tile(np.arange(5), n)
    label = np.where(
        rng.random(item.size) < acc[source], truth[item], wrong_label(rng, truth[item], k)
    )
    claims = Claims.from_arrays(item, source, label, n_classes=k)
    mv, ds = fit_truth(claims, "mv"), _fit(claims, "ds")
    assert _acc(ds, truth) > _acc(mv, truth) + 0.1
    assert _acc(ds, truth) > 0.85  # near the ceiling: the two good workers disagree on 1 item in 5
    np.testing.assert_allclose(ds.accuracy, acc, atol=0.06)


# --- determinism and convergence ---------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_two_fits_give_identical_arrays(method: str) -> None:
    cr = crowd(5, n_items=200, n_sources=12, k=4, per_item=3)
    claims = add_model(cr.claims, np.random.default_rng(5).dirichlet(np.ones(4), 200))
    gold = {"gold_items": [3, 7, 11], "gold_labels": cr.truth[[3, 7, 11]]}
    a, b = _fit(claims, method, **gold), _fit(claims, method, **gold)
    for field in ("posterior", "confusion", "prior", "accuracy", "n_claims"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    np.testing.assert_array_equal(a.log_likelihood, b.log_likelihood)  # NaN == NaN for the votes
    assert (a.n_iter, a.converged) == (b.n_iter, b.converged)


@pytest.mark.parametrize("method", EM)
def test_max_iter_one_warns_and_reports_not_converged(method: str) -> None:
    cr = crowd(6, n_items=100, n_sources=8, k=3)
    with pytest.warns(ConvergenceWarning, match="did not converge in 1 iterations"):
        r = fit_truth(cr.claims, method, max_iter=1)
    assert r.n_iter == 1 and not r.converged
    np.testing.assert_allclose(r.posterior.sum(axis=1), 1.0)


@pytest.mark.parametrize("method", METHODS)
def test_a_normal_fit_does_not_warn(method: str) -> None:
    cr = crowd(7, n_items=300, n_sources=10, k=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = fit_truth(
            cr.claims, method, max_iter=1 if method in ("mv", "wmv") else 100
        )  # votes never iterate
    assert r.converged


def test_convergence_warning_is_a_user_warning() -> None:
    assert issubclass(ConvergenceWarning, UserWarning)


# --- gold --------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_gold_items_are_pinned_even_against_unanimous_claims(method: str) -> None:
    cr = crowd(8, n_items=50, n_sources=5, k=3)
    gold_items = np.array([0, 5, 9])
    gold_labels = (cr.truth[gold_items] + 1) % 3  # every claim there is likelier to say otherwise
    claims = Claims.from_arrays(
        np.r_[cr.claims.item, [0, 0, 0]],
        np.r_[cr.claims.source, [0, 1, 2]],
        np.r_[cr.claims.label, np.full(3, cr.truth[0])],
        n_classes=3,
    )
    r = _fit(claims, method, gold_items=gold_items, gold_labels=gold_labels)
    np.testing.assert_array_equal(r.posterior[gold_items], np.eye(3)[gold_labels])
    np.testing.assert_array_equal(r.labels()[gold_items], gold_labels)


@pytest.mark.parametrize("method", METHODS)
def test_gold_improves_the_source_accuracy_estimates(method: str) -> None:
    errors = []
    for seed in range(4):
        cr = crowd(seed, n_items=150, n_sources=8, k=3, per_item=2, acc=(0.45, 0.95))
        c = cr.claims
        realised = np.bincount(
            c.source, weights=c.label == cr.truth[c.item], minlength=8
        ) / np.bincount(c.source)
        gold = np.random.default_rng(seed).choice(150, 45, replace=False)
        plain = _fit(c, method)
        helped = _fit(c, method, gold_items=gold, gold_labels=cr.truth[gold])
        errors.append(
            (np.abs(plain.accuracy - realised).mean(), np.abs(helped.accuracy - realised).mean())
        )
        assert _acc(helped, cr.truth) >= _acc(plain, cr.truth)
    before, after = np.array(errors).T
    assert np.all(after < before)


@pytest.mark.parametrize("method", EM)
def test_gold_measures_a_source_nobody_else_can(method: str) -> None:
    """A worker labelling items alone is measurable only by gold; its realised accuracy is 1/2."""
    cr = crowd(9, n_items=100, n_sources=6, k=2, per_item=3, acc=(0.8, 0.95))
    lone = np.arange(100, 160)
    lone_truth = np.random.default_rng(9).integers(0, 2, 60)
    lone_label = np.where(np.arange(60) % 2 == 0, lone_truth, 1 - lone_truth)
    c = Claims.from_arrays(
        np.r_[cr.claims.item, lone],
        np.r_[cr.claims.source, np.full(60, 6)],
        np.r_[cr.claims.label, lone_label],
        n_classes=2,
    )
    plain = _fit(c, method)
    gold = lone[:30]
    helped = _fit(c, method, gold_items=gold, gold_labels=lone_truth[:30])
    assert plain.accuracy[6] > 0.7  # unmeasured: it looks like an average worker
    assert abs(helped.accuracy[6] - 0.5) < abs(plain.accuracy[6] - 0.5)
    assert helped.accuracy[6] < 0.65


@pytest.mark.parametrize("method", METHODS)
def test_gold_on_every_item_is_the_answer(method: str) -> None:
    cr = crowd(10, n_items=40, n_sources=5, k=3)
    r = _fit(cr.claims, method, gold_items=np.arange(40), gold_labels=cr.truth)
    np.testing.assert_array_equal(r.posterior, np.eye(3)[cr.truth])
    c = cr.claims
    realised = np.bincount(
        c.source, weights=c.label == cr.truth[c.item], minlength=5
    ) / np.bincount(c.source)
    np.testing.assert_allclose(r.accuracy, realised)


# --- models as sources ------------------------------------------------------------------------


def _one_human_per_item(
    seed: int, n: int, k: int, *, calibrated: bool
) -> tuple[np.ndarray, Claims, Claims]:
    """Each item gets one label from a pool of 20 humans (accuracy 0.55-0.85) and one model row.

    A calibrated model's row is the distribution the truth is drawn from; a useless one is random
    and independent of the truth. Returns (truth, humans only, humans + model).
    """
    rng = np.random.default_rng(seed)
    if calibrated:
        probs = rng.dirichlet(np.full(k, 0.3), n)
        truth = (probs.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    else:
        truth = rng.integers(0, k, n)
        probs = rng.dirichlet(np.ones(k), n)
    acc = rng.uniform(0.55, 0.85, 20)
    human = rng.integers(0, 20, n)
    label = np.where(rng.random(n) < acc[human], truth, wrong_label(rng, truth, k))
    humans = Claims.from_arrays(np.arange(n), human, label, n_sources=20, n_classes=k)
    return truth, humans, add_model(humans, probs)


@pytest.mark.parametrize("method", EM)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_calibrated_model_plus_one_human_beats_the_humans(method: str, seed: int) -> None:
    truth, humans, both = _one_human_per_item(seed, 2000, 3, calibrated=True)
    alone, joint = _acc(_fit(humans, method), truth), _acc(_fit(both, method), truth)
    assert joint > alone + 0.05


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_useless_model_costs_at_most_a_tiny_margin(method: str, seed: int) -> None:
    truth, humans, both = _one_human_per_item(seed, 3000, 3, calibrated=False)
    assert _acc(_fit(both, method), truth) >= _acc(_fit(humans, method), truth) - 0.005


@pytest.mark.xfail(
    strict=False,
    reason=(
        "known weakness: with one human per item and only 600 items, EM lets a random model's 5 "
        "confidence bins pick up spurious reliability and drags DS 1-3 points below the humans "
        "alone (no harm from 2000-3000 items on, nor with bins=1)"
    ),
)
def test_a_useless_model_costs_at_most_a_tiny_margin_on_a_small_project() -> None:
    drops = []
    for seed in range(4):
        truth, humans, both = _one_human_per_item(seed, 600, 3, calibrated=False)
        drops.append(_acc(_fit(humans, "ds"), truth) - _acc(_fit(both, "ds"), truth))
    assert max(drops) <= 0.005


@pytest.mark.parametrize("method", EM)
def test_an_inverted_model_is_read_inverted(method: str) -> None:
    """A model that is confidently wrong every time is informative: EM learns to flip it, while
    a blind vote lets it break every tie between the two humans the wrong way."""
    cr = crowd(11, n_items=400, n_sources=10, k=2, per_item=2, acc=(0.6, 0.8))
    both = add_model(cr.claims, np.where(np.eye(2)[cr.truth] == 1, 0.1, 0.9))
    humans_only, joint = _fit(cr.claims, method), _fit(both, method)
    assert _acc(joint, cr.truth) > _acc(humans_only, cr.truth) + 0.1
    assert joint.accuracy[10] < 0.3  # its top class is (correctly) measured as mostly wrong
    assert joint.confusion[10, 0, 1] > 0.7 and joint.confusion[10, 1, 0] > 0.7
    assert _acc(fit_truth(both, "mv"), cr.truth) < _acc(fit_truth(cr.claims, "mv"), cr.truth) - 0.1


@pytest.mark.parametrize("method", METHODS)
def test_model_only_claims(method: str) -> None:
    probs = np.random.default_rng(12).dirichlet(np.ones(3), 20)
    c = Claims.from_arrays(
        [],
        [],
        [],
        n_items=20,
        n_sources=1,
        n_classes=3,
        prob_item=np.arange(20),
        prob_source=np.zeros(20, np.int64),
        probs=probs,
    )
    r = _fit(c, method)
    assert (
        np.isfinite(r.posterior).all()
        and np.isfinite(r.confusion).all()
        and np.isfinite(r.accuracy).all()
    )
    np.testing.assert_allclose(r.posterior.sum(axis=1), 1.0)
    # One model and nothing to check it against: its probabilities are taken at face value.
    np.testing.assert_allclose(r.posterior, probs)


def test_a_model_and_a_human_sharing_a_source_index_count_once_per_claim() -> None:
    c = Claims.from_arrays(
        [0, 1], [0, 0], [1, 1], n_items=3, prob_item=[2], prob_source=[0], probs=[[0.2, 0.8]]
    )
    r = fit_truth(c, "ds")
    np.testing.assert_array_equal(r.n_claims, [3])
    np.testing.assert_allclose(r.confusion.sum(axis=2), 1.0)


# --- scale -------------------------------------------------------------------------------------


def test_a_million_claims() -> None:
    """10^6 claims (200k items x 5 labels, 500 workers, 4 classes) fit in well under 5 s here."""
    rng = np.random.default_rng(13)
    n, s, k, per = 200_000, 500, 4, 5
    truth = rng.integers(0, k, n)
    acc = rng.uniform(0.5, 0.95, s)
    item = np.repeat(np.arange(n), per)
    source = rng.integers(0, s, item.size)
    label = np.where(
        rng.random(item.size) < acc[source], truth[item], wrong_label(rng, truth[item], k)
    )
    claims = Claims.from_arrays(item, source, label, n_items=n, n_sources=s, n_classes=k)
    assert claims.n_claims == 10**6
    ds = fit_truth(claims, "ds")
    assert ds.converged
    assert _acc(ds, truth) > 0.94
    assert _acc(ds, truth) > _acc(fit_truth(claims, "mv"), truth) + 0.01
    np.testing.assert_allclose(ds.accuracy, acc, atol=0.06)


@pytest.mark.filterwarnings("ignore::veritag.truth.ConvergenceWarning")
def test_an_item_with_thousands_of_vague_claims_does_not_underflow() -> None:
    """Its log joint falls below exp's range for every class; the E-step redoes it with a shift."""
    rng = np.random.default_rng(3)
    n_vague = 3000
    item = np.r_[np.zeros(n_vague, np.int64), np.repeat(np.arange(1, 201), 3)]
    source = np.r_[np.arange(n_vague) % 50, 50 + rng.integers(0, 20, 600)]
    label = np.r_[rng.integers(0, 4, n_vague), rng.integers(0, 4, 600)]
    c = Claims.from_arrays(item, source, label, n_classes=4)
    for method in ("ds", "onecoin"):
        r = fit_truth(c, method)
        assert np.isfinite(r.posterior).all() and np.isfinite(r.log_likelihood)
        np.testing.assert_allclose(r.posterior.sum(axis=1), 1.0, atol=1e-9)


def test_fractional_gold_indices_are_refused_not_truncated() -> None:
    c = Claims.from_arrays([0, 1], [0, 0], [1, 0])
    with pytest.raises(ValueError, match="gold_items must hold integer indices"):
        fit_truth(c, gold_items=[0.5], gold_labels=[1])


@pytest.mark.parametrize("method", [m for m in METHODS if m not in ("glad", "mace")])
def test_one_rule_for_models_nothing_checked(method: str) -> None:
    """Model 1 meets the human on items 0-5; model 2 only ever speaks alone (items 6-9) and
    model 3 shares items 10-11 with model 2 but no human: both are unchecked, and their items
    take the mean of their rows whatever the method."""
    rng = np.random.default_rng(5)
    rows = rng.dirichlet(np.ones(3), 14)
    c = Claims.from_arrays(
        np.arange(6),
        np.zeros(6, np.int64),
        np.arange(6) % 3,
        n_items=12,
        n_sources=4,
        n_classes=3,
        prob_item=np.r_[np.arange(6), np.arange(6, 12), 10, 11],
        prob_source=np.r_[np.full(6, 1), np.full(6, 2), 3, 3],
        probs=rows,
    )
    r = _fit(c, method)
    np.testing.assert_array_equal(r.unchecked, [False, False, True, True])
    np.testing.assert_allclose(r.posterior[6:10], rows[6:10])
    np.testing.assert_allclose(r.posterior[10:12], (rows[10:12] + rows[12:14]) / 2)
    np.testing.assert_allclose(r.posterior.sum(axis=1), 1.0)
