"""The report as one self-contained HTML page: inline CSS and SVG, no scripts, no network.

Every user string (item ids, source names, class and domain names) goes through ``page.esc``;
the plots carry no user text as markup (see ``plots``).
"""

from __future__ import annotations

import math

from .build import Report, stale_note
from .page import domain_cell, esc, figure, hint, kv, notes, num, page, pct, prob, table
from .plots import accuracy_scatter, confidence_histogram, confusion_heatmaps, domain_heatmap

__all__ = ["render_html"]

#: Rows of the sources table (worst first); the rest are counted, not listed.
MAX_SOURCE_ROWS = 1000
#: Domain columns in the sources table; beyond this only the heatmap shows domains.
_MAX_DOMAIN_COLUMNS = 8


def _summary(report: Report) -> str:
    s = report.summary
    status = "converged" if s.converged else '<span class="bad">did not converge</span>'
    ll = "" if math.isnan(s.log_likelihood) else f", log-likelihood {s.log_likelihood:.1f}"
    rows = [
        ("items", f"{s.items} ({s.items_with_claims} with claims)"),
        ("claims", f"{s.claims} ({s.human_claims} human, {s.model_claims} model)"),
        ("sources", f"{s.sources} ({s.humans} human, {s.models} model)"),
        ("classes", str(s.classes)),
        ("method", f"{esc(s.method)}, {s.n_iter} iterations, {status}{ll}"),
        ("mean confidence", num(s.mean_confidence)),
        (
            f"items with confidence &lt; {s.low_confidence_threshold:g}",
            pct(s.low_confidence_share),
        ),
    ]
    stale = stale_note(report.truth)  # claims the stored run misses: first thing to read
    noted = notes([stale, *report.notes] if stale else report.notes)
    classes = table(
        [
            ("class", False),
            ("prior", True),
            ("items resolved", True),
            ("mean confidence", True),
            ("human answers", True),
        ],
        (
            [
                esc(c.name),
                num(c.prior),
                str(c.resolved),
                num(c.mean_confidence),
                str(c.human_claims),
            ]
            for c in report.classes
        ),
    )
    return (
        f'<section id="summary"><h2>Summary</h2>{kv(rows)}{noted}'
        f"<h3>Classes</h3>{classes}</section>"
    )


def _sources(report: Report) -> str:
    rows = report.sources_by_accuracy()
    domains = report.domains.names if report.domains else ()
    with_domains = 0 < len(domains) <= _MAX_DOMAIN_COLUMNS
    head = [
        ("source", False),
        ("kind", False),
        ("claims", True),
        ("accuracy", True),
        ("95% interval", True),
        ("agrees with resolved", True),
    ]
    if with_domains:
        head += [(f"{esc(d)}<br><small>acc (n)</small>", True) for d in domains]

    def cells(r):
        interval = (
            "&ndash;"
            if math.isnan(r.accuracy_low)
            else f"{r.accuracy_low:.2f}&ndash;{r.accuracy_high:.2f}"
        )
        out = [
            esc(r.name),
            esc(r.kind),
            str(r.n_claims),
            num(r.accuracy),
            interval,
            pct(r.agreement),
        ]
        if with_domains:
            out += [domain_cell(d) for d in r.domains]
        return out

    more = ""
    if len(rows) > MAX_SOURCE_ROWS:
        hidden = len(rows) - MAX_SOURCE_ROWS
        more = hint(f"&hellip; and {hidden} more sources (the most accurate).")
    fig = figure(
        accuracy_scatter(report),
        "Estimated accuracy against claims per source; bars are 95% Wilson intervals "
        "(shown for up to 60 sources). The three least accurate are named.",
    )
    why = hint(
        "Accuracy is the expected share of a source's answers that match the inferred truth (a "
        "model's top class counts). The interval reflects how many answers it rests on, not "
        "doubt about the truth itself."
    )
    listed = table(head, (cells(r) for r in rows[:MAX_SOURCE_ROWS]))
    return f'<section id="sources"><h2>Sources</h2>{fig}{why}{listed}{more}</section>'


def _domains(report: Report) -> str:
    d = report.domains
    if d is None:
        return ""
    title = f"Domains{f' ({esc(d.field)})' if d.field else ''}"
    fig = figure(
        domain_heatmap(report),
        "Estimated accuracy per source and domain, with the number of claims; the most "
        "active sources only. Gray: no claims there.",
    )
    listed = table(
        [("domain", False), ("items", True), ("claims", True), ("mean confidence", True)],
        ([esc(r.name), str(r.items), str(r.claims), num(r.mean_confidence)] for r in d.rows),
    )
    extra = hint(f"{d.ungrouped_items} items have no domain.") if d.ungrouped_items else ""
    return f'<section id="domains"><h2>{title}</h2>{fig}{listed}{extra}</section>'


def _agreement(report: Report) -> str:
    a = report.agreement
    rows = [
        ("Fleiss' kappa", num(a.fleiss_kappa)),
        ("Krippendorff's alpha (nominal)", num(a.alpha_nominal)),
    ]
    if a.alpha_ordinal is not None:
        rows.append(("Krippendorff's alpha (ordinal)", num(a.alpha_ordinal)))
    rows += [
        (f"mean pairwise Cohen's kappa ({a.n_pairs} rater pairs)", num(a.mean_pairwise_kappa)),
        ("human raters", str(a.raters)),
        ("human claims", str(a.claims)),
        ("items with 2+ human labels", str(a.pairable_items)),
    ]
    if a.duplicates_dropped:
        rows.append(("repeated answers left out", str(a.duplicates_dropped)))
    why = hint(
        "Chance-corrected agreement among human answers before any inference: 1 is perfect, 0 "
        "is what chance gives. A dash where undefined (no item with two labels, or a single "
        "class throughout)."
    )
    noted = notes([a.note] if a.note else [])
    return f'<section id="agreement"><h2>Agreement</h2>{why}{kv(rows)}{noted}</section>'


def _confidence(report: Report) -> str:
    s = report.summary
    fig = figure(
        confidence_histogram(report),
        f"Items by the posterior probability of their resolved label; red bars lie below "
        f"{s.low_confidence_threshold:g}.",
    )
    conf = figure(
        confusion_heatmaps(report),
        "How the most active sources answer for each true class (rows sum to 1).",
    )
    conf = f"<h3>Confusion of the most active sources</h3>{conf}" if conf else ""
    return f'<section id="confidence"><h2>Confidence</h2>{fig}{conf}</section>'


def _suspects(report: Report) -> str:
    items = (
        table(
            [
                ("item", False),
                ("resolved", False),
                ("confidence", True),
                ("claims", True),
                ("runner-up", False),
                ("answers", False),
            ],
            (
                [
                    f'<span class="id">{esc(i.item)}</span>',
                    esc(i.label),
                    num(i.confidence),
                    str(i.n_claims),
                    "&ndash;"
                    if i.runner_up is None
                    else f"{esc(i.runner_up)} ({i.runner_up_prob:.2f})",
                    esc(
                        ", ".join(
                            f"{k}: {v}" for k, v in sorted(i.votes.items(), key=lambda kv: -kv[1])
                        )
                    ),
                ]
                for i in report.uncertain_items
            ),
        )
        if report.uncertain_items
        else hint("No items with claims.")
    )
    claims = (
        table(
            [
                ("item", False),
                ("source", False),
                ("given", False),
                ("P(given is right)", True),
                ("resolved", False),
            ],
            (
                [
                    f'<span class="id">{esc(c.item)}</span>',
                    esc(c.source),
                    esc(c.label),
                    prob(c.quality),
                    f"{esc(c.resolved)} ({c.resolved_confidence:.2f})",
                ]
                for c in report.suspect_claims
            ),
        )
        if report.suspect_claims
        else hint("No human claims.")
    )
    return (
        '<section id="suspects"><h2>Suspected errors</h2>'
        f"<h3>Least certain items</h3>{items}"
        "<h3>Human claims most likely wrong</h3>"
        '<p class="hint">P(given is right) weighs every other claim on the item, with this claim '
        "taken out, so a lone worker cannot vouch for itself.</p>"
        f"{claims}</section>"
    )


def render_html(report: Report, *, title: str = "veritag report") -> str:
    """One self-contained HTML page: inline CSS and SVG plots, no scripts or external assets."""
    sections = [
        _summary(report),
        _sources(report),
        _domains(report),
        _agreement(report),
        _confidence(report),
        _suspects(report),
    ]
    links = [("summary", "Summary"), ("sources", "Sources")]
    if report.domains is not None:
        links.append(("domains", "Domains"))
    links += [
        ("agreement", "Agreement"),
        ("confidence", "Confidence"),
        ("suspects", "Suspected errors"),
    ]
    s = report.summary
    run = report.truth.get("run") if report.truth else None
    meta = (
        f"{s.items} items, {s.claims} claims, {s.sources} sources; truth by {esc(s.method)}"
        f"{'' if run is None else f' (stored run {run})'}. Made by veritag."
    )
    return page(title, meta, links, sections)
