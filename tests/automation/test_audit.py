"""Bias audit: per-slice error estimates and bounds, the flag rule, label shift, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from veritag.automation.audit import BiasAudit, bias_audit, error_bounds, label_shift

pytestmark = pytest.mark.filterwarnings("error")

DELTA = 0.05


def _slice(rng, n, model_err, human_err, *, audit=0.1, above=0.7, unknown=0.3):
    """One slice's items: uniform audit, would-auto share ``above``, error rates as given."""
    audited = rng.random(n) < audit
    would = rng.random(n) < above
    auto = would & ~audited
    model_ok = rng.random(n) >= model_err
    human = (rng.random(n) >= human_err).astype(float)
    human[auto | (rng.random(n) < unknown)] = np.nan
    return audited, would, auto, model_ok, human


def _population(seed=0, sizes=(6000, 6000, 150), rates=((0.15, 0.02), (0.05, 0.05), (0.3, 0.01))):
    """Slice 0: model far worse than humans; 1: equal; 2: too small an audit to tell."""
    rng = np.random.default_rng(seed)
    parts = [_slice(rng, n, *r) for n, r in zip(sizes, rates, strict=True)]
    codes = np.concatenate([np.full(n, c) for c, n in enumerate(sizes)])
    audited, would, auto, model_ok, human = (np.concatenate(x) for x in zip(*parts, strict=True))
    return codes, auto, audited, model_ok, would, human


def _run(pop, **kw) -> BiasAudit:
    codes, auto, audited, model_ok, would, human = pop
    return bias_audit(codes, auto, audited, model_ok, would_auto=would, human_correct=human, **kw)


# -- the flag ---------------------------------------------------------------------------------


def test_flags_worse_slice_only():
    res = _run(_population(), slice_names=["worse", "equal", "tiny"])
    worse, equal, tiny = res.slices
    assert (worse.name, equal.name, tiny.name) == ("worse", "equal", "tiny")
    assert worse.automation_worse is True
    assert equal.automation_worse is False
    assert tiny.automation_worse is None and tiny.auto_audit_size < res.min_evidence
    assert res.flagged == (0,)
    assert res.by_code(2) is tiny
    assert res.overall.code is None and res.overall.n == 12_150
    # Slice 0's audit evidence: errors plainly above the human rate.
    assert worse.auto_error_lower > worse.human_error_upper


def test_equal_slice_false_flag_rate_at_most_delta():
    """Equal true error rates: the flag is a level-delta test, checked by simulation."""
    draws = 300
    flags = 0
    for seed in range(draws):
        pop = _population(seed, sizes=(1500,), rates=((0.08, 0.08),))
        flags += _run(pop).slices[0].automation_worse is True
    assert flags <= stats.binom.ppf(0.999, draws, DELTA)


def test_min_evidence_controls_none():
    pop = _population()
    assert _run(pop, min_evidence=5).by_code(2).automation_worse is not None
    assert _run(pop, min_evidence=10**6).by_code(0).automation_worse is None


# -- estimates equal direct computations ------------------------------------------------------


def _direct(codes, auto, audited, model_ok, would, human, code):
    sel = np.ones(codes.size, bool) if code is None else codes == code
    ev = sel & audited & would
    hk = sel & ~auto & ~np.isnan(human)
    return {
        "n": sel.sum(),
        "n_auto": (sel & auto).sum(),
        "auto_audit_size": ev.sum(),
        "auto_errors": (~model_ok[ev].astype(bool)).sum(),
        "human_size": hk.sum(),
        "human_errors": (human[hk] == 0).sum(),
    }


def test_estimates_match_direct_computation():
    pop = _population(3)
    res = _run(pop)
    for row in (*res.slices, res.overall):
        d = _direct(*pop, row.code)
        for key, val in d.items():
            assert getattr(row, key) == val, key
        assert row.automation_rate == pytest.approx(d["n_auto"] / d["n"])
        assert row.auto_error == pytest.approx(d["auto_errors"] / d["auto_audit_size"])
        assert row.human_error == pytest.approx(d["human_errors"] / d["human_size"])
        k, m = d["auto_errors"], d["auto_audit_size"]
        assert row.auto_error_upper == pytest.approx(stats.beta.ppf(1 - DELTA, k + 1, m - k))
        assert row.auto_error_lower == pytest.approx(stats.beta.ppf(DELTA, k, m - k + 1))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 60), st.integers(0, 2**32 - 1))
def test_estimates_match_direct_random(n, seed):
    rng = np.random.default_rng(seed)
    codes = rng.integers(-1, 3, n)
    audited = rng.random(n) < 0.4
    would = rng.random(n) < 0.6
    auto = would & ~audited & (rng.random(n) < 0.8)
    model_ok = rng.random(n) < 0.8
    human = np.where(rng.random(n) < 0.3, np.nan, (rng.random(n) < 0.9).astype(float))
    labels = rng.integers(0, 3, n)
    pop = (codes, auto, audited, model_ok, would, human)
    res = _run(pop, labels=labels, n_classes=3)
    assert [r.code for r in res.slices] == sorted(set(codes[codes >= 0].tolist()))
    for row in (*res.slices, res.overall):
        d = _direct(*pop, row.code)
        for key, val in d.items():
            assert getattr(row, key) == val, key
        assert 0.0 <= row.auto_error_lower <= row.auto_error_upper <= 1.0
        assert 0.0 <= row.human_error_lower <= row.human_error_upper <= 1.0
        if d["auto_audit_size"]:
            assert row.auto_error_lower <= row.auto_error <= row.auto_error_upper
        else:
            assert math.isnan(row.auto_error) and row.auto_error_upper == 1.0
        assert math.isnan(row.tv_distance) or 0.0 <= row.tv_distance <= 1.0 + 1e-12
        assert math.isnan(row.chi2_p) or 0.0 <= row.chi2_p <= 1.0


def test_error_bounds_trivial_without_trials():
    lo, hi = error_bounds([0, 0, 3], [0, 5, 3], DELTA)
    assert lo.tolist()[:2] == [0.0, 0.0] and hi[0] == 1.0 and hi[2] == 1.0
    assert hi[1] == pytest.approx(1 - DELTA ** (1 / 5))
    assert lo[2] == pytest.approx(DELTA ** (1 / 3))


# -- label shift ------------------------------------------------------------------------------


def test_tv_zero_for_identical_and_hand_example():
    assert label_shift([2, 4, 6], [1, 2, 3])[0] == 0.0
    # p = (.5, .5, 0), q = (.25, .25, .5): TV = (.25 + .25 + .5) / 2 = 0.5
    assert label_shift([1, 1, 0], [1, 1, 2])[0] == pytest.approx(0.5)


def test_chi2_detects_planted_shift_only():
    rng = np.random.default_rng(7)
    n = 4000
    codes = np.repeat([0, 1], n)
    auto = np.tile(np.arange(n) < n // 2, 2)
    shifted = np.where(
        auto[:n], rng.choice(3, n, p=[0.6, 0.3, 0.1]), rng.choice(3, n, p=[0.3, 0.3, 0.4])
    )
    same = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    labels = np.concatenate([shifted, same])
    res = bias_audit(
        codes, auto, np.zeros(2 * n, bool), np.ones(2 * n, bool), would_auto=auto, labels=labels
    )
    assert res.by_code(0).chi2_p < 1e-6 and res.by_code(0).tv_distance > 0.2
    assert res.by_code(1).chi2_p > 0.01 and res.by_code(1).tv_distance < 0.05
    assert res.n_classes == 3


def test_label_shift_untestable_is_nan():
    assert all(math.isnan(v) for v in label_shift([0, 0], [3, 1]))
    tv, p = label_shift([4, 0], [2, 0])  # a single class seen
    assert tv == 0.0 and math.isnan(p)


# -- edge cases -------------------------------------------------------------------------------


def test_edge_slices_no_warnings():
    # slice 0: no automated items; 1: single class; 2: named only (empty); 3: one item.
    codes = np.array([0, 0, 0, 1, 1, 1, 3])
    auto = np.array([False, False, False, True, True, False, False])
    audited = np.array([True, False, False, False, False, True, False])
    labels = np.array([0, 1, 2, 1, 1, 1, 2])
    res = bias_audit(
        codes,
        auto,
        audited,
        np.ones(7, bool),
        would_auto=auto | audited,
        labels=labels,
        slice_names={2: "empty"},
    )
    s0, s1, s2, s3 = res.slices
    assert s0.automation_rate == 0.0 and math.isnan(s0.tv_distance) and math.isnan(s0.chi2_p)
    assert s1.tv_distance == 0.0 and math.isnan(s1.chi2_p)
    assert s2.name == "empty" and s2.n == 0 and math.isnan(s2.automation_rate)
    assert s2.automation_worse is None and math.isnan(s2.worse_p)
    assert s3.n == 1 and math.isnan(s3.human_error) and s3.automation_worse is None


def test_empty_input():
    e = np.zeros(0, bool)
    res = bias_audit(np.zeros(0, int), e, e, e, would_auto=e, labels=np.zeros(0, int))
    assert res.slices == () and res.overall.n == 0 and res.overall.automation_worse is None


# -- bad input --------------------------------------------------------------------------------


def _ok():
    codes = np.array([0, 1, -1])
    b = np.array([False, True, False])
    return codes, b, ~b, np.ones(3, bool)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda a: {**a, "auto": a["auto"][:2]}, "shape"),
        (lambda a: {**a, "audit_mask": a["audit_mask"].astype(int)}, "boolean"),
        (lambda a: {**a, "would_auto": a["would_auto"].astype(float)}, "boolean"),
        (lambda a: {**a, "slices": np.array([0, -2, 1])}, "slice codes"),
        (lambda a: {**a, "slices": np.array([0.0, 1.0, 1.0])}, "integer"),
        (lambda a: {**a, "model_correct": np.array([0.5, 1, 1])}, "0/1"),
        (lambda a: {**a, "model_correct": np.array([np.nan, 1, 1])}, "known"),
        (lambda a: {**a, "human_correct": np.ones(4)}, "shape"),
        (lambda a: {**a, "labels": np.array([0, 1, -1])}, ">= 0"),
        (lambda a: {**a, "labels": np.array([0, 1, 4]), "n_classes": 3}, "too small"),
        (lambda a: {**a, "n_classes": 3}, "only meaningful"),
        (lambda a: {**a, "delta": 1.0}, "delta"),
        (lambda a: {**a, "auto": np.array([True, True, False])}, "audited"),
        (lambda a: {**a, "would_auto": np.zeros(3, bool)}, "would_auto"),
    ],
)
def test_bad_input(change, match):
    codes, auto, audited, ok = _ok()
    args = {
        "slices": codes,
        "auto": auto,
        "audit_mask": audited,
        "model_correct": ok,
        "would_auto": np.ones(3, bool),
    }
    with pytest.raises(ValueError, match=match):
        bias_audit(**change(args))
