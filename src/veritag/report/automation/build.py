"""The automation audit as plain data: what ``build_automation_report`` collects from one run's
evidence (an ``AutomationData``), no rendering.

Everything rests on the uniform random audit: audited items are a random sample of all items,
so statistics over them speak for the rest.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ...automation.audit import BiasAudit, bias_audit
from ...automation.calibration import _SUM_TOL, fit_calibrator, reliability_curve
from ...automation.policy import Decision, clopper_pearson_lower
from ..build import plain

__all__ = [
    "AutomationData",
    "AutomationReport",
    "AutomationSummary",
    "Calibration",
    "CalibrationRow",
    "ChosenPoint",
    "RateCurve",
    "SliceDecision",
    "build_automation_report",
]

#: Reliability-diagram bins (equal width on [0, 1]).
N_BINS = 15
#: Folds of the cross-fit that evaluates each calibrator on items it was not fitted on.
CV_FOLDS = 5
#: Fewest labeled audit items for fitting a calibrator at all (a few per fold and bin).
MIN_CALIBRATION_ITEMS = 30
#: Points per automation-rate curve: enough to look smooth, few enough for a small SVG.
MAX_CURVE_POINTS = 200
#: Slices drawn as their own curve; beyond this only the overall curve is drawn.
MAX_CURVE_SLICES = 8
_SEED = 0


@dataclass(frozen=True)
class AutomationData:
    """One automation run's evidence, item-aligned arrays of length n (items with a model claim)."""

    project: str
    labeler: str  # "name@version" of the model source
    classes: tuple[str, ...]
    target: float
    delta: float
    slice_field: str | None  # None: one slice, code 0, named "all"
    slice_names: tuple[str, ...]  # name of slice code j
    probs: NDArray[np.float64]  # (n, k) model probabilities (rows sum to 1)
    slices: NDArray[np.int64]  # (n,) slice code, -1 = none (never automated)
    audit: NDArray[np.bool_]  # (n,) drawn into the uniform random audit sample
    # (n,) class index of the humans' resolved label (humans and gold only), -1 unknown
    human_label: NDArray[np.int64]
    # (n,) 1/0: is one human claim right vs a reference (gold or the other humans), NaN unknown
    human_correct: NDArray[np.float64]
    # (n_slices,) threshold chosen per slice code, inf = slice not automated
    thresholds: NDArray[np.float64]
    decisions: Mapping[int, Decision]  # per slice code, from policy.automate
    created_at: str  # ISO time of the run


@dataclass(frozen=True)
class AutomationSummary:
    """The run at a glance.

    ``automated`` items are accepted without a human (``would_auto`` and not audited), so
    ``automation_rate = automated / items``. The audit is ``audit_drawn`` items, of which
    ``audit_labeled`` have a human label (the evidence) and ``audit_unlabeled`` not yet.
    ``left_for_humans`` are neither automated nor audited. ``audited_above`` labeled audit items
    lie at or above their slice threshold; ``realised_accuracy`` is the model's accuracy on
    them and ``accuracy_bound`` its Clopper-Pearson lower bound at ``1 - delta`` (computed after
    the thresholds were chosen on the same items: descriptive, the guarantee is per slice).
    """

    project: str
    labeler: str
    created_at: str
    slice_field: str | None
    classes: int
    items: int
    no_slice: int
    automated: int
    automation_rate: float
    audit_drawn: int
    audit_labeled: int
    audit_unlabeled: int
    left_for_humans: int
    target: float
    delta: float
    audited_above: int
    realised_accuracy: float
    accuracy_bound: float

    def audit_line(self) -> str:
        """The audit in one line, as both renderers show it."""
        return (
            f"{self.audit_drawn} drawn, {self.audit_labeled} labeled, "
            f"{self.audit_unlabeled} not yet"
        )


@dataclass(frozen=True)
class SliceDecision:
    """One slice's threshold and the evidence behind it (``inf``: not automated).

    ``bound``, ``audit_size`` (audited items at or above the threshold) and ``tested``
    (candidates tested) come from the policy's :class:`Decision`; NaN/0 when it made none.
    """

    code: int
    name: str
    items: int
    automated: int
    automation_rate: float
    threshold: float
    bound: float
    audit_size: int
    tested: int

    def threshold_text(self) -> str:
        """The threshold as both renderers show it."""
        return "not automated" if not math.isfinite(self.threshold) else f"{self.threshold:.4f}"


@dataclass(frozen=True)
class CalibrationRow:
    """Reliability of one way of reading confidences, on the labeled audit items.

    ``method`` is ``raw`` (the model's own probabilities), ``temperature`` or ``isotonic``; the
    latter two are fitted out of fold (each item calibrated by a fit that never saw it), so
    their ``ece`` is what a fresh item would see, not an in-sample flattery. Per bin: mean
    ``confidence`` and ``accuracy`` (NaN when empty) and ``count``. A skipped method has
    ``ece`` NaN, empty bins and a ``note`` saying why.
    """

    method: str
    ece: float
    confidence: tuple[float, ...]
    accuracy: tuple[float, ...]
    count: tuple[int, ...]
    note: str | None = None


@dataclass(frozen=True)
class Calibration:
    """Reliability of the model's confidence on ``n_evidence`` labeled audit items."""

    n_evidence: int
    edges: tuple[float, ...]
    folds: int
    methods: tuple[CalibrationRow, ...]
    note: str | None = None


@dataclass(frozen=True)
class ChosenPoint:
    """Where the chosen thresholds put a group: share of its items at or above them
    (``automation_rate``, audit included, like the curve), and the accuracy and
    Clopper-Pearson lower bound of the ``audit_size`` labeled audit items there."""

    automation_rate: float
    accuracy: float
    bound: float
    audit_size: int


@dataclass(frozen=True)
class RateCurve:
    """What each threshold ``t`` would buy, for all items (``code`` None) or one slice.

    ``automation_rate``: share of the group's items with confidence ``>= t``; ``accuracy``: of
    the ``n_evidence`` labeled audit items there; ``bound``: its Clopper-Pearson lower bound at
    ``1 - delta``. Thresholds descend, so ``automation_rate`` never decreases. A single-point
    bound is valid pointwise only: choosing the best-looking point after the fact is what the
    policy's fixed-sequence test avoids.
    """

    code: int | None
    name: str
    threshold: tuple[float, ...]
    automation_rate: tuple[float, ...]
    accuracy: tuple[float, ...]
    bound: tuple[float, ...]
    n_evidence: tuple[int, ...]
    chosen: ChosenPoint | None


@dataclass(frozen=True)
class AutomationReport:
    """Everything the renderers show; ``confusion[i][j]`` counts labeled audit items the
    humans call class ``i`` and the model class ``j``."""

    summary: AutomationSummary
    class_names: tuple[str, ...]
    slices: tuple[SliceDecision, ...]
    calibration: Calibration
    curves: tuple[RateCurve, ...]
    bias: BiasAudit
    confusion: tuple[tuple[int, ...], ...]
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only: NaN and infinities become None, tuples lists."""
        return plain(asdict(self))


@dataclass(frozen=True)
class _Items:
    """Per-item quantities derived once from the input and shared by every section."""

    confidence: NDArray[np.float64]
    model_label: NDArray[np.int64]
    evidence: NDArray[np.bool_]
    correct: NDArray[np.bool_]
    would_auto: NDArray[np.bool_]
    auto: NDArray[np.bool_]


def _checked(data: AutomationData) -> _Items:
    """Validate shapes and ranges (ValueError), then derive the per-item quantities."""
    k, s = len(data.classes), len(data.slice_names)
    probs = np.asarray(data.probs, dtype=np.float64)
    if k < 1 or probs.ndim != 2 or probs.shape[1] != k:
        raise ValueError(f"probs must have shape (n, {k}) for {k} classes, got {probs.shape}")
    n = probs.shape[0]
    for name in ("slices", "audit", "human_label", "human_correct"):
        shape = np.shape(getattr(data, name))
        if shape != (n,):
            raise ValueError(f"{name} must have shape ({n},) to match probs, got {shape}")
    if np.shape(data.thresholds) != (s,):
        raise ValueError(
            f"thresholds must have one entry per slice name ({s}), got {np.shape(data.thresholds)}"
        )
    if not np.isfinite(probs).all() or np.any(probs < 0):
        raise ValueError("probs must be finite and non-negative")
    if n and np.abs(probs.sum(axis=1) - 1.0).max() > _SUM_TOL:
        raise ValueError("probs rows must sum to 1")
    slices = np.asarray(data.slices, dtype=np.int64)
    labels = np.asarray(data.human_label, dtype=np.int64)
    if n and (slices.min() < -1 or slices.max() >= s):
        raise ValueError(f"slice codes must lie in [-1, {s}), -1 for no slice")
    if n and (labels.min() < -1 or labels.max() >= k):
        raise ValueError(f"human_label must lie in [-1, {k}), -1 for unknown")
    audit = np.asarray(data.audit, dtype=bool)
    model_label = probs.argmax(axis=1)
    confidence = probs.max(axis=1, initial=0.0)
    # Index -1 (no slice) picks the appended inf: never automated.
    threshold = np.append(np.asarray(data.thresholds, dtype=np.float64), np.inf)[slices]
    would_auto = confidence >= threshold
    evidence = audit & (labels >= 0)
    return _Items(
        confidence, model_label, evidence, model_label == labels, would_auto, would_auto & ~audit
    )


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


def _point(group: NDArray[np.bool_], it: _Items, delta: float) -> ChosenPoint | None:
    """The group's items at or above their slice threshold; None when there are none."""
    above = group & it.would_auto
    if not above.any():
        return None
    ev = above & it.evidence
    m, k = int(ev.sum()), int(it.correct[ev].sum())
    return ChosenPoint(
        automation_rate=float(above.sum() / group.sum()),
        accuracy=_ratio(k, m),
        bound=float(clopper_pearson_lower(k, m, delta)) if m else math.nan,
        audit_size=m,
    )


def _rate_curve(
    code: int | None, name: str, group: NDArray[np.bool_], it: _Items, delta: float
) -> RateCurve:
    """Automation rate and audited accuracy for every distinct audited confidence (thinned)."""
    conf_all = np.sort(it.confidence[group])
    ev = group & it.evidence
    order = np.argsort(-it.confidence[ev], kind="stable")
    conf_ev = it.confidence[ev][order]  # descending
    cum_correct = np.concatenate(([0], np.cumsum(it.correct[ev][order], dtype=np.int64)))
    cand = np.unique(conf_ev)[::-1]
    if cand.size > MAX_CURVE_POINTS:
        cand = cand[np.unique(np.linspace(0, cand.size - 1, MAX_CURVE_POINTS).round().astype(int))]
    n_above = conf_ev.size - np.searchsorted(conf_ev[::-1], cand, side="left")
    k_above = cum_correct[n_above]
    rate = (conf_all.size - np.searchsorted(conf_all, cand, side="left")) / max(conf_all.size, 1)
    return RateCurve(
        code=code,
        name=name,
        threshold=tuple(cand.tolist()),
        automation_rate=tuple(rate.tolist()),
        accuracy=tuple((k_above / np.maximum(n_above, 1)).tolist()),
        bound=tuple(np.asarray(clopper_pearson_lower(k_above, n_above, delta)).tolist()),
        n_evidence=tuple(n_above.tolist()),
        chosen=_point(group, it, delta),
    )


def _calibration_row(
    method: str, probs: NDArray[np.float64], labels: NDArray[np.int64]
) -> CalibrationRow:
    curve = reliability_curve(probs, labels, n_bins=N_BINS)
    return CalibrationRow(
        method,
        curve.ece,
        tuple(curve.confidence.tolist()),
        tuple(curve.accuracy.tolist()),
        tuple(curve.count.tolist()),
    )


def _cross_fit(
    method: str, probs: NDArray[np.float64], labels: NDArray[np.int64], fold: NDArray[np.int64]
) -> NDArray[np.float64]:
    """Each item's probabilities calibrated by a fit on the other folds only."""
    out = np.empty_like(probs)
    for f in range(CV_FOLDS):
        test = fold == f
        out[test] = fit_calibrator(method, probs[~test], labels[~test]).transform(probs[test])
    return out


def _calibration(probs: NDArray[np.float64], labels: NDArray[np.int64]) -> Calibration:
    """Raw and out-of-fold calibrated reliability on the labeled audit items."""
    n, k = probs.shape
    edges = tuple(np.linspace(0.0, 1.0, N_BINS + 1).tolist())
    if k < 2:
        return Calibration(
            n, edges, 0, (), "A single class: every model label is right, confidence is always 1."
        )
    if n == 0:
        return Calibration(n, edges, 0, (), "No audited item has a human label yet.")
    rows = [_calibration_row("raw", probs, labels)]
    why = None
    if n < MIN_CALIBRATION_ITEMS:
        why = f"only {n} labeled audit items (need {MIN_CALIBRATION_ITEMS})"
    elif np.unique(labels).size < 2:
        why = "the humans used a single class"
    if why is None:
        fold = np.random.default_rng(_SEED).permutation(n) % CV_FOLDS
        rows += [
            _calibration_row(m, _cross_fit(m, probs, labels, fold), labels)
            for m in ("temperature", "isotonic")
        ]
    else:
        rows += [
            CalibrationRow(m, math.nan, (), (), (), f"skipped: {why}")
            for m in ("temperature", "isotonic")
        ]
    return Calibration(n, edges, CV_FOLDS if why is None else 0, tuple(rows))


def _slice_decisions(data: AutomationData, it: _Items) -> tuple[SliceDecision, ...]:
    s = len(data.slice_names)
    slices = np.asarray(data.slices, dtype=np.int64)
    member = slices >= 0
    items = np.bincount(slices[member], minlength=s)
    auto = np.bincount(slices[member], weights=it.auto[member], minlength=s)
    none = Decision(math.inf, math.nan, 0, 0.0, 0, data.target, data.delta)
    out = []
    for j, name in enumerate(data.slice_names):
        d = data.decisions.get(j, none)
        out.append(
            SliceDecision(
                j,
                name,
                int(items[j]),
                int(auto[j]),
                _ratio(float(auto[j]), float(items[j])),
                float(data.thresholds[j]),
                d.bound,
                d.audit_size,
                d.tested,
            )
        )
    return tuple(out)


def _notes(summary: AutomationSummary, slices: tuple[SliceDecision, ...]) -> tuple[str, ...]:
    notes = []
    if summary.items == 0:
        notes.append("No item has a model claim: there is nothing to report.")
    if summary.audit_labeled == 0 and summary.items:
        notes.append("No audited item has a human label yet, so no accuracy can be measured.")
    if not any(math.isfinite(r.threshold) for r in slices) and summary.items:
        notes.append(
            "No slice is automated: no threshold passed the test at this target "
            "and delta, or the audit was too small."
        )
    if summary.no_slice:
        notes.append(f"{summary.no_slice} items belong to no slice and are never automated.")
    if summary.audit_unlabeled:
        notes.append(
            f"{summary.audit_unlabeled} audited items still wait for a human label; "
            "they count as labeled by humans in the per-slice audit."
        )
    return tuple(notes)


def build_automation_report(data: AutomationData) -> AutomationReport:
    """Collect the report of one automation run (raises ValueError on malformed input).

    Cross-fitting calibrators on a few audited items makes scikit-learn warn about folds it
    cannot fit well; the report shows the resulting uncertainty itself, so the warnings are
    silenced here, once, for every caller (CLI, server, quickstart)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _build(data)


def _build(data: AutomationData) -> AutomationReport:
    it = _checked(data)
    n, k = len(it.confidence), len(data.classes)
    slices = np.asarray(data.slices, dtype=np.int64)
    audit = np.asarray(data.audit, dtype=bool)
    labels = np.asarray(data.human_label, dtype=np.int64)
    everyone = np.ones(n, dtype=bool)
    overall = _point(everyone, it, data.delta)
    decisions = _slice_decisions(data, it)
    summary = AutomationSummary(
        project=data.project,
        labeler=data.labeler,
        created_at=data.created_at,
        slice_field=data.slice_field,
        classes=k,
        items=n,
        no_slice=int((slices < 0).sum()),
        automated=int(it.auto.sum()),
        automation_rate=_ratio(float(it.auto.sum()), n),
        audit_drawn=int(audit.sum()),
        audit_labeled=int(it.evidence.sum()),
        audit_unlabeled=int((audit & ~it.evidence).sum()),
        left_for_humans=int((~it.auto & ~audit).sum()),
        target=float(data.target),
        delta=float(data.delta),
        audited_above=overall.audit_size if overall else 0,
        realised_accuracy=overall.accuracy if overall else math.nan,
        accuracy_bound=overall.bound if overall else math.nan,
    )
    curves = [_rate_curve(None, "overall", everyone, it, data.delta)]
    if 1 < len(data.slice_names) <= MAX_CURVE_SLICES:
        curves += [
            _rate_curve(j, name, slices == j, it, data.delta)
            for j, name in enumerate(data.slice_names)
        ]
    # Unlabeled audit items are not evidence: the bias audit sees only the labeled ones.
    bias = bias_audit(
        slices,
        it.auto,
        it.evidence,
        it.correct,
        would_auto=it.would_auto,
        human_correct=np.asarray(data.human_correct, dtype=np.float64),
        labels=np.where(labels >= 0, labels, it.model_label),
        n_classes=k,
        delta=data.delta,
        slice_names=data.slice_names,
    )
    ev = it.evidence
    confusion = np.bincount(labels[ev] * k + it.model_label[ev], minlength=k * k).reshape(k, k)
    return AutomationReport(
        summary=summary,
        class_names=tuple(data.classes),
        slices=decisions,
        calibration=_calibration(np.asarray(data.probs, dtype=np.float64)[ev], labels[ev]),
        curves=tuple(curves),
        bias=bias,
        confusion=tuple(tuple(row) for row in confusion.tolist()),
        notes=_notes(summary, decisions),
    )
