"""The report in a terminal: a few compact rich tables."""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .build import Report, SourceQuality
from .formatting import TEXT

__all__ = ["render_text"]

#: Domain columns are added to the sources table only up to this many domains.
_MAX_DOMAIN_COLUMNS = 4


_num, _prob, _domain_cell, _pct = TEXT.num, TEXT.prob, TEXT.domain_cell, TEXT.pct


def _interval(row: SourceQuality) -> str:
    if math.isnan(row.accuracy_low):
        return "-"
    return f"{row.accuracy_low:.2f}-{row.accuracy_high:.2f}"


def _more(console: Console, shown: int, total: int, what: str) -> None:
    if total > shown:
        console.print(Text(f"... {total - shown} more {what}", style="dim"))


def render_text(report: Report, console: Console, *, max_rows: int = 20) -> None:
    """Print the report's summary, sources (worst first), agreement and suspects to ``console``.

    User strings (names, labels, ids) are printed as plain text, never parsed as rich markup.
    """
    s, a = report.summary, report.agreement
    table = Table(title="Summary", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("items", f"{s.items} ({s.items_with_claims} with claims)")
    table.add_row("claims", f"{s.claims} ({s.human_claims} human, {s.model_claims} model)")
    table.add_row("sources", f"{s.sources} ({s.humans} human, {s.models} model)")
    status = "converged" if s.converged else "NOT converged"
    run = report.truth.get("run") if report.truth else None
    stored = "" if run is None else f", stored run {run}"
    table.add_row("method", f"{s.method}, {s.n_iter} iterations, {status}{stored}")
    prior = ", ".join(
        f"{name}: {p:.3f}" for name, p in zip(report.class_names, s.prior, strict=True)
    )
    table.add_row("class prior", Text(prior))
    table.add_row("mean confidence", _num(s.mean_confidence))
    table.add_row(f"confidence < {s.low_confidence_threshold:g}", _pct(s.low_confidence_share))
    console.print(table)
    for note in report.notes:
        console.print(Text(f"note: {note}", style="yellow"))

    domains = report.domains.names if report.domains else ()
    show_domains = 0 < len(domains) <= _MAX_DOMAIN_COLUMNS
    table = Table(title="Sources, least accurate first", title_justify="left")
    table.add_column("source")
    table.add_column("kind")
    table.add_column("claims", justify="right")
    table.add_column("accuracy", justify="right")
    table.add_column("95% CI", justify="right")
    table.add_column("agrees", justify="right")
    if show_domains:
        for name in domains:
            table.add_column(Text(name), justify="right")
    rows = report.sources_by_accuracy()
    for row in rows[:max_rows]:
        cells: list[str | Text] = [
            Text(row.name),
            Text(row.kind),
            str(row.n_claims),
            _num(row.accuracy),
            _interval(row),
            _pct(row.agreement),
        ]
        if show_domains:
            cells += [_domain_cell(d) for d in row.domains]
        table.add_row(*cells)
    console.print(table)
    _more(console, min(max_rows, len(rows)), len(rows), "sources")

    table = Table(
        title=f"Agreement among humans ({a.raters} raters, {a.pairable_items} items "
        "with 2+ labels)",
        show_header=False,
        title_justify="left",
    )
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("Fleiss' kappa", _num(a.fleiss_kappa))
    table.add_row("Krippendorff's alpha (nominal)", _num(a.alpha_nominal))
    if a.alpha_ordinal is not None:
        table.add_row("Krippendorff's alpha (ordinal)", _num(a.alpha_ordinal))
    table.add_row(f"mean pairwise Cohen's kappa ({a.n_pairs} pairs)", _num(a.mean_pairwise_kappa))
    console.print(table)
    if a.note:
        console.print(Text(f"note: {a.note}", style="yellow"))

    if report.uncertain_items:
        table = Table(title="Least certain items", title_justify="left")
        for col, justify in (
            ("item", "left"),
            ("label", "left"),
            ("confidence", "right"),
            ("claims", "right"),
            ("runner-up", "left"),
        ):
            table.add_column(col, justify=justify)
        for item in report.uncertain_items[:max_rows]:
            runner = (
                "-" if item.runner_up is None else f"{item.runner_up} ({item.runner_up_prob:.2f})"
            )
            table.add_row(
                Text(str(item.item)),
                Text(item.label),
                _num(item.confidence),
                str(item.n_claims),
                Text(runner),
            )
        console.print(table)
    if report.suspect_claims:
        table = Table(title="Human claims most likely wrong", title_justify="left")
        for col, justify in (
            ("item", "left"),
            ("source", "left"),
            ("given", "left"),
            ("P(right)", "right"),
            ("resolved", "left"),
        ):
            table.add_column(col, justify=justify)
        for claim in report.suspect_claims[:max_rows]:
            table.add_row(
                Text(str(claim.item)),
                Text(claim.source),
                Text(claim.label),
                _prob(claim.quality),
                Text(f"{claim.resolved} ({claim.resolved_confidence:.2f})"),
            )
        console.print(table)
