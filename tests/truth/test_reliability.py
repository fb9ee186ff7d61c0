"""source_reliability: per-group skill is recovered, thin groups lean on the overall matrix."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from truth_synth import add_model, crowd, wrong_label

from veritag.truth import Claims, fit_truth, source_reliability


def _domain_crowd(seed: int = 0) -> tuple[Claims, np.ndarray, np.ndarray, np.ndarray]:
    """600 items in two domains, 4 of 8 workers per item. Worker 0 is good in domain 0 (0.95)
    and poor in domain 1 (0.4); worker 1 the other way round; everyone else 0.85 in both.

    Returns (claims, truth, domain per item, realised accuracy per worker and domain)."""
    rng = np.random.default_rng(seed)
    n, k, s = 600, 3, 8
    truth, domain = rng.integers(0, k, n), rng.integers(0, 2, n)
    item = np.repeat(np.arange(n), 4)
    source = np.argsort(rng.random((n, s)), axis=1)[:, :4].ravel()
    skill = np.full((s, 2), 0.85)
    skill[0], skill[1] = [0.95, 0.4], [0.45, 0.95]
    right = rng.random(item.size) < skill[source, domain[item]]
    label = np.where(right, truth[item], wrong_label(rng, truth[item], k))
    cell = source * 2 + domain[item]
    realised = (
        np.bincount(cell, weights=right, minlength=2 * s) / np.bincount(cell, minlength=2 * s)
    ).reshape(s, 2)
    return Claims.from_arrays(item, source, label, n_classes=k), truth, domain, realised


def test_per_domain_skill_is_recovered() -> None:
    claims, _, domain, realised = _domain_crowd()
    r = fit_truth(claims, "ds")
    rel = source_reliability(claims, r.posterior, groups=domain)
    assert rel.accuracy[0, 0] > 0.85 and rel.accuracy[0, 1] < 0.55
    assert rel.accuracy[1, 0] < 0.6 and rel.accuracy[1, 1] > 0.85
    np.testing.assert_allclose(rel.accuracy, realised, atol=0.08)
    diag = np.diagonal(rel.confusion, axis1=2, axis2=3).mean(axis=2)
    assert diag[0, 0] > diag[0, 1] + 0.3 and diag[1, 1] > diag[1, 0] + 0.3
    # Overall, both specialists look middling: the split is what tells them apart.
    overall = source_reliability(claims, r.posterior).accuracy[:, 0]
    assert 0.55 < overall[0] < 0.8 and 0.55 < overall[1] < 0.8


def test_against_the_true_labels_the_accuracy_is_exact() -> None:
    claims, truth, domain, realised = _domain_crowd(1)
    rel = source_reliability(claims, np.eye(3)[truth], groups=domain, strength=0.0)
    np.testing.assert_allclose(rel.accuracy, realised)
    counts = np.zeros((8, 2, 3, 3))
    np.add.at(counts, (claims.source, domain[claims.item], truth[claims.item], claims.label), 1)
    np.testing.assert_allclose(rel.confusion, counts / counts.sum(axis=3, keepdims=True))
    np.testing.assert_array_equal(rel.n_claims, counts.sum(axis=(2, 3)))


def test_layout() -> None:
    claims, _, domain, _ = _domain_crowd(2)
    r = fit_truth(claims, "ds")
    rel = source_reliability(claims, r.posterior, groups=domain, n_groups=3)
    assert rel.confusion.shape == (8, 3, 3, 3)
    assert rel.accuracy.shape == rel.n_claims.shape == (8, 3)
    assert np.issubdtype(rel.n_claims.dtype, np.integer)
    np.testing.assert_allclose(rel.confusion.sum(axis=3), 1.0)
    np.testing.assert_array_equal(rel.n_claims.sum(axis=1), np.bincount(claims.source))
    np.testing.assert_array_equal(rel.n_claims[:, 2], 0)


def test_one_group_matches_the_engine_accuracy() -> None:
    cr = crowd(3, n_items=200, n_sources=9, k=3)
    with_model = add_model(cr.claims, np.random.default_rng(3).dirichlet(np.ones(3), 200))
    claims = Claims.from_arrays(  # plus source 10, which has no claims
        with_model.item,
        with_model.source,
        with_model.label,
        n_sources=11,
        n_classes=3,
        prob_item=with_model.prob_item,
        prob_source=with_model.prob_source,
        probs=with_model.probs,
    )
    r = fit_truth(claims, "ds")
    rel = source_reliability(claims, r.posterior)
    assert rel.accuracy.shape == (11, 1)
    np.testing.assert_allclose(rel.accuracy[:, 0], r.accuracy, equal_nan=True)
    np.testing.assert_array_equal(rel.n_claims[:, 0], r.n_claims)


def test_a_model_counts_as_its_top_class() -> None:
    claims = Claims.from_arrays(
        [0],
        [0],
        [1],
        n_items=2,
        prob_item=[0, 1],
        prob_source=[1, 1],
        probs=[[0.7, 0.3], [0.2, 0.8]],
    )
    rel = source_reliability(claims, np.array([[1.0, 0.0], [0.0, 1.0]]), strength=0.0)
    np.testing.assert_allclose(rel.accuracy[:, 0], [0.0, 1.0])
    np.testing.assert_allclose(rel.confusion[1, 0], [[1.0, 0.0], [0.0, 1.0]])


def test_groups_without_claims_have_nan_accuracy_and_the_overall_matrix() -> None:
    claims, truth, domain, _ = _domain_crowd(4)
    post = np.eye(3)[truth]
    for strength in (0.0, 2.0):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no 0/0 on the way
            rel = source_reliability(claims, post, groups=domain, n_groups=4, strength=strength)
        assert np.isnan(rel.accuracy[:, 2:]).all() and np.isfinite(rel.accuracy[:, :2]).all()
        overall = source_reliability(claims, post, strength=strength).confusion[:, 0]
        assert np.isfinite(rel.confusion).all()
        np.testing.assert_allclose(rel.confusion[:, 2], overall, atol=0.01)
        np.testing.assert_allclose(rel.confusion[:, 3], rel.confusion[:, 2])


def test_a_source_without_claims_is_nan_and_uniform() -> None:
    claims = Claims.from_arrays([0, 1], [0, 0], [0, 1], n_sources=2)
    rel = source_reliability(claims, np.eye(2))
    assert np.isnan(rel.accuracy[1]).all()
    np.testing.assert_allclose(rel.confusion[1], 0.5)


def _thin_group() -> tuple[Claims, np.ndarray, np.ndarray]:
    """Source 0 answers 200 items of group 0 at 70% and the 2 items of group 1 right."""
    rng = np.random.default_rng(5)
    truth = rng.integers(0, 2, 202)
    label = np.where(rng.random(202) < 0.7, truth, 1 - truth)
    label[200:] = truth[200:]
    groups = np.r_[np.zeros(200, np.int64), np.ones(2, np.int64)]
    claims = Claims.from_arrays(np.arange(202), np.zeros(202, np.int64), label, n_classes=2)
    return claims, np.eye(2)[truth], groups


def test_thin_groups_are_shrunk_toward_the_overall_matrix() -> None:
    claims, post, groups = _thin_group()
    raw = source_reliability(claims, post, groups=groups, strength=0.0)
    rel = source_reliability(claims, post, groups=groups)  # strength 2
    overall = source_reliability(claims, post).confusion[0, 0]
    assert rel.accuracy[0, 1] == 1.0  # the accuracy itself stays unshrunk
    seen = post[200:].argmax(axis=1)  # the true classes of the two thin-group items
    np.testing.assert_allclose(raw.confusion[0, 1, seen, seen], 1.0)
    thin = np.diagonal(rel.confusion[0, 1])
    assert np.all(thin < 0.95) and np.all(thin > np.diagonal(overall) - 1e-9)
    # Two lucky answers barely move the matrix away from overall; two hundred dominate theirs.
    assert np.abs(rel.confusion[0, 1] - overall).max() < np.abs(raw.confusion[0, 1] - overall).max()
    np.testing.assert_allclose(rel.confusion[0, 0], raw.confusion[0, 0], atol=0.02)


def test_more_strength_moves_a_thin_group_monotonically_to_overall() -> None:
    claims, post, groups = _thin_group()
    overall = source_reliability(claims, post).confusion[0, 0]
    distance = [
        np.abs(
            source_reliability(claims, post, groups=groups, strength=s).confusion[0, 1] - overall
        ).max()
        for s in (0.0, 0.5, 2.0, 10.0, 1e6)
    ]
    assert all(a > b for a, b in itertools.pairwise(distance))
    assert distance[-1] < 1e-4


def test_shrinkage_formula() -> None:
    claims = Claims.from_arrays([0, 1, 2, 3], [0, 0, 0, 0], [0, 1, 1, 0], n_classes=2)
    post = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    groups = np.array([0, 0, 1, 1])
    rel = source_reliability(claims, post, groups=groups, strength=1.5)
    counts = np.zeros((2, 2, 2))  # group, true, answer
    for i in range(4):
        counts[groups[i], :, claims.label[i]] += post[i]
    total = counts.sum(axis=0)
    overall = (total + 0.01) / (total.sum(axis=1, keepdims=True) + 0.02)
    expected = (counts + 1.5 * overall) / (counts + 1.5 * overall).sum(axis=2, keepdims=True)
    np.testing.assert_allclose(rel.confusion[0], expected)
    np.testing.assert_allclose(rel.accuracy[0], np.trace(counts, axis1=1, axis2=2) / 2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"posterior": np.full((3, 2), 0.5)}, r"posterior must have shape \(2, 2\)"),
        ({"posterior": np.full((2, 3), 1 / 3)}, r"posterior must have shape \(2, 2\)"),
        ({"strength": -1.0}, "strength must be >= 0"),
        ({"groups": [0, 0, 0]}, "non-negative group index"),
        ({"groups": [0, -1]}, "non-negative group index"),
        ({"groups": [[0, 1]]}, "non-negative group index"),
        ({"groups": [0, 2], "n_groups": 2}, r"groups must lie in \[0, n_groups=2\)"),
    ],
)
def test_bad_input(kwargs: dict, message: str) -> None:
    claims = Claims.from_arrays([0, 1], [0, 1], [0, 1])
    args = {"posterior": np.eye(2), **kwargs}
    with pytest.raises(ValueError, match=message):
        source_reliability(claims, args.pop("posterior"), **args)
