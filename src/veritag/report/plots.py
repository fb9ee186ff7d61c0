"""The quality report's plots as inline SVG strings, drawn the safe way ``svg`` draws them.

User strings (source, class and domain names) only reach a figure through ``plot_label``.
"""

from __future__ import annotations

import math

import numpy as np

from .build import Report
from .svg import plot_label, render_svg

__all__ = ["accuracy_scatter", "confidence_histogram", "confusion_heatmaps", "domain_heatmap"]

_STYLE = {"human": ("#1f77b4", "o"), "model": ("#e07b00", "^")}
_MAX_CONFUSION_CLASSES = 30
_MAX_HEATMAP_SOURCES = 30
_MAX_HEATMAP_DOMAINS = 30


def accuracy_scatter(report: Report) -> str | None:
    """Estimated accuracy against number of claims, humans and models apart."""
    rows = [r for r in report.sources if r.n_claims > 0 and not math.isnan(r.accuracy)]
    if not rows:
        return None
    k = report.summary.classes

    def draw(fig) -> None:
        ax = fig.add_subplot()
        n = np.array([r.n_claims for r in rows], dtype=float)
        log = n.max() / n.min() > 20
        kinds = sorted({r.kind for r in rows}, key=lambda kd: (kd != "human", kd != "model", kd))
        for kind in kinds:
            color, marker = _STYLE.get(kind, ("#777777", "s"))
            pick = [r for r in rows if r.kind == kind]
            if not pick:
                continue
            x = np.array([r.n_claims for r in pick], dtype=float)
            y = np.array([r.accuracy for r in pick])
            if len(rows) <= 60:
                low = np.array([r.accuracy_low for r in pick])
                high = np.array([r.accuracy_high for r in pick])
                ax.errorbar(
                    x, y, yerr=[y - low, high - y], fmt="none", ecolor=color, alpha=0.35, lw=1
                )
            ax.scatter(
                x,
                y,
                c=color,
                marker=marker,
                s=22,
                alpha=0.8,
                label=f"{plot_label(kind, 12)} ({len(pick)})",
                edgecolors="white",
                linewidths=0.4,
            )
        for rank, r in enumerate(sorted(rows, key=lambda r: (r.accuracy, r.index))[:3]):
            ax.annotate(
                plot_label(r.name, 20),
                (r.n_claims, r.accuracy),
                xytext=(6, -9 - 9 * rank),
                textcoords="offset points",
                fontsize=7,
                color="#444",
                arrowprops={"arrowstyle": "-", "color": "#bbb", "lw": 0.5},
            )
        if k > 1:
            ax.axhline(1.0 / k, color="#999", lw=0.8, ls="--")
            ax.text(
                1.0,
                1.0 / k,
                " chance",
                transform=ax.get_yaxis_transform(),
                fontsize=7,
                color="#777",
                va="center",
            )
        if log:
            from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("claims")
        ax.set_ylabel("estimated accuracy")
        ax.set_ylim(min(0.0, 1.0 / k - 0.05) if k > 1 else 0.0, 1.02)
        ax.legend(loc="lower right", frameon=False)
        ax.grid(alpha=0.25)

    return render_svg(draw, (6.0, 3.6), "acc")


def confidence_histogram(report: Report) -> str | None:
    """How sure the resolved labels are: items per posterior-confidence bin."""
    hist = report.confidence
    if not sum(hist.counts):
        return None
    threshold = report.summary.low_confidence_threshold

    def draw(fig) -> None:
        ax = fig.add_subplot()
        edges = np.array(hist.edges)
        counts = np.array(hist.counts)
        colors = ["#c44e52" if e < threshold else "#55a868" for e in edges[:-1]]
        ax.bar(
            edges[:-1],
            counts,
            width=np.diff(edges),
            align="edge",
            color=colors,
            edgecolor="white",
            linewidth=0.5,
        )
        ax.axvline(threshold, color="#333", lw=0.8, ls="--")
        ax.set_xlabel("posterior probability of the resolved label")
        # A few unsure items next to hundreds of sure ones vanish on a linear axis.
        if counts.max() > 50 * counts[counts > 0].min():
            ax.set_yscale("log")
            ax.set_ylabel("items (log scale)")
        else:
            ax.set_ylabel("items")
        ax.grid(axis="y", alpha=0.25)

    return render_svg(draw, (6.0, 2.8), "conf")


def confusion_heatmaps(report: Report) -> str | None:
    """P(answer | true class) for the most active sources, one small heatmap each."""
    mats = report.confusions
    k = report.summary.classes
    if not mats or k < 2 or k > _MAX_CONFUSION_CLASSES:
        return None
    ticks = [plot_label(c, 10) for c in report.class_names] if k <= 12 else None
    cell = min(0.45, 2.4 / k)

    def draw(fig) -> None:
        axes = fig.subplots(1, len(mats), squeeze=False)[0]
        image = None
        for ax, conf in zip(axes, mats, strict=True):
            m = np.array(conf.matrix)
            image = ax.imshow(m, vmin=0.0, vmax=1.0, cmap="Blues")
            ax.set_title(
                f"{plot_label(conf.name, 18)}\n{conf.kind}, {conf.n_claims} claims", fontsize=8
            )
            if k <= 6:
                for (i, j), v in np.ndenumerate(m):
                    ax.text(
                        j,
                        i,
                        f"{v:.2f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if v > 0.6 else "#222",
                    )
            if ticks:
                ax.set_xticks(
                    range(k), ticks, rotation=45 if k > 3 else 0, ha="right" if k > 3 else "center"
                )
                ax.set_yticks(range(k), ticks)
            else:
                ax.set_xticks([])
                ax.set_yticks([])
            ax.set_xlabel("answered")
        axes[0].set_ylabel("true class")
        if image is not None:
            fig.colorbar(image, ax=list(axes), shrink=0.8, label="P(answer | true)")

    width = max(3.0, len(mats) * (k * cell + 1.2) + 1.0)
    return render_svg(draw, (min(width, 11.0), k * cell + 1.8), "cm")


def domain_heatmap(report: Report) -> str | None:
    """Accuracy of the most active sources in each domain (gray: no claims there)."""
    if report.domains is None or not report.domains.rows:
        return None
    names = report.domains.names[:_MAX_HEATMAP_DOMAINS]
    rows = [r for r in report.sources if any(d.n_claims for d in r.domains)]
    rows = sorted(rows, key=lambda r: (-r.n_claims, r.index))[:_MAX_HEATMAP_SOURCES]
    if not rows:
        return None
    m = np.array(
        [[d.accuracy if d.n_claims else np.nan for d in r.domains[: len(names)]] for r in rows]
    )
    k = report.summary.classes
    annotate = m.size <= 160

    def draw(fig) -> None:
        from matplotlib import colormaps

        ax = fig.add_subplot()
        cmap = colormaps["RdYlGn"].with_extremes(bad="#dddddd")
        image = ax.imshow(
            np.ma.masked_invalid(m),
            cmap=cmap,
            vmin=1.0 / k if k > 1 else 0.0,
            vmax=1.0,
            aspect="auto",
        )
        ax.set_xticks(
            range(len(names)), [plot_label(n, 16) for n in names], rotation=30, ha="right"
        )
        ax.set_yticks(range(len(rows)), [plot_label(r.name, 22) for r in rows])
        if annotate:
            for (i, j), v in np.ndenumerate(m):
                if not np.isnan(v):
                    ax.text(
                        j,
                        i,
                        f"{v:.2f}\n({rows[i].domains[j].n_claims})",
                        ha="center",
                        va="center",
                        fontsize=6.5,
                        color="#111",
                    )
        ax.spines[:].set_visible(False)
        fig.colorbar(image, ax=ax, shrink=0.8, label="estimated accuracy")

    height = 1.2 + 0.28 * len(rows)
    width = min(11.0, 2.5 + 0.7 * len(names))
    return render_svg(draw, (max(width, 4.5), height), "dom")
