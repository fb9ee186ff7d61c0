"""The automation audit as one self-contained HTML page, made of the pieces ``page`` shares with
the quality report; user strings go through ``page.esc``."""

from __future__ import annotations

import math

import numpy as np

from ...automation.audit import SliceAudit
from ..page import esc, figure, hint, kv, notes, num, page, pct, table
from .build import N_BINS, AutomationReport
from .plots import rate_accuracy_plot, reliability_diagram, slice_error_plot

__all__ = ["render_automation_html"]

#: Classes shown as confusion-matrix columns; beyond this only per-class counts.
MAX_CONFUSION_CLASSES = 20


def _interval(est: float, lo: float, hi: float, n: int) -> str:
    if not n:
        return num(math.nan)
    return f"{num(est)} [{num(lo)}, {num(hi)}] <small>n={n}</small>"


def _flag(row: SliceAudit) -> str:
    if row.automation_worse is None:
        return "not enough evidence"
    return '<span class="bad"><b>worse</b></span>' if row.automation_worse else "no"


def _summary_html(r: AutomationReport) -> str:
    s = r.summary
    rows = [
        ("project", esc(s.project)),
        ("labeler", esc(s.labeler)),
        ("run", esc(s.created_at)),
        ("items with a model claim", f"{s.items} ({s.classes} classes)"),
        ("automated", f"{s.automated} ({pct(s.automation_rate)})"),
        ("audit", s.audit_line()),
        ("left for humans", str(s.left_for_humans)),
        ("target accuracy", f"{s.target:g} with probability {1 - s.delta:g} per slice"),
        ("audited items above threshold", str(s.audited_above)),
        ("their accuracy", num(s.realised_accuracy)),
        (f"lower bound at {1 - s.delta:g}", num(s.accuracy_bound)),
    ]
    field = f" by {esc(s.slice_field)}" if s.slice_field else ""
    listed = table(
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
                esc(d.name),
                str(d.items),
                str(d.automated),
                pct(d.automation_rate),
                d.threshold_text(),
                num(d.bound),
                str(d.audit_size),
                str(d.tested),
            ]
            for d in r.slices
        ),
    )
    return (
        f'<section id="summary"><h2>Summary</h2>{kv(rows)}{notes(r.notes)}'
        f"<h3>Thresholds per slice{field}</h3>{listed}</section>"
    )


def _calibration_html(r: AutomationReport) -> str:
    c = r.calibration
    fig = figure(
        reliability_diagram(c),
        "Mean confidence against accuracy per confidence bin (the diagonal is perfect "
        "calibration); below, labeled audit items per bin. Calibrated curves are out of fold.",
    ) or hint(esc(c.note or "No labeled audit item to draw."))
    listed = table(
        [("method", False), ("ECE", True), ("", False)],
        ([esc(m.method), num(m.ece), esc(m.note or "")] for m in c.methods),
    )
    folds = (
        f"{c.folds}-fold cross-fit: each item is calibrated by a fit that never saw it, "
        "so the error shown is what new items would see."
        if c.folds
        else ""
    )
    why = (
        hint(
            f"Expected calibration error (ECE) over {c.n_evidence} labeled audit items, "
            f"{N_BINS} equal-width bins. {folds}"
        )
        if c.methods
        else ""
    )
    return (
        f'<section id="calibration"><h2>Calibration</h2>{why}{fig}'
        f"{listed if c.methods else ''}</section>"
    )


def _curve_html(r: AutomationReport) -> str:
    fig = figure(
        rate_accuracy_plot(r.curves, r.summary.target),
        f"Share of items automated at each threshold against the accuracy of the labeled audit "
        f"items above it (solid) and its lower bound at {1 - r.summary.delta:g} (dashed, "
        "pointwise). Stars: the chosen thresholds. Dotted line: the target.",
    ) or hint("No labeled audit item, so no threshold can be evaluated.")
    return f'<section id="curve"><h2>Automation rate vs accuracy</h2>{fig}</section>'


def _slices_html(r: AutomationReport) -> str:
    b = r.bias
    fig = figure(
        slice_error_plot(b),
        "Error per slice: automated (audited items above the threshold) against human, with "
        f"one-sided {1 - b.delta:g} bounds each. Red slices: automation shown worse.",
    ) or hint("No slice has error evidence yet.")
    listed = table(
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
                f'<span class="bad">{esc(s.name)}</span>' if s.automation_worse else esc(s.name),
                str(s.n),
                pct(s.automation_rate),
                _interval(s.auto_error, s.auto_error_lower, s.auto_error_upper, s.auto_audit_size),
                _interval(s.human_error, s.human_error_lower, s.human_error_upper, s.human_size),
                num(s.tv_distance),
                num(s.chi2_p),
                _flag(s),
            ]
            for s in (*b.slices, b.overall)
        ),
    )
    why = hint(
        f"Automation is called worse when a one-sided Fisher test at {b.delta:g} shows its "
        f"error above the humans'; with fewer than {b.min_evidence} items on either side there "
        "is not enough evidence. Human error is measured on the items humans label, usually "
        "the harder ones. Label shift compares the class mix of automated and human-labeled "
        "items."
    )
    return f'<section id="slices"><h2>Errors per slice</h2>{why}{fig}{listed}</section>'


def _classes_html(r: AutomationReport) -> str:
    m = np.asarray(r.confusion, dtype=np.int64).reshape(len(r.class_names), -1)
    if not m.sum():
        return f'<section id="classes"><h2>Classes</h2>{hint("No labeled audit item.")}</section>'
    per_class = m.sum(axis=1)
    recall = np.where(per_class > 0, np.diag(m) / np.maximum(per_class, 1), np.nan)
    wide = len(r.class_names) <= MAX_CONFUSION_CLASSES
    head = [("human \\ model", False), ("items", True), ("model right", True)]
    if wide:
        head += [(esc(c), True) for c in r.class_names]
    rows = (
        [esc(c), str(per_class[i]), pct(recall[i]), *(str(v) for v in (m[i] if wide else ()))]
        for i, c in enumerate(r.class_names)
    )
    why = hint(
        "The model's labels on the labeled audit items: rows are the humans' "
        "class, columns the model's."
        if wide
        else f"More than {MAX_CONFUSION_CLASSES} classes: per-class counts only."
    )
    return f'<section id="classes"><h2>Classes</h2>{why}{table(head, rows)}</section>'


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
    s = report.summary
    meta = (
        f"{esc(s.project)}: labeler {esc(s.labeler)}, run {esc(s.created_at)}; {s.items} items, "
        f"{pct(s.automation_rate)} automated. Made by veritag."
    )
    sections = [
        _summary_html(report),
        _calibration_html(report),
        _curve_html(report),
        _slices_html(report),
        _classes_html(report),
    ]
    return page(title, meta, links, sections)
