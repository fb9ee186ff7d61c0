"""crowd-kit 1.4.2's Dawid-Skene and one-coin Dawid-Skene, reproduced exactly and vectorised.

This is the reproducible baseline every departure in ``engine`` is measured against: the same
initialisation (majority-vote shares), the same M-step (expected counts per observed
``(worker, answer)`` pair, clipped at 1e-10 and normalised over the answers that worker gave),
the same class prior (the mean posterior, unsmoothed), the same E-step, and the same stopping
rule (the change of crowd-kit's evidence lower bound per claim below ``tol``), so posteriors
agree with crowd-kit's to rounding and the iteration counts are identical.

What crowd-kit does that ``engine``'s Dawid-Skene does not:

* every item measures the workers, including items with one claim (whose claim then agrees
  with the posterior it made itself);
* an answer a worker never gave has probability exactly 0 under that worker's confusion;
* the prior is the plain mean posterior, so a class nobody chose gets the 1e-10 clip;
* the stopping rule compares the lower bound (the prior term counted once per claim, as
  crowd-kit does), not the log-likelihood, with an absolute ``tol`` of 1e-5;
* initial error matrices (``assign``/``addition``) shape only the first M-step.

Claims are the COO arrays of ``Claims``; a model's probability row counts as a hard claim of
its top class, since crowd-kit has no soft claims.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from .claims import Claims

__all__ = ["EPS", "FaithfulFit", "fit_faithful"]

#: crowd-kit's clip on every confusion cell and prior: no log(0).
EPS = 1e-10

Strategy = Literal["assign", "addition"]


@dataclass(frozen=True)
class FaithfulFit:
    """crowd-kit's fitted state, as arrays.

    ``errors`` has one row per ``(source, answer)`` pair (``source * K + answer``) and one column
    per true class; ``present`` marks the rows crowd-kit's ``errors_`` holds (pairs seen in the
    data, or given by ``initial_error``); absent rows are 0.
    """

    posterior: NDArray[np.float64]
    prior: NDArray[np.float64]
    errors: NDArray[np.float64]
    present: NDArray[np.bool_]
    skills: NDArray[np.float64]
    loss_history: tuple[float, ...]
    log_likelihood: float
    n_iter: int
    converged: bool


def _vote_shares(A: sp.csr_matrix, col_class: NDArray[np.int64], k: int) -> NDArray[np.float64]:
    """crowd-kit's MajorityVote probabilities: each item's answers counted and normalised."""
    to_class = sp.csr_matrix((np.ones(col_class.size), (np.arange(col_class.size), col_class)),
                             shape=(col_class.size, k))
    votes = np.asarray((A @ to_class).todense())
    total = votes.sum(axis=1, keepdims=True)
    return np.divide(votes, total, out=np.full_like(votes, 1.0 / k), where=total > 0)


def _normalise(counts: NDArray[np.float64], present: NDArray[np.bool_], k: int) -> NDArray[np.float64]:
    """Clip the present rows at EPS and make each source's present rows sum to 1 per true class."""
    errors = np.where(present[:, None], np.maximum(counts, EPS), 0.0)
    per_source = errors.reshape(-1, k, errors.shape[1])
    totals = per_source.sum(axis=1, keepdims=True)
    return (per_source / np.where(totals > 0, totals, 1.0)).reshape(errors.shape)


def _one_coin(skills: NDArray[np.float64], present: NDArray[np.bool_], k: int) -> NDArray[np.float64]:
    """Each present row: the skill on the true-answer cell, the rest spread evenly, clipped."""
    skill = np.repeat(skills, k)[:, None]
    answer = np.tile(np.arange(k), skills.size)[:, None]
    rows = np.where(answer == np.arange(k)[None, :], skill, (1.0 - skill) / max(k - 1, 1))
    return np.where(present[:, None], np.clip(rows, EPS, 1.0 - EPS), 0.0)


def _initial(counts: NDArray[np.float64], present: NDArray[np.bool_], initial_error: NDArray[np.float64] | None,
             strategy: Strategy | None, k: int) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """crowd-kit's ``initial_error_apply``: ``assign`` replaces the counts, ``addition`` adds to them.

    ``initial_error`` rows are ``(source, answer)`` pairs like ``errors``; a NaN row is absent.
    """
    if strategy is None or initial_error is None:
        return counts, present
    init = np.asarray(initial_error, dtype=np.float64)
    if init.shape != counts.shape:
        raise ValueError(f"initial_error must have shape {counts.shape}; got {init.shape}")
    given = ~np.isnan(init).all(axis=1)
    values = np.nan_to_num(init)
    if strategy == "assign":
        if (present & ~given).any():
            missing = np.unique(np.flatnonzero(present & ~given) // k)
            raise ValueError(f"All the workers in data should be in initial_error: Can not find {missing.size} "
                             "workers' error matrix in initial_error")
        if (values[given] <= 1.0).all():
            sums = values.reshape(-1, k, k).sum(axis=1)[np.unique(np.flatnonzero(given) // k)]
            if not np.allclose(sums, 1.0):
                raise ValueError("The sum of each worker's error matrix in initial_error should be 1.0")
        return values, given
    if strategy == "addition":
        return counts + values, present | given
    raise ValueError(f"Invalid initial_error_strategy: {strategy},should be 'assign' or 'addition'")


def fit_faithful(
    claims: Claims,
    *,
    one_coin: bool = False,
    n_iter: int = 100,
    tol: float = 1e-5,
    gold_items: ArrayLike | None = None,
    gold_labels: ArrayLike | None = None,
    initial_error: NDArray[np.float64] | None = None,
    initial_error_strategy: Strategy | None = None,
) -> FaithfulFit:
    """crowd-kit 1.4.2's ``DawidSkene`` (or ``OneCoinDawidSkene`` with ``one_coin``) on ``claims``.

    ``n_iter=0`` returns the initial estimate (the majority vote, gold pinned) as crowd-kit does.
    Items without claims keep the prior and play no part in it.
    """
    if n_iter < 0:
        raise ValueError("n_iter must be >= 0")
    hard = claims.hard_only()
    n, s, k = hard.n_items, hard.n_sources, hard.n_classes
    gi = np.zeros(0, np.int64) if gold_items is None else np.asarray(gold_items, np.int64)
    gl = np.zeros(0, np.int64) if gold_labels is None else np.asarray(gold_labels, np.int64)
    A = sp.csr_matrix((np.ones(hard.item.size), (hard.item, hard.source * k + hard.label)), shape=(n, s * k))
    A.sum_duplicates()
    AT = A.T.tocsr()
    col_class = np.tile(np.arange(k), s)
    per_item = np.asarray(A.sum(axis=1)).ravel()
    has = per_item > 0
    present = np.asarray(A.sum(axis=0)).ravel() > 0
    answered = np.bincount(hard.source, minlength=s).astype(np.float64)

    def pin(p: NDArray[np.float64], everywhere: bool = False) -> NDArray[np.float64]:
        """Gold one-hot; while fitting only where the item has claims (crowd-kit knows no others)."""
        keep = np.ones(gi.size, bool) if everywhere else has[gi]
        p[gi[keep]] = 0.0
        p[gi[keep], gl[keep]] = 1.0
        return p

    def mean_prior(p: NDArray[np.float64]) -> NDArray[np.float64]:
        return p[has].mean(axis=0) if has.any() else np.full(k, 1.0 / k)

    def skills_of(p: NDArray[np.float64]) -> NDArray[np.float64]:
        """Each source's mean posterior on the answers it gave: crowd-kit's one-coin skill."""
        right = np.bincount(hard.source, weights=p[hard.item, hard.label], minlength=s)
        return np.divide(right, answered, out=np.full(s, np.nan), where=answered > 0)

    def m_step(p: NDArray[np.float64], first: bool = False) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        if one_coin:
            return _one_coin(np.nan_to_num(skills_of(p)), present, k), present
        counts, rows = np.asarray(AT @ p), present
        if first:
            counts, rows = _initial(counts, present, initial_error, initial_error_strategy, k)
        return _normalise(counts, rows, k), rows

    def e_step(errors: NDArray[np.float64], prior: NDArray[np.float64]) -> tuple[NDArray[np.float64], float]:
        """Posterior and the log-likelihood of the claims under ``errors`` and ``prior``."""
        log_e = np.log(np.where(errors > 0, errors, 1.0))
        joint = np.asarray(A @ log_e) + np.log(np.maximum(prior, EPS))
        top = joint.max(axis=1, keepdims=True)
        joint -= top
        np.exp(joint, out=joint)
        total = joint.sum(axis=1, keepdims=True)
        joint /= total
        joint[~has] = prior
        return joint, float((top[has, 0] + np.log(total[has, 0])).sum())

    def lower_bound(p: NDArray[np.float64], prior: NDArray[np.float64], errors: NDArray[np.float64]) -> float:
        log_e = np.log(np.where(errors > 0, errors, 1.0))
        expected = float((np.asarray(A @ log_e) * p).sum())  # an item without claims adds 0
        expected += float(per_item @ (p @ np.log(np.maximum(prior, EPS))))
        clipped = np.maximum(p[has], EPS)
        return (expected - float((clipped * np.log(clipped)).sum())) / max(hard.item.size, 1)

    posterior = pin(_vote_shares(A, col_class, k))
    prior = mean_prior(posterior)
    errors, rows = m_step(posterior, first=True)
    history: list[float] = []
    loss, converged, it, ll = -np.inf, False, 0, float("nan")
    for it in range(1, n_iter + 1):
        posterior, ll = e_step(errors, prior)
        posterior = pin(posterior)
        prior = mean_prior(posterior)
        errors, rows = m_step(posterior)
        history.append(lower_bound(posterior, prior, errors))
        if history[-1] - loss < tol:
            converged = True
            break
        loss = history[-1]
    posterior[~has] = prior
    pin(posterior, everywhere=True)
    return FaithfulFit(posterior, prior, errors, rows, skills_of(posterior), tuple(history), ll, it,
                       converged)
