"""Number formatting shared by the text and HTML renderers of both reports; only the "missing"
and "tiny" marks differ (``TEXT``, ``HTML``)."""

from __future__ import annotations

import math

from .build import DomainScore

__all__ = ["HTML", "TEXT", "Formats"]


class Formats:
    """Formatters writing ``missing`` for an absent value and ``tiny`` for a vanishing
    probability."""

    def __init__(self, missing: str, tiny: str) -> None:
        self.missing = missing
        self.tiny = tiny

    def num(self, value: float | None, digits: int = 3) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return self.missing
        return f"{value:.{digits}f}"

    def prob(self, value: float) -> str:
        """A probability that may be vanishingly small: no misleading "0.000"."""
        if math.isnan(value):
            return self.missing
        return self.tiny if 0 < value < 0.0005 else f"{value:.3f}"

    def domain_cell(self, score: DomainScore) -> str:
        return (
            f"{self.num(score.accuracy, 2)} ({score.n_claims})" if score.n_claims else self.missing
        )

    def pct(self, value: float | None) -> str:
        if value is None or math.isnan(value):
            return self.missing
        return f"{100 * value:.1f}%"


#: For a terminal (rich tables, user strings passed as ``Text``).
TEXT = Formats(missing="-", tiny="<0.001")
#: For HTML pages: the marks are entities.
HTML = Formats(missing="&ndash;", tiny="&lt;0.001")
