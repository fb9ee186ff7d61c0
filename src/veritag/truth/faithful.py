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

import functools
import operator
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from .claims import Claims, check_gold

__all__ = ["EPS", "PARTITIONS", "FaithfulFit", "Partition", "fit_faithful"]

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


class Partition:
    """Some items' claims and their share of EM: the E-step and the sufficient statistics.

    ``fit_faithful`` runs one partition holding every item; a distributed driver (such as
    ``veritag.scale``) runs one per worker, sums what they return in partition order and takes
    the same M-step and stopping rule, so the arithmetic is this class's in both. ``A`` holds
    the partition's items as rows of ``(source * K + answer)`` columns; gold is given by row.
    """

    def __init__(
        self,
        A: sp.csr_matrix,
        gold_items: NDArray[np.int64],
        gold_labels: NDArray[np.int64],
        k: int,
        pool: ThreadPoolExecutor | None = None,
    ) -> None:
        n = A.shape[0]
        self.A, self.AT, self.k, self.pool = A, A.T, k, pool  # AT: a CSC view, the M-step scatters
        self.gi, self.gl = np.asarray(gold_items, np.int64), np.asarray(gold_labels, np.int64)
        self.per_item = np.diff(A.indptr).astype(np.float64)
        self.has = self.per_item > 0
        self.every = bool(self.has.all())
        self.has_weight = self.has.astype(np.float64)
        self.blocks = [
            (a, min(a + _BLOCK, n), _row_view(A, a, min(a + _BLOCK, n)))
            for a in range(0, n, _BLOCK)
        ]
        self.posterior = np.empty((n, k))
        self.upcoming = np.empty((n, k))

    def pin(self, p: NDArray[np.float64], everywhere: bool = False) -> NDArray[np.float64]:
        """Gold one-hot; while fitting only on items with claims (crowd-kit knows no others)."""
        keep = np.ones(self.gi.size, bool) if everywhere else self.has[self.gi]
        p[self.gi[keep]] = 0.0
        p[self.gi[keep], self.gl[keep]] = 1.0
        return p

    def stats(self) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
        """The sufficient statistics of the posterior: expected counts per ``(source, answer)``
        row and true class (``AT @ p``), the posterior mass of the items with claims (whose
        mean is crowd-kit's prior: a BLAS sum here, one division by the driver), their number.
        """
        p = self.posterior
        return np.asarray(self.AT @ p), self.has_weight @ p, int(self.has.sum())

    def start(self) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
        """The majority-vote shares crowd-kit starts from, gold pinned; their statistics."""
        n, k = self.A.shape[0], self.k
        rows = np.repeat(np.arange(n), np.diff(self.A.indptr))
        votes = np.bincount(rows * k + self.A.indices % k, minlength=n * k).reshape(n, k)
        votes = votes.astype(np.float64)
        total = votes.sum(axis=1, keepdims=True)
        self.posterior = self.pin(
            np.divide(votes, total, out=np.full_like(votes, 1.0 / k), where=total > 0)
        )
        return self.stats()

    def sweep(
        self, errors: NDArray[np.float64], prior: NDArray[np.float64], bound: bool
    ) -> tuple[float, float, float]:
        """The E-step with ``errors`` and ``prior`` into the upcoming posterior, in blocks that
        keep every temporary in cache: its log-likelihood and (with ``bound``) the current
        posterior's two terms of crowd-kit's lower bound, expected log joint and entropy (the
        prior counted once per claim, as crowd-kit does), which use the same errors."""
        log_e = np.log(np.where(errors > 0, errors, 1.0))
        log_prior = np.log(np.maximum(prior, EPS))
        ones = np.ones(self.k)
        p, out, has, every = self.posterior, self.upcoming, self.has, self.every

        def one(a: int, b: int, block: sp.csr_matrix) -> tuple[float, float, float]:
            expected = entropy = 0.0
            joint = np.asarray(block @ log_e)
            if bound:
                q = p[a:b]
                expected = float(np.einsum("ik,ik->", joint, q))
                clipped = np.maximum(q if every else q[has[a:b]], EPS)
                entropy = -float(np.einsum("ik,ik->", clipped, np.log(clipped)))
            norm = posterior_rows(joint, block, log_e, log_prior, ones, out[a:b])
            return float(norm.sum() if every else norm[has[a:b]].sum()), expected, entropy

        # Blocks are independent and numpy and scipy release the GIL in them: two threads share
        # the work; the sums are taken in block order, so the result does not depend on timing.
        parts = (
            list(self.pool.map(lambda blk: one(*blk), self.blocks))
            if self.pool is not None and len(self.blocks) > 1
            else [one(*blk) for blk in self.blocks]
        )
        ll, expected, entropy = (float(sum(x)) for x in zip(*parts)) if parts else (0.0, 0.0, 0.0)
        if not every:
            out[~has] = prior
        if bound:
            expected += float(self.per_item @ (p @ log_prior))
        return ll, expected, entropy

    def advance(self) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
        """Take the upcoming posterior (gold pinned) as current; its statistics."""
        self.posterior, self.upcoming = self.pin(self.upcoming), self.posterior
        return self.stats()

    def finish(self, prior: NDArray[np.float64]) -> NDArray[np.float64]:
        """The final posterior: items without claims get the prior, gold is pinned everywhere."""
        self.posterior[~self.has] = prior
        return self.pin(self.posterior, everywhere=True)


#: Calls a ``Partition`` method by name with the given arguments on every partition; returns
#: their answers in partition order.
Call = Callable[..., list[Any]]
#: Opens partitions of the claims matrix (all items x ``(source, answer)``; gold by item; K) and
#: yields their ``Call``; ``fit_faithful`` uses the one in ``PARTITIONS`` when it is set.
Partitioner = Callable[
    [sp.csr_matrix, NDArray[np.int64], NDArray[np.int64], int], AbstractContextManager[Call]
]
PARTITIONS: ContextVar[Partitioner | None] = ContextVar("veritag_faithful_partitions", default=None)


@contextmanager
def _local(
    A: sp.csr_matrix, gold_items: NDArray[np.int64], gold_labels: NDArray[np.int64], k: int
) -> Iterator[Call]:
    """One partition of every item, its blocks swept by this process's threads."""
    pool = ThreadPoolExecutor(_THREADS) if A.shape[0] > _BLOCK and _THREADS > 1 else None
    part = Partition(A, gold_items, gold_labels, k, pool)
    try:
        yield lambda name, *args: [getattr(part, name)(*args)]
    finally:  # the sweep's threads end with the fit, whatever happens in it
        if pool is not None:
            pool.shutdown()


def _summed(parts: list[Any]) -> tuple[Any, ...]:
    """The partitions' answers added field by field, in partition order."""
    return tuple(functools.reduce(operator.add, field) for field in zip(*parts))


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
    Items without claims keep the prior and play no part in it. The items' share of the work
    runs in the partitions that ``PARTITIONS`` opens (one local partition when it is unset);
    this function keeps the M-step and the stopping rule.
    """
    if n_iter < 0:
        raise ValueError("n_iter must be >= 0")
    hard = claims.hard_only()
    n, s, k = hard.n_items, hard.n_sources, hard.n_classes
    gi, gl = check_gold(hard, gold_items, gold_labels)
    A = _by_item(hard.item, hard.source * k + hard.label, n, s * k)
    col_class = np.tile(np.arange(k), s)
    present = np.bincount(A.indices, minlength=s * k) > 0
    answered = np.bincount(hard.source, minlength=s).astype(np.float64)

    def mean_prior(mass: NDArray[np.float64], n_has: int) -> NDArray[np.float64]:
        """crowd-kit's ``probas.mean()`` over the items it knows: a BLAS sum, then one division
        (summing ``1/n`` shares instead can round a certain class's prior to just above 1)."""
        return mass / n_has if n_has else np.full(k, 1.0 / k)

    def skills_of(counts: NDArray[np.float64]) -> NDArray[np.float64]:
        """Each source's mean posterior on the answers it gave: crowd-kit's one-coin skill."""
        right = counts[np.arange(s * k), col_class].reshape(s, k).sum(axis=1)
        return np.divide(right, answered, out=np.full(s, np.nan), where=answered > 0)

    def m_step(
        counts: NDArray[np.float64], first: bool = False
    ) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        if one_coin:
            return _one_coin(np.nan_to_num(skills_of(counts)), present, k), present
        rows = present
        if first:
            counts, rows = _initial(counts, present, initial_error, initial_error_strategy, k)
        return _normalise(counts, rows, k), rows

    with (PARTITIONS.get() or _local)(A, gi, gl, k) as call:
        counts, mass, n_has = _summed(call("start"))
        prior = mean_prior(mass, n_has)
        errors, rows = m_step(counts, first=True)
        ll_next = _summed(call("sweep", errors, prior, False))[0]
        history: list[float] = []
        loss, converged, it, ll = -np.inf, False, 0, float("nan")
        for it in range(1, n_iter + 1):
            (counts, mass, _), ll = _summed(call("advance")), ll_next
            prior = mean_prior(mass, n_has)
            errors, rows = m_step(counts)
            # the next E-step, ahead of the check
            ll_next, expected, entropy = _summed(call("sweep", errors, prior, True))
            history.append((expected + entropy) / max(hard.item.size, 1))
            if history[-1] - loss < tol:
                converged = True
                break
            loss = history[-1]
        posterior = np.concatenate(call("finish", prior)) if n else np.empty((0, k))
    return FaithfulFit(
        posterior, prior, errors, rows, skills_of(counts), tuple(history), ll, it, converged
    )
