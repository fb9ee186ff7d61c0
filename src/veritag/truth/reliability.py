"""How reliable each source is, overall and per domain, measured against a posterior.

Routing needs a tutor's confusion matrix *in the item's domain*; a report needs the same per
slice. Thin slices are shrunk toward the source's overall matrix, so three lucky answers in a
new domain do not make a tutor look perfect there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .claims import Claims

__all__ = ["Reliability", "source_reliability"]


@dataclass(frozen=True)
class Reliability:
    """Per source x group.

    Attributes
    ----------
    confusion : ndarray of shape (n_sources, n_groups, n_classes, n_classes)
        ``confusion[s, g, k, l]`` = P(source s answers l | true class k, group g), shrunk toward
        the source's overall matrix by ``strength`` pseudo-claims.
    accuracy : ndarray of shape (n_sources, n_groups)
        Expected share of the source's answers that are right (NaN without claims), unshrunk.
    n_claims : ndarray of shape (n_sources, n_groups)
    """

    confusion: NDArray[np.float64]
    accuracy: NDArray[np.float64]
    n_claims: NDArray[np.int64]


def source_reliability(
    claims: Claims,
    posterior: ArrayLike,
    *,
    groups: ArrayLike | None = None,
    n_groups: int | None = None,
    strength: float = 2.0,
) -> Reliability:
    """Measure every source against ``posterior``, per group of items (e.g. a domain column).

    A model's claims count as its top class. ``groups`` gives each item a group index; without
    it there is one group.
    """
    post = np.asarray(posterior, dtype=np.float64)
    k, s = claims.n_classes, claims.n_sources
    if post.shape != (claims.n_items, k):
        raise ValueError(f"posterior must have shape ({claims.n_items}, {k}); got {post.shape}")
    if strength < 0:
        raise ValueError("strength must be >= 0")
    if groups is None:
        group = np.zeros(claims.n_items, np.int64)
        n_groups = 1
    else:
        group = np.asarray(groups, dtype=np.int64)
        if group.shape != (claims.n_items,) or (group.size and group.min() < 0):
            raise ValueError("groups must give each item a non-negative group index")
        n_groups = int(n_groups if n_groups is not None else (group.max() + 1 if group.size else 1))
        if group.size and group.max() >= n_groups:
            raise ValueError(f"groups must lie in [0, n_groups={n_groups})")
    hard = claims.hard_only()
    cell = (hard.source * n_groups + group[hard.item]) * k + hard.label  # (source, group, answer)
    size = s * n_groups * k
    counts = np.stack(
        [np.bincount(cell, weights=post[hard.item, c], minlength=size) for c in range(k)], axis=1
    )
    counts = counts.reshape(s, n_groups, k, k).transpose(
        0, 1, 3, 2
    )  # (source, group, true k, answer l)
    overall = counts.sum(axis=1, keepdims=True)
    row = overall.sum(axis=3, keepdims=True)
    overall = np.where(row > 0, (overall + 1e-2) / (row + k * 1e-2), 1.0 / k)
    shrunk = counts + strength * overall
    mass = shrunk.sum(axis=3, keepdims=True)
    # With strength 0 a slice without claims has no mass: it keeps the overall matrix, not 0/0.
    confusion = np.where(mass > 0, shrunk / np.where(mass > 0, mass, 1.0), overall)
    total = counts.sum(axis=(2, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(total > 0, np.trace(counts, axis1=2, axis2=3) / total, np.nan)
    n_claims = np.bincount(
        hard.source * n_groups + group[hard.item], minlength=s * n_groups
    ).reshape(s, n_groups)
    return Reliability(confusion, accuracy, n_claims)
