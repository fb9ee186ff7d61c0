"""Reports on a truth result: what to trust, who to trust, and what to look at again.

``build_report`` collects plain data (a ``Report``); ``render_text`` prints it with rich,
``render_html`` makes one self-contained page, ``Report.to_dict`` gives JSON.
"""

from .build import (
    AgreementStats,
    ClaimRow,
    ClassRow,
    DomainRow,
    Domains,
    DomainScore,
    Histogram,
    ItemRow,
    Report,
    SourceConfusion,
    SourceQuality,
    Summary,
    build_report,
)
from .html import render_html
from .text import render_text

__all__ = [
    "AgreementStats",
    "ClaimRow",
    "ClassRow",
    "DomainRow",
    "DomainScore",
    "Domains",
    "Histogram",
    "ItemRow",
    "Report",
    "SourceConfusion",
    "SourceQuality",
    "Summary",
    "build_report",
    "render_html",
    "render_text",
]
