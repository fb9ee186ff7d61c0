"""Majority vote over COO claims: arrays in, arrays out, no Python loop over claims."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["VoteResult", "majority_vote", "multilabel_vote"]

#: Above this many item x class cells, votes are counted per distinct (item, label) pair instead.
_DENSE_CELLS = 10_000_000


@dataclass(frozen=True)
class VoteResult:
    """Per item: the winning label (-1 where nobody voted), its vote share, and the vote count."""

    label: NDArray[np.int64]
    confidence: NDArray[np.float64]
    n_votes: NDArray[np.float64]


def _check(items: ArrayLike, labels: ArrayLike, n_items: int, weights: ArrayLike | None):
    item = np.asarray(items, dtype=np.int64)
    label = np.asarray(labels, dtype=np.int64)
    if item.shape != label.shape or item.ndim != 1:
        raise ValueError("items and labels must be 1-d arrays of the same length")
    if item.size and (item.min() < 0 or item.max() >= n_items or label.min() < 0):
        raise ValueError("item indices must lie in [0, n_items) and labels must be >= 0")
    weight = np.ones(item.size) if weights is None else np.asarray(weights, dtype=np.float64)
    if weight.shape != item.shape or (weight.size and weight.min() < 0):
        raise ValueError("weights must be non-negative, one per claim")
    return item, label, weight


def majority_vote(
    items: ArrayLike, labels: ArrayLike, *, n_items: int, weights: ArrayLike | None = None
) -> VoteResult:
    """The most voted label per item; ties go to the smallest label index.

    With few classes the votes go into a dense items x classes table; with many (free-text
    answers can have as many classes as claims) they are counted per distinct (item, label)
    pair, so memory stays O(claims) either way.
    """
    item, label, weight = _check(items, labels, n_items, weights)
    n_votes = np.bincount(item, weights=weight, minlength=n_items)
    winner = np.full(n_items, -1, dtype=np.int64)
    share = np.zeros(n_items)
    if item.size == 0:
        return VoteResult(winner, share, n_votes)
    span = int(label.max()) + 1
    if n_items * span <= _DENSE_CELLS:
        # Few classes: one items x classes count table; on ties argmax takes the first (smallest).
        counts = np.bincount(item * span + label, weights=weight, minlength=n_items * span).reshape(
            n_items, span
        )
        best_label = counts.argmax(axis=1)
        best_votes = counts[np.arange(n_items), best_label]
        voted = n_votes > 0
        winner[voted] = best_label[voted]
        share[voted] = best_votes[voted] / n_votes[voted]
        return VoteResult(winner, share, n_votes)
    pair, inverse = np.unique(item * span + label, return_inverse=True)
    totals = np.bincount(inverse, weights=weight)
    pair_item, pair_label = pair // span, pair % span
    # Sort by item, then by votes descending, then label ascending: the first row per item wins.
    order = np.lexsort((pair_label, -totals, pair_item))
    first = np.ones(order.size, dtype=bool)
    first[1:] = pair_item[order[1:]] != pair_item[order[:-1]]
    best = order[first]
    best = best[n_votes[pair_item[best]] > 0]  # only zero-weight votes: nobody voted
    winner[pair_item[best]] = pair_label[best]
    share[pair_item[best]] = totals[best] / n_votes[pair_item[best]]
    return VoteResult(winner, share, n_votes)


def multilabel_vote(
    items: ArrayLike, labels: ArrayLike, voters: ArrayLike, *, n_items: int, n_labels: int
) -> tuple[NDArray[np.bool_], NDArray[np.float64], NDArray[np.float64]]:
    """Keep a label where more than half of an item's voters chose it.

    ``items``/``labels`` list each (item, chosen label) pair; ``voters`` is the number of claims
    per item. Returns the chosen matrix, the mean agreement per item, and ``voters``.
    """
    item, label, _ = _check(items, labels, n_items, None)
    votes = np.asarray(voters, dtype=np.float64)
    if label.size and label.max() >= n_labels:
        raise ValueError("labels must lie in [0, n_labels)")
    if votes.shape != (n_items,):
        raise ValueError("voters must give one count per item")
    counts = np.bincount(item * n_labels + label, minlength=n_items * n_labels).reshape(
        n_items, n_labels
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(votes[:, None] > 0, counts / votes[:, None], 0.0)
    chosen = frac > 0.5
    agreement = np.where(votes > 0, np.maximum(frac, 1 - frac).mean(axis=1), 0.0)
    return chosen, agreement, votes
