"""``method="auto"``: the aggregator this data set prefers, by held-out likelihood of its claims.

No aggregator is best everywhere (on real crowds majority vote, one-coin, Dawid-Skene, GLAD
and MACE each win somewhere), and a constant chosen on benchmark sets does not carry to a user's
data. So the choice is made on the user's claims alone, by K-fold cross-validation over claims:

1. the claims are split into ``folds`` random folds (seeded, so the choice is reproducible);
2. each candidate is fit on all folds but one and gives a posterior for every item;
3. its held-out score is the log-probability of the held-out claims, each claim
   ``(item, source, answer)`` predicted as ``sum_k posterior[item, k] * theta[source, k, answer]``.

``theta`` is the same for every candidate: each source's confusion counted from the training
claims under that candidate's posterior, with one pseudo-claim spread evenly over answers (an
answer unseen in training then costs every candidate the same). The candidates therefore compete
on their posteriors alone, not on how each smooths its own confusion matrices, and the score is
a proper scoring rule on data none of them saw. An item whose every claim is held out gets the
candidate's mean posterior.

Above ``max_items`` items the choice is made on a seeded random sample of that many items (all
of their claims), and the chosen method is then fit on everything.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from .claims import Claims

__all__ = ["held_out_scores"]

Fit = Callable[[Claims, str], NDArray[np.float64]]


def _subset(claims: Claims, keep: NDArray[np.bool_]) -> Claims:
    return Claims(
        claims.item[keep],
        claims.source[keep],
        claims.label[keep],
        claims.prob_item,
        claims.prob_source,
        claims.probs,
        claims.n_items,
        claims.n_sources,
        claims.n_classes,
    )


def _sample_items(claims: Claims, max_items: int, rng: np.random.Generator) -> Claims:
    """The claims of ``max_items`` random items (all items if there are fewer), renumbered."""
    if claims.n_items <= max_items:
        return claims
    chosen = np.zeros(claims.n_items, bool)
    chosen[rng.choice(claims.n_items, max_items, replace=False)] = True
    new_id = np.cumsum(chosen) - 1
    hard, soft = chosen[claims.item], chosen[claims.prob_item]
    return Claims(
        new_id[claims.item[hard]],
        claims.source[hard],
        claims.label[hard],
        new_id[claims.prob_item[soft]],
        claims.prob_source[soft],
        claims.probs[soft],
        max_items,
        claims.n_sources,
        claims.n_classes,
    )


def _score(train: Claims, posterior: NDArray[np.float64], test: Claims) -> float:
    """Log-probability of ``test``'s hard claims under ``posterior`` and the shared theta."""
    k, s = train.n_classes, train.n_sources
    has = np.bincount(train.item, minlength=train.n_items) > 0
    post = posterior.copy()
    post[~has] = posterior[has].mean(axis=0) if has.any() else 1.0 / k
    cell = train.source * k + train.label  # (source, answer)
    counts = np.stack(
        [np.bincount(cell, weights=post[train.item, c], minlength=s * k) for c in range(k)], axis=1
    )
    counts = counts.reshape(s, k, k)  # (source, answer, true)
    theta = (counts + 1.0 / k) / (counts.sum(axis=1, keepdims=True) + 1.0)
    p = np.einsum("nk,nk->n", post[test.item], theta[test.source, test.label, :])
    return float(np.log(p).sum())


def held_out_scores(
    claims: Claims,
    candidates: Sequence[str],
    fit: Fit,
    *,
    folds: int = 5,
    seed: int = 0,
    max_items: int = 20_000,
) -> dict[str, float]:
    """Each candidate's mean held-out log-likelihood per claim (higher is better).

    ``fit(claims, method)`` returns a posterior; model probability rows stay in every training
    fold, and only hard claims are held out.
    """
    if folds < 2:
        raise ValueError("folds must be >= 2")
    rng = np.random.default_rng(seed)
    data = _sample_items(claims, max_items, rng)
    fold = rng.integers(0, folds, data.item.size)
    scores = dict.fromkeys(candidates, 0.0)
    if not data.item.size:
        return scores
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f in range(folds):
            train, test = _subset(data, fold != f), _subset(data, fold == f)
            for method in candidates:
                scores[method] += _score(train, fit(train, method), test)
    return {m: v / data.item.size for m, v in scores.items()}
