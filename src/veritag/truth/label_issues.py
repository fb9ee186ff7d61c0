"""Labels that are probably wrong: resolved labels the evidence doubts, and human claims that
the other evidence contradicts.

A claim is judged out of sample: its own vote is taken back out of the item's posterior
before asking how likely its label is, so a lone confident worker cannot vouch for itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .claims import Claims

__all__ = ["ClaimIssues", "ItemIssues", "claim_issues", "item_issues"]

_TINY = 1e-300


@dataclass(frozen=True)
class ItemIssues:
    """Items ranked worst first.

    Attributes
    ----------
    order : item indices, lowest quality first
    quality : P(the given label is right) per item (index by item, not by rank)
    suggested : the most probable class per item
    is_issue : quality below the threshold and the suggestion differs from the given label
    """

    order: NDArray[np.int64]
    quality: NDArray[np.float64]
    suggested: NDArray[np.int64]
    is_issue: NDArray[np.bool_]


@dataclass(frozen=True)
class ClaimIssues:
    """Hard claims ranked worst first (indices into ``claims.item``/``source``/``label``).

    Attributes
    ----------
    order : claim indices, lowest quality first
    quality : P(the claim's label is right | every other claim and gold), per claim
    is_issue : quality below the threshold
    """

    order: NDArray[np.int64]
    quality: NDArray[np.float64]
    is_issue: NDArray[np.bool_]


def item_issues(
    posterior: ArrayLike,
    labels: ArrayLike | None = None,
    *,
    pred_probs: ArrayLike | None = None,
    threshold: float = 0.5,
) -> ItemIssues:
    """Rank items by how likely their label is right.

    ``labels`` defaults to the posterior's own argmax (then quality is the confidence). Pass
    ``pred_probs`` (out-of-sample model probabilities) when the model was *not* a source of the
    posterior: the two are multiplied as independent evidence and renormalised.
    """
    post = np.asarray(posterior, dtype=np.float64)
    if post.ndim != 2:
        raise ValueError("posterior must be a 2-d array (items x classes)")
    if pred_probs is not None:
        pp = np.asarray(pred_probs, dtype=np.float64)
        if pp.shape != post.shape:
            raise ValueError(f"pred_probs must have shape {post.shape}; got {pp.shape}")
        post = post * pp
        post = post / np.maximum(post.sum(axis=1, keepdims=True), _TINY)
    given = post.argmax(axis=1) if labels is None else np.asarray(labels, dtype=np.int64)
    if given.shape != (post.shape[0],) or (
        given.size and (given.min() < 0 or given.max() >= post.shape[1])
    ):
        raise ValueError("labels must give one class index per item")
    quality = post[np.arange(post.shape[0]), given]
    suggested = post.argmax(axis=1)
    order = np.lexsort((np.arange(quality.size), quality))
    return ItemIssues(order, quality, suggested, (quality < threshold) & (suggested != given))


def claim_issues(
    claims: Claims,
    posterior: ArrayLike,
    confusion: ArrayLike,
    *,
    threshold: float = 0.5,
) -> ClaimIssues:
    """Rank hard claims by P(their label is right), with each claim's own vote removed.

    ``posterior`` and ``confusion`` come from a truth result fit on the same claims. Removing a
    claim divides its likelihood ``confusion[source, :, label]`` back out of the item's
    posterior, which is exact for Dawid-Skene.
    """
    post = np.asarray(posterior, dtype=np.float64)
    conf = np.asarray(confusion, dtype=np.float64)
    k = claims.n_classes
    if post.shape != (claims.n_items, k) or conf.shape != (claims.n_sources, k, k):
        raise ValueError(
            "posterior and confusion must match the claims' items, sources and classes"
        )
    log_loo = np.log(np.maximum(post[claims.item], _TINY)) - np.log(
        np.maximum(conf[claims.source, :, claims.label], _TINY)
    )
    log_loo -= log_loo.max(axis=1, keepdims=True)
    loo = np.exp(log_loo)
    loo /= loo.sum(axis=1, keepdims=True)
    quality = loo[np.arange(claims.item.size), claims.label]
    order = np.lexsort((np.arange(quality.size), quality))
    return ClaimIssues(order, quality, quality < threshold)
