"""Automation report: planted facts in synthetic runs must surface; renderers must be safe."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console
from scipy.special import softmax

from veritag.automation import automate, choose_threshold
from veritag.report.automation import (
    AutomationData,
    AutomationReport,
    build_automation_report,
    render_automation_html,
    render_automation_text,
)

SCRIPT = "<script>alert(1)</script>"
K = 3
SECTIONS = ("summary", "calibration", "curve", "slices", "classes")


def _draw_labels(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One class per row drawn from the row's probabilities (vectorised inverse CDF)."""
    u = rng.random((probs.shape[0], 1))
    return np.minimum((probs.cumsum(axis=1) < u).sum(axis=1), probs.shape[1] - 1)


def _run(
    sharpness: tuple[float, ...],
    *,
    n: int = 4000,
    seed: int = 0,
    names: tuple[str, ...] | None = None,
    thresholds: tuple[float, ...] | None = None,
    human_error: float = 0.2,
) -> tuple[AutomationData, np.ndarray]:
    """A run whose slice j's model is calibrated (sharpness 1) or overconfident (> 1).

    True labels are drawn from the calibrated probabilities; the model states them sharpened
    by ``sharpness[j]``, which temperature scaling undoes exactly. Thresholds come from the
    policy unless given (then each is checked as the policy's single candidate).
    """
    rng = np.random.default_rng(seed)
    s = len(sharpness)
    slices = rng.integers(0, s, n)
    logits = rng.normal(0.0, 1.6, (n, K))
    truth = _draw_labels(rng, softmax(logits, axis=1))
    probs = softmax(logits * np.asarray(sharpness)[slices, None], axis=1)
    audit = rng.random(n) < 0.3
    confidence = probs.max(axis=1)
    model_right = probs.argmax(axis=1) == truth
    if thresholds is None:
        plan = automate(confidence, audit, model_right, target=0.8, delta=0.05, slices=slices)
        thr = np.array([plan.decisions[j].threshold for j in range(s)])
        decisions = plan.decisions
    else:
        thr = np.asarray(thresholds, dtype=float)
        decisions = {
            j: choose_threshold(
                confidence[audit & (slices == j)],
                model_right[audit & (slices == j)],
                target=0.5,
                delta=0.05,
                candidates=[thr[j]],
            )
            for j in range(s)
        }
    auto = (confidence >= thr[slices]) & ~audit
    labeled = ~auto & (rng.random(n) < np.where(audit, 0.95, 0.5))
    human_label = np.where(labeled, truth, -1)
    human_correct = np.where(labeled, (rng.random(n) >= human_error).astype(float), np.nan)
    data = AutomationData(
        project="demo",
        labeler="clf@1",
        classes=("cat", "dog", "<b>bird</b>"),
        target=0.8,
        delta=0.05,
        slice_field="source" if s > 1 else None,
        slice_names=names or (("all",) if s == 1 else tuple(f"s{j}" for j in range(s))),
        probs=probs,
        slices=slices,
        audit=audit,
        human_label=human_label,
        human_correct=human_correct,
        thresholds=thr,
        decisions=decisions,
        created_at="2024-05-01T12:00:00",
    )
    return data, auto


@pytest.fixture(scope="module")
def mixed() -> tuple[AutomationData, AutomationReport, np.ndarray]:
    data, auto = _run((1.0, 4.0), names=("good", SCRIPT), thresholds=(0.75, 0.75), human_error=0.15)
    return data, build_automation_report(data), auto


@pytest.fixture(scope="module")
def calibrated() -> AutomationReport:
    return build_automation_report(_run((1.0,))[0])


@pytest.fixture(scope="module")
def overconfident() -> AutomationReport:
    return build_automation_report(_run((3.0,))[0])


def _ece(report: AutomationReport) -> dict[str, float]:
    return {m.method: m.ece for m in report.calibration.methods}


# --- numbers ----------------------------------------------------------------------------------


def test_summary_counts(mixed):
    data, r, auto = mixed
    s = r.summary
    n = data.probs.shape[0]
    assert s.items == n and s.automated == auto.sum()
    assert s.automation_rate == pytest.approx(auto.mean())
    assert s.audit_drawn == data.audit.sum()
    assert s.audit_labeled + s.audit_unlabeled == s.audit_drawn
    assert s.audit_labeled == (data.audit & (data.human_label >= 0)).sum()
    assert s.left_for_humans == n - s.automated - s.audit_drawn
    assert sum(d.automated for d in r.slices) == s.automated
    assert [d.threshold for d in r.slices] == [0.75, 0.75]
    assert r.slices[1].name == SCRIPT
    evidence = data.audit & (data.human_label >= 0) & (data.probs.max(1) >= 0.75)
    right = data.probs.argmax(1) == data.human_label
    assert s.audited_above == evidence.sum()
    assert s.realised_accuracy == pytest.approx(right[evidence].mean())
    assert s.accuracy_bound <= s.realised_accuracy


def test_policy_thresholds_are_reported():
    data, auto = _run((1.0, 1.0), n=3000, seed=4)
    r = build_automation_report(data)
    assert r.summary.automated == auto.sum() > 0
    for d in r.slices:
        dec = data.decisions[d.code]
        assert (d.threshold, d.audit_size, d.tested) == (dec.threshold, dec.audit_size, dec.tested)
        assert d.bound == dec.bound >= data.target


def test_curves(mixed):
    data, r, _ = mixed
    assert [c.code for c in r.curves] == [None, 0, 1]
    for c in r.curves:
        x, acc, bound = (np.asarray(v) for v in (c.automation_rate, c.accuracy, c.bound))
        assert 0 < x.size <= 200
        assert np.all(np.diff(c.threshold) < 0) and np.all(np.diff(x) >= 0)
        assert np.all(np.diff(c.n_evidence) >= 0)
        assert np.all(bound <= acc + 1e-12) and np.all((bound >= 0) & (acc <= 1))
    overall = r.curves[0]
    conf = data.probs.max(1)
    t = overall.threshold[len(overall.threshold) // 2]
    assert overall.automation_rate[len(overall.threshold) // 2] == pytest.approx((conf >= t).mean())
    assert overall.chosen.automation_rate == pytest.approx((conf >= 0.75).mean())
    # The calibrated slice is more accurate at its threshold than the overconfident one.
    assert r.curves[1].chosen.accuracy > r.curves[2].chosen.accuracy + 0.1


def test_ece_calibrated_vs_overconfident(calibrated, overconfident):
    good, bad = _ece(calibrated), _ece(overconfident)
    assert calibrated.calibration.folds == 5
    assert good["raw"] < 0.04
    assert bad["raw"] > 0.15
    assert bad["temperature"] < bad["raw"] / 3
    assert bad["isotonic"] < bad["raw"] / 3


def test_bad_slice_flagged(mixed):
    _, r, _ = mixed
    good, bad = r.bias.slices
    assert bad.automation_worse is True and good.automation_worse is False
    assert r.bias.flagged == (1,)
    assert bad.auto_error_lower <= bad.auto_error <= bad.auto_error_upper


def test_confusion(mixed):
    data, r, _ = mixed
    m = np.asarray(r.confusion)
    ev = data.audit & (data.human_label >= 0)
    assert m.shape == (K, K) and m.sum() == ev.sum()
    assert np.trace(m) == (data.probs.argmax(1) == data.human_label)[ev].sum()


# --- renderers --------------------------------------------------------------------------------


def test_to_dict_is_strict_json(mixed):
    out = json.loads(json.dumps(mixed[1].to_dict(), allow_nan=False))
    assert out["summary"]["items"] == mixed[0].probs.shape[0]
    assert out["slices"][1]["name"] == SCRIPT


def test_html_is_safe_and_complete(mixed):
    page = render_automation_html(mixed[1], title=SCRIPT)
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    assert page.count("<svg") == 3
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;bird&lt;/b&gt;" in page and "<b>bird" not in page


def test_text_renderer(mixed):
    console = Console(file=io.StringIO(), width=160, record=True)
    render_automation_text(mixed[1], console)
    text = console.export_text()
    assert SCRIPT in text and "WORSE" in text and "Slices" in text


# --- degenerate input -------------------------------------------------------------------------


def _degenerate(
    n: int,
    k: int,
    s: int,
    *,
    audit: bool = True,
    labeled: bool = True,
    slice_code: int = 0,
    threshold: float = 0.0,
) -> AutomationData:
    probs = np.full((n, k), 1.0 / k)
    return AutomationData(
        project="p",
        labeler="m@1",
        classes=tuple(f"c{i}" for i in range(k)),
        target=0.9,
        delta=0.1,
        slice_field=None,
        slice_names=tuple(f"s{j}" for j in range(s)),
        probs=probs,
        slices=np.full(n, slice_code),
        audit=np.full(n, audit),
        human_label=np.full(n, 0 if labeled else -1),
        human_correct=np.full(n, 1.0 if labeled else np.nan),
        thresholds=np.full(s, threshold),
        decisions={},
        created_at="now",
    )


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (_degenerate(0, 3, 1), "nothing to report"),
        (_degenerate(20, 3, 1, labeled=False), "No audited item has a human label"),
        (_degenerate(20, 3, 1, threshold=math.inf), "No slice is automated"),
        (_degenerate(20, 1, 1), "A single class"),
        (_degenerate(20, 3, 1, slice_code=-1), "belong to no slice"),
        (_degenerate(20, 3, 0, slice_code=-1), "No slice is automated"),
        (_degenerate(20, 3, 1, audit=False), "No audited item has a human label"),
    ],
)
def test_degenerate_inputs_do_not_crash(data, why):
    r = build_automation_report(data)
    json.dumps(r.to_dict(), allow_nan=False)
    page = render_automation_html(r)
    assert why in page
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    render_automation_text(r, Console(file=io.StringIO()))


def test_few_evidence_items_skip_calibrators():
    r = build_automation_report(_degenerate(10, 3, 1))
    rows = {m.method: m for m in r.calibration.methods}
    assert not math.isnan(rows["raw"].ece)
    assert math.isnan(rows["isotonic"].ece) and "only 10" in rows["isotonic"].note


def test_malformed_input_raises():
    data = _degenerate(5, 3, 1)
    with pytest.raises(ValueError, match="thresholds"):
        build_automation_report(AutomationData(**{**data.__dict__, "thresholds": np.zeros(2)}))
    with pytest.raises(ValueError, match="human_label"):
        build_automation_report(AutomationData(**{**data.__dict__, "human_label": np.full(5, 3)}))
    with pytest.raises(ValueError, match="sum to 1"):
        build_automation_report(AutomationData(**{**data.__dict__, "probs": data.probs * 2}))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 40), st.integers(1, 3), st.integers(0, 3), st.integers(0, 2**32 - 1))
def test_random_small_runs_never_crash(n, k, s, seed):
    rng = np.random.default_rng(seed)
    probs = softmax(rng.normal(0, 2, (n, k)), axis=1)
    audit = rng.random(n) < 0.5
    labeled = rng.random(n) < 0.7
    data = AutomationData(
        project="p",
        labeler="m@1",
        classes=tuple(f"c{i}" for i in range(k)),
        target=0.8,
        delta=0.1,
        slice_field="f",
        slice_names=tuple(f"s{j}" for j in range(s)),
        probs=probs,
        slices=rng.integers(-1, s, n),
        audit=audit,
        human_label=np.where(labeled, rng.integers(0, k, n), -1),
        human_correct=np.where(labeled, (rng.random(n) < 0.9).astype(float), np.nan),
        thresholds=np.where(rng.random(s) < 0.3, np.inf, rng.random(s)),
        decisions={},
        created_at="now",
    )
    r = build_automation_report(data)
    json.dumps(r.to_dict(), allow_nan=False)
    page = render_automation_html(r)
    assert "<script" not in page
