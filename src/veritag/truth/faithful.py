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

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from .claims import Claims, check_gold

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


_BLOCK = 1 << 16  # items per sweep block: its (items x K) temporaries stay in cache
#: Threads per sweep: at most two (this project's machines), at most the cores we may use.
_THREADS = min(
    2,
    len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
    int(os.environ.get("OMP_NUM_THREADS", "2") or 2),
)


def _row_view(A: sp.csr_matrix, a: int, b: int) -> sp.csr_matrix:
    """Rows ``a:b`` of ``A`` sharing its data and indices (``A[a:b]`` would copy them)."""
    lo, hi = A.indptr[a], A.indptr[b]
    return sp.csr_matrix(
        (A.data[lo:hi], A.indices[lo:hi], A.indptr[a : b + 1] - lo), shape=(b - a, A.shape[1])
    )


def posterior_rows(
    joint: NDArray[np.float64],
    block: sp.csr_matrix,
    log_theta: NDArray[np.float64],
    log_prior: NDArray[np.float64],
    ones: NDArray[np.float64],
    out: NDArray[np.float64],
) -> NDArray[np.float64]:
    """The E-step on one block of items: ``joint`` (``block @ log_theta``, overwritten) plus the
    prior, normalised into ``out``; returns each item's log-likelihood.

    Every log joint is <= 0 (log probabilities summed), so ``exp`` cannot overflow, and the usual
    shift by the row maximum (which changes nothing but rounding) is needed only where every
    class underflows: items with hundreds of vague claims. Those rows are redone with the
    shift; the rest skip two passes.
    """
    joint += log_prior
    np.exp(joint, out=joint)
    total = joint @ ones
    norm = np.log(np.maximum(total, 1e-300))
    tiny = np.flatnonzero(total < 1e-280)
    if tiny.size:
        redo = np.asarray(block[tiny] @ log_theta) + log_prior
        top = redo.max(axis=1, keepdims=True)
        joint[tiny] = np.exp(redo - top)
        total[tiny] = joint[tiny].sum(axis=1)
        norm[tiny] = np.log(total[tiny]) + top[:, 0]
    np.divide(joint, total[:, None], out=out)
    return norm


def _by_item(item: NDArray[np.int64], col: NDArray[np.int64], n: int, n_cols: int) -> sp.csr_matrix:
    """Claims as a CSR items x (source, answer) matrix straight from a stable sort by item (free
    when claims come sorted); a repeated answer stays a separate entry, which products sum."""
    order = None if np.all(item[1:] >= item[:-1]) else np.argsort(item, kind="stable")
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(item, minlength=n), out=indptr[1:])
    return sp.csr_matrix(
        (np.ones(item.size), col if order is None else col[order], indptr), shape=(n, n_cols)
    )


def _normalise(
    counts: NDArray[np.float64], present: NDArray[np.bool_], k: int
) -> NDArray[np.float64]:
    """Clip the present rows at EPS and make each source's present rows sum to 1 per true class."""
    errors = np.where(present[:, None], np.maximum(counts, EPS), 0.0)
    per_source = errors.reshape(-1, k, errors.shape[1])
    totals = per_source.sum(axis=1, keepdims=True)
    return (per_source / np.where(totals > 0, totals, 1.0)).reshape(errors.shape)


def _one_coin(
    skills: NDArray[np.float64], present: NDArray[np.bool_], k: int
) -> NDArray[np.float64]:
    """Each present row: the skill on the true-answer cell, the rest spread evenly, clipped."""
    skill = np.repeat(skills, k)[:, None]
    answer = np.tile(np.arange(k), skills.size)[:, None]
    rows = np.where(answer == np.arange(k)[None, :], skill, (1.0 - skill) / max(k - 1, 1))
    return np.where(present[:, None], np.clip(rows, EPS, 1.0 - EPS), 0.0)


def _initial(
    counts: NDArray[np.float64],
    present: NDArray[np.bool_],
    initial_error: NDArray[np.float64] | None,
    strategy: Strategy | None,
    k: int,
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """crowd-kit's ``initial_error_apply``: ``assign`` replaces counts, ``addition`` adds to them.

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
            raise ValueError(
                f"All the workers in data should be in initial_error: Can not find {missing.size} "
                "workers' error matrix in initial_error"
            )
        if (values[given] <= 1.0).all():
            sums = values.reshape(-1, k, k).sum(axis=1)[np.unique(np.flatnonzero(given) // k)]
            if not np.allclose(sums, 1.0):
                raise ValueError(
                    "The sum of each worker's error matrix in initial_error should be 1.0"
                )
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
    gi, gl = check_gold(hard, gold_items, gold_labels)
    A = _by_item(hard.item, hard.source * k + hard.label, n, s * k)
    col_class = np.tile(np.arange(k), s)
    AT = A.T  # a CSC view, no copy: the M-step product scatters
    per_item = np.diff(A.indptr).astype(np.float64)
    has = per_item > 0
    every = bool(has.all())
    present = np.bincount(A.indices, minlength=s * k) > 0
    answered = np.bincount(hard.source, minlength=s).astype(np.float64)

    def pin(p: NDArray[np.float64], everywhere: bool = False) -> NDArray[np.float64]:
        """Gold one-hot; while fitting only on items with claims (crowd-kit knows no others)."""
        keep = np.ones(gi.size, bool) if everywhere else has[gi]
        p[gi[keep]] = 0.0
        p[gi[keep], gl[keep]] = 1.0
        return p

    has_weight, n_has = has.astype(np.float64), max(int(has.sum()), 1)

    def mean_prior(p: NDArray[np.float64]) -> NDArray[np.float64]:
        """crowd-kit's ``probas.mean()`` over the items it knows: a BLAS sum, then one division
        (summing ``1/n`` shares instead can round a certain class's prior to just above 1)."""
        return (has_weight @ p) / n_has if has.any() else np.full(k, 1.0 / k)

    def skills_of(p: NDArray[np.float64]) -> NDArray[np.float64]:
        """Each source's mean posterior on the answers it gave: crowd-kit's one-coin skill."""
        counts = np.asarray(AT @ p)
        right = counts[np.arange(s * k), col_class].reshape(s, k).sum(axis=1)
        return np.divide(right, answered, out=np.full(s, np.nan), where=answered > 0)

    def m_step(
        p: NDArray[np.float64], first: bool = False
    ) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        if one_coin:
            return _one_coin(np.nan_to_num(skills_of(p)), present, k), present
        counts, rows = np.asarray(AT @ p), present
        if first:
            counts, rows = _initial(counts, present, initial_error, initial_error_strategy, k)
        return _normalise(counts, rows, k), rows

    blocks = [
        (a, min(a + _BLOCK, n), _row_view(A, a, min(a + _BLOCK, n))) for a in range(0, n, _BLOCK)
    ]
    pool = ThreadPoolExecutor(_THREADS) if len(blocks) > 1 and _THREADS > 1 else None
    ones = np.ones(k)

    def sweep(
        errors: NDArray[np.float64],
        prior: NDArray[np.float64],
        p: NDArray[np.float64] | None,
        out: NDArray[np.float64],
    ) -> tuple[float, float]:
        """One pass over blocks of items with ``errors`` and ``prior``: the E-step's posterior into
        ``out`` and its log-likelihood, and (given the posterior ``p`` they were fit to) crowd-kit's
        lower bound per claim, which uses the same errors. Blocks keep every temporary in cache.
        """
        log_e = np.log(np.where(errors > 0, errors, 1.0))
        log_prior = np.log(np.maximum(prior, EPS))

        def one(a: int, b: int, block: sp.csr_matrix) -> tuple[float, float, float]:
            expected = entropy = 0.0
            joint = np.asarray(block @ log_e)
            if p is not None:
                q = p[a:b]
                expected = float(np.einsum("ik,ik->", joint, q))
                clipped = np.maximum(q if every else q[has[a:b]], EPS)
                entropy = -float(np.einsum("ik,ik->", clipped, np.log(clipped)))
            norm = posterior_rows(joint, block, log_e, log_prior, ones, out[a:b])
            return float(norm.sum() if every else norm[has[a:b]].sum()), expected, entropy

        # Blocks are independent and numpy and scipy release the GIL in them: two threads share
        # the work; the sums are taken in block order, so the result does not depend on timing.
        parts = (
            list(pool.map(lambda blk: one(*blk), blocks))
            if pool is not None
            else [one(*blk) for blk in blocks]
        )
        ll, expected, entropy = (float(sum(x)) for x in zip(*parts)) if parts else (0.0, 0.0, 0.0)
        if not every:
            out[~has] = prior
        if p is None:
            return float("nan"), ll
        expected += float(per_item @ (p @ log_prior))  # crowd-kit counts the prior once per claim
        return (expected + entropy) / max(hard.item.size, 1), ll

    try:
        votes = (
            np.bincount(hard.item * k + hard.label, minlength=n * k)
            .reshape(n, k)
            .astype(np.float64)
        )
        total = votes.sum(axis=1, keepdims=True)
        posterior = pin(np.divide(votes, total, out=np.full_like(votes, 1.0 / k), where=total > 0))
        prior = mean_prior(posterior)
        errors, rows = m_step(posterior, first=True)
        upcoming = np.empty((n, k))
        _, ll_next = sweep(errors, prior, None, upcoming)
        history: list[float] = []
        loss, converged, it, ll = -np.inf, False, 0, float("nan")
        for it in range(1, n_iter + 1):
            posterior, upcoming, ll = pin(upcoming), posterior, ll_next
            prior = mean_prior(posterior)
            errors, rows = m_step(posterior)
            bound, ll_next = sweep(
                errors, prior, posterior, upcoming
            )  # the next E-step, ahead of the check
            history.append(bound)
            if history[-1] - loss < tol:
                converged = True
                break
            loss = history[-1]
    finally:  # the sweep's threads end with the fit, whatever happens in it
        if pool is not None:
            pool.shutdown()
    posterior[~has] = prior
    pin(posterior, everywhere=True)
    return FaithfulFit(
        posterior, prior, errors, rows, skills_of(posterior), tuple(history), ll, it, converged
    )
