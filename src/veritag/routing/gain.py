"""What one more label is worth: the expected gain in correctness from asking a tutor about an item.

Pure numpy. An item's current belief is its posterior ``p`` over k classes; a tutor answers class
``l`` with probability ``sum_k p_k C[k, l]``, where ``C`` is the tutor's confusion matrix in the
item's domain (``C[k, l]`` = P(answers l | truth k), from gold items and the truth engine). After
answer ``l`` the posterior is ``p * C[:, l]`` normalised, and we would then pick its top class,
which is right with probability ``max_k p_k C[k, l] / P(l)``. Averaged over answers:

    E[P(correct) after] = sum_l max_k p_k C[k, l]

and the gain is that minus ``max_k p_k`` (never negative: an answer cannot hurt a Bayes decision
in expectation). A perfect tutor's gain is ``1 - max p``; an uninformative one's is 0. Routing
divides it by the tutor's cost per label.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..checks import posteriors

__all__ = ["expected_gain", "posterior_after"]

#: Items x tutors x classes^2 cells computed at once; larger problems are done in item blocks.
_BLOCK_CELLS = 4_000_000


def _check(
    posterior: ArrayLike, confusion: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    p = posteriors(posterior)
    c = np.asarray(confusion, dtype=np.float64)
    k = p.shape[1]
    if c.ndim not in (3, 4) or c.shape[-2:] != (k, k):
        raise ValueError(
            f"confusion must be (tutors, {k}, {k}) or (tutors, domains, {k}, {k}), got {c.shape}"
        )
    return p, c


def expected_gain(
    posterior: ArrayLike,
    confusion: ArrayLike,
    domains: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """Expected gain in P(correct) per item and tutor, shape (items, tutors).

    ``confusion`` is (tutors, k, k), or (tutors, domains, k, k) with ``domains`` giving each
    item's domain index. See the module docstring for the formula.
    """
    p, c = _check(posterior, confusion)
    n = p.shape[0]
    if c.ndim == 4:
        if domains is None:
            raise ValueError("per-domain confusion needs each item's domain index (domains=)")
        d = np.asarray(domains, dtype=np.int64)
        if d.shape != (n,) or (d.size and (d.min() < 0 or d.max() >= c.shape[1])):
            raise ValueError(
                f"domains must give each of the {n} items an index in [0, {c.shape[1]})"
            )
    if c.ndim == 3:
        return _gain(p, c)
    # One domain at a time, each distinct posterior once: items not yet labeled share the prior,
    # so a routing request computes far fewer rows than it has items.
    out = np.empty((n, c.shape[0]))
    for j in np.unique(d):
        rows = np.flatnonzero(d == j)
        distinct, inverse = np.unique(p[rows], axis=0, return_inverse=True)
        out[rows] = _gain(distinct, c[:, j])[inverse.ravel()]
    return out


def _gain(p: NDArray[np.float64], c: NDArray[np.float64]) -> NDArray[np.float64]:
    """``expected_gain`` for (items, k) posteriors and one (tutors, k, k) confusion per tutor."""
    n, k = p.shape
    t = c.shape[0]
    out = np.empty((n, t))
    now = p.max(axis=1) if n else np.zeros(0)
    step = max(1, _BLOCK_CELLS // max(1, t * k * k))
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        joint = p[lo:hi, None, :, None] * c[None, :, :, :]  # (items, tutors, truth, answer)
        out[lo:hi] = joint.max(axis=2).sum(axis=2) - now[lo:hi, None]
    return np.maximum(out, 0.0)


def posterior_after(
    posterior: ArrayLike, confusion: ArrayLike, answers: ArrayLike
) -> NDArray[np.float64]:
    """Each item's posterior after one answer: ``p * C_i[:, a_i]`` normalised.

    ``confusion`` is (items, k, k): the answering tutor's matrix for each item (in its domain);
    ``answers`` the class index each gave. A zero-probability answer leaves the posterior as is.
    """
    p = np.asarray(posterior, dtype=np.float64)
    c = np.asarray(confusion, dtype=np.float64)
    a = np.asarray(answers, dtype=np.int64)
    n, k = p.shape
    if c.shape != (n, k, k) or a.shape != (n,):
        raise ValueError(
            f"need confusion (items, {k}, {k}) and one answer per item; got {c.shape}, {a.shape}"
        )
    like = c[np.arange(n), :, a]  # (items, truth): P(this answer | truth)
    new = p * like
    z = new.sum(axis=1, keepdims=True)
    return np.where(z > 0, new / np.where(z > 0, z, 1.0), p)
