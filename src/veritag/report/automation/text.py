"""The automation audit in a terminal: the summary and the per-slice table, with rich."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..formatting import TEXT
from .build import AutomationReport

__all__ = ["render_automation_text"]


def _text_error(est: float, lo: float, hi: float, n: int) -> str:
    return f"{TEXT.num(est)} [{TEXT.num(lo)}, {TEXT.num(hi)}] n={n}" if n else "-"


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
    table.add_row("automated", f"{s.automated} ({TEXT.pct(s.automation_rate)})")
    table.add_row("audit", s.audit_line())
    table.add_row("left for humans", str(s.left_for_humans))
    table.add_row("target", f"{s.target:g} with probability {1 - s.delta:g} per slice")
    table.add_row(
        "audited above threshold",
        f"{s.audited_above}: accuracy "
        f"{TEXT.num(s.realised_accuracy)}, lower bound {TEXT.num(s.accuracy_bound)}",
    )
    ece = ", ".join(f"{m.method} {TEXT.num(m.ece)}" for m in report.calibration.methods)
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
            d.threshold_text(),
            TEXT.pct(d.automation_rate),
            _text_error(a.auto_error, a.auto_error_lower, a.auto_error_upper, a.auto_audit_size),
            _text_error(a.human_error, a.human_error_lower, a.human_error_upper, a.human_size),
            worse[a.automation_worse],
        )
    console.print(table)
