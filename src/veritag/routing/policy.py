"""Routing decisions as pure numpy: which tutor labels which item next, and when an item is done.

Everything here works on dense arrays the caller builds (posterior, confusion, masks), so the same
rules drive the replay simulator and a live router. A tutor is worth asking about an item by its
expected gain in P(correct) (``gain.expected_gain``) per unit of its cost; an item is done once its
posterior reaches the target, or it hit the label cap, or nobody is left to ask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..checks import level
from .gain import expected_gain

__all__ = [
    "RoutingConfig",
    "choose_tutors",
    "item_done",
    "next_item_for_tutor",
    "plan_batch",
    "tutor_confusion",
    "tutor_scores",
]


@dataclass(frozen=True)
class RoutingConfig:
    """The knobs of adaptive redundancy, and their defaults for every router.

    A live project's settings (``routing.settings.ProjectRouting``) start from these defaults
    and hand the same knobs back through ``ProjectRouting.config()``, so the simulator and a
    live project stop items by one rule.

    target: posterior (top class) at which an item needs no more labels.
    max_labels: cap on human labels per item, whatever the posterior says.
    budget: total human labels (or cost units) to spend; None is unlimited.
    min_labels: human labels every item gets before the posterior may stop it.
    gold_share: (simulator) share of the items with a known truth that are taken as gold checks
        up front, to measure tutors. Not a live project's ``gold_rate``, which is the share of
        each tutor's leases that are gold checks.
    """

    target: float = 0.95
    max_labels: int = 5
    budget: float | None = None
    min_labels: int = 1
    gold_share: float = 0.0

    def __post_init__(self) -> None:
        level("target", self.target, one=True)
        if self.min_labels < 0 or self.max_labels < max(self.min_labels, 1):
            raise ValueError(
                f"need 0 <= min_labels <= max_labels and max_labels >= 1; "
                f"got {self.min_labels}, {self.max_labels}"
            )
        if self.budget is not None and self.budget < 0:
            raise ValueError(f"budget must be >= 0; got {self.budget}")
        level("gold_share", self.gold_share, zero=True)


def item_done(
    posterior: ArrayLike,
    n_labels: ArrayLike,
    config: RoutingConfig,
    *,
    exhausted: ArrayLike | None = None,
) -> NDArray[np.bool_]:
    """Items that need no more labels: confident enough (after ``min_labels``), capped, or
    exhausted.

    ``exhausted`` marks items no tutor can still be asked about.
    """
    p = np.asarray(posterior, dtype=np.float64)
    n = np.asarray(n_labels)
    done = ((p.max(axis=1) >= config.target) & (n >= config.min_labels)) | (n >= config.max_labels)
    if exhausted is not None:
        done |= np.asarray(exhausted, dtype=bool)
    return done


def tutor_scores(
    posterior: ArrayLike,
    confusion: ArrayLike,
    available: ArrayLike,
    *,
    domains: ArrayLike | None = None,
    cost: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """Expected gain per unit cost, (items, tutors); -inf where the tutor cannot be asked.

    ``available`` is (items, tutors), False where the tutor already labeled the item or may not
    see it. ``cost`` is one positive number per tutor (default 1).
    """
    p = np.asarray(posterior, dtype=np.float64)
    c = np.asarray(confusion, dtype=np.float64)
    mask = np.asarray(available, dtype=bool)
    shape = (p.shape[0], c.shape[0] if c.ndim in (3, 4) else 0)
    if mask.shape != shape:
        raise ValueError(f"available must be (items, tutors) = {shape}; got {mask.shape}")
    cost_ = np.ones(shape[1]) if cost is None else np.asarray(cost, dtype=np.float64)
    if cost_.shape != (shape[1],) or (cost_.size and cost_.min() <= 0):
        raise ValueError(f"cost must give each of the {shape[1]} tutors a positive number")
    # Only the askable pairs are computed: as one "tutor" whose domains are the real tutors (times
    # their domains), each pair is a row of expected_gain. Sparse pools cost O(pairs), not
    # items x tutors.
    items, tutors = np.nonzero(mask)
    if c.ndim == 4:
        d = np.asarray(domains, dtype=np.int64) if domains is not None else None
        if d is None or d.shape != (shape[0],):
            raise ValueError("per-domain confusion needs each item's domain index (domains=)")
        flat, where = c.reshape(1, -1, *c.shape[2:]), tutors * c.shape[1] + d[items]
    else:
        flat, where = c[None], tutors
    out = np.full(shape, -np.inf)
    out[items, tutors] = expected_gain(p[items], flat, where)[:, 0] / cost_[tutors]
    return out


def choose_tutors(
    posterior: ArrayLike,
    confusion: ArrayLike,
    available: ArrayLike,
    *,
    domains: ArrayLike | None = None,
    cost: ArrayLike | None = None,
    done: ArrayLike | None = None,
) -> NDArray[np.int64]:
    """Per item the tutor with the highest gain per unit cost; -1 if the item is done or nobody is
    left.

    Ties go to the lowest tutor index, so the choice is deterministic.
    """
    scores = tutor_scores(posterior, confusion, available, domains=domains, cost=cost)
    best = scores.argmax(axis=1) if scores.shape[1] else np.zeros(scores.shape[0], np.int64)
    ok = (
        np.isfinite(scores[np.arange(scores.shape[0]), best])
        if scores.shape[1]
        else np.zeros(len(best), bool)
    )
    if done is not None:
        ok &= ~np.asarray(done, dtype=bool)
    return np.where(ok, best, -1).astype(np.int64)


def next_item_for_tutor(
    posterior: ArrayLike,
    confusion: ArrayLike,
    tutor: int,
    available: ArrayLike,
    *,
    domains: ArrayLike | None = None,
    done: ArrayLike | None = None,
) -> int:
    """Pull: the not-done item this tutor has not seen where its gain is highest; -1 if none.

    Only this tutor's column is computed, so a pull costs O(items), not O(items x tutors).
    """
    c = np.asarray(confusion, dtype=np.float64)
    if not 0 <= tutor < c.shape[0]:
        raise ValueError(f"tutor must lie in [0, {c.shape[0]}); got {tutor}")
    gain = expected_gain(posterior, c[tutor : tutor + 1], domains)[:, 0]
    ok = np.asarray(available, dtype=bool)
    ok = ok[:, tutor] if ok.ndim == 2 else ok
    if done is not None:
        ok = ok & ~np.asarray(done, dtype=bool)
    if not ok.any():
        return -1
    return int(np.argmax(np.where(ok, gain, -np.inf)))


def plan_batch(
    scores: ArrayLike, cost: ArrayLike, *, size: int, budget_left: float | None = None
) -> NDArray[np.int64]:
    """The items to label this round: best score first, at most ``size``, within ``budget_left``.

    ``scores`` is each item's best gain per unit cost (-inf: nobody to ask), ``cost`` what its
    chosen tutor costs. Items are taken in score order while their summed cost fits the budget;
    a dearer item that does not fit is skipped so a cheaper one after it still can.
    """
    s = np.asarray(scores, dtype=np.float64)
    c = np.asarray(cost, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    order = order[np.isfinite(s[order])]
    if budget_left is not None:
        spent = np.cumsum(c[order])
        fits = spent <= budget_left + 1e-9
        if not fits.all():
            # Greedy fill: the prefix that fits, then whatever cheaper items still fit after it.
            first = order[fits]
            left = budget_left - c[first].sum()
            rest = order[~fits]
            rest_fit = rest[np.cumsum(c[rest]) <= left + 1e-9] if rest.size else rest
            order = np.concatenate([first, rest_fit])
            order = order[np.argsort(-s[order], kind="stable")]
    return order[: max(size, 0)].astype(np.int64)


def tutor_confusion(
    item: ArrayLike,
    tutor: ArrayLike,
    label: ArrayLike,
    posterior: ArrayLike,
    *,
    n_tutors: int,
    measurable: ArrayLike | None = None,
    strength: float = 4.0,
) -> NDArray[np.float64]:
    """Each tutor's confusion (tutors, k, k), shrunk toward the pooled matrix of all tutors.

    Counts are soft (the posterior of each answered item); ``strength`` pseudo-answers per true
    class pull a tutor toward the pool, so a tutor with few answers gets the pooled matrix and
    one lucky answer cannot make anyone look perfect. ``measurable`` (per item) limits the counts
    to items that can measure a tutor: a lone answer agrees with the posterior it made itself.
    """
    p = np.asarray(posterior, dtype=np.float64)
    it, tu, la = (np.asarray(a, dtype=np.int64) for a in (item, tutor, label))
    k = p.shape[1]
    w = p[it]
    if measurable is not None:
        w = w * np.asarray(measurable, dtype=bool)[it][:, None]
    cell = tu * k + la  # (tutor, answer) rows; the k weight columns are the true classes
    counts = np.stack(
        [np.bincount(cell, weights=w[:, c], minlength=n_tutors * k) for c in range(k)], axis=1
    )
    counts = counts.reshape(n_tutors, k, k).transpose(0, 2, 1)  # (tutor, true, answer)
    pool = (
        counts.sum(axis=0) + np.eye(k) + 0.5 / k
    )  # a mild "better than chance" start for an empty pool
    pool /= pool.sum(axis=1, keepdims=True)
    shrunk = counts + strength * pool[None]
    return shrunk / shrunk.sum(axis=2, keepdims=True)
