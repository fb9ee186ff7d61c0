"""Accuracy against human labels spent, as a PNG: the picture of what routing saves.

Built on a bare matplotlib ``Figure`` with the Agg canvas, never pyplot, so plotting holds no
global state and works on a machine without a display.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .simulate import SimulationResult

__all__ = ["plot_curves", "plot_result"]


def plot_curves(
    path: Path,
    curves: Mapping[str, Sequence[tuple[float, float]]],
    points: Mapping[str, tuple[float, float]] | None = None,
    *,
    title: str = "",
) -> Path:
    """Write a PNG: each curve is (human labels, accuracy) checkpoints; ``points`` are baselines."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, curve in curves.items():
        if curve:
            xs, ys = zip(*curve)
            ax.plot(xs, ys, drawstyle="steps-post", label=name)
    for (name, (x, y)), marker in zip((points or {}).items(), "osD^v"):
        (dot,) = ax.plot(
            [x],
            [y],
            marker=marker,
            linestyle="none",
            markersize=7,
            label=f"{name} ({int(x)} labels)",
        )
        ax.axhline(
            y, color=dot.get_color(), linestyle=":", linewidth=1, alpha=0.6
        )  # the level to reach
    ax.set_xlabel("human labels spent")
    ax.set_ylabel("accuracy on items with ground truth")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png")
    return path


def plot_result(path: Path, result: SimulationResult) -> Path:
    """One simulated run's curve, with the all-labels baselines as points."""
    points = {
        f"{name} (all labels)": (b["human_labels"], b["accuracy"])
        for name, b in result.baselines.items()
    }
    return plot_curves(
        path,
        {f"{result.policy} routing": result.curve},
        points,
        title=f"Accuracy against human labels spent ({result.policy})",
    )
