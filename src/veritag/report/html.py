"""The report as one self-contained HTML page: inline CSS and SVG, no scripts, no network.

Every user string (item ids, source names, class and domain names) goes through
``html.escape``; the plots carry no user text as markup (see ``plots``).
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence

from .build import Report
from .formatting import Formats
from .plots import accuracy_scatter, confidence_histogram, confusion_heatmaps, domain_heatmap

__all__ = ["render_html"]

#: Rows of the sources table (worst first); the rest are counted, not listed.
MAX_SOURCE_ROWS = 1000
#: Domain columns in the sources table; beyond this only the heatmap shows domains.
_MAX_DOMAIN_COLUMNS = 8

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       margin: 0; background: #fafafa; }
main { max-width: 1080px; margin: 0 auto; padding: 1.5em 1.5em 4em; background: #fff; }
h1 { font-size: 1.6em; margin: 0 0 .2em; }
h2 { font-size: 1.2em; margin: 2em 0 .5em; padding-bottom: .2em; border-bottom: 1px solid #ddd; }
p.meta, p.hint, figcaption { color: #666; font-size: .9em; }
nav a { margin-right: 1em; color: #2a5db0; text-decoration: none; font-size: .9em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .9em; }
th, td { padding: .25em .7em; border-bottom: 1px solid #eee; text-align: left;
         vertical-align: top; }
th { background: #f3f3f3; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.kv th { background: none; font-weight: 600; }
.wrap { overflow-x: auto; }
.bad { color: #b22222; }
.note { background: #fff6d9; border-left: 3px solid #e0b000; padding: .3em .7em; margin: .5em 0; }
figure { margin: .5em 0 1em; }
svg { max-width: 100%; height: auto; }
.id { word-break: break-all; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


_F = Formats(missing="&ndash;", tiny="&lt;0.001")
_num, _prob, _domain_cell, _pct = _F.num, _F.prob, _F.domain_cell, _F.pct


def _table(head: Sequence[tuple[str, bool]], rows: Iterable[Sequence[str]]) -> str:
    """A table from already escaped cells; ``head`` is (escaped title, numeric?) per column."""
    attrs = [' class="num"' if num else "" for _, num in head]
    out = ['<div class="wrap"><table><thead><tr>']
    out += [f"<th{attr}>{title}</th>" for attr, (title, _) in zip(attrs, head, strict=True)]
    out.append("</tr></thead><tbody>")
    for row in rows:
        cells = "".join(f"<td{attr}>{cell}</td>" for attr, cell in zip(attrs, row, strict=True))
        out.append(f"<tr>{cells}</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _kv(rows: Iterable[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv"><tbody>{body}</tbody></table>'


def _figure(svg: str | None, caption: str) -> str:
    if not svg:
        return ""
    return f"<figure>{svg}<figcaption>{caption}</figcaption></figure>"


def _summary(report: Report) -> str:
    s = report.summary
    status = "converged" if s.converged else '<span class="bad">did not converge</span>'
    ll = "" if math.isnan(s.log_likelihood) else f", log-likelihood {s.log_likelihood:.1f}"
    rows = [
        ("items", f"{s.items} ({s.items_with_claims} with claims)"),
        ("claims", f"{s.claims} ({s.human_claims} human, {s.model_claims} model)"),
        ("sources", f"{s.sources} ({s.humans} human, {s.models} model)"),
        ("classes", str(s.classes)),
        ("method", f"{_e(s.method)}, {s.n_iter} iterations, {status}{ll}"),
        ("mean confidence", _num(s.mean_confidence)),
        (
            f"items with confidence &lt; {s.low_confidence_threshold:g}",
            _pct(s.low_confidence_share),
        ),
    ]
    notes = "".join(f'<p class="note">{_e(n)}</p>' for n in report.notes)
    classes = _table(
        [
            ("class", False),
            ("prior", True),
            ("items resolved", True),
            ("mean confidence", True),
            ("human answers", True),
        ],
        (
            [
                _e(c.name),
                _num(c.prior),
                str(c.resolved),
                _num(c.mean_confidence),
                str(c.human_claims),
            ]
            for c in report.classes
        ),
    )
    return (
        f'<section id="summary"><h2>Summary</h2>{_kv(rows)}{notes}'
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
        head += [(f"{_e(d)}<br><small>acc (n)</small>", True) for d in domains]

    def cells(r):
        interval = (
            "&ndash;"
            if math.isnan(r.accuracy_low)
            else f"{r.accuracy_low:.2f}&ndash;{r.accuracy_high:.2f}"
        )
        out = [
            _e(r.name),
            _e(r.kind),
            str(r.n_claims),
            _num(r.accuracy),
            interval,
            _pct(r.agreement),
        ]
        if with_domains:
            out += [_domain_cell(d) for d in r.domains]
        return out

    more = ""
    if len(rows) > MAX_SOURCE_ROWS:
        hidden = len(rows) - MAX_SOURCE_ROWS
        more = f'<p class="hint">&hellip; and {hidden} more sources (the most accurate).</p>'
    fig = _figure(
        accuracy_scatter(report),
        "Estimated accuracy against claims per source; bars are 95% Wilson intervals "
        "(shown for up to 60 sources). The three least accurate are named.",
    )
    hint = (
        '<p class="hint">Accuracy is the expected share of a source\'s answers that match the '
        "inferred truth (a model's top class counts). The interval reflects how many answers it "
        "rests on, not doubt about the truth itself.</p>"
    )
    table = _table(head, (cells(r) for r in rows[:MAX_SOURCE_ROWS]))
    return f'<section id="sources"><h2>Sources</h2>{fig}{hint}{table}{more}</section>'


def _domains(report: Report) -> str:
    d = report.domains
    if d is None:
        return ""
    title = f"Domains{f' ({_e(d.field)})' if d.field else ''}"
    fig = _figure(
        domain_heatmap(report),
        "Estimated accuracy per source and domain, with the number of claims; the most "
        "active sources only. Gray: no claims there.",
    )
    table = _table(
        [("domain", False), ("items", True), ("claims", True), ("mean confidence", True)],
        ([_e(r.name), str(r.items), str(r.claims), _num(r.mean_confidence)] for r in d.rows),
    )
    extra = (
        f'<p class="hint">{d.ungrouped_items} items have no domain.</p>'
        if d.ungrouped_items
        else ""
    )
    return f'<section id="domains"><h2>{title}</h2>{fig}{table}{extra}</section>'


def _agreement(report: Report) -> str:
    a = report.agreement
    rows = [
        ("Fleiss' kappa", _num(a.fleiss_kappa)),
        ("Krippendorff's alpha (nominal)", _num(a.alpha_nominal)),
    ]
    if a.alpha_ordinal is not None:
        rows.append(("Krippendorff's alpha (ordinal)", _num(a.alpha_ordinal)))
    rows += [
        (f"mean pairwise Cohen's kappa ({a.n_pairs} rater pairs)", _num(a.mean_pairwise_kappa)),
        ("human raters", str(a.raters)),
        ("human claims", str(a.claims)),
        ("items with 2+ human labels", str(a.pairable_items)),
    ]
    if a.duplicates_dropped:
        rows.append(("repeated answers left out", str(a.duplicates_dropped)))
    note = f'<p class="note">{_e(a.note)}</p>' if a.note else ""
    hint = (
        '<p class="hint">Chance-corrected agreement among human answers before any inference: '
        "1 is perfect, 0 is what chance gives. A dash where undefined (no item with two labels, "
        "or a single class throughout).</p>"
    )
    return f'<section id="agreement"><h2>Agreement</h2>{hint}{_kv(rows)}{note}</section>'


def _confidence(report: Report) -> str:
    s = report.summary
    fig = _figure(
        confidence_histogram(report),
        f"Items by the posterior probability of their resolved label; red bars lie below "
        f"{s.low_confidence_threshold:g}.",
    )
    conf = _figure(
        confusion_heatmaps(report),
        "How the most active sources answer for each true class (rows sum to 1).",
    )
    conf = f"<h3>Confusion of the most active sources</h3>{conf}" if conf else ""
    return f'<section id="confidence"><h2>Confidence</h2>{fig}{conf}</section>'


def _suspects(report: Report) -> str:
    items = (
        _table(
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
                    f'<span class="id">{_e(i.item)}</span>',
                    _e(i.label),
                    _num(i.confidence),
                    str(i.n_claims),
                    "&ndash;"
                    if i.runner_up is None
                    else f"{_e(i.runner_up)} ({i.runner_up_prob:.2f})",
                    _e(
                        ", ".join(
                            f"{k}: {v}" for k, v in sorted(i.votes.items(), key=lambda kv: -kv[1])
                        )
                    ),
                ]
                for i in report.uncertain_items
            ),
        )
        if report.uncertain_items
        else '<p class="hint">No items with claims.</p>'
    )
    claims = (
        _table(
            [
                ("item", False),
                ("source", False),
                ("given", False),
                ("P(given is right)", True),
                ("resolved", False),
            ],
            (
                [
                    f'<span class="id">{_e(c.item)}</span>',
                    _e(c.source),
                    _e(c.label),
                    _prob(c.quality),
                    f"{_e(c.resolved)} ({c.resolved_confidence:.2f})",
                ]
                for c in report.suspect_claims
            ),
        )
        if report.suspect_claims
        else '<p class="hint">No human claims.</p>'
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
    nav = "".join(f'<a href="#{anchor}">{name}</a>' for anchor, name in links)
    s = report.summary
    meta = (
        f"{s.items} items, {s.claims} claims, {s.sources} sources; truth by {_e(s.method)}. "
        "Made by veritag."
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n"
        f'<body><main><h1>{_e(title)}</h1><p class="meta">{meta}</p><nav>{nav}</nav>\n'
        + "\n".join(x for x in sections if x)
        + "\n</main></body></html>\n"
    )
