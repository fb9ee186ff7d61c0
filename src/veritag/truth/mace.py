"""MACE (Hovy et al., 2013): who is spamming, reproducing crowd-kit 1.4.2's ``MACE`` aggregator.

The model. Item ``i`` has a true class ``T_i``, uniform over the ``K`` classes. On each claim,
source ``s`` either knows the answer (probability ``competence_s``) and gives ``T_i``, or spams and
draws its answer from its own strategy ``xi_s`` (a distribution over the classes). crowd-kit
stores ``spamming_[s] = (P(spam), P(know))`` and ``thetas_[s] = xi_s``; this module returns both
under the same names.

What crowd-kit's ``MACE.fit`` does, and what this module repeats:

* initialisation: ``spamming_`` and ``thetas_`` are drawn from ``scipy.stats.uniform(1, 1 +
  default_noise)`` with ``random_state`` and normalised per row. Rows follow the order in which
  sources first appear among the claims, columns the order in which classes first appear (classes
  never claimed come after them, in index order). crowd-kit passes the *integer* seed to both
  draws, so each draw starts a fresh ``RandomState(seed)``: every restart starts from the same
  point and all ``n_restarts`` runs are identical. With an int seed this module therefore runs
  once (same result, ``n_restarts`` times faster); with ``None``, a ``RandomState`` or a
  ``Generator`` the restarts draw in turn from it, as in crowd-kit;
* E-step: ``P(T_i = k, answers) = prod over i's claims of (P(spam) xi_s(answer) + P(know) [answer
  = k]) / K``; crowd-kit multiplies these in linear space, here they are summed as logs (the same
  numbers to rounding, without underflow on items with many claims). Expected counts: per claim,
  the posterior probability that the source spammed (counted towards its strategy and its
  ``P(spam)``) and that it knew (towards ``P(know)``);
* M-step, ``method="vb"``: ``exp(digamma(count + prior)) / exp(digamma(row sum))`` with
  Beta(``alpha``, ``beta``) priors on ``(P(spam), P(know))`` and a Dirichlet(10, ..., 10) prior on
  each strategy (crowd-kit's fixed value). ``method="em"``: counts plus ``smoothing``, normalised;
* ``n_iter`` rounds of M-step then E-step, with no convergence test; the restart with the highest
  ``sum(log(P(answers of item i) + 1e-8))`` wins (crowd-kit's score, ``+ 1e-8`` included), and the
  posterior is its last E-step.

Everything is an array over claims (``np.bincount`` sums, one vector pass per class), so there is
no Python loop over claims, items or sources; crowd-kit runs pandas group-bys per class and
iteration.

Where this differs from crowd-kit, and why:

* crowd-kit sums the strategy counts with ``groupby(["worker", "label"]).sum().unstack()``, which
  orders rows by worker *name* and columns by label *name*, and then uses that matrix by position,
  where row ``j`` means the ``j``-th worker *in order of first appearance* (likewise for labels).
  Unless names sort in order of first appearance, each worker's strategy is updated from another
  worker's counts. Its result then changes when workers are merely renamed: on the shared
  datasets renaming changes posteriors by up to 0.99 and accuracy by up to 11 points. This
  module updates each source from its own counts by default; ``crowdkit_compat=True`` reproduces
  the mis-alignment, treating source and class indices as the names crowd-kit would sort (so it
  matches crowd-kit when indices sort like the names, e.g. ``pandas.factorize(..., sort=True)``);
* crowd-kit reads ``smoothing`` from its constructor but never uses it: its EM M-step smooths with
  ``0.01 / K``. ``smoothing=None`` (the default) means that value; a number is used as given;
* ``K`` is ``claims.n_classes``; crowd-kit uses the labels it sees. They agree when every class is
  claimed at least once;
* sources and items without claims are not in crowd-kit's data: here such a source's parameters
  are NaN and such an item's posterior is uniform (it takes no part in the likelihood);
* soft (model) claims are read as their argmax (``Claims.hard_only``);
* sums run in claim order rather than pandas' (which compensates them, Kahan-style), so values
  agree with crowd-kit to rounding only; the updates are a contraction near their fixed point, so
  rounding does not grow: on the shared datasets posteriors agree to 2e-14.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.special import digamma, logsumexp

from .claims import Claims, first_appearance

__all__ = ["MaceResult", "fit_mace"]

_STRATEGY_PRIOR = (
    10.0  # crowd-kit's Dirichlet pseudo-count on every strategy cell (not a parameter there)
)
_LIKELIHOOD_FLOOR = 1e-8  # crowd-kit adds it to each item's marginal before the log

Seed = int | np.integer | np.random.RandomState | np.random.Generator | None


@dataclass(frozen=True)
class MaceResult:
    """What MACE found.

    Attributes
    ----------
    posterior : ndarray of shape (n_items, n_classes)
        P(true class | claims); uniform for an item without claims.
    competence : ndarray of shape (n_sources,)
        P(the source knows the answer) = ``spamming[:, 1] / spamming.sum(1)`` (the VB update does
        not normalise ``spamming``; only this ratio enters the posterior). NaN without claims.
    spamming : ndarray of shape (n_sources, 2)
        crowd-kit's ``spamming_``: the weights of (spamming, knowing). NaN without claims.
    thetas : ndarray of shape (n_sources, n_classes)
        crowd-kit's ``thetas_``: a source's answer distribution when it spams. NaN without claims.
    log_likelihood : float
        crowd-kit's restart score, ``sum(log(P(item's answers) + 1e-8))`` over items with claims.
    loss_history : list of float
        That score after each round of the winning restart.
    n_iter : int
        Rounds run per restart.
    """

    posterior: NDArray[np.float64]
    competence: NDArray[np.float64]
    spamming: NDArray[np.float64]
    thetas: NDArray[np.float64]
    log_likelihood: float
    loss_history: list[float]
    n_iter: int

    def labels(self) -> NDArray[np.int64]:
        """The most probable class per item (ties go to the smallest class index)."""
        return self.posterior.argmax(axis=1)


def _normalize(x: NDArray[np.float64], smoothing: float) -> NDArray[np.float64]:
    """crowd-kit's ``normalize``: rows of ``x + smoothing`` over their sums (0 where sum is ~0)."""
    norm = (x + smoothing).sum(axis=1)[:, None]
    return np.divide(x + smoothing, norm, out=np.zeros_like(x), where=~np.isclose(norm, 0.0))


def _variational_normalize(
    x: NDArray[np.float64], hparams: NDArray[np.float64]
) -> NDArray[np.float64]:
    """crowd-kit's ``variational_normalize``: ``exp(digamma(x + h)) / exp(digamma(row sum))``."""
    norm = np.exp(digamma((x + hparams).sum(axis=1)))[:, None]
    return np.divide(
        np.exp(digamma(x + hparams)), norm, out=np.zeros_like(x), where=~np.isclose(norm, 0.0)
    )


def _uniform(
    random_state: Seed, shape: tuple[int, int], low: float, width: float
) -> NDArray[np.float64]:
    """``scipy.stats.uniform(low, width).rvs(size=shape, random_state=random_state)`` without
    scipy.stats: an int seeds a fresh ``RandomState`` (scipy's ``check_random_state``), None uses
    numpy's global one."""
    if random_state is None:
        rng: np.random.RandomState | np.random.Generator = np.random.mtrand._rand
    elif isinstance(random_state, (int, np.integer)):
        rng = np.random.RandomState(int(random_state))
    else:
        rng = random_state
    return rng.uniform(0.0, 1.0, shape) * width + low


class _Mace:
    """Claims re-indexed onto crowd-kit's layout: sources, classes and items by first appearance."""

    def __init__(self, claims: Claims, compat: bool) -> None:
        self.k = claims.n_classes
        self.sources, src_rank = first_appearance(claims.source, claims.n_sources)
        self.items, item_rank = first_appearance(claims.item, claims.n_items)
        seen, _ = first_appearance(claims.label, claims.n_classes)
        self.classes = np.concatenate(
            [seen, np.setdiff1d(np.arange(self.k), seen)]
        )  # compact -> class
        cls_rank = np.empty(self.k, np.int64)
        cls_rank[self.classes] = np.arange(self.k)
        self.n_src, self.n_item = self.sources.size, self.items.size
        self.w = src_rank[claims.source]
        self.t = item_rank[claims.item]
        self.lab = cls_rank[claims.label]
        self.cell = self.w * self.k + self.lab
        # crowd-kit's strategy matrix comes back in name order: row j of it is the j-th source by
        # index, column j the j-th seen class by index; ``compat`` uses it by position as it does.
        self.src_by_name = np.argsort(self.sources, kind="stable") if compat else None
        self.cls_by_name = (
            np.concatenate([np.argsort(seen, kind="stable"), np.arange(seen.size, self.k)])
            if compat
            else None
        )

    def e_step(
        self, spam: NDArray[np.float64], theta: NDArray[np.float64]
    ) -> tuple[float, NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """Score, posterior, strategy counts and knowing counts after one E-step.

        Shapes: posterior (items with claims x K), strategy (sources x K), knowing (sources x 2).
        """
        f0 = spam[self.w, 0] * theta[self.w, self.lab]
        f1 = spam[self.w, 1]
        log_joint = np.empty((self.n_item, self.k))
        with np.errstate(divide="ignore"):
            log_f0 = np.log(f0)
            log_f01 = np.log(f0 + f1)
        base = np.bincount(self.t, weights=log_f0, minlength=self.n_item)
        for c in range(self.k):
            own = self.lab == c
            log_joint[:, c] = base + np.bincount(
                self.t[own], weights=log_f01[own] - log_f0[own], minlength=self.n_item
            )
        log_joint -= np.log(self.k)
        log_marginal = logsumexp(log_joint, axis=1, keepdims=True)
        post = np.exp(log_joint - log_marginal)
        score = float(np.log(np.exp(log_marginal[:, 0]) + _LIKELIHOOD_FLOOR).sum())
        p = post[self.t]
        p_own = p[np.arange(self.lab.size), self.lab]
        # P(spam | all) = f0 * sum_k P(T=k | all) / P(answer | T=k);
        # P(know | all) = P(T=answer) f1 / (f0 + f1)
        spam_post = (p.sum(axis=1) - p_own) / f0 + p_own / (f0 + f1)
        spam_post = spam_post * f0
        know_post = p_own * f1 / (f0 + f1)
        strategy = np.bincount(self.cell, weights=spam_post, minlength=self.n_src * self.k).reshape(
            self.n_src, self.k
        )
        knowing = np.stack(
            [
                np.bincount(self.w, weights=spam_post, minlength=self.n_src),
                np.bincount(self.w, weights=know_post, minlength=self.n_src),
            ],
            axis=1,
        )
        if self.src_by_name is not None and self.cls_by_name is not None:
            strategy = strategy[np.ix_(self.src_by_name, self.cls_by_name)]
        return score, post, strategy, knowing


def fit_mace(
    claims: Claims,
    *,
    n_restarts: int = 10,
    n_iter: int = 50,
    method: Literal["vb", "em"] = "vb",
    smoothing: float | None = None,
    default_noise: float = 0.5,
    alpha: float = 0.5,
    beta: float = 0.5,
    random_state: Seed = 0,
    crowdkit_compat: bool = False,
) -> MaceResult:
    """Fit MACE with crowd-kit 1.4.2's initialisation, updates and restart rule.

    Parameters
    ----------
    claims : Claims
        Soft claims are read as their argmax.
    n_restarts : random starts; the best score wins (one run suffices for an int ``random_state``).
    n_iter : rounds per start (no convergence test, as in crowd-kit).
    method : ``"vb"`` (variational Bayes with the priors below) or ``"em"`` (smoothed counts).
    smoothing : pseudo-count of the ``"em"`` M-step; None means crowd-kit's effective ``0.01 / K``.
    default_noise : the initial weights are uniform on ``[1, 2 + default_noise)``, then normalised.
    alpha, beta : Beta prior on (spamming, knowing) for ``"vb"``.
    random_state : int seed, None, ``RandomState`` or ``Generator``, as scipy's ``rvs`` reads it.
    crowdkit_compat : reproduce crowd-kit's mis-aligned strategy update (see the module docstring).
    """
    if method not in ("vb", "em"):
        raise ValueError(f"method must be 'vb' or 'em'; got {method!r}")
    if n_restarts < 1 or n_iter < 0:
        raise ValueError("n_restarts must be positive and n_iter non-negative")
    if smoothing is not None and not smoothing > 0:
        raise ValueError(
            "smoothing must be positive (a zero strategy cell makes a claim impossible)"
        )
    claims = claims.hard_only()
    k = claims.n_classes
    smooth = 0.01 / k if smoothing is None else float(smoothing)
    posterior = np.full((claims.n_items, k), 1.0 / k)
    spamming = np.full((claims.n_sources, 2), np.nan)
    thetas = np.full((claims.n_sources, k), np.nan)
    if claims.item.size == 0:
        return MaceResult(posterior, spamming[:, 1], spamming, thetas, 0.0, [], n_iter)

    model = _Mace(claims, crowdkit_compat)
    n_src = model.n_src
    theta_priors = np.empty((n_src, 2))
    theta_priors[:, 0], theta_priors[:, 1] = alpha, beta
    strategy_priors = np.multiply(_STRATEGY_PRIOR, np.ones((n_src, k)), dtype=np.float64)
    seeded = isinstance(random_state, (int, np.integer))
    best: (
        tuple[float, NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], list[float]]
        | None
    ) = None
    for _ in range(1 if seeded else n_restarts):
        spam = _uniform(random_state, (n_src, 2), 1.0, 1.0 + default_noise)
        theta = _uniform(random_state, (n_src, k), 1.0, 1.0 + default_noise)
        spam = spam / spam.sum(axis=1, keepdims=True)
        theta = theta / theta.sum(axis=1, keepdims=True)
        score, post, strategy, knowing = model.e_step(spam, theta)
        history: list[float] = []
        for _ in range(n_iter):
            if method == "vb":
                spam = _variational_normalize(knowing, theta_priors)
                theta = _variational_normalize(strategy, strategy_priors)
            else:
                spam = _normalize(knowing, smooth)
                theta = _normalize(strategy, smooth)
            score, post, strategy, knowing = model.e_step(spam, theta)
            history.append(score)
        if best is None or score > best[0]:
            best = (score, post, spam, theta, history)

    assert best is not None
    score, post, spam, theta, history = best
    posterior[model.items] = post[:, np.argsort(model.classes)]
    spamming[model.sources] = spam
    thetas[np.ix_(model.sources, model.classes)] = theta
    competence = spamming[:, 1] / spamming.sum(axis=1)
    return MaceResult(posterior, competence, spamming, thetas, score, history, n_iter)
