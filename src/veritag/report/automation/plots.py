"""The automation audit's plots as inline SVG, drawn the safe way ``svg`` draws them.

Each function takes the report's plain data and returns an SVG string, or None when there is
nothing to draw (the page then says why). User strings (slice names) only reach the figure
through ``plot_label``, and ``render_svg`` renders text as paths.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...automation.audit import BiasAudit
from ..svg import plot_label, render_svg
from .build import Calibration, RateCurve

__all__ = ["rate_accuracy_plot", "reliability_diagram", "slice_error_plot"]

_METHOD_COLORS = {"raw": "#444444", "temperature": "#1f77b4", "isotonic": "#e07b00"}
_SLICE_COLORS = (
    "#1f77b4",
    "#e07b00",
    "#55a868",
    "#c44e52",
    "#8172b2",
    "#937860",
    "#da8bc3",
    "#8c8c8c",
)
_AUTO, _HUMAN, _BAD = "#e07b00", "#1f77b4", "#b22222"
#: Audited items above a threshold for its accuracy to set the plot's lower limit.
_STEADY = 20
#: Slices in the error plot (the largest ones); the table lists them all.
MAX_PLOT_SLICES = 40


def reliability_diagram(calibration: Calibration) -> str | None:
    """Confidence vs accuracy per bin, one line per method, bin counts underneath."""
    rows = [m for m in calibration.methods if sum(m.count)]
    if not rows:
        return None
    edges = np.asarray(calibration.edges)

    def draw(fig) -> None:
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
        top.plot([0, 1], [0, 1], color="#999", lw=0.8, ls="--")
        for m in rows:
            color = _METHOD_COLORS.get(m.method, "#777777")
            conf, acc = np.asarray(m.confidence), np.asarray(m.accuracy)
            filled = np.asarray(m.count) > 0
            top.plot(
                conf[filled],
                acc[filled],
                marker="o",
                ms=3,
                lw=1.2,
                color=color,
                label=f"{m.method} (ECE {m.ece:.3f})",
            )
            bottom.stairs(
                m.count,
                edges,
                color=color,
                lw=1,
                fill=m.method == "raw",
                alpha=0.3 if m.method == "raw" else 0.9,
            )
        top.set_xlim(0, 1)
        top.set_ylim(0, 1.02)
        top.set_ylabel("accuracy")
        top.legend(loc="upper left", frameon=False)
        top.grid(alpha=0.25)
        bottom.set_xlabel("confidence")
        bottom.set_ylabel("items")
        bottom.grid(axis="y", alpha=0.25)

    return render_svg(draw, (5.5, 4.6), "rel")


def rate_accuracy_plot(curves: Sequence[RateCurve], target: float) -> str | None:
    """Accuracy (and its pointwise bound) against automation rate, chosen points starred."""
    drawn = [c for c in curves if c.threshold]
    if not drawn:
        return None
    colors = {c.code: ("#222222" if c.code is None else _SLICE_COLORS[c.code % 8]) for c in drawn}
    # Bounds on a handful of items plunge to 0; scale the axis to well-supported accuracies.
    low = min(
        (a for c in drawn for a, m in zip(c.accuracy, c.n_evidence, strict=True) if m >= _STEADY),
        default=0.0,
    )

    def draw(fig) -> None:
        ax = fig.add_subplot()
        for c in drawn:
            color = colors[c.code]
            ax.plot(
                c.automation_rate,
                c.accuracy,
                color=color,
                lw=1.4 if c.code is None else 1,
                label=plot_label(c.name, 20),
            )
            ax.plot(c.automation_rate, c.bound, color=color, lw=0.8, ls="--", alpha=0.7)
            if c.chosen is not None and c.chosen.audit_size:
                ax.scatter(
                    [c.chosen.automation_rate],
                    [c.chosen.accuracy],
                    marker="*",
                    s=90,
                    color=color,
                    edgecolors="black",
                    linewidths=0.5,
                    zorder=3,
                )
        ax.axhline(target, color=_BAD, lw=0.8, ls=":")
        ax.text(
            0.0,
            target,
            " target",
            transform=ax.get_yaxis_transform(),
            fontsize=7,
            color=_BAD,
            va="bottom",
        )
        ax.set_xlim(0, 1.02)
        ax.set_ylim(max(0.0, min(low, target) - 0.1), 1.01)
        ax.set_xlabel("share of items at or above the threshold")
        ax.set_ylabel("accuracy of audited items")
        ax.legend(loc="lower left", frameon=False)
        ax.grid(alpha=0.25)

    return render_svg(draw, (6.0, 3.6), "rate")


def slice_error_plot(bias: BiasAudit) -> str | None:
    """Automated vs human error per slice with their bounds; flagged slices in red."""
    rows = [r for r in bias.slices if r.auto_audit_size or r.human_size]
    if not rows:
        return None
    rows = sorted(rows, key=lambda r: -r.n)[:MAX_PLOT_SLICES][::-1]
    y = np.arange(len(rows), dtype=float)

    def draw(fig) -> None:
        ax = fig.add_subplot()
        for offset, color, name, size, est, lo, hi in (
            (
                0.15,
                _AUTO,
                "automated",
                "auto_audit_size",
                "auto_error",
                "auto_error_lower",
                "auto_error_upper",
            ),
            (
                -0.15,
                _HUMAN,
                "human",
                "human_size",
                "human_error",
                "human_error_lower",
                "human_error_upper",
            ),
        ):
            has = np.array([getattr(r, size) > 0 for r in rows])
            x, a, b = (np.array([getattr(r, f) for r in rows])[has] for f in (est, lo, hi))
            ax.errorbar(
                x,
                y[has] + offset,
                xerr=[x - a, b - x],
                fmt="o",
                ms=4,
                color=color,
                ecolor=color,
                elinewidth=1,
                capsize=2,
                label=name,
            )
        ax.set_yticks(y, [plot_label(r.name, 22) for r in rows])
        for tick, r in zip(ax.get_yticklabels(), rows, strict=True):
            if r.automation_worse:
                tick.set_color(_BAD)
                tick.set_fontweight("bold")
        ax.set_xlim(left=0)
        ax.set_xlabel("error rate")
        ax.legend(loc="lower right", frameon=False)
        ax.grid(axis="x", alpha=0.25)

    return render_svg(draw, (6.0, 1.2 + 0.35 * len(rows)), "slc")
