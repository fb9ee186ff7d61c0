"""Inter-annotator agreement over COO claims: Cohen's kappa, Fleiss' kappa, Krippendorff's alpha.

Agreement tells a project whether its labels carry signal before any truth inference runs, so
the numbers must match the published definitions exactly (the tests check them against reference
packages and worked examples) and must scale to millions of claims: everything is counted with
``bincount``/``unique``, never looped over claim by claim.

Claims are COO arrays: claim ``j`` says rater ``sources[j]`` gave class ``labels[j]`` (an index in
``[0, n_classes)``) to item ``items[j]``. Missing data are simply absent claims. Agreement that is
undefined (no pairable items, or a single class used throughout so that no disagreement is
expected by chance) comes back as NaN; malformed input raises ``ValueError``.
"""

from __future__ import annotations

import operator
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "cohen_kappa",
    "fleiss_kappa",
    "fleiss_kappa_table",
    "krippendorff_alpha",
    "pairwise_cohen_kappa",
]

KappaWeights = Literal["linear", "quadratic"] | None
AlphaLevel = Literal["nominal", "ordinal", "interval", "ratio"]

_LEVELS = ("nominal", "ordinal", "interval", "ratio")


# --- input checks -----------------------------------------------------------------------------


def _size(value: int, name: str) -> int:
    """A non-negative integer size, or a clear error (sizes bound every index check)."""
    try:
        size = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if size < 0:
        raise ValueError(f"{name} must be >= 0, got {size}")
    return size


def _indices(
    values: ArrayLike, name: str, size: int | None = None, size_name: str = ""
) -> NDArray[np.int64]:
    """A 1-d int64 index array in ``[0, size)``; floats are refused rather than truncated."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    low = int(arr.min())
    if low < 0:
        raise ValueError(f"{name} must be non-negative, found {low}")
    if size is not None:
        high = int(arr.max())
        if high >= size:
            raise ValueError(f"{name} must be < {size_name}={size}, found {high}")
    return arr


def _same_length(**arrays: NDArray[np.int64]) -> None:
    """Claims are aligned arrays; a length mismatch means the caller mixed up inputs."""
    lengths = {name: arr.size for name, arr in arrays.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{name}={n}" for name, n in lengths.items())
        raise ValueError(f"claim arrays must have the same length, got {shown}")


def _sorted_rated_claims(
    items: ArrayLike,
    sources: ArrayLike,
    labels: ArrayLike,
    n_items: int,
    n_sources: int | None,
    n_classes: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Validated claims sorted by (item, source); a rater may label an item at most once."""
    item = _indices(items, "items", n_items, "n_items")
    source = _indices(sources, "sources", n_sources, "n_sources")
    label = _indices(labels, "labels", n_classes, "n_classes")
    _same_length(items=item, sources=source, labels=label)
    order = np.lexsort((source, item))
    item, source, label = item[order], source[order], label[order]
    repeat = (item[1:] == item[:-1]) & (source[1:] == source[:-1])
    if repeat.any():
        j = int(np.flatnonzero(repeat)[0])
        raise ValueError(
            f"source {source[j]} labels item {item[j]} more than once; "
            "each (item, source) pair may appear in at most one claim"
        )
    return item, source, label


# --- shared counting --------------------------------------------------------------------------


def _later_partners(
    group: NDArray[np.int64], n_groups: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Every pair of positions ``a < b`` in the same group, for ``group`` sorted ascending.

    Pairs are built with ``repeat`` instead of a loop over groups; their number is
    ``sum(size * (size - 1) / 2)``, the work any pairwise statistic has to do anyway.
    """
    end = np.cumsum(np.bincount(group, minlength=n_groups))
    reps = end[group] - np.arange(group.size) - 1
    first = np.repeat(np.arange(group.size), reps)
    step = np.arange(first.size) - np.repeat(np.cumsum(reps) - reps, reps)
    return first, first + 1 + step


def _item_class_counts(
    item: NDArray[np.int64], label: NDArray[np.int64], n_items: int, n_classes: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]:
    """Sparse item x class counts over pairable items (>= 2 claims), sorted by item.

    Returns (entry item, entry class, entry count, claims per item). Sparse, so memory stays
    O(claims) however many classes there are.
    """
    per_item = np.bincount(item, minlength=n_items)
    keep = per_item[item] >= 2
    key, count = np.unique(item[keep] * n_classes + label[keep], return_counts=True)
    return key // n_classes, key % n_classes, count.astype(np.float64), per_item


def _kappa_weight_matrix(weights: KappaWeights, n_classes: int) -> NDArray[np.float64] | None:
    """Disagreement weights as in sklearn; None means nominal (0 on the diagonal, 1 elsewhere)."""
    if weights is None:
        return None
    if weights not in ("linear", "quadratic"):
        raise ValueError(f"weights must be None, 'linear' or 'quadratic', got {weights!r}")
    grid = np.arange(n_classes, dtype=np.float64)
    distance = np.abs(grid[:, None] - grid[None, :])
    return distance if weights == "linear" else distance**2


def _grouped_kappa(
    group: NDArray[np.int64],
    first: NDArray[np.int64],
    second: NDArray[np.int64],
    n_groups: int,
    n_classes: int,
    weight: NDArray[np.float64] | None,
) -> NDArray[np.float64]:
    """Cohen's kappa for many groups of aligned label pairs at once.

    kappa = 1 - sum(w * observed) / sum(w * expected), expected = outer(rows, cols) / n, with the
    per-group margins counted by one ``bincount``. Denominators are kept as sums of whole numbers
    so that "no disagreement expected" is detected exactly.
    """
    n = np.bincount(group, minlength=n_groups).astype(np.float64)
    cells = n_groups * n_classes
    rows = np.bincount(group * n_classes + first, minlength=cells).reshape(n_groups, n_classes)
    cols = np.bincount(group * n_classes + second, minlength=cells).reshape(n_groups, n_classes)
    if weight is None:
        agree = np.bincount(group, weights=(first == second).astype(np.float64), minlength=n_groups)
        observed = n - agree
        expected = n * n - (rows * cols).sum(axis=1)  # n times the chance disagreement
    else:
        observed = np.bincount(group, weights=weight[first, second], minlength=n_groups)
        expected = ((rows @ weight) * cols).sum(axis=1)
    kappa = np.full(n_groups, np.nan)
    defined = expected > 0
    kappa[defined] = 1.0 - n[defined] * observed[defined] / expected[defined]
    return kappa


# --- Cohen's kappa ----------------------------------------------------------------------------


def cohen_kappa(
    labels_a: ArrayLike,
    labels_b: ArrayLike,
    *,
    n_classes: int | None = None,
    weights: KappaWeights = None,
) -> float:
    """Cohen's kappa between two raters on the same items, chance-corrected agreement.

    Parameters
    ----------
    labels_a, labels_b : array_like of int
        Aligned class indices: position ``j`` is the same item in both (pass only items both
        rated).
    n_classes : int, optional
        Number of classes; defaults to the largest label + 1. Matters only for weighted kappa.
    weights : {None, "linear", "quadratic"}
        Disagreement weights, as in ``sklearn.metrics.cohen_kappa_score``: class indices are
        taken as ordered positions, so ``|i - j|`` or ``(i - j) ** 2``.

    Returns
    -------
    float
        Kappa, or NaN when undefined (no items, or no disagreement expected by chance).
    """
    a = _indices(labels_a, "labels_a")
    b = _indices(labels_b, "labels_b")
    _same_length(labels_a=a, labels_b=b)
    if n_classes is None:
        n_classes = int(max(a.max(), b.max())) + 1 if a.size else 1
    n_classes = _size(n_classes, "n_classes")
    _indices(a, "labels_a", n_classes, "n_classes")
    _indices(b, "labels_b", n_classes, "n_classes")
    weight = _kappa_weight_matrix(weights, n_classes)
    group = np.zeros(a.size, dtype=np.int64)
    return float(_grouped_kappa(group, a, b, 1, n_classes, weight)[0])


def pairwise_cohen_kappa(
    items: ArrayLike,
    sources: ArrayLike,
    labels: ArrayLike,
    *,
    n_items: int,
    n_sources: int,
    n_classes: int,
    weights: KappaWeights = None,
) -> NDArray[np.float64]:
    """Cohen's kappa for every pair of raters, over the items both of them labelled.

    All overlapping pairs are computed together: claim pairs within each item are enumerated
    once and their contingency margins counted with ``bincount`` per rater pair, so the cost is
    the number of co-labelled claim pairs, not ``n_sources ** 2`` separate passes.

    Parameters
    ----------
    items, sources, labels : array_like of int
        COO claims; each (item, source) pair at most once.
    n_items, n_sources, n_classes : int
        Sizes that bound the indices.
    weights : {None, "linear", "quadratic"}
        As in :func:`cohen_kappa`.

    Returns
    -------
    ndarray, shape (n_sources, n_sources)
        Symmetric kappa matrix. NaN where two raters share fewer than 2 items, where kappa is
        undefined, and on the diagonal (a rater is not compared with itself, so a plain
        ``nanmean`` of the matrix is the mean pairwise kappa).
    """
    n_items = _size(n_items, "n_items")
    n_sources = _size(n_sources, "n_sources")
    n_classes = _size(n_classes, "n_classes")
    weight = _kappa_weight_matrix(weights, n_classes)
    item, source, label = _sorted_rated_claims(
        items, sources, labels, n_items, n_sources, n_classes
    )
    first, second = _later_partners(item, n_items)  # sorted by source within item: sa < sb
    pair_key = source[first] * n_sources + source[second]
    keys, group = np.unique(pair_key, return_inverse=True)
    group = group.reshape(-1)
    kappa = _grouped_kappa(group, label[first], label[second], keys.size, n_classes, weight)
    kappa[np.bincount(group, minlength=keys.size) < 2] = np.nan
    out = np.full((n_sources, n_sources), np.nan)
    source_a, source_b = keys // n_sources, keys % n_sources
    out[source_a, source_b] = kappa
    out[source_b, source_a] = kappa
    return out


# --- Fleiss' kappa ----------------------------------------------------------------------------


def _fleiss_from_counts(
    entry_item: NDArray[np.int64],
    entry_class: NDArray[np.int64],
    count: NDArray[np.float64],
    per_item: NDArray[np.int64],
    n_classes: int,
) -> float:
    """Fleiss' kappa from sparse (item, class, count) entries; the core of both entry points.

    P_i = sum_k n_ik (n_ik - 1) / (n_i (n_i - 1)) averaged over items with n_i >= 2; P_e from
    the pooled class proportions over those items. Written as ratios of whole-number sums so
    that the undefined case (one class only, P_e = 1) is detected exactly.
    """
    n_items = per_item.size
    pairable = per_item >= 2
    if not pairable.any():
        return float("nan")
    keep = pairable[entry_item]
    entry_item, entry_class, count = entry_item[keep], entry_class[keep], count[keep]
    agree = np.bincount(entry_item, weights=count * (count - 1), minlength=n_items)
    raters = per_item[pairable].astype(np.float64)
    p_bar = float(np.mean(agree[pairable] / (raters * (raters - 1))))
    totals = np.bincount(entry_class, weights=count, minlength=n_classes)
    total = totals.sum()
    chance = float((totals**2).sum())
    denominator = total * total - chance
    if denominator <= 0:
        return float("nan")
    return float((p_bar * total * total - chance) / denominator)


def fleiss_kappa(items: ArrayLike, labels: ArrayLike, *, n_items: int, n_classes: int) -> float:
    """Fleiss' kappa from COO claims, allowing a different number of raters per item.

    Raters need not be identified (only how many gave each class), so no ``sources`` argument.
    Items with fewer than 2 claims cannot show agreement and are left out, including from the
    pooled class proportions.

    Returns
    -------
    float
        Kappa; NaN when no item has 2 claims or only one class is used on pairable items.
    """
    n_items = _size(n_items, "n_items")
    n_classes = _size(n_classes, "n_classes")
    item = _indices(items, "items", n_items, "n_items")
    label = _indices(labels, "labels", n_classes, "n_classes")
    _same_length(items=item, labels=label)
    entry_item, entry_class, count, per_item = _item_class_counts(item, label, n_items, n_classes)
    return _fleiss_from_counts(entry_item, entry_class, count, per_item, n_classes)


def fleiss_kappa_table(counts: ArrayLike) -> float:
    """Fleiss' kappa from the classic items x classes table of rating counts.

    Rows may have different totals (same generalisation as :func:`fleiss_kappa`; rows with
    fewer than 2 ratings are left out); with equal totals this is the textbook statistic of
    Fleiss (1971).
    """
    table = np.asarray(counts)
    if table.ndim != 2:
        raise ValueError(f"counts must be a 2-d items x classes table, got shape {table.shape}")
    if table.dtype.kind not in "iuf":
        raise ValueError(f"counts must be numeric, got dtype {table.dtype}")
    table = table.astype(np.float64)
    if table.size and (
        not np.isfinite(table).all() or table.min() < 0 or (table != np.round(table)).any()
    ):
        raise ValueError("counts must be non-negative whole numbers")
    entry_item, entry_class = np.nonzero(table)
    per_item = table.sum(axis=1).astype(np.int64)
    return _fleiss_from_counts(
        entry_item.astype(np.int64),
        entry_class.astype(np.int64),
        table[entry_item, entry_class],
        per_item,
        table.shape[1],
    )


# --- Krippendorff's alpha ---------------------------------------------------------------------


def _alpha_distance(
    level: str, marginals: NDArray[np.float64], values: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Squared distance delta^2(c, k) between classes for Krippendorff's alpha."""
    if level == "ordinal":
        # delta(c, k) = sum_{g=c..k} n_g - (n_c + n_k) / 2, from the pairable marginals.
        index = np.arange(marginals.size)
        low = np.minimum(index[:, None], index[None, :])
        high = np.maximum(index[:, None], index[None, :])
        cumulative = np.cumsum(marginals)
        between = cumulative[high] - cumulative[low] + marginals[low]
        return (between - (marginals[:, None] + marginals[None, :]) / 2) ** 2
    diff = values[:, None] - values[None, :]
    if level == "interval":
        return diff**2
    total = values[:, None] + values[None, :]  # ratio
    ratio = np.divide(diff, total, out=np.zeros_like(diff), where=total != 0)
    return ratio**2


def krippendorff_alpha(
    items: ArrayLike,
    sources: ArrayLike,
    labels: ArrayLike,
    *,
    n_items: int,
    n_classes: int,
    level: AlphaLevel = "nominal",
    values: ArrayLike | None = None,
) -> float:
    """Krippendorff's alpha, built from the coincidence matrix; missing data need no special care.

    alpha = 1 - (n - 1) * sum_ck o_ck d_ck / sum_ck n_c n_k d_ck, where ``o`` counts pairable
    values within items, each item weighted 1 / (m_u - 1), and ``n_c`` are its marginals.

    Parameters
    ----------
    items, sources, labels : array_like of int
        COO claims; each (item, source) pair at most once. ``sources`` only serves that check.
    n_items, n_classes : int
        Sizes that bound the indices.
    level : {"nominal", "ordinal", "interval", "ratio"}
        Metric. Ordinal uses class order and Krippendorff's rank distance from the marginals;
        interval and ratio use ``values``.
    values : array_like of float, optional
        Numeric value of each class (length ``n_classes``) for interval/ratio; defaults to the
        class index. Not accepted for nominal/ordinal, where it would be silently meaningless.

    Returns
    -------
    float
        Alpha; NaN when no disagreement is expected (no pairable item, or one value throughout).
    """
    if level not in _LEVELS:
        raise ValueError(f"level must be one of {', '.join(_LEVELS)}; got {level!r}")
    n_items = _size(n_items, "n_items")
    n_classes = _size(n_classes, "n_classes")
    if values is None:
        value = np.arange(n_classes, dtype=np.float64)
    elif level in ("nominal", "ordinal"):
        raise ValueError(f"values apply to the interval and ratio levels only, not {level!r}")
    else:
        value = np.asarray(values, dtype=np.float64)
        if value.shape != (n_classes,) or not np.isfinite(value).all():
            raise ValueError(f"values must be {n_classes} finite numbers, one per class")
        if level == "ratio" and value.size and value.min() < 0:
            raise ValueError("ratio values must be non-negative")
    item, _, label = _sorted_rated_claims(items, sources, labels, n_items, None, n_classes)
    entry_item, entry_class, count, per_item = _item_class_counts(item, label, n_items, n_classes)
    share = 1.0 / (per_item[entry_item] - 1)
    marginals = np.bincount(entry_class, weights=count, minlength=n_classes)
    n = float(marginals.sum())
    same = np.bincount(entry_class, weights=count * (count - 1) * share, minlength=n_classes)
    if level == "nominal":
        # delta = 1 off the diagonal: only the diagonal of o and the marginals are needed.
        observed = n - float(same.sum())
        expected = n * n - float((marginals**2).sum())
    else:
        first, second = _later_partners(entry_item, n_items)
        off = np.bincount(
            entry_class[first] * n_classes + entry_class[second],
            weights=count[first] * count[second] * share[first],
            minlength=n_classes * n_classes,
        ).reshape(n_classes, n_classes)
        coincidence = off + off.T + np.diag(same)
        distance = _alpha_distance(level, marginals, value)
        observed = float((coincidence * distance).sum())
        expected = float(marginals @ distance @ marginals)
    if not expected > 0:
        return float("nan")
    return 1.0 - (n - 1.0) * observed / expected
