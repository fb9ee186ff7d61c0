"""Automation with a guarantee: the bound, the threshold sequence, and the guarantee itself."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from veritag.automation.policy import (
    automate,
    choose_threshold,
    clopper_pearson_lower,
    min_audit_for,
    simulate,
)

TARGET, DELTA, DRAWS, AUDIT = 0.95, 0.1, 300, 1000


def _population(n: int = 20_000, seed: int = 0):
    """Confident like real models; accuracy rises with confidence, 90% overall, so the accuracy
    of items above t crosses 0.95 mid-range (about half the items)."""
    rng = np.random.default_rng(seed)
    conf = rng.beta(5.0, 1.0, n)
    correct = rng.random(n) < 1.0 - 0.6 * (1.0 - conf)
    return conf, correct


def _binomial_slack(draws: int, rate: float) -> int:
    """Most failures a procedure failing at ``rate`` shows in ``draws`` runs, but for 0.1%."""
    return int(stats.binom.ppf(0.999, draws, rate))


# -- Clopper-Pearson --------------------------------------------------------------------------


@pytest.mark.parametrize("k,n", [(1, 10), (7, 10), (95, 100), (990, 1000), (3, 3), (50, 51)])
@pytest.mark.parametrize("delta", [0.05, 0.1, 0.01])
def test_clopper_pearson_matches_scipy_exact(k, n, delta):
    # A two-sided exact interval at level 1 - 2*delta has the one-sided lower bound at 1 - delta.
    expected = stats.binomtest(k, n).proportion_ci(1 - 2 * delta, method="exact").low
    assert clopper_pearson_lower(k, n, delta) == pytest.approx(expected, rel=1e-9)


def test_clopper_pearson_edges_and_vectorised():
    k = np.array([0, 0, 5, 10, 4])
    n = np.array([0, 10, 10, 10, 4])
    got = clopper_pearson_lower(k, n, 0.05)
    assert got.shape == (5,)
    assert got[0] == 0.0 and got[1] == 0.0
    assert got[3] == pytest.approx(0.05 ** (1 / 10))  # all successes: delta ** (1 / n)
    assert got[4] == pytest.approx(0.05 ** (1 / 4))
    assert 0 < got[2] < 0.5
    with pytest.raises(ValueError, match="successes"):
        clopper_pearson_lower(5, 4, 0.05)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 500), frac=st.floats(0, 1), d1=st.floats(0.001, 0.5), d2=st.floats(0.001, 0.5)
)
def test_clopper_pearson_is_monotone(n, frac, d1, d2):
    k = round(frac * n)
    lo = clopper_pearson_lower(k, n, min(d1, d2))
    hi = clopper_pearson_lower(k, n, max(d1, d2))
    assert 0.0 <= lo <= hi <= k / n + 1e-12
    if k < n:
        assert clopper_pearson_lower(k + 1, n, d1) >= clopper_pearson_lower(k, n, d1)


def test_min_audit_is_the_smallest_count_that_can_pass():
    for target, delta in [(0.95, 0.1), (0.98, 0.05), (0.99, 0.01), (0.5, 0.5)]:
        n = min_audit_for(target, delta)
        assert clopper_pearson_lower(n, n, delta) >= target
        if n > 1:
            assert clopper_pearson_lower(n - 1, n - 1, delta) < target


# -- The guarantee, by repeated simulation -------------------------------------------------------


def test_guarantee_holds_over_repeated_audits():
    conf, correct = _population()
    failures, automated = 0, 0
    for seed in range(DRAWS):
        r = simulate(conf, correct, audit_size=AUDIT, target=TARGET, delta=DELTA, rng=seed)
        if r["realized_accuracy"] is not None:
            automated += 1
            failures += r["realized_accuracy"] < TARGET
            assert r["bound"] >= TARGET
    assert failures <= _binomial_slack(DRAWS, DELTA)
    assert automated >= DRAWS * 0.9  # not vacuous: it does automate


def _naive_threshold(conf, correct, target):
    """Lowest audit quantile whose empirical accuracy above it reaches the target: no bound."""
    order = np.argsort(-conf)
    acc = np.cumsum(correct[order]) / np.arange(1, conf.size + 1)
    ranks = np.ceil(np.arange(1, 101) * conf.size / 100).astype(int) - 1
    ok = ranks[acc[ranks] >= target]
    return conf[order][ok.max()] if ok.size else math.inf


def test_guarantee_is_not_trivial_without_the_bound():
    conf, correct = _population()
    failures = 0
    for seed in range(DRAWS):
        rng = np.random.default_rng(seed)
        mask = np.zeros(conf.size, dtype=bool)
        mask[rng.choice(conf.size, AUDIT, replace=False)] = True
        t = _naive_threshold(conf[mask], correct[mask], TARGET)
        auto = (conf >= t) & ~mask
        failures += auto.any() and correct[auto].mean() < TARGET
    assert failures > _binomial_slack(DRAWS, DELTA)


def test_simulate_reports_everything():
    conf, correct = _population()
    r = simulate(conf, correct, audit_size=AUDIT, target=TARGET, delta=DELTA, rng=1)
    assert set(r) >= {"automation_rate", "threshold", "bound", "audit_size", "realized_accuracy"}
    assert r["audit_drawn"] == AUDIT and 0 < r["audit_size"] <= AUDIT
    assert 0 < r["automation_rate"] < 1
    again = simulate(conf, correct, audit_size=AUDIT, target=TARGET, delta=DELTA, rng=1)
    assert again == r


# -- Monotone sanity ------------------------------------------------------------------------------


def _audit(seed=3, m=2000):
    conf, correct = _population(seed=seed)
    rng = np.random.default_rng(seed)
    mask = np.zeros(conf.size, dtype=bool)
    mask[rng.choice(conf.size, m, replace=False)] = True
    return conf, correct, mask


def test_higher_target_or_smaller_delta_never_automates_more():
    conf, correct, mask = _audit()
    for kw in ({}, {"candidates": 20}, {"candidates": np.linspace(0, 1, 41)}):
        counts = [
            automate(conf, mask, correct, target=t, delta=DELTA, **kw).auto.sum()
            for t in (0.8, 0.9, 0.95, 0.97, 0.99)
        ]
        assert counts == sorted(counts, reverse=True) and counts[0] > 0
        counts = [
            automate(conf, mask, correct, target=TARGET, delta=d, **kw).auto.sum()
            for d in (0.3, 0.1, 0.05, 0.01, 0.001)
        ]
        assert counts == sorted(counts, reverse=True) and counts[0] > 0


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    t1=st.floats(0.5, 0.99),
    t2=st.floats(0.5, 0.99),
    d1=st.floats(0.01, 0.3),
    d2=st.floats(0.01, 0.3),
)
def test_monotone_in_target_and_delta_property(seed, t1, t2, d1, d2):
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0, 1, 400)
    correct = rng.random(400) < 0.5 + 0.5 * conf
    grid = np.linspace(0, 1, 21)  # a fixed grid: the same candidates whatever target and delta
    lo_t, hi_t = sorted((t1, t2))
    lo_d, hi_d = sorted((d1, d2))
    # The same tested sequence for all three: start where the strictest setting can pass.
    need = max(min_audit_for(hi_t, hi_d), min_audit_for(lo_t, lo_d))
    kw = {"candidates": grid, "min_audit": need}
    a = choose_threshold(conf, correct, target=lo_t, delta=hi_d, **kw)
    b = choose_threshold(conf, correct, target=hi_t, delta=hi_d, **kw)
    c = choose_threshold(conf, correct, target=lo_t, delta=lo_d, **kw)
    assert a.threshold <= b.threshold and a.threshold <= c.threshold
    for d in (a, b, c):
        assert d.automated == math.isfinite(d.bound)
        if d.automated:
            assert d.bound >= d.target and d.audit_size >= need
            assert d.audit_size == int((conf >= d.threshold).sum())


def test_perfect_model_automates_almost_everything():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.6, 1.0, 20_000)
    r = simulate(conf, np.ones(conf.size, bool), audit_size=500, target=0.98, delta=0.05, rng=0)
    assert r["automation_rate"] >= 0.97 - 1e-9  # all but the audit itself (2.5%)
    assert r["realized_accuracy"] == 1.0


def test_useless_model_automates_nothing():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0, 1, 20_000)
    correct = rng.random(conf.size) < 0.5  # confidence says nothing
    for seed in range(20):
        r = simulate(conf, correct, audit_size=2000, target=0.9, delta=0.05, rng=seed)
        assert r["automation_rate"] == 0 and r["threshold"] is None
        assert r["realized_accuracy"] is None


def test_audited_items_are_never_auto():
    conf, correct, mask = _audit()
    plan = automate(conf, mask, correct, target=0.9, delta=DELTA)
    assert plan.auto.any() and not (plan.auto & mask).any()
    # audit_correct given only for audited items, in item order, gives the same plan
    same = automate(conf, mask, correct[mask], target=0.9, delta=DELTA)
    np.testing.assert_array_equal(plan.auto, same.auto)


def test_overall_bound_is_the_pooled_audited_accepted_items():
    conf, correct, mask = _audit()
    plan = automate(conf, mask, correct, target=0.9, delta=DELTA)
    d = plan.decisions[0]
    accepted = mask & (conf >= d.threshold)
    assert plan.audit_size == d.audit_size == accepted.sum()
    assert plan.overall_bound == pytest.approx(d.bound)
    assert plan.automation_rate == pytest.approx(plan.auto.mean())
    assert plan.family_delta == DELTA


# -- Slices ---------------------------------------------------------------------------------------


def _sliced(seed=0, n=30_000):
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0, 1, n)
    slices = rng.integers(0, 3, n)  # 0: good model, 1: bad model, 2: good but barely audited
    p = np.where(slices == 1, 0.6, 0.8 + 0.2 * conf)
    correct = rng.random(n) < p
    mask = rng.random(n) < np.where(slices == 2, 0.001, 0.15)
    slices[rng.random(n) < 0.02] = -1
    return conf, correct, mask, slices


def test_per_slice_decisions():
    conf, correct, mask, slices = _sliced()
    plan = automate(conf, mask, correct, target=0.95, delta=0.05, slices=slices)
    assert set(plan.decisions) == {0, 1, 2}
    good, bad, thin = plan.decisions[0], plan.decisions[1], plan.decisions[2]
    assert good.automated and good.bound >= 0.95
    assert not bad.automated and bad.tested >= 1
    assert not thin.automated and thin.tested == 0  # too few audited items to test anything
    assert plan.auto[slices == 0].any()
    assert not plan.auto[(slices == 1) | (slices == 2) | (slices == -1)].any()
    outside = plan.auto
    assert correct[outside].mean() >= 0.95
    assert plan.family_delta == pytest.approx(3 * 0.05)


def test_each_slice_is_decided_on_its_own_audited_items():
    rng = np.random.default_rng(5)
    n = 5000
    conf = rng.uniform(0, 1, n)
    correct = rng.random(n) < 0.5 + 0.5 * conf
    mask = rng.random(n) < 0.4
    slices = rng.choice([7, 3, 11, -1], n)
    plan = automate(conf, mask, correct, target=0.8, delta=0.1, slices=slices)
    for s, d in plan.decisions.items():
        sel = mask & (slices == s)
        assert d == choose_threshold(conf[sel], correct[sel], target=0.8, delta=0.1)
        np.testing.assert_array_equal(
            plan.auto[slices == s], (conf >= d.threshold)[slices == s] & ~mask[slices == s]
        )
    assert sorted(plan.decisions) == [3, 7, 11] and plan.auto.any()


def test_simultaneous_splits_delta_and_min_audit_raises_the_bar():
    conf, correct, mask, slices = _sliced()
    loose = automate(conf, mask, correct, target=0.95, delta=0.05, slices=slices)
    strict = automate(
        conf, mask, correct, target=0.95, delta=0.05, slices=slices, simultaneous=True
    )
    assert strict.delta_per_slice == pytest.approx(0.05 / 3)
    assert strict.family_delta == pytest.approx(0.05)
    assert strict.auto.sum() <= loose.auto.sum()
    huge = automate(
        conf, mask, correct, target=0.95, delta=0.05, slices=slices, min_audit=int(mask.sum()) + 1
    )
    assert not huge.auto.any() and math.isnan(huge.overall_bound)


# -- Bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_levels_must_lie_in_the_open_unit_interval(bad):
    conf = np.array([0.9, 0.8])
    ok = np.array([True, True])
    with pytest.raises(ValueError, match="target must lie strictly between 0 and 1"):
        choose_threshold(conf, ok, target=bad, delta=0.1)
    with pytest.raises(ValueError, match="delta must lie strictly between 0 and 1"):
        choose_threshold(conf, ok, target=0.9, delta=bad)
    with pytest.raises(ValueError, match="delta"):
        clopper_pearson_lower(1, 2, bad)
    with pytest.raises(ValueError, match="target"):
        automate(conf, ok, ok, target=bad, delta=0.1)


def test_bad_arrays_are_refused_with_clear_messages():
    conf = np.array([0.9, 0.8, 0.7])
    mask = np.array([True, False, True])
    with pytest.raises(ValueError, match="audit_correct must have shape"):
        choose_threshold(conf, [True, False], target=0.9, delta=0.1)
    with pytest.raises(ValueError, match="finite"):
        choose_threshold([0.9, np.nan], [True, True], target=0.9, delta=0.1)
    with pytest.raises(ValueError, match="finite"):
        automate([0.9, np.nan, 0.5], mask, [1, 1, 1], target=0.9, delta=0.1)
    with pytest.raises(ValueError, match="audit_mask must have shape"):
        automate(conf, mask[:2], [1, 1], target=0.9, delta=0.1)
    with pytest.raises(ValueError, match="audit_mask must be a boolean"):
        automate(conf, [1, 0, 1], [1, 1], target=0.9, delta=0.1)
    with pytest.raises(ValueError, match=r"audit_correct must have shape \(3,\) or \(2,\)"):
        automate(conf, mask, [1], target=0.9, delta=0.1)
    with pytest.raises(ValueError, match="boolean or 0/1"):
        automate(conf, mask, [1, 0.5], target=0.9, delta=0.1)
    with pytest.raises(ValueError, match="slices must have shape"):
        automate(conf, mask, [1, 1], target=0.9, delta=0.1, slices=[0, 1])
    with pytest.raises(ValueError, match="slice codes"):
        automate(conf, mask, [1, 1], target=0.9, delta=0.1, slices=[0, -2, 1])
    with pytest.raises(ValueError, match="1-d"):
        choose_threshold(np.ones((2, 2)), np.ones((2, 2)), target=0.9, delta=0.1)
    with pytest.raises(ValueError, match="audit_size"):
        simulate(conf, [1, 1, 1], audit_size=4, target=0.9, delta=0.1, rng=0)


def test_empty_inputs_automate_nothing():
    d = choose_threshold([], [], target=0.9, delta=0.1)
    assert not d.automated and d.tested == 0 and d.audit_size == 0
    plan = automate(np.array([0.9]), np.array([False]), np.array([True]), target=0.9, delta=0.1)
    assert not plan.auto.any() and plan.decisions[0].tested == 0
