"""Truth inference: every item's posterior and every source's confusion matrix, from all claims.

Dawid-Skene (a full confusion matrix per source) and one-coin Dawid-Skene (one accuracy per
source) are fit by EM in log space. Each claim becomes a column of a sparse items x responses
matrix ``A``; one EM iteration is two sparse products (``A @ log_theta`` for the E-step,
``A.T @ posterior`` for the M-step), so it costs O(claims) with no Python loop over claims.

Models are sources like any other, but a model's claim is its probability row, binned by
confidence: the response is (top class, confidence bin), and the model's confusion matrix spans
those responses, so EM learns how often the model is right *at each confidence level* — a
calibrated vote instead of a blind argmax.

Three guards keep EM honest where plain Dawid-Skene is not identifiable:

* sources are measured only on items with two or more claims (or gold): a lone claim agrees
  with the posterior it made itself;
* sparse human sources are shrunk toward the pooled confusion of all humans (empirical Bayes,
  ``shrinkage`` pseudo-claims), and the pool toward "better than chance";
* when models are present, the humans are fit alone first and held fixed while EM learns the
  models, so a model cannot talk EM into "the truth is whatever I said"; each model bin also
  leans toward "uninformative" by a few pseudo-claims, so a thin bin cannot claim certainty.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from .choice import held_out_scores
from .claims import Claims, check_gold
from .faithful import _BLOCK, FaithfulFit, _row_view, fit_faithful, posterior_rows
from .glad import fit_glad
from .mace import fit_mace
from .voting import majority_vote

__all__ = ["ENGINE_VERSION", "METHODS", "ConvergenceWarning", "TruthResult", "fit_truth"]

#: Stored with every posterior, so a stored result says which engine made it.
ENGINE_VERSION = "veritag-truth/2"
METHODS = ("mv", "wmv", "onecoin", "ds", "ds-shrunk", "glad", "mace", "auto")
Method = Literal["mv", "wmv", "onecoin", "ds", "ds-shrunk", "glad", "mace", "auto"]
#: What ``auto`` chooses among (``choice``); ties go to the first. GLAD and MACE read a model's
#: probability row as its top class, so with model rows ``auto`` leaves them out.
AUTO_CANDIDATES = ("mv", "onecoin", "ds", "ds-shrunk", "glad", "mace")
_HARD_ONLY = ("glad", "mace")
#: Each EM method's own ``tol`` when none is given: crowd-kit's 1e-5 on its lower bound per
#: claim for its methods, a relative log-likelihood change of 1e-6 for the engine's own.
DEFAULT_TOL = {"ds": 1e-5, "onecoin": 1e-5, "ds-shrunk": 1e-6}

_MODEL_PSEUDO = (
    10.0  # pseudo-claims per model and class toward "uninformative", spread over its bins
)
_FLOOR = 0.01  # uniform pseudo-count on every confusion cell: no log(0), no 0/0


class ConvergenceWarning(UserWarning):
    """EM stopped at ``max_iter`` before the log-likelihood settled."""


@dataclass(frozen=True)
class TruthResult:
    """What the engine found.

    Attributes
    ----------
    posterior : ndarray of shape (n_items, n_classes)
        P(true class | all claims); items without claims get the prior.
    confusion : ndarray of shape (n_sources, n_classes, n_classes)
        ``confusion[s, k, l]`` = P(source s answers l | true class k). For a model, ``l`` is its
        top class.
    prior : ndarray of shape (n_classes,)
    accuracy : ndarray of shape (n_sources,)
        Expected share of the source's answers (a model's top classes) that are right, under the
        posterior. NaN for a source without claims.
    n_claims : ndarray of shape (n_sources,)
    log_likelihood : float
        Of the claims (and gold labels) under the fitted model; NaN for voting methods.
    n_iter : int
    converged : bool
    method : str
    loss_history : tuple of float
        The lower bound per claim after each iteration, for crowd-kit's methods.
    scores : dict
        For ``auto``: each candidate's held-out log-likelihood per claim; ``method`` is the one
        chosen.
    unchecked : ndarray of bool, shape (n_sources,)
        Model sources that no human claim or gold label ever met: their ``accuracy`` is only
        their agreement with themselves (see ``fit_truth``); None before that rule ran.
    """

    posterior: NDArray[np.float64]
    confusion: NDArray[np.float64]
    prior: NDArray[np.float64]
    accuracy: NDArray[np.float64]
    n_claims: NDArray[np.int64]
    log_likelihood: float
    n_iter: int
    converged: bool
    method: str
    loss_history: tuple[float, ...] = field(default=())
    scores: dict[str, float] = field(default_factory=dict)
    unchecked: NDArray[np.bool_] | None = None

    def labels(self) -> NDArray[np.int64]:
        """The most probable class per item (ties go to the smallest class index)."""
        return self.posterior.argmax(axis=1)

    def confidence(self) -> NDArray[np.float64]:
        return self.posterior.max(axis=1)


@dataclass(frozen=True)
class _Design:
    """Claims laid out as a sparse matrix over response columns.

    Each column belongs to one *virtual source* (a real source's hard answers, or one model's
    binned answers) and stands for one class (``col_class``). The first ``n_hard_cols`` columns
    are hard answers, shrunk toward their pooled confusion.
    """

    A: sp.csr_matrix
    AT: sp.csc_matrix  # A.T without a copy: the M-step product scatters, which is cache-friendly
    col_vsrc: NDArray[np.int64]
    col_class: NDArray[np.int64]
    vsrc_source: NDArray[np.int64]
    n_hard_cols: int
    group: sp.csr_matrix  # n_vsrc x columns indicator: sums a source's columns


def _bin_by_rank(
    source: NDArray[np.int64], conf: NDArray[np.float64], bins: int
) -> NDArray[np.int64]:
    """Equal-frequency confidence bins within each source, without a loop over sources."""
    order = np.lexsort((conf, source))
    sorted_src = source[order]
    starts = np.flatnonzero(np.r_[True, sorted_src[1:] != sorted_src[:-1]])
    counts = np.diff(np.r_[starts, sorted_src.size])
    rank = np.arange(sorted_src.size) - np.repeat(starts, counts)
    # Equal confidences share a bin: every member of a tie takes the rank of its first member.
    sorted_conf = conf[order]
    new = np.r_[True, (sorted_src[1:] != sorted_src[:-1]) | (sorted_conf[1:] != sorted_conf[:-1])]
    rank = rank[np.maximum.accumulate(np.where(new, np.arange(new.size), 0))]
    out = np.empty(source.size, np.int64)
    out[order] = np.minimum(rank * bins // np.repeat(counts, counts), bins - 1)
    return out


def _design(claims: Claims, bins: int) -> _Design:
    n, s, k = claims.n_items, claims.n_sources, claims.n_classes
    item = [claims.item]
    cols = [claims.source * k + claims.label]
    col_vsrc = [np.repeat(np.arange(s), k)]
    col_class = [np.tile(np.arange(k), s)]
    vsrc_source = [np.arange(s)]
    n_vsrc = s
    if claims.prob_item.size:
        models, m_idx = np.unique(claims.prob_source, return_inverse=True)
        m = models.size
        b = _bin_by_rank(m_idx, claims.probs.max(axis=1), bins)
        item.append(claims.prob_item)
        cols.append(s * k + (m_idx * k + claims.probs.argmax(axis=1)) * bins + b)
        col_vsrc.append(s + np.repeat(np.arange(m), k * bins))
        col_class.append(np.tile(np.repeat(np.arange(k), bins), m))
        vsrc_source.append(models)
        n_vsrc = s + m
    # One part (humans only) is used as is: at millions of claims every copy is a page-fault bill.
    claim_item = item[0] if len(item) == 1 else np.concatenate(item)
    claim_col = cols[0] if len(cols) == 1 else np.concatenate(cols)
    n_cols = sum(c.size for c in col_class)
    # Rows straight from a stable sort by item (free when claims come sorted, as from the store):
    # no COO round trip. Repeated (item, column) pairs stay separate entries; products sum them.
    order = (
        None if np.all(claim_item[1:] >= claim_item[:-1]) else np.argsort(claim_item, kind="stable")
    )
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(claim_item, minlength=n), out=indptr[1:])
    A = sp.csr_matrix(
        (np.ones(claim_item.size), claim_col if order is None else claim_col[order], indptr),
        shape=(n, n_cols),
    )
    vsrc = np.concatenate(col_vsrc)
    group = sp.csr_matrix((np.ones(n_cols), (vsrc, np.arange(n_cols))), shape=(n_vsrc, n_cols))
    return _Design(
        A,
        A.T,
        vsrc,
        np.concatenate(col_class),
        np.concatenate(vsrc_source),
        s * k,
        group,
    )


def _pin(
    posterior: NDArray[np.float64], gold_items: NDArray[np.int64], gold_labels: NDArray[np.int64]
) -> None:
    posterior[gold_items] = 0.0
    posterior[gold_items, gold_labels] = 1.0


def _vote_posterior(claims: Claims, weights: NDArray[np.float64] | None) -> NDArray[np.float64]:
    """Vote shares per item (model rows count fractionally); uniform where nobody voted."""
    n, k = claims.n_items, claims.n_classes
    cells = claims.item * k + claims.label
    if weights is None:
        votes = np.bincount(cells, minlength=n * k).astype(np.float64).reshape(n, k)
    else:
        votes = (
            np.bincount(cells, weights=weights[claims.source], minlength=n * k)
            .astype(np.float64)
            .reshape(n, k)
        )
    if claims.prob_item.size:
        soft = (
            claims.probs if weights is None else claims.probs * weights[claims.prob_source][:, None]
        )
        for c in range(k):
            votes[:, c] += np.bincount(claims.prob_item, weights=soft[:, c], minlength=n)
    total = votes @ np.ones(k)
    empty = total <= 0
    votes /= np.where(empty, 1.0, total)[:, None]
    votes[empty] = 1.0 / k
    return votes


class _EStep:
    """The E-step, by blocks of items into one posterior buffer kept across iterations.

    A whole-array E-step makes and frees several (items x K) arrays per iteration; at a million
    items each is 40 MB, which the allocator maps and unmaps every time, and the page faults cost
    as much as the arithmetic. Blocks of 65,536 items keep every temporary small and in cache.
    """

    def __init__(
        self, d: _Design, k: int, gold_items: NDArray[np.int64], gold_labels: NDArray[np.int64]
    ) -> None:
        n = d.A.shape[0]
        self.blocks = [
            (a, min(a + _BLOCK, n), _row_view(d.A, a, min(a + _BLOCK, n)))
            for a in range(0, n, _BLOCK)
        ]
        self.gold_items, self.gold_labels = gold_items, gold_labels
        self.gold_rows = d.A[gold_items] if gold_items.size else None
        self.out = np.empty((n, k))
        self.ones = np.ones(k)

    def __call__(
        self, log_theta: NDArray[np.float64], prior: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], float]:
        """Posterior (the shared buffer) and log-likelihood, block by block (``posterior_rows``)."""
        log_prior = np.log(prior)
        ll = 0.0
        norm_gold = np.empty(self.gold_items.size)
        for a, b, block in self.blocks:
            norm = posterior_rows(
                np.asarray(block @ log_theta), block, log_theta, log_prior, self.ones, self.out[a:b]
            )
            ll += float(norm.sum())
            if self.gold_items.size:
                inside = (self.gold_items >= a) & (self.gold_items < b)
                norm_gold[inside] = norm[self.gold_items[inside] - a]
        if self.gold_rows is not None:
            gold_joint = np.asarray(self.gold_rows @ log_theta)[
                np.arange(self.gold_items.size), self.gold_labels
            ]
            ll += float((gold_joint + log_prior[self.gold_labels]).sum() - norm_gold.sum())
            _pin(self.out, self.gold_items, self.gold_labels)
        return self.out, ll


@dataclass(frozen=True)
class _MeasuringRows:
    """The items that measure sources, as the M-step uses them: ``at`` is ``A.T`` restricted to
    their claims and ``weight`` their 0/1 mask (for the prior)."""

    at: sp.csc_matrix
    weight: NDArray[np.float64]

    @classmethod
    def of(cls, d: _Design, rows: NDArray[np.bool_]) -> _MeasuringRows:
        weight = rows.astype(np.float64)
        if rows.all():
            return cls(d.AT, weight)
        return cls((sp.diags(weight) @ d.A).T.tocsc(), weight)


def _chance_pool(k: int) -> NDArray[np.float64]:
    """One pseudo-claim's worth of "better than chance": accuracy halfway between 1/K and 1.

    It only matters where no item has two claims, so nobody can be measured; every source then
    gets the same reliability and the result is a majority vote rather than a degenerate fit.
    """
    acc = (1.0 + 1.0 / k) / 2.0
    pool = np.full((k, k), (1.0 - acc) / max(k - 1, 1))
    np.fill_diagonal(pool, acc)
    return pool


@dataclass(frozen=True)
class _EMLoop:
    """The EM loop and its settings, so the human-only and the full fit run the same code."""

    k: int
    method: str
    shrinkage: float
    learn_prior: bool
    prior: NDArray[np.float64]
    gold_items: NDArray[np.int64]
    gold_labels: NDArray[np.int64]
    max_iter: int
    tol: float

    def m_step(
        self,
        d: _Design,
        posterior: NDArray[np.float64],
        rows: _MeasuringRows,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Log theta (columns x K) and the class prior.

        Only ``rows`` (items with two or more claims, or gold) measure the sources: a lone claim
        agrees with the posterior it made itself, and letting it count is how DS drifts to "every
        item is class 0 and half the workers are liars" when most items have one label.
        """
        k = self.k
        counts = np.asarray(rows.at @ posterior)  # (columns, K true)
        prior = self.prior
        if self.learn_prior:
            # Also from measurable items only: with one label per item, learning the prior through
            # an assumed accuracy drifts it to 0 for a rare class.
            prior = rows.weight @ posterior + 1.0
            prior = prior / prior.sum()
        human = slice(0, d.n_hard_cols)
        if self.method == "onecoin" and d.n_hard_cols:
            # One coin per human source; a model keeps its full (binned) confusion, because a
            # model that nearly always answers one class is not "accurate", it is uninformative.
            hard = counts[human]
            agree = np.bincount(
                d.col_vsrc[human],
                weights=hard[np.arange(hard.shape[0]), d.col_class[human]],
                minlength=d.n_hard_cols // k,
            )
            total = np.bincount(
                d.col_vsrc[human], weights=hard.sum(axis=1), minlength=d.n_hard_cols // k
            )
            pooled = (agree.sum() + _chance_pool(k)[0, 0]) / (total.sum() + 1.0)
            pseudo = self.shrinkage + _FLOOR
            acc = ((agree + pseudo * pooled + _FLOOR) / (total + pseudo + 2 * _FLOOR))[
                d.col_vsrc[human]
            ]
            coin = np.where(
                d.col_class[human][:, None] == np.arange(k)[None, :],
                acc[:, None],
                ((1.0 - acc) / max(k - 1, 1))[:, None],
            )
        elif d.n_hard_cols:
            per_source = counts[human].reshape(-1, k, k)  # (sources, answer l, true k)
            pooled = per_source.sum(axis=0) + _chance_pool(k).T
            pooled = pooled / pooled.sum(axis=0, keepdims=True)
            counts[human] += np.tile((self.shrinkage + _FLOOR) * pooled, (per_source.shape[0], 1))
        if d.A.shape[1] > d.n_hard_cols:
            # Each model bin leans toward "uninformative" (its answer equally likely under every
            # class) by a few pseudo-claims, so a thin bin cannot claim certainty.
            model = slice(d.n_hard_cols, None)
            mass = counts[model].sum(axis=1)
            share = mass / np.maximum(
                np.asarray(d.group @ counts.sum(axis=1)).ravel()[d.col_vsrc[model]], _FLOOR
            )
            counts[model] += (_MODEL_PSEUDO * share)[:, None] * (prior * k)[None, :]
        counts += _FLOOR
        totals = np.asarray(d.group @ counts)  # (virtual sources, K)
        log_theta = np.log(counts / totals[d.col_vsrc])
        if self.method == "onecoin" and d.n_hard_cols:
            log_theta[human] = np.log(coin)
        return log_theta, prior

    def run(
        self,
        d: _Design,
        posterior: NDArray[np.float64],
        rows: NDArray[np.bool_],
        humans: NDArray[np.float64] | None = None,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], float, int, bool]:
        """EM from ``posterior``; ``humans`` (log theta of the hard columns) stay fixed if given.

        Returns posterior, log theta, prior, log-likelihood, iterations, converged.
        """
        posterior = posterior.copy()
        _pin(posterior, self.gold_items, self.gold_labels)
        fit_rows = _MeasuringRows.of(d, rows)
        e_step = _EStep(d, self.k, self.gold_items, self.gold_labels)
        prior, ll_prev, ll, it = self.prior, -np.inf, -np.inf, 0
        log_theta = np.zeros((d.A.shape[1], self.k))
        for it in range(1, self.max_iter + 1):
            log_theta, prior = self.m_step(d, posterior, fit_rows)
            if humans is not None:
                log_theta[: d.n_hard_cols] = humans
            posterior, ll = e_step(log_theta, prior)
            if abs(ll - ll_prev) <= self.tol * max(abs(ll), 1.0):
                return posterior, log_theta, prior, ll, it, True
            ll_prev = ll
        return posterior, log_theta, prior, ll, it, False


def _start(claims: Claims) -> NDArray[np.float64]:
    """The human vote; models only where no human answered, so they start out measured."""
    if not claims.item.size:
        return _vote_posterior(claims, None)
    posterior = _vote_posterior(claims.drop_soft(), None)
    if claims.prob_item.size:
        open_ = np.bincount(claims.item, minlength=claims.n_items) == 0
        if open_.any():
            posterior[open_] = _vote_posterior(claims, None)[open_]
    return posterior


def _measurable(claims: Claims, gold_items: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Items that can measure a source: two or more claims, or a gold label."""
    rows = claims.claims_per_item() >= 2
    rows[gold_items] = True
    return rows


def _summaries(
    d: _Design, claims: Claims, posterior: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """Per real source: confusion over classes (a model's answer collapsed to its top class),
    expected accuracy, and claim count."""
    k, s = claims.n_classes, claims.n_sources
    counts = np.asarray(d.AT @ posterior)  # (columns, K true)
    vs_src = d.vsrc_source[d.col_vsrc]
    if d.A.shape[1] > d.n_hard_cols:
        # A model's binned answers are folded onto its top class and added to its hard answers.
        counts_soft = counts[d.n_hard_cols :]
        idx = vs_src[d.n_hard_cols :] * k + d.col_class[d.n_hard_cols :]
        by_answer = np.zeros((s * k, k))
        np.add.at(by_answer, idx, counts_soft)
        counts = counts[: d.n_hard_cols] + by_answer
    else:
        counts = counts[: d.n_hard_cols]
    per = counts.reshape(s, k, k).transpose(0, 2, 1)  # (source, true k, answer l)
    mass = per.sum(axis=2, keepdims=True)
    confusion = np.where(mass > 0, (per + _FLOOR) / (mass + k * _FLOOR), 1.0 / k)
    total = per.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(total > 0, np.trace(per, axis1=1, axis2=2) / total, np.nan)
    n_claims = np.bincount(np.concatenate([claims.source, claims.prob_source]), minlength=s)
    return confusion, accuracy, n_claims


def _glad_or_mace(
    claims: Claims,
    method: str,
    gold_items: NDArray[np.int64],
    gold_labels: NDArray[np.int64],
    max_iter: int,
    tol: float,
    bins: int,
) -> TruthResult:
    """crowd-kit's GLAD (``glad``) or MACE (``mace``, each source from its own counts) as a
    ``TruthResult``; confusion and accuracy are counted under the posterior, as for the votes."""
    if method == "glad":
        g = fit_glad(
            claims, n_iter=max_iter, tol=tol, gold_items=gold_items, gold_labels=gold_labels
        )
        posterior, n_iter, converged, history = g.posterior, g.n_iter, g.converged, g.loss_history
    else:
        m = fit_mace(claims)
        posterior, n_iter, converged, history = m.posterior.copy(), m.n_iter, True, m.loss_history
        _pin(posterior, gold_items, gold_labels)
    confusion, accuracy, n_claims = _summaries(_design(claims, bins), claims, posterior)
    has = claims.claims_per_item() > 0
    prior = (
        posterior[has].mean(axis=0)
        if has.any()
        else np.full(claims.n_classes, 1.0 / claims.n_classes)
    )
    return TruthResult(
        posterior,
        confusion,
        prior,
        accuracy,
        n_claims,
        float("nan"),
        int(n_iter),
        bool(converged),
        method,
        tuple(history),
    )


def from_faithful(f: FaithfulFit, claims: Claims, method: str) -> TruthResult:
    """crowd-kit's Dawid-Skene or one-coin fit (``faithful``) as a ``TruthResult``."""
    s, k = claims.n_sources, claims.n_classes
    n_claims = np.bincount(claims.source, minlength=s)
    if method == "onecoin":
        # crowd-kit keeps only the answers a worker gave; the model it fits spreads the rest evenly.
        skill = np.nan_to_num(f.skills, nan=1.0 / k)[:, None, None]
        confusion = np.where(np.eye(k, dtype=bool)[None], skill, (1.0 - skill) / max(k - 1, 1))
    else:
        confusion = f.errors.reshape(s, k, k).transpose(0, 2, 1).copy()
    confusion[n_claims == 0] = 1.0 / k
    return TruthResult(
        f.posterior,
        confusion,
        f.prior,
        f.skills,
        n_claims,
        f.log_likelihood,
        f.n_iter,
        f.converged,
        method,
        f.loss_history,
    )


def fit_truth(
    claims: Claims,
    method: Method = "ds",
    *,
    gold_items: ArrayLike | None = None,
    gold_labels: ArrayLike | None = None,
    prior: ArrayLike | None = None,
    max_iter: int = 100,
    tol: float | None = None,
    shrinkage: float = 0.5,
    bins: int = 5,
) -> TruthResult:
    """Estimate every item's true class and every source's reliability.

    Parameters
    ----------
    claims : Claims
    method : {"mv", "wmv", "onecoin", "ds", "ds-shrunk", "glad", "mace", "auto"}
        Majority vote, weighted vote (each source weighted by its agreement with the majority),
        one-coin Dawid-Skene, full Dawid-Skene, or Dawid-Skene with the guards of this module
        (sparse sources shrunk toward the pool, only items with two claims measuring them).
        ``ds`` and ``onecoin`` are crowd-kit 1.4.2's models exactly (``faithful``) when every
        claim is hard and no ``prior`` is fixed; with model probability rows or a fixed prior
        they are this module's EM, which bins models' confidences. ``glad`` and ``mace`` are
        crowd-kit's GLAD and MACE (modules ``glad``, ``mace``; a fixed prior does not apply).
        ``auto`` picks among
        ``AUTO_CANDIDATES`` by held-out likelihood of the claims (see ``choice``); gold then
        pins the chosen fit but plays no part in the choice.
    gold_items, gold_labels : array-like of int, optional
        Items whose true class is known: pinned, and used to measure the sources.
    prior : array-like of shape (n_classes,), optional
        Fixed class prior; learned from the data when omitted.
    max_iter, tol :
        EM stops after ``max_iter`` iterations (with a ConvergenceWarning) or when its objective
        changes by less than ``tol``: crowd-kit's lower bound per claim (absolute, default 1e-5)
        for crowd-kit's models, the log-likelihood (relative, default 1e-6) for this module's.
        crowd-kit's models take ``max_iter=0``: the majority vote they start from.
    shrinkage : float
        Pseudo-claims pulling each human source toward the pooled confusion of all humans
        (this module's EM only).
    bins : int
        Confidence bins per model (equal-frequency over that model's top-class probabilities).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if method == "auto":
        settings = {
            "prior": prior,
            "max_iter": max_iter,
            "tol": tol,
            "shrinkage": shrinkage,
            "bins": bins,
        }
        pool = (
            AUTO_CANDIDATES
            if not claims.prob_item.size
            else tuple(m for m in AUTO_CANDIDATES if m not in _HARD_ONLY)
        )
        scores = held_out_scores(claims, pool, lambda c, m: fit_truth(c, m, **settings).posterior)  # type: ignore[arg-type]
        chosen = max(scores, key=scores.__getitem__)
        r = fit_truth(claims, chosen, gold_items=gold_items, gold_labels=gold_labels, **settings)  # type: ignore[arg-type]
        return replace(r, scores=scores)
    result = _fit_method(
        claims, method, gold_items, gold_labels, prior, max_iter, tol, shrinkage, bins
    )
    return _unchecked_models(claims, check_gold(claims, gold_items, gold_labels)[0], result)


def _unchecked_models(
    claims: Claims, gold_items: NDArray[np.int64], result: TruthResult
) -> TruthResult:
    """The one rule for models that nothing checked, whatever the method.

    A model is *measured* where it speaks to an item that a human claim or a gold label also
    speaks to; one that never does cannot be told apart from noise (``unchecked``), and an item
    whose only claims come from such models takes them at face value: the mean of their
    probability rows (one model: its own row), not a posterior the fit pulled toward the prior
    or toward whatever the models agree on. Items a measured model reached are read through
    what the fit learned about it (an inverted model gets inverted)."""
    n, s = claims.n_items, claims.n_sources
    if not claims.prob_item.size:
        return replace(result, unchecked=np.zeros(s, dtype=bool))
    anchored = np.bincount(claims.item, minlength=n) > 0
    anchored[gold_items] = True
    measured = np.bincount(claims.prob_source, weights=anchored[claims.prob_item], minlength=s) > 0
    reached = np.bincount(claims.prob_item, weights=measured[claims.prob_source], minlength=n) > 0
    face = (np.bincount(claims.prob_item, minlength=n) > 0) & ~anchored & ~reached
    unmeasured = (np.bincount(claims.prob_source, minlength=s) > 0) & ~measured
    if face.any():
        result.posterior[face] = _vote_posterior(claims, None)[face]
    return replace(result, unchecked=unmeasured)


def _fit_method(
    claims: Claims,
    method: str,
    gold_items: ArrayLike | None,
    gold_labels: ArrayLike | None,
    prior: ArrayLike | None,
    max_iter: int,
    tol: float | None,
    shrinkage: float,
    bins: int,
) -> TruthResult:
    """``fit_truth`` for one method (not ``auto``), before the rule for unchecked models."""
    faithful = method in ("ds", "onecoin") and not claims.prob_item.size and prior is None
    tol = DEFAULT_TOL.get(method, 1e-5 if method == "glad" else 1e-6) if tol is None else tol
    if max_iter < (0 if faithful else 1) or tol < 0 or shrinkage < 0 or bins < 1:
        raise ValueError(
            "max_iter and bins must be >= 1 (max_iter >= 0 for crowd-kit's models); "
            "tol and shrinkage >= 0"
        )
    k = claims.n_classes
    gi, gl = check_gold(claims, gold_items, gold_labels)
    if method in _HARD_ONLY:
        return _glad_or_mace(claims, method, gi, gl, max_iter, tol, bins)
    if faithful:
        fit = fit_faithful(
            claims,
            one_coin=method == "onecoin",
            n_iter=max_iter,
            tol=tol,
            gold_items=gi,
            gold_labels=gl,
        )
        result = from_faithful(fit, claims, method)
        if max_iter and not result.converged:
            warnings.warn(
                f"EM did not converge in {max_iter} iterations", ConvergenceWarning, stacklevel=3
            )
        return result
    learn_prior = prior is None
    fixed = np.full(k, 1.0 / k) if prior is None else np.asarray(prior, dtype=np.float64)
    if fixed.shape != (k,) or fixed.min() <= 0:
        raise ValueError(f"prior must be {k} positive numbers")
    fixed = fixed / fixed.sum()
    d = _design(claims, bins)

    if method in ("mv", "wmv"):
        hard = claims.hard_only()
        posterior = _vote_posterior(claims, None)
        if method == "wmv":
            vote = majority_vote(hard.item, hard.label, n_items=claims.n_items)
            agree = np.bincount(
                hard.source,
                weights=(vote.label[hard.item] == hard.label).astype(float),
                minlength=claims.n_sources,
            )
            seen = np.bincount(hard.source, minlength=claims.n_sources)
            weights = np.where(seen > 0, agree / np.maximum(seen, 1), 0.0)
            posterior = _vote_posterior(claims, weights)
        _pin(posterior, gi, gl)
        confusion, accuracy, n_claims = _summaries(d, claims, posterior)
        learned = posterior.sum(axis=0) + 1.0
        return TruthResult(
            posterior,
            confusion,
            learned / learned.sum() if learn_prior else fixed,
            accuracy,
            n_claims,
            float("nan"),
            0,
            True,
            method,
        )

    em = _EMLoop(
        k,
        "ds" if method == "ds-shrunk" else method,
        shrinkage,
        learn_prior,
        fixed,
        gi,
        gl,
        max_iter,
        tol,
    )
    rows = _measurable(claims, gi)
    humans = None
    if claims.prob_item.size and claims.item.size:
        # The humans are fit alone first and then held fixed while EM learns the models. Free
        # EM over one human label and one model row per item is not identifiable, and its
        # likelihood prefers the degenerate answer "the truth is whatever the model said".
        hard = claims.drop_soft()
        _, log_theta, _, _, _, _ = em.run(_design(hard, bins), _start(hard), _measurable(hard, gi))
        humans = log_theta
    posterior, _, class_prior, ll, it, converged = em.run(d, _start(claims), rows, humans)
    if not converged:
        warnings.warn(
            f"EM did not converge in {max_iter} iterations", ConvergenceWarning, stacklevel=3
        )
    confusion, accuracy, n_claims = _summaries(d, claims, posterior)
    return TruthResult(
        posterior, confusion, class_prior, accuracy, n_claims, ll, it, converged, method
    )
