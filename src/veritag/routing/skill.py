"""A tutor's skill per domain: what was measured, shrunk toward what the tutor declared.

Measured skill comes from ``truth.source_reliability`` with the item domains as groups (gold
items are pinned in the truth engine's posterior, so they count exactly). A tutor with little or
no record in a domain needs a starting belief: better in the domains they declare
(``DECLARED_ACCURACY`` on the diagonal) than elsewhere (``OTHER_ACCURACY``). The two are
blended per domain by evidence, ``(n * measured + m * prior) / (n + m)`` with ``m`` =
``PRIOR_STRENGTH`` pseudo-labels, so the prior fades as the tutor's labels in that domain arrive.
Pure numpy.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "DECLARED_ACCURACY",
    "OTHER_ACCURACY",
    "PRIOR_STRENGTH",
    "blend_skill",
    "domain_accuracy",
    "prior_confusion",
]

DECLARED_ACCURACY = 0.85
OTHER_ACCURACY = 0.7
PRIOR_STRENGTH = 5.0


def prior_confusion(
    declared: ArrayLike,
    n_classes: int,
    *,
    on: float = DECLARED_ACCURACY,
    off: float = OTHER_ACCURACY,
) -> NDArray[np.float64]:
    """(tutors, domains, k, k): ``on`` (declared) or ``off`` on the diagonal, the rest spread
    evenly."""
    mask = np.asarray(declared, dtype=bool)
    k = n_classes
    acc = np.where(mask, on, off)[..., None, None]
    eye = np.eye(k)
    return acc * eye + (1.0 - acc) * (1.0 - eye) / max(k - 1, 1)


def blend_skill(
    measured: ArrayLike, n_claims: ArrayLike, prior: ArrayLike, *, strength: float = PRIOR_STRENGTH
) -> NDArray[np.float64]:
    """Per tutor and domain: the measured matrix weighted by its claims, the prior by
    ``strength``."""
    c = np.asarray(measured, dtype=np.float64)
    n = np.asarray(n_claims, dtype=np.float64)[..., None, None]
    p = np.asarray(prior, dtype=np.float64)
    return (n * c + strength * p) / (n + strength)


def domain_accuracy(confusion: ArrayLike) -> NDArray[np.float64]:
    """Expected accuracy per tutor and domain with every class equally likely: the mean diagonal."""
    c = np.asarray(confusion, dtype=np.float64)
    return np.trace(c, axis1=-2, axis2=-1) / c.shape[-1]
