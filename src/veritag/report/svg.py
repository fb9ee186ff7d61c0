"""Plots as inline SVG strings, drawn with matplotlib without pyplot: what both reports' plots
(``plots``, ``automation.plots``) are drawn with.

Figures are plain ``matplotlib.figure.Figure`` objects saved straight to SVG, so nothing touches
pyplot's global backend or state. Text is drawn as paths (``svg.fonttype: path``) and comments
are stripped, so no user string reaches the SVG markup as text; ``$`` is escaped so names are
never read as mathtext. Element ids get a per-figure prefix, so several SVGs can share a page.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Callable

__all__ = ["RC", "plot_label", "render_svg"]

#: matplotlib settings every figure is drawn with (text as paths, a fixed hash salt).
RC = {
    "svg.fonttype": "path",
    "svg.hashsalt": "veritag",
    "font.size": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 9,
}


def plot_label(text: str, width: int = 24) -> str:
    """A plot-safe label: shortened, and ``$`` escaped so matplotlib never parses mathtext."""
    text = text if len(text) <= width else text[: width - 1] + "\u2026"
    return text.replace("\\", "\\\\").replace("$", r"\$")


def render_svg(draw: Callable[[object], None], size: tuple[float, float], prefix: str) -> str:
    """The figure ``draw`` fills, of ``size`` inches, as one SVG element whose ids start with
    ``prefix`` (matplotlib is imported here, on the first plot)."""
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    with rc_context(RC), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing glyphs in user strings, tight-layout hints
        fig = Figure(figsize=size, layout="constrained")
        draw(fig)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<!--.*?-->|<metadata>.*?</metadata>", "", text, flags=re.DOTALL)
    text = re.sub(r'\bid="', f'id="{prefix}-', text)
    text = text.replace('href="#', f'href="#{prefix}-').replace("url(#", f"url(#{prefix}-")
    return re.sub(r"\n\s*\n", "\n", text).strip()
