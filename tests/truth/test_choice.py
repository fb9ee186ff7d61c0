"""``method="auto"``: the choice by held-out likelihood of the claims (``veritag.truth.choice``)."""

from __future__ import annotations

import numpy as np
import pytest
from truth_synth import crowd

from veritag.truth import Claims, fit_truth
from veritag.truth.choice import held_out_scores
from veritag.truth.engine import AUTO_CANDIDATES


def _posterior(claims: Claims, method: str) -> np.ndarray:
    return fit_truth(claims, method).posterior


def test_auto_fits_the_candidate_with_the_best_held_out_score() -> None:
    cr = crowd(0, n_items=150, n_sources=8, k=3, per_item=3)
    r = fit_truth(cr.claims, "auto")
    assert set(r.scores) == set(AUTO_CANDIDATES)
    assert r.method == max(r.scores, key=r.scores.__getitem__)
    np.testing.assert_array_equal(r.posterior, fit_truth(cr.claims, r.method).posterior)
    assert all(np.isfinite(v) and v < 0 for v in r.scores.values())


def test_the_choice_is_reproducible_and_depends_on_the_seed_only() -> None:
    cr = crowd(1, n_items=120, n_sources=6, k=2, per_item=3)
    a = held_out_scores(cr.claims, ("mv", "ds"), _posterior)
    b = held_out_scores(cr.claims, ("mv", "ds"), _posterior)
    assert a == b
    assert held_out_scores(cr.claims, ("mv", "ds"), _posterior, seed=1) != a


def test_an_informative_posterior_beats_a_flat_one() -> None:
    """The score is a proper scoring rule on held-out claims: knowing the truth must score higher
    than knowing nothing, whatever the workers' confusions."""
    cr = crowd(2, n_items=200, n_sources=8, k=3, per_item=4, acc=(0.6, 0.9))
    k = cr.claims.n_classes

    def oracle_or_flat(claims: Claims, method: str) -> np.ndarray:
        return np.eye(k)[cr.truth] if method == "oracle" else np.full((claims.n_items, k), 1.0 / k)

    scores = held_out_scores(cr.claims, ("flat", "oracle"), oracle_or_flat)
    assert scores["oracle"] > scores["flat"]


def test_auto_prefers_dawid_skene_where_workers_are_biased_and_votes_mislead() -> None:
    """Three workers always answer class 0 whatever the truth; two are good. A vote follows the
    three, Dawid-Skene learns their bias, and the held-out claims say so."""
    rng = np.random.default_rng(3)
    n = 300
    truth = rng.integers(0, 2, n)
    items = np.repeat(np.arange(n), 5)
    sources = np.tile(np.arange(5), n)
    good = np.where(rng.random(2 * n) < 0.9, np.repeat(truth, 2), 1 - np.repeat(truth, 2))
    labels = np.column_stack([np.zeros((n, 3), np.int64), good.reshape(n, 2)]).ravel()
    r = fit_truth(Claims.from_arrays(items, sources, labels, n_classes=2), "auto")
    assert r.scores["ds"] > r.scores["mv"]
    assert (r.labels() == truth).mean() > 0.85


def test_large_inputs_choose_on_a_sample_of_items() -> None:
    cr = crowd(4, n_items=400, n_sources=6, k=2, per_item=3)
    seen: list[int] = []

    def counting(claims: Claims, method: str) -> np.ndarray:
        seen.append(claims.n_items)
        return _posterior(claims, method)

    held_out_scores(cr.claims, ("mv",), counting, max_items=100)
    assert set(seen) == {100}
    with pytest.raises(ValueError, match="folds must be >= 2"):
        held_out_scores(cr.claims, ("mv",), counting, folds=1)


@pytest.mark.parametrize("method", ["glad", "mace"])
def test_glad_and_mace_through_fit_truth(method: str) -> None:
    cr = crowd(5, n_items=120, n_sources=6, k=3, per_item=3)
    r = fit_truth(cr.claims, method, gold_items=[0, 1], gold_labels=[2, 2])
    assert r.method == method and r.posterior.shape == (120, 3)
    np.testing.assert_allclose(r.posterior.sum(axis=1), 1.0)
    np.testing.assert_array_equal(r.labels()[:2], [2, 2])
    assert (r.labels() == cr.truth)[2:].mean() > 0.8
