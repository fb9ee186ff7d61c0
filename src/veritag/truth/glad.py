"""GLAD (Whitehill et al., 2009): worker ability and item difficulty, reproducing crowd-kit 1.4.2.

The model. Item ``i`` has a true class ``z_i`` with prior ``p``. Source ``s`` answers item ``i``
correctly with probability ``a = sigmoid(alpha_s * exp(beta_i))`` and otherwise picks one of the
``K - 1`` wrong classes uniformly. ``alpha_s`` (any real) is the source's ability; ``beta_i`` is the
*log* inverse difficulty of the item (crowd-kit optimises ``beta`` with ``exp(beta)`` in the
likelihood, so ``beta`` is unconstrained). Both carry unit-variance normal priors, with means
``alphas_priors_mean`` and ``betas_priors_mean`` (1.0 unless given).

What crowd-kit's ``GLAD.fit`` does, and what this module repeats step for step:

* start from ``alpha = 1`` for every source and ``beta = 1`` for every item, whatever the prior
  means; the class prior is uniform (or ``labels_priors``) and is never re-estimated;
* E-step: ``log P(z_i = k) = log p_k + sum over i's claims of log a`` (claim says ``k``) or
  ``log(1 - a) - log(K - 1)`` (claim says another class), then a softmax per item. ``log a`` and
  ``log(1 - a)`` go through crowd-kit's ``_softplus``, which is exact for
  ``|alpha * exp(beta)| <= 30`` and clips beyond it (for ``x = alpha * exp(beta)`` above 30,
  ``log a = 0`` and ``log(1 - a) = -x``; below -30, ``log a = x`` and ``log(1 - a) = 0``); the
  same clipping is used here;
* M-step: maximise ``Q`` = expected complete log-likelihood (under the posterior of the E-step)
  plus ``log N(alpha - mean)`` and ``log N(beta - mean)``, over all alphas and betas at once,
  with ``scipy.optimize.minimize(method="CG", tol=m_step_tol, maxiter=m_step_max_iter)`` started
  from the current values. The gradient is crowd-kit's: ``d/d(alpha*exp(beta))`` of a claim's
  term is ``P(label) - sigmoid * sum_k P(k)``, with the exact sigmoid (not the clipped logs);
* loop (``n_iter`` at most): E-step, M-step, ``Q / (n_claims * K)`` appended to ``loss_history``;
  stop when it rose by less than ``tol``. The first comparison is against the *unnormalised*
  ``Q`` at the starting point (crowd-kit's quirk: the first round never stops it), so two EM rounds
  run at least, unless ``n_iter`` is 1;
* the posterior returned is the one of the last E-step, i.e. *before* the last M-step (crowd-kit
  stores ``probas_`` in the E-step and never refreshes it); alphas and betas are after it.

Here every claim-level quantity is an array over claims: per-item and per-source sums are
``np.bincount`` calls, the objective and its gradient cost O(claims) per evaluation, and there is
no Python loop over claims, items or sources (only over EM rounds and classes). crowd-kit builds a
``n_claims * K`` pandas frame and re-indexes it on every objective call, which is what makes it
slow.

Where this differs from crowd-kit, and why:

* sources and items without claims are absent from crowd-kit's data, so they take no part in the
  optimisation here either (their priors would shift ``Q`` by a constant and so the stopping
  rule); their ``alpha`` / ``beta`` are NaN and such an item's posterior is the prior;
* ``K`` is ``claims.n_classes`` (the declared classes); crowd-kit uses the labels it sees (or the
  length of ``labels_priors``). They agree whenever every class is claimed at least once;
* with one class crowd-kit computes ``0 * log(0)`` and returns NaN; here the wrong-class term
  is simply absent and every posterior is 1;
* ``gold_items`` / ``gold_labels`` are an extension (crowd-kit's GLAD takes no true labels):
  a gold item's posterior is pinned to its gold label in every E-step, so it measures the
  sources' abilities and its own difficulty through the M-step;
* soft (model) claims are read as their argmax (``Claims.hard_only``): GLAD models hard answers;
* sums run in claim order, not in pandas' row order with pandas' compensated (Kahan) group sums,
  so every value of the objective and its gradient agrees with crowd-kit's to rounding (about
  1e-16 relative), not bit for bit. That is enough for the E-step but not for the M-step:
  crowd-kit's 25 capped CG steps do not reach ``m_step_tol`` on real data, and their line searches
  amplify rounding about 1e4-fold per EM round (on snow_rte, with the objective and gradient
  equal to crowd-kit's at every point it visits to 2e-16 and 3e-12, the parameters agree to 5e-13
  after the first M-step, 3e-9 after the second, 2e-4 after the third). So the fit reproduces
  crowd-kit only as well as crowd-kit reproduces itself: crowd-kit run on the same claims in another
  row order moves its own posteriors by up to 0.05 (product) and its accuracy by one item
  (snow_rte), the size of the gap to this module (posteriors within 0.05; accuracy equal on five
  of the six shared datasets and one item in 800 apart on snow_rte). Bit-for-bit agreement
  would need pandas' row order and a sequential Kahan sum per source (a recurrence over up to
  ~6000 rows), which cannot be vectorised. With a converging M-step (a small ``m_step_tol`` and a
  large ``m_step_max_iter``) the fit is a smooth function of the claims and agrees closely.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import expit, logsumexp

from .claims import Claims, check_gold, first_appearance

__all__ = ["GladResult", "fit_glad"]

_SQRT_2PI = np.sqrt(
    2 * np.pi
)  # scipy.stats.norm's density constant, so log N(d) is computed as crowd-kit does
_SOFTPLUS_LIMIT = 30.0


@dataclass(frozen=True)
class GladResult:
    """What GLAD found.

    Attributes
    ----------
    posterior : ndarray of shape (n_items, n_classes)
        P(true class | claims) from the last E-step; an item without claims gets the prior, a
        gold item its gold label.
    alpha : ndarray of shape (n_sources,)
        Source ability (higher is better, negative is adversarial); NaN for a source without claims.
    beta : ndarray of shape (n_items,)
        Log inverse difficulty (higher is easier); NaN for an item without claims.
    prior : ndarray of shape (n_classes,)
        The fixed class prior (normalised).
    loss_history : list of float
        ``Q / (n_claims * n_classes)`` after each EM round.
    n_iter : int
        EM rounds run.
    converged : bool
        Whether ``Q`` rose by less than ``tol`` before ``n_iter`` rounds ran out.
    """

    posterior: NDArray[np.float64]
    alpha: NDArray[np.float64]
    beta: NDArray[np.float64]
    prior: NDArray[np.float64]
    loss_history: list[float]
    n_iter: int
    converged: bool

    def labels(self) -> NDArray[np.int64]:
        """The most probable class per item (ties go to the smallest class index)."""
        return self.posterior.argmax(axis=1)


def _softplus(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """crowd-kit's clipped ``log(1 + exp(x))``: ``x`` above 30, 0 below -30."""
    inside = np.abs(x) <= _SOFTPLUS_LIMIT
    out = np.where(x > _SOFTPLUS_LIMIT, x, 0.0)
    out[inside] = np.log1p(np.exp(x[inside]))
    return out


def _log_normal(d: NDArray[np.float64]) -> float:
    """``sum(log(norm.pdf(d)))`` as scipy evaluates it (it underflows to -inf past |d| ~ 38.6)."""
    with np.errstate(divide="ignore"):
        return float(np.log(np.exp(-(d**2) / 2.0) / _SQRT_2PI).sum())


def _prior_means(given: ArrayLike | None, size: int, name: str) -> NDArray[np.float64]:
    if given is None:
        return np.ones(size)
    arr = np.asarray(given, dtype=np.float64)
    if arr.ndim != 0 and arr.shape != (size,):
        raise ValueError(f"{name} must be a scalar or have shape ({size},); got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return np.broadcast_to(arr, (size,)).astype(np.float64)


def _class_prior(labels_priors: ArrayLike | None, k: int) -> NDArray[np.float64]:
    if labels_priors is None:
        return np.full(k, 1.0 / k)
    prior = np.asarray(labels_priors, dtype=np.float64)
    if prior.shape != (k,):
        raise ValueError(f"labels_priors must have shape ({k},); got {prior.shape}")
    if not np.all(np.isfinite(prior)) or prior.min() <= 0:
        raise ValueError("labels_priors must be finite and positive")
    return prior / prior.sum()


class _Glad:
    """The claims re-indexed onto the sources and items that have claims (crowd-kit's ``x`` layout:
    abilities of sources in order of first appearance, then difficulties of items likewise)."""

    def __init__(
        self,
        claims: Claims,
        log_prior: NDArray[np.float64],
        alpha_mean: NDArray[np.float64],
        beta_mean: NDArray[np.float64],
        gold_items: NDArray[np.int64],
        gold_labels: NDArray[np.int64],
    ) -> None:
        self.k = claims.n_classes
        self.log_prior = log_prior
        self.label = claims.label
        self.sources, src_rank = first_appearance(claims.source, claims.n_sources)
        self.items, item_rank = first_appearance(claims.item, claims.n_items)
        self.n_src, self.n_item = self.sources.size, self.items.size
        self.src = src_rank[claims.source]
        self.itm = item_rank[claims.item]
        self.alpha_mean = alpha_mean[self.sources]
        self.beta_mean = beta_mean[self.items]
        gold_rank = item_rank[gold_items]
        keep = gold_rank >= 0
        self.gold_items, self.gold_labels = gold_rank[keep], gold_labels[keep]
        self.log_wrong = np.log(self.k - 1) if self.k > 1 else 0.0
        # Per-claim posterior of the claimed class and of the others; set by e_step.
        self.p_label = np.zeros(self.label.size)
        self.p_rest = np.zeros(self.label.size)
        self.p_sum = np.zeros(self.label.size)

    def _ab(self, x: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        a = x[: self.n_src][self.src]
        eb = np.exp(x[self.n_src :][self.itm])
        return a, eb

    def _log_terms(
        self, ab: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Per claim: log P(answer | true = claimed), log P(answer | true = a given other class)."""
        return -_softplus(-ab), -_softplus(ab) - self.log_wrong

    def e_step(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Posterior over the items with claims; also caches the per-claim posterior terms."""
        a, eb = self._ab(x)
        log_right, log_wrong = self._log_terms(a * eb)
        logits = np.empty((self.n_item, self.k))
        base = (
            np.bincount(self.itm, weights=log_wrong, minlength=self.n_item) if self.k > 1 else 0.0
        )
        for c in range(self.k):
            own = self.label == c
            gain = np.bincount(
                self.itm[own], weights=log_right[own] - log_wrong[own], minlength=self.n_item
            )
            logits[:, c] = base + gain + self.log_prior[c]
        post = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
        if self.gold_items.size:
            post[self.gold_items] = 0.0
            post[self.gold_items, self.gold_labels] = 1.0
        self.p_label = post[self.itm, self.label]
        self.p_sum = post.sum(axis=1)[self.itm]
        self.p_rest = self.p_sum - self.p_label
        return post

    def _q(self, x: NDArray[np.float64], ab: NDArray[np.float64]) -> float:
        log_right, log_wrong = self._log_terms(ab)
        total = self.p_label * log_right
        if self.k > 1:
            total = total + self.p_rest * log_wrong
        value = float(total.sum())
        value += _log_normal(x[: self.n_src] - self.alpha_mean)
        value += _log_normal(x[self.n_src :] - self.beta_mean)
        return -np.inf if np.isnan(value) else value

    def q(self, x: NDArray[np.float64]) -> float:
        """Expected complete log-likelihood plus alpha's and beta's log priors (crowd-kit's Q)."""
        a, eb = self._ab(x)
        return self._q(x, a * eb)

    def neg_q_and_grad(self, x: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        """``-Q`` and its gradient, the objective crowd-kit hands to ``minimize``."""
        a, eb = self._ab(x)
        ab = a * eb
        g = self.p_label - expit(ab) * self.p_sum
        d_alpha = np.bincount(self.src, weights=g * eb, minlength=self.n_src) - (
            x[: self.n_src] - self.alpha_mean
        )
        d_beta = np.bincount(self.itm, weights=g * ab, minlength=self.n_item) - (
            x[self.n_src :] - self.beta_mean
        )
        return -self._q(x, ab), -np.concatenate([d_alpha, d_beta])


def fit_glad(
    claims: Claims,
    *,
    n_iter: int = 100,
    tol: float = 1e-5,
    labels_priors: ArrayLike | None = None,
    alphas_priors_mean: ArrayLike | None = None,
    betas_priors_mean: ArrayLike | None = None,
    m_step_max_iter: int = 25,
    m_step_tol: float = 1e-2,
    gold_items: ArrayLike | None = None,
    gold_labels: ArrayLike | None = None,
) -> GladResult:
    """Fit GLAD by EM with crowd-kit 1.4.2's initialisation, updates and stopping rule.

    Parameters
    ----------
    claims : Claims
        Soft claims are read as their argmax.
    n_iter, tol : EM rounds at most; stop when ``Q / (n_claims * K)`` rises by less than ``tol``.
    labels_priors : array of shape (n_classes,), optional
        Fixed class prior (uniform by default); normalised here.
    alphas_priors_mean : float or array of shape (n_sources,), optional
        Mean of the normal prior on each ability (1.0 by default).
    betas_priors_mean : float or array of shape (n_items,), optional
        Mean of the normal prior on each log inverse difficulty (1.0 by default).
    m_step_max_iter, m_step_tol : ``maxiter`` and ``tol`` of the conjugate-gradient M-step.
    gold_items, gold_labels : optional
        Items whose true class is known (an extension; see the module docstring).
    """
    if n_iter < 0:
        raise ValueError("n_iter must be non-negative")
    claims = claims.hard_only()
    k = claims.n_classes
    prior = _class_prior(labels_priors, k)
    alpha_mean = _prior_means(alphas_priors_mean, claims.n_sources, "alphas_priors_mean")
    beta_mean = _prior_means(betas_priors_mean, claims.n_items, "betas_priors_mean")
    gi, gl = check_gold(claims, gold_items, gold_labels)

    posterior = np.tile(prior, (claims.n_items, 1))
    alpha = np.full(claims.n_sources, np.nan)
    beta = np.full(claims.n_items, np.nan)
    if gi.size:
        posterior[gi] = 0.0
        posterior[gi, gl] = 1.0
    if claims.item.size == 0:
        return GladResult(posterior, alpha, beta, prior, [], 0, True)

    model = _Glad(claims, np.log(prior), alpha_mean, beta_mean, gi, gl)
    x = np.ones(model.n_src + model.n_item)
    post = model.e_step(x)
    q = model.q(x)
    scale = claims.item.size * k
    history: list[float] = []
    converged = False
    for _ in range(n_iter):
        last_q = q
        post = model.e_step(x)
        res = minimize(
            model.neg_q_and_grad,
            x,
            method="CG",
            jac=True,
            tol=m_step_tol,
            options={"disp": False, "maxiter": m_step_max_iter},
        )
        x = np.asarray(res.x, dtype=np.float64)
        q = model.q(x) / scale
        history.append(q)
        if q - last_q < tol:
            converged = True
            break

    posterior[model.items] = post
    alpha[model.sources] = x[: model.n_src]
    beta[model.items] = x[model.n_src :]
    return GladResult(posterior, alpha, beta, prior, history, len(history), converged)
