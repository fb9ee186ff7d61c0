"""Categorical claims as COO arrays: the one input shape every truth method reads.

A human claim is ``(item, source, label)``. A model claim is ``(item, source, probability row)``:
keeping the whole row, not its argmax, lets the engine learn how far each model's confidence can
be trusted. Indices are dense ints; callers (the store, the adapters) own the id mappings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Claims", "check_gold", "first_appearance"]


def _ints(values: ArrayLike | None, name: str) -> NDArray[np.int64]:
    arr = np.zeros(0, np.int64) if values is None else np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array")
    if arr.size and not np.issubdtype(arr.dtype, np.integer) and not np.all(np.mod(arr, 1) == 0):
        raise ValueError(f"{name} must hold integer indices")
    return arr.astype(np.int64, copy=False)


def _in_range(values: NDArray[np.int64], size: int, name: str, size_name: str) -> None:
    if values.size and (values.min() < 0 or values.max() >= size):
        raise ValueError(
            f"{name} must lie in [0, {size_name}={size}); got {values.min()}..{values.max()}"
        )


@dataclass(frozen=True)
class Claims:
    """Hard claims ``item/source/label`` plus soft claims ``prob_item/prob_source/probs``.

    Attributes
    ----------
    item, source, label : ndarray of shape (n_hard,)
    prob_item, prob_source : ndarray of shape (n_soft,)
    probs : ndarray of shape (n_soft, n_classes), rows summing to 1
    n_items, n_sources, n_classes : int
    """

    item: NDArray[np.int64]
    source: NDArray[np.int64]
    label: NDArray[np.int64]
    prob_item: NDArray[np.int64]
    prob_source: NDArray[np.int64]
    probs: NDArray[np.float64]
    n_items: int
    n_sources: int
    n_classes: int

    @classmethod
    def from_arrays(
        cls,
        item: ArrayLike,
        source: ArrayLike,
        label: ArrayLike,
        *,
        n_items: int | None = None,
        n_sources: int | None = None,
        n_classes: int | None = None,
        prob_item: ArrayLike | None = None,
        prob_source: ArrayLike | None = None,
        probs: ArrayLike | None = None,
    ) -> Claims:
        """Validate and build; sizes default to one more than the largest index seen."""
        it, so, la = _ints(item, "item"), _ints(source, "source"), _ints(label, "label")
        if not (it.shape == so.shape == la.shape):
            raise ValueError(
                f"item, source and label must have the same length; got {it.size}, {so.size}, "
                f"{la.size}"
            )
        pit, pso = _ints(prob_item, "prob_item"), _ints(prob_source, "prob_source")
        if probs is None:
            if pit.size or pso.size:
                raise ValueError("prob_item and prob_source need probs")
            width = n_classes if n_classes is not None else (int(la.max()) + 1 if la.size else 1)
            pr = np.zeros((0, width))
        else:
            pr = np.asarray(probs, dtype=np.float64)
            if pr.ndim != 2 or not (pit.size == pso.size == pr.shape[0]):
                raise ValueError(
                    "probs must be a 2-d array with one row per prob_item/prob_source entry"
                )
        n_items = _id_count(n_items, it, pit)
        n_sources = _id_count(n_sources, so, pso)
        if n_classes is None:
            n_classes = max(
                int(la.max()) + 1 if la.size else 0, pr.shape[1] if pr.shape[0] else 0, 1
            )
        if pr.shape[0] and pr.shape[1] != n_classes:
            raise ValueError(
                f"probs rows have {pr.shape[1]} columns but there are {n_classes} classes"
            )
        if pr.size:
            if not np.all(np.isfinite(pr)) or pr.min() < 0:
                raise ValueError("probs must be finite and non-negative")
            sums = pr.sum(axis=1)
            if np.any(sums <= 0):
                raise ValueError(f"probs row {int(np.argmax(sums <= 0))} sums to 0")
            pr = pr / sums[:, None]
        pr = pr.reshape(-1, n_classes)
        _in_range(it, n_items, "item", "n_items")
        _in_range(pit, n_items, "prob_item", "n_items")
        _in_range(so, n_sources, "source", "n_sources")
        _in_range(pso, n_sources, "prob_source", "n_sources")
        _in_range(la, n_classes, "label", "n_classes")
        return cls(it, so, la, pit, pso, pr, int(n_items), int(n_sources), int(n_classes))

    @property
    def n_claims(self) -> int:
        return int(self.item.size + self.prob_item.size)

    def claims_per_item(self) -> NDArray[np.float64]:
        """How many claims (hard and soft) each item has."""
        return np.bincount(
            np.concatenate([self.item, self.prob_item]), minlength=self.n_items
        ).astype(np.float64)

    def drop_soft(self) -> Claims:
        """Only the hard (human-style) claims."""
        return Claims(
            self.item,
            self.source,
            self.label,
            self.prob_item[:0],
            self.prob_source[:0],
            self.probs[:0],
            self.n_items,
            self.n_sources,
            self.n_classes,
        )

    def hard_only(self) -> Claims:
        """The same claims with each model row replaced by its argmax: what a voting method sees."""
        if not self.prob_item.size:
            return self
        return Claims(
            np.concatenate([self.item, self.prob_item]),
            np.concatenate([self.source, self.prob_source]),
            np.concatenate([self.label, self.probs.argmax(axis=1)]),
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros((0, self.n_classes)),
            self.n_items,
            self.n_sources,
            self.n_classes,
        )


def _id_count(given: int | None, *arrays: NDArray[np.int64]) -> int:
    """The number of ids: ``given`` if set, else one past the largest in ``arrays``."""
    seen = max((int(a.max()) + 1 for a in arrays if a.size), default=0)
    if given is None:
        return seen
    if given < 0:
        raise ValueError("sizes must be non-negative")
    return int(given)


def check_gold(
    claims: Claims, gold_items: ArrayLike | None, gold_labels: ArrayLike | None
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Gold items and labels as validated index arrays (empty when neither is given)."""
    if gold_items is None and gold_labels is None:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if gold_items is None or gold_labels is None:
        raise ValueError("gold_items and gold_labels must be given together")
    gi = _ints(np.ravel(gold_items), "gold_items")
    gl = _ints(np.ravel(gold_labels), "gold_labels")
    if gi.shape != gl.shape:
        raise ValueError("gold_items and gold_labels must have the same length")
    _in_range(gi, claims.n_items, "gold_items", "n_items")
    _in_range(gl, claims.n_classes, "gold_labels", "n_classes")
    if np.unique(gi).size != gi.size:
        raise ValueError("an item has more than one gold label")
    return gi, gl


def first_appearance(
    values: NDArray[np.int64], size: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The distinct values by first appearance, and each value's rank among them (-1: absent)."""
    uniq, first = np.unique(values, return_index=True)
    order = uniq[np.argsort(first, kind="stable")]
    rank = np.full(size, -1, np.int64)
    rank[order] = np.arange(order.size)
    return order, rank
