"""claim_issues and item_issues: planted mistakes come out on top; the arithmetic is exact."""

from __future__ import annotations

import numpy as np
import pytest
from truth_synth import crowd

from veritag.truth import Claims, claim_issues, fit_truth, item_issues

# --- claim_issues -------------------------------------------------------------------------------


def _planted(seed: int) -> tuple[Claims, np.ndarray, np.ndarray]:
    """A noisy crowd (300 items x 3 labels) plus 100 easy items labeled by 7 workers who agree;
    on 10 easy items one claim is flipped, so it stands alone against a 6-1 majority.

    Returns (claims, truth, indices of the planted claims)."""
    rng = np.random.default_rng(seed)
    cr = crowd(seed, n_items=300, n_sources=12, k=3, per_item=3, acc=(0.7, 0.9))
    truth = np.r_[cr.truth, rng.integers(0, 3, 100)]
    easy_item = np.repeat(np.arange(300, 400), 7)
    easy_source = np.argsort(rng.random((100, 12)), axis=1)[:, :7].ravel()
    label = np.r_[cr.claims.label, truth[easy_item]]
    planted = cr.claims.item.size + rng.choice(100, 10, replace=False) * 7 + rng.integers(0, 7, 10)
    label[planted] = (label[planted] + rng.integers(1, 3, 10)) % 3
    claims = Claims.from_arrays(
        np.r_[cr.claims.item, easy_item], np.r_[cr.claims.source, easy_source], label, n_classes=3
    )
    return claims, truth, planted


@pytest.mark.parametrize("method", ["ds-shrunk", "onecoin"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_wrong_claims_rank_first(method: str, seed: int) -> None:
    """Unshrunk DS is left out: its sharp confusions give many honest minority claims quality 0."""
    claims, _, planted = _planted(seed)
    r = fit_truth(claims, method)
    issues = claim_issues(claims, r.posterior, r.confusion)
    assert set(issues.order[:10].tolist()) == set(planted.tolist())
    assert issues.is_issue[planted].all()
    assert issues.quality[planted].max() < 0.01


@pytest.mark.parametrize("method", ["mv", "wmv"])
def test_planted_wrong_claims_are_flagged_after_a_vote(method: str) -> None:
    claims, _, planted = _planted(0)
    r = fit_truth(claims, method)
    issues = claim_issues(claims, r.posterior, r.confusion)
    assert issues.is_issue[planted].all()
    assert np.isin(planted, issues.order[:40]).all()


def test_claim_issues_layout() -> None:
    claims, _, _ = _planted(3)
    r = fit_truth(claims, "ds")
    issues = claim_issues(claims, r.posterior, r.confusion)
    m = claims.item.size
    assert issues.order.shape == issues.quality.shape == issues.is_issue.shape == (m,)
    np.testing.assert_array_equal(np.sort(issues.order), np.arange(m))
    assert np.all(np.diff(issues.quality[issues.order]) >= 0)
    assert np.all((issues.quality >= 0) & (issues.quality <= 1))
    np.testing.assert_array_equal(issues.is_issue, issues.quality < 0.5)


def test_claim_quality_is_the_posterior_with_the_claim_divided_out() -> None:
    claims = Claims.from_arrays(
        [0, 0, 1], [0, 1, 1], [1, 0, 2], n_items=2, n_sources=2, n_classes=3
    )
    posterior = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    confusion = np.array(
        [
            [[0.8, 0.1, 0.1], [0.2, 0.6, 0.2], [0.1, 0.1, 0.8]],
            [[0.5, 0.25, 0.25], [0.3, 0.4, 0.3], [0.2, 0.2, 0.6]],
        ]
    )
    quality = claim_issues(claims, posterior, confusion).quality
    for c in range(3):
        loo = posterior[claims.item[c]] / confusion[claims.source[c], :, claims.label[c]]
        assert quality[c] == pytest.approx(loo[claims.label[c]] / loo.sum())


def test_leave_one_out_is_exact_for_a_dawid_skene_posterior() -> None:
    """Build a posterior as prior x the product of every claim's likelihood: dividing one claim
    out must give the posterior of the other claims alone."""
    rng = np.random.default_rng(4)
    k = 3
    confusion = rng.dirichlet(np.ones(k), (4, k))
    prior = np.array([0.5, 0.3, 0.2])
    claims = Claims.from_arrays(
        [0, 0, 0, 1, 1], [0, 1, 2, 2, 3], [0, 2, 1, 1, 1], n_sources=4, n_classes=k
    )

    def post(keep: np.ndarray) -> np.ndarray:
        out = np.tile(prior, (2, 1))
        for c in np.flatnonzero(keep):
            out[claims.item[c]] *= confusion[claims.source[c], :, claims.label[c]]
        return out / out.sum(axis=1, keepdims=True)

    quality = claim_issues(claims, post(np.ones(5, bool)), confusion).quality
    for c in range(5):
        others = np.ones(5, bool)
        others[c] = False
        assert quality[c] == pytest.approx(post(others)[claims.item[c], claims.label[c]])


def test_a_claim_against_gold_has_no_quality() -> None:
    cr = crowd(5, n_items=40, n_sources=6, k=2)
    gold_item = int(cr.claims.item[0])
    gold_label = 1 - int(cr.claims.label[0])
    r = fit_truth(cr.claims, "ds", gold_items=[gold_item], gold_labels=[gold_label])
    quality = claim_issues(cr.claims, r.posterior, r.confusion).quality
    on_gold = cr.claims.item == gold_item
    np.testing.assert_allclose(
        quality[on_gold], (cr.claims.label[on_gold] == gold_label).astype(float), atol=1e-9
    )
    assert np.isfinite(quality).all()


def test_claim_issues_threshold() -> None:
    claims, _, planted = _planted(6)
    r = fit_truth(claims, "ds")
    assert not claim_issues(claims, r.posterior, r.confusion, threshold=0.0).is_issue.any()
    assert claim_issues(claims, r.posterior, r.confusion, threshold=1.0 + 1e-9).is_issue.all()
    strict = claim_issues(claims, r.posterior, r.confusion, threshold=0.01)
    assert strict.is_issue[planted].all()
    assert strict.is_issue.sum() < claim_issues(claims, r.posterior, r.confusion).is_issue.sum()


def test_claim_issues_ignore_model_rows_and_handle_no_claims() -> None:
    claims = Claims.from_arrays(
        [0, 1],
        [0, 0],
        [1, 1],
        n_items=3,
        prob_item=[0, 2],
        prob_source=[1, 1],
        probs=[[0.9, 0.1], [0.5, 0.5]],
    )
    r = fit_truth(claims, "ds")
    issues = claim_issues(claims, r.posterior, r.confusion)
    assert issues.quality.shape == (2,)
    empty = Claims.from_arrays([], [], [], n_items=2, n_sources=1, n_classes=2)
    none = claim_issues(empty, np.full((2, 2), 0.5), np.full((1, 2, 2), 0.5))
    assert none.order.size == none.quality.size == none.is_issue.size == 0


@pytest.mark.parametrize(
    ("posterior", "confusion"),
    [
        (np.full((3, 2), 0.5), np.full((2, 2, 2), 0.5)),  # one item too many
        (np.full((2, 3), 1 / 3), np.full((2, 2, 2), 0.5)),  # a class too many
        (np.full((2, 2), 0.5), np.full((3, 2, 2), 0.5)),  # a source too many
        (np.full((2, 2), 0.5), np.full((2, 2), 0.5)),  # not per source
    ],
)
def test_claim_issues_reject_mismatched_shapes(
    posterior: np.ndarray, confusion: np.ndarray
) -> None:
    claims = Claims.from_arrays([0, 1], [0, 1], [0, 1])
    with pytest.raises(ValueError, match="must match the claims"):
        claim_issues(claims, posterior, confusion)


# --- item_issues --------------------------------------------------------------------------------


def test_given_wrong_labels_rank_first() -> None:
    cr = crowd(7, n_items=300, n_sources=10, k=4, per_item=5, acc=(0.75, 0.95))
    r = fit_truth(cr.claims, "ds")
    rng = np.random.default_rng(7)
    wrong = rng.choice(300, 15, replace=False)
    given = cr.truth.copy()
    given[wrong] = (given[wrong] + rng.integers(1, 4, 15)) % 4
    issues = item_issues(r.posterior, given)
    # Only the items DS itself gets wrong (a given true label it doubts) may come between them.
    ds_wrong = int((r.labels() != cr.truth).sum())
    assert 0 < ds_wrong < 10
    assert np.isin(wrong, issues.order[: 15 + ds_wrong]).all()
    assert issues.quality[wrong].max() < 0.05
    assert issues.is_issue[wrong].all()
    np.testing.assert_array_equal(issues.suggested[wrong], cr.truth[wrong])
    assert issues.is_issue.sum() <= 15 + ds_wrong


def test_item_issues_layout_and_defaults() -> None:
    posterior = np.array([[0.6, 0.4], [0.1, 0.9], [0.5, 0.5], [0.45, 0.55]])
    issues = item_issues(posterior)
    np.testing.assert_allclose(issues.quality, [0.6, 0.9, 0.5, 0.55])  # the confidence
    np.testing.assert_array_equal(issues.suggested, [0, 1, 0, 1])
    np.testing.assert_array_equal(issues.order, [2, 3, 0, 1])
    assert not issues.is_issue.any()  # without labels, the suggestion is the label


def test_item_issues_ties_keep_item_order() -> None:
    issues = item_issues(np.full((4, 2), 0.5), [1, 0, 1, 0])
    np.testing.assert_array_equal(issues.order, [0, 1, 2, 3])


def test_item_issues_threshold() -> None:
    posterior = np.array([[0.3, 0.7], [0.45, 0.55], [0.9, 0.1], [0.6, 0.4]])
    given = np.array([0, 0, 1, 0])
    np.testing.assert_array_equal(item_issues(posterior, given).is_issue, [True, True, True, False])
    np.testing.assert_array_equal(
        item_issues(posterior, given, threshold=0.35).is_issue, [True, False, True, False]
    )
    np.testing.assert_array_equal(
        item_issues(posterior, given, threshold=0.0).is_issue, [False] * 4
    )
    # A label already the most probable is never an issue, however low its probability.
    flat = np.array([[0.34, 0.33, 0.33]])
    assert not item_issues(flat, [0], threshold=0.9).is_issue[0]


def test_pred_probs_are_combined_as_independent_evidence() -> None:
    posterior = np.array([[0.6, 0.4], [0.5, 0.5], [0.9, 0.1]])
    pred = np.array([[0.2, 0.8], [0.7, 0.3], [0.5, 0.5]])
    issues = item_issues(posterior, [0, 0, 0], pred_probs=pred)
    combined = posterior * pred / (posterior * pred).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(issues.quality, combined[:, 0])
    np.testing.assert_array_equal(issues.suggested, [1, 0, 0])  # the model tips item 0
    np.testing.assert_array_equal(issues.is_issue, [True, False, False])
    # A uniform model changes nothing.
    same = item_issues(posterior, [0, 0, 0], pred_probs=np.full((3, 2), 0.5))
    np.testing.assert_allclose(same.quality, posterior[:, 0])


def test_pred_probs_that_contradict_the_posterior_stay_finite() -> None:
    issues = item_issues(np.array([[1.0, 0.0]]), [0], pred_probs=np.array([[0.0, 1.0]]))
    assert np.isfinite(issues.quality).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"posterior": np.full(3, 0.5)}, "2-d array"),
        ({"labels": [0, 1]}, "one class index per item"),
        ({"labels": [0, 1, 2]}, "one class index per item"),
        ({"labels": [0, -1, 1]}, "one class index per item"),
        ({"pred_probs": np.full((3, 3), 1 / 3)}, "pred_probs must have shape"),
        ({"pred_probs": np.full((2, 2), 0.5)}, "pred_probs must have shape"),
    ],
)
def test_item_issues_reject_bad_input(kwargs: dict, message: str) -> None:
    args = {"posterior": np.full((3, 2), 0.5), **kwargs}
    with pytest.raises(ValueError, match=message):
        item_issues(args.pop("posterior"), **args)
