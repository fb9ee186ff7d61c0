"""The ``veritag audit`` report of one automation run, built from plain arrays.

An automation run accepts a model's labels above a per-slice confidence threshold
(:mod:`veritag.automation.policy`). This report answers what a project owner asks next: how much
was automated and on what evidence, whether the model's confidences mean what they say, what a
different threshold would have bought, whether a slice is served worse by the model than by the
humans, and which classes the model confuses. Everything rests on the uniform random audit:
audited items are a random sample of all items, so statistics over them speak for the rest.

``build_automation_report`` collects plain data (an :class:`AutomationReport`);
``render_automation_html`` makes one self-contained page, ``render_automation_text`` prints a
short summary with rich, ``AutomationReport.to_dict`` gives JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..automation.audit import BiasAudit, SliceAudit, bias_audit
from ..automation.calibration import _SUM_TOL, fit_calibrator, reliability_curve
from ..automation.policy import Decision, clopper_pearson_lower
from .automation_plots import rate_accuracy_plot, reliability_diagram, slice_error_plot
from .build import _plain
from .html import _CSS, _e, _figure, _kv, _num, _pct, _table
from .text import _num as _tnum
from .text import _pct as _tpct

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
    "render_automation_html",
    "render_automation_text",
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
#: Classes shown as confusion-matrix columns; beyond this only per-class counts.
MAX_CONFUSION_CLASSES = 20
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
        return _plain(asdict(self))


# --- building ---------------------------------------------------------------------------------


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
    """Collect the report of one automation run (raises ValueError on malformed input)."""
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


# --- HTML -------------------------------------------------------------------------------------


def _threshold(value: float) -> str:
    return "not automated" if not math.isfinite(value) else f"{value:.4f}"


def _interval(est: float, lo: float, hi: float, n: int) -> str:
    if not n:
        return _num(math.nan)
    return f"{_num(est)} [{_num(lo)}, {_num(hi)}] <small>n={n}</small>"


def _flag(row: SliceAudit) -> str:
    if row.automation_worse is None:
        return "not enough evidence"
    return '<span class="bad"><b>worse</b></span>' if row.automation_worse else "no"


def _audit_line(s: AutomationSummary) -> str:
    return f"{s.audit_drawn} drawn, {s.audit_labeled} labeled, {s.audit_unlabeled} not yet"


def _hint(text: str) -> str:
    return f'<p class="hint">{text}</p>'


def _summary_html(r: AutomationReport) -> str:
    s = r.summary
    rows = [
        ("project", _e(s.project)),
        ("labeler", _e(s.labeler)),
        ("run", _e(s.created_at)),
        ("items with a model claim", f"{s.items} ({s.classes} classes)"),
        ("automated", f"{s.automated} ({_pct(s.automation_rate)})"),
        ("audit", _audit_line(s)),
        ("left for humans", str(s.left_for_humans)),
        ("target accuracy", f"{s.target:g} with probability {1 - s.delta:g} per slice"),
        ("audited items above threshold", str(s.audited_above)),
        ("their accuracy", _num(s.realised_accuracy)),
        (f"lower bound at {1 - s.delta:g}", _num(s.accuracy_bound)),
    ]
    field = f" by {_e(s.slice_field)}" if s.slice_field else ""
    table = _table(
        [
            ("slice", False),
            ("items", True),
            ("automated", True),
            ("rate", True),
            ("threshold", True),
            ("accuracy bound", True),
            ("audited above", True),
            ("candidates tested", True),
        ],
        (
            [
                _e(d.name),
                str(d.items),
                str(d.automated),
                _pct(d.automation_rate),
                _threshold(d.threshold),
                _num(d.bound),
                str(d.audit_size),
                str(d.tested),
            ]
            for d in r.slices
        ),
    )
    notes = "".join(f'<p class="note">{_e(n)}</p>' for n in r.notes)
    return (
        f'<section id="summary"><h2>Summary</h2>{_kv(rows)}{notes}'
        f"<h3>Thresholds per slice{field}</h3>{table}</section>"
    )


def _calibration_html(r: AutomationReport) -> str:
    c = r.calibration
    fig = _figure(
        reliability_diagram(c),
        "Mean confidence against accuracy per confidence bin (the diagonal is perfect "
        "calibration); below, labeled audit items per bin. Calibrated curves are out of fold.",
    ) or _hint(_e(c.note or "No labeled audit item to draw."))
    table = _table(
        [("method", False), ("ECE", True), ("", False)],
        ([_e(m.method), _num(m.ece), _e(m.note or "")] for m in c.methods),
    )
    folds = (
        f"{c.folds}-fold cross-fit: each item is calibrated by a fit that never saw it, "
        "so the error shown is what new items would see."
        if c.folds
        else ""
    )
    hint = (
        _hint(
            f"Expected calibration error (ECE) over {c.n_evidence} labeled audit items, "
            f"{N_BINS} equal-width bins. {folds}"
        )
        if c.methods
        else ""
    )
    return (
        f'<section id="calibration"><h2>Calibration</h2>{hint}{fig}'
        f"{table if c.methods else ''}</section>"
    )


def _curve_html(r: AutomationReport) -> str:
    fig = _figure(
        rate_accuracy_plot(r.curves, r.summary.target),
        f"Share of items automated at each threshold against the accuracy of the labeled audit "
        f"items above it (solid) and its lower bound at {1 - r.summary.delta:g} (dashed, "
        "pointwise). Stars: the chosen thresholds. Dotted line: the target.",
    ) or _hint("No labeled audit item, so no threshold can be evaluated.")
    return f'<section id="curve"><h2>Automation rate vs accuracy</h2>{fig}</section>'


def _slices_html(r: AutomationReport) -> str:
    b = r.bias
    fig = _figure(
        slice_error_plot(b),
        "Error per slice: automated (audited items above the threshold) against human, with "
        f"one-sided {1 - b.delta:g} bounds each. Red slices: automation shown worse.",
    ) or _hint("No slice has error evidence yet.")
    table = _table(
        [
            ("slice", False),
            ("items", True),
            ("automated", True),
            ("automated error", True),
            ("human error", True),
            ("label shift (TV)", True),
            ("chi&sup2; p", True),
            ("automation worse?", False),
        ],
        (
            [
                f'<span class="bad">{_e(s.name)}</span>' if s.automation_worse else _e(s.name),
                str(s.n),
                _pct(s.automation_rate),
                _interval(s.auto_error, s.auto_error_lower, s.auto_error_upper, s.auto_audit_size),
                _interval(s.human_error, s.human_error_lower, s.human_error_upper, s.human_size),
                _num(s.tv_distance),
                _num(s.chi2_p),
                _flag(s),
            ]
            for s in (*b.slices, b.overall)
        ),
    )
    hint = _hint(
        f"Automation is called worse when a one-sided Fisher test at {b.delta:g} shows its "
        f"error above the humans'; with fewer than {b.min_evidence} items on either side there "
        "is not enough evidence. Human error is measured on the items humans label, usually "
        "the harder ones. Label shift compares the class mix of automated and human-labeled "
        "items."
    )
    return f'<section id="slices"><h2>Errors per slice</h2>{hint}{fig}{table}</section>'


def _classes_html(r: AutomationReport) -> str:
    m = np.asarray(r.confusion, dtype=np.int64).reshape(len(r.class_names), -1)
    if not m.sum():
        return f'<section id="classes"><h2>Classes</h2>{_hint("No labeled audit item.")}</section>'
    per_class = m.sum(axis=1)
    recall = np.where(per_class > 0, np.diag(m) / np.maximum(per_class, 1), np.nan)
    wide = len(r.class_names) <= MAX_CONFUSION_CLASSES
    head = [("human \\ model", False), ("items", True), ("model right", True)]
    if wide:
        head += [(_e(c), True) for c in r.class_names]
    rows = (
        [_e(c), str(per_class[i]), _pct(recall[i]), *(str(v) for v in (m[i] if wide else ()))]
        for i, c in enumerate(r.class_names)
    )
    hint = _hint(
        "The model's labels on the labeled audit items: rows are the humans' "
        "class, columns the model's."
        if wide
        else f"More than {MAX_CONFUSION_CLASSES} classes: per-class counts only."
    )
    return f'<section id="classes"><h2>Classes</h2>{hint}{_table(head, rows)}</section>'


def render_automation_html(
    report: AutomationReport, *, title: str = "veritag automation audit"
) -> str:
    """One self-contained HTML page: inline CSS and SVG plots, no scripts or external assets."""
    links = [
        ("summary", "Summary"),
        ("calibration", "Calibration"),
        ("curve", "Automation rate"),
        ("slices", "Slices"),
        ("classes", "Classes"),
    ]
    nav = "".join(f'<a href="#{a}">{name}</a>' for a, name in links)
    s = report.summary
    meta = (
        f"{_e(s.project)}: labeler {_e(s.labeler)}, run {_e(s.created_at)}; {s.items} items, "
        f"{_pct(s.automation_rate)} automated. Made by veritag."
    )
    sections = [
        _summary_html(report),
        _calibration_html(report),
        _curve_html(report),
        _slices_html(report),
        _classes_html(report),
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n"
        f'<body><main><h1>{_e(title)}</h1><p class="meta">{meta}</p><nav>{nav}</nav>\n'
        + "\n".join(sections)
        + "\n</main></body></html>\n"
    )


# --- text -------------------------------------------------------------------------------------


def _text_error(est: float, lo: float, hi: float, n: int) -> str:
    return f"{_tnum(est)} [{_tnum(lo)}, {_tnum(hi)}] n={n}" if n else "-"


def render_automation_text(report: AutomationReport, console: Console) -> None:
    """Print the summary and the per-slice table; user strings are never read as markup."""
    s = report.summary
    table = Table(
        title=Text(f"Automation audit: {s.project}"), show_header=False, title_justify="left"
    )
    table.add_column(style="bold")
    table.add_column()
    table.add_row("labeler", Text(s.labeler))
    table.add_row("run", Text(s.created_at))
    table.add_row("items", str(s.items))
    table.add_row("automated", f"{s.automated} ({_tpct(s.automation_rate)})")
    table.add_row("audit", _audit_line(s))
    table.add_row("left for humans", str(s.left_for_humans))
    table.add_row("target", f"{s.target:g} with probability {1 - s.delta:g} per slice")
    table.add_row(
        "audited above threshold",
        f"{s.audited_above}: accuracy "
        f"{_tnum(s.realised_accuracy)}, lower bound {_tnum(s.accuracy_bound)}",
    )
    ece = ", ".join(f"{m.method} {_tnum(m.ece)}" for m in report.calibration.methods)
    table.add_row("ECE", ece or "-")
    console.print(table)
    for note in report.notes:
        console.print(Text(f"note: {note}", style="yellow"))

    table = Table(title="Slices", title_justify="left")
    for col, justify in (
        ("slice", "left"),
        ("threshold", "right"),
        ("automated", "right"),
        ("automated error", "right"),
        ("human error", "right"),
        ("worse?", "left"),
    ):
        table.add_column(col, justify=justify)
    by_code = {row.code: row for row in report.bias.slices}
    worse = {True: Text("WORSE", style="bold red"), False: "no", None: "not enough evidence"}
    for d in report.slices:
        a = by_code[d.code]
        table.add_row(
            Text(d.name),
            _threshold(d.threshold),
            _tpct(d.automation_rate),
            _text_error(a.auto_error, a.auto_error_lower, a.auto_error_upper, a.auto_audit_size),
            _text_error(a.human_error, a.human_error_lower, a.human_error_upper, a.human_size),
            worse[a.automation_worse],
        )
    console.print(table)
