"""The ``veritag audit`` report of one automation run, built from plain arrays and laid out like
the quality report: ``build`` (the data), ``html``, ``text`` and ``plots``.

An automation run accepts a model's labels above a per-slice confidence threshold
(:mod:`veritag.automation.policy`). This report answers what a project owner asks next: how much
was automated and on what evidence, whether the model's confidences mean what they say, what a
different threshold would have bought, whether a slice is served worse by the model than by the
humans, and which classes the model confuses.

``build_automation_report`` collects plain data (an :class:`AutomationReport`);
``render_automation_html`` makes one self-contained page, ``render_automation_text`` prints a
short summary with rich, ``AutomationReport.to_dict`` gives JSON.
"""

from .build import (
    AutomationData,
    AutomationReport,
    AutomationSummary,
    Calibration,
    CalibrationRow,
    ChosenPoint,
    RateCurve,
    SliceDecision,
    build_automation_report,
)
from .html import render_automation_html
from .plots import rate_accuracy_plot, reliability_diagram, slice_error_plot
from .text import render_automation_text

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
    "rate_accuracy_plot",
    "reliability_diagram",
    "render_automation_html",
    "render_automation_text",
    "slice_error_plot",
]
