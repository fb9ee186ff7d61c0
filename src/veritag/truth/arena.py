"""Arena ratings: Bradley-Terry leaderboards with intervals, from pairwise battles.

A battle is "model A against model B, and the judge said A, B, tie or both bad". The rating of a
model is its Bradley-Terry strength ``theta`` on the Elo-like scale ``scale / ln(10) * theta``
(400 points = ten-to-one odds), centred so that the mean rating is ``base``. Two tie models:

* ``ties="half"`` (the default, as Chatbot Arena / FastChat): a tie is half a win for each side,
  ``P(i beats j) = sigmoid(theta_i - theta_j)``.
* ``ties="davidson"``: Davidson (1970), a tie is an outcome of its own,
  ``P(i) : P(j) : P(tie) = pi_i : pi_j : nu * sqrt(pi_i * pi_j)`` with ``pi = exp(theta)``. With no
  ties in the data ``nu -> 0`` and it is plain Bradley-Terry.

Why it is fast: the likelihood depends on the battles only through weighted counts per pair and
outcome, so a million battles among 100 models become at most 3 x 4,950 numbers before any
fitting. The fit is Newton's method on those counts (the Hessian is a weighted graph Laplacian,
n x n), a handful of iterations from any start. Bootstrap rounds resample the *counts* (Poisson,
per pair and outcome) and are fitted all at once as a batch of Newton problems, warm-started at
the point estimate, so 100 rounds cost about as much as a few fits.

Identifiability and the prior. Ratings are only defined up to a constant, so the mean is pinned to
``base``. A model that never wins (or never loses) has no finite maximum-likelihood strength; every
model is therefore credited with a tiny prior of ``_PRIOR`` pseudo-battles (half a win, half a loss)
against a virtual average model (``theta = 0``). On real data this moves ratings by far less than a
point (0.1 pseudo-battles against hundreds of real ones); for an always-losing model it gives a
finite, very low rating instead of ``-inf``. Its interval is *not* to be trusted: neither the
sandwich nor the bootstrap sees any variation in "always loses", so both come out narrow around a
value the prior set; read such a model's rating as "below everyone it met". The Davidson tie
parameter gets the same kind of prior (``_PRIOR`` pseudo-ties and as many decisive pseudo-battles
between two equal models). A comparison graph in several pieces (no chain of battles links two
models) is an error, because their relative ratings would be made up by the prior alone; the
message names the components, and a per-component board is ``leaderboard`` on each component's
battles.

Intervals. ``interval="bootstrap"`` resamples battles (on the counts, see above) and reports
percentile intervals; ``"sandwich"`` is the robust (Huber-White) covariance ``H^-1 B H^-1`` with
``B`` the sum of per-battle score outer products, so it stays honest when ties-as-half-wins or the
weights make the plain Fisher information wrong; intervals are ``rating +- z * sd``. Ranks follow
LMArena: ``1 +`` the number of models whose lower bound is above this model's upper bound, so
models whose intervals overlap share a rank.
"""

from __future__ import annotations

import math
import operator
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray
from scipy.sparse.csgraph import connected_components
from scipy.special import expit, log_expit, ndtri

from .engine import ConvergenceWarning
from .outcomes import OUTCOME_SPELLINGS, OUTCOMES, outcome_named, unknown_outcome

__all__ = [
    "OUTCOMES",
    "OUTCOME_SPELLINGS",
    "BradleyTerry",
    "Leaderboard",
    "leaderboard",
    "outcome_named",
    "pair_priority",
    "unknown_outcome",
]

_CODES = {o: k for k, o in enumerate(OUTCOMES)}
#: Exact spellings to codes: the fast path of ``_prepare`` (a C-level map over a dict).
_EXACT_CODES = {s: _CODES[o] for o, spellings in OUTCOME_SPELLINGS.items() for s in spellings}


Ties = Literal["half", "davidson"]
Interval = Literal["bootstrap", "sandwich", "none"]

_PRIOR = 0.1  # pseudo-battles per model against a virtual average model (see the module docstring)
_TOL = 1e-8  # Newton stops when no parameter moved by more than this (natural-log units)
_TRUST = 1e-6  # Newton decrement below which a full step is taken without a line search
_MAX_ITER = 100
_FLOOR = 1e-6  # floor on the prior's curvature per unit (keeps the Newton system invertible)
_BATCH_BYTES = 64 << 20  # memory for one batch of bootstrap Hessians
_MAX_LISTED = 5  # components / models named in an error message


@dataclass(frozen=True)
class Leaderboard:
    """A fitted board, best model first.

    Attributes
    ----------
    models : list of str
        Model names, best first (by rating; equal ratings by name).
    rating : ndarray of shape (n,)
        ``scale / ln(10) * theta``, mean ``base``.
    lower, upper : ndarray of shape (n,)
        Interval bounds at level ``1 - alpha``; NaN with ``interval="none"``.
    rank : ndarray of shape (n,)
        ``1 +`` the number of models whose lower bound is above this model's upper bound (with
        ``interval="none"``: whose rating is above this one's).
    battles : ndarray of shape (n,)
        Battles each model took part in, after dropping (``both_bad="drop"``, zero weights).
    cov : ndarray of shape (n, n) or None
        Covariance of the ratings (bootstrap or sandwich), None with ``interval="none"``.
    ties, interval : str
        The options the board was fitted with.
    tie_param : float or None
        Davidson's ``nu`` with ``ties="davidson"``, else None.
    """

    models: list[str]
    rating: NDArray[np.float64]
    lower: NDArray[np.float64]
    upper: NDArray[np.float64]
    rank: NDArray[np.int64]
    battles: NDArray[np.int64]
    cov: NDArray[np.float64] | None
    ties: str
    interval: str
    tie_param: float | None
    scale: float = 400.0
    base: float = 1000.0

    def rows(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per model, best first (NaN bounds become None)."""

        def num(x: float) -> float | None:
            return None if math.isnan(x) else float(x)

        return [
            {
                "model": m,
                "rating": float(self.rating[k]),
                "lower": num(self.lower[k]),
                "upper": num(self.upper[k]),
                "rank": int(self.rank[k]),
                "battles": int(self.battles[k]),
            }
            for k, m in enumerate(self.models)
        ]

    def win_probability(self) -> NDArray[np.float64]:
        """(n, n) matrix of P(row model beats column model) under the fitted model.

        With ``ties="half"`` this is the expected score (a tie counts one half); with Davidson it
        is the probability of a decisive win, so ``P[i, j] + P[j, i] + P(tie) = 1``.
        """
        theta = self.rating * (math.log(10.0) / self.scale)
        d = theta[:, None] - theta[None, :]
        if self.tie_param is None:
            p = expit(d)
        else:
            p = 1.0 / (1.0 + np.exp(-d) + self.tie_param * np.exp(-d / 2.0))
        np.fill_diagonal(p, 0.0)
        return p


# --- input -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Counts:
    """Battles collapsed to weighted counts per unordered pair ``i < j``.

    ``w[c]`` and ``w2[c]`` are the sums of weights and of squared weights of the battles of each
    pair with outcome ``c`` (0: ``i`` won, 1: ``j`` won, 2: tie); ``w2`` feeds the sandwich and the
    bootstrap (Kish's effective number of battles ``w**2 / w2``).
    """

    n: int
    i: NDArray[np.int64]
    j: NDArray[np.int64]
    w: NDArray[np.float64]  # (3, P)
    w2: NDArray[np.float64]  # (3, P)


def _as_list(values: Sequence[str], name: str) -> list[Any]:
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise ValueError(f"{name} must be 1-d, got shape {values.shape}")
        return values.tolist()
    if isinstance(values, str):
        raise ValueError(f"{name} must be a sequence of strings, not a single string")  # noqa: TRY004
    return values if isinstance(values, list) else list(values)


def _codes(values: list[Any], index: dict[Any, int]) -> NDArray[np.int64]:
    """Names to integer codes through ``index``; a C-level ``map`` over a dict is several times
    faster than ``np.unique`` on a million strings (no sort, no Python loop)."""
    return np.fromiter(map(index.__getitem__, values), np.int64, count=len(values))


def _outcome_codes(outcomes: list[Any]) -> dict[Any, int]:
    """Each distinct value of ``outcomes`` to its outcome's code, or a ValueError naming the first
    battle whose outcome is no accepted spelling. Only values outside the exact spellings are
    looked at one by one, so a million battles cost one set and one dict, not a loop."""
    distinct = set(outcomes)
    codes = dict(_EXACT_CODES)
    for value in distinct - codes.keys():
        named = outcome_named(value)
        if named is not None:
            codes[value] = _CODES[named]
    if not distinct <= codes.keys():
        first = next(k for k, v in enumerate(outcomes) if v not in codes)
        raise ValueError(f"battle {first}: outcome {unknown_outcome(outcomes[first])}")
    return codes


def _prepare(
    model_a: Sequence[str],
    model_b: Sequence[str],
    outcome: Sequence[str],
    weights: ArrayLike | None,
    both_bad: str,
) -> tuple[list[str], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """Validated codes for the kept battles: (names, a, b, outcome 0/1/2, weight)."""
    if both_bad not in ("tie", "drop"):
        raise ValueError(f"both_bad must be 'tie' or 'drop', got {both_bad!r}")
    la, lb, lo = (
        _as_list(model_a, "model_a"),
        _as_list(model_b, "model_b"),
        _as_list(outcome, "outcome"),
    )
    if not (len(la) == len(lb) == len(lo)):
        raise ValueError(
            "model_a, model_b and outcome must have the same length, got "
            f"{len(la)}, {len(lb)} and {len(lo)}"
        )
    if not la:
        raise ValueError("no battles: model_a, model_b and outcome are empty")
    try:
        names = list(dict.fromkeys(la + lb))
        codes = _outcome_codes(lo)
    except TypeError:
        raise ValueError("model names and outcomes must be strings (hashable)") from None
    index = {m: k for k, m in enumerate(names)}
    a, b, o = _codes(la, index), _codes(lb, index), _codes(lo, codes)
    same = np.flatnonzero(a == b)
    if same.size:
        raise ValueError(f"battle {int(same[0])} pits {names[a[same[0]]]!r} against itself")
    if weights is None:
        w = np.ones(a.size)
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != a.shape:
            raise ValueError(
                f"weights must have one value per battle ({a.size}), got shape {w.shape}"
            )
        if not np.isfinite(w).all() or (w < 0).any():
            raise ValueError("weights must be finite and >= 0")
    keep = w > 0
    if both_bad == "drop":
        keep &= o != 3
    o = np.minimum(o, 2)  # both_bad (3) is a tie unless dropped
    if not keep.all():
        a, b, o, w = a[keep], b[keep], o[keep], w[keep]
        if a.size == 0:
            raise ValueError("no battles left after dropping both_bad outcomes and zero weights")
        used = np.zeros(len(names), dtype=bool)
        used[a] = used[b] = True
        if not used.all():  # renumber: a model seen only in dropped battles is not on the board
            new = np.cumsum(used) - 1
            a, b = new[a], new[b]
            names = [m for m, u in zip(names, used) if u]
    return names, a, b, o, w


def _collapse(
    n: int, a: NDArray[np.int64], b: NDArray[np.int64], o: NDArray[np.int64], w: NDArray[np.float64]
) -> _Counts:
    """Weighted counts per (unordered pair, outcome from the lower index's side)."""
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    swapped = a > b
    cat = np.where((o < 2) & swapped, 1 - o, o)  # a win for ``a`` is a win for ``hi`` when swapped
    pair = lo * n + hi
    if n * n <= 1 << 22:
        keys = np.flatnonzero(np.bincount(pair, minlength=n * n))
        slot = np.zeros(n * n, dtype=np.int64)
        slot[keys] = np.arange(keys.size)
        inv = slot[pair]
    else:
        keys, inv = np.unique(pair, return_inverse=True)
    cell = inv * 3 + cat
    size = keys.size * 3
    wsum = np.bincount(cell, weights=w, minlength=size).reshape(-1, 3).T
    w2sum = np.bincount(cell, weights=w * w, minlength=size).reshape(-1, 3).T
    return _Counts(n, keys // n, keys % n, np.ascontiguousarray(wsum), np.ascontiguousarray(w2sum))


def _check_connected(c: _Counts, names: list[str]) -> None:
    """One comparison graph, or a ValueError naming its pieces."""
    graph = sp.coo_matrix((np.ones(c.i.size), (c.i, c.j)), shape=(c.n, c.n))
    k, label = connected_components(graph, directed=False)
    if k <= 1:
        return
    parts = sorted((np.flatnonzero(label == g) for g in range(k)), key=lambda p: -p.size)
    shown = "; ".join(
        "{"
        + ", ".join(names[m] for m in p[:_MAX_LISTED])
        + (f", ... ({p.size} models)" if p.size > _MAX_LISTED else "")
        + "}"
        for p in parts[:_MAX_LISTED]
    )
    more = f"; and {k - _MAX_LISTED} more" if k > _MAX_LISTED else ""
    raise ValueError(
        f"the battles form {k} disconnected groups of models, whose ratings cannot be "
        f"compared: {shown}{more}. Fit one leaderboard per group."
    )


# --- the likelihood ----------------------------------------------------------------------------


class _Model:
    """Log-likelihood, gradient and negated Hessian of one tie model, batched over rounds.

    ``x`` is (R, m): strengths ``theta`` (n) and, for Davidson, ``log nu`` last. ``w`` is (R, 3, P).
    """

    def __init__(self, c: _Counts, davidson: bool) -> None:
        self.c, self.davidson = c, davidson
        self.m = c.n + int(davidson)
        p = c.i.size
        rows = np.concatenate([np.arange(p), np.arange(p)])
        cols = np.concatenate([c.i, c.j])
        vals = np.concatenate([np.ones(p), -np.ones(p)])
        self.incidence = sp.csr_matrix(
            (vals, (rows, cols)), shape=(p, c.n)
        )  # d = incidence @ theta

    def assemble(
        self,
        hdd: NDArray[np.float64],
        hde: NDArray[np.float64] | None = None,
        hee: NDArray[np.float64] | None = None,
    ) -> NDArray[np.float64]:
        """Batched (R, m, m) matrix ``sum_pairs hdd (e_i - e_j)(e_i - e_j)^T`` (+ the nu row).

        The shape of every Hessian and score outer product here: a pair only touches ``theta_i``,
        ``theta_j`` and, for Davidson, ``log nu`` (index ``m - 1``; ``hde``, ``hee`` given).
        """
        c, n, rounds = self.c, self.c.n, hdd.shape[0]
        out = np.zeros((rounds, self.m, self.m))
        out[:, c.i, c.j] = -hdd  # pairs are unique, so fancy assignment is safe
        out[:, c.j, c.i] = -hdd
        diag = np.arange(n)
        out[:, diag, diag] = -out[:, :n, :n].sum(axis=2)
        if hde is not None and hee is not None:
            col = (self.incidence.T @ hde.T).T  # + hde at i, - hde at j
            out[:, :n, n] = col
            out[:, n, :n] = col
            out[:, n, n] = hee.sum(axis=1)
        return out

    def _parts(
        self, x: NDArray[np.float64], w: NDArray[np.float64], derivs: bool
    ) -> tuple[NDArray[np.float64], ...]:
        n, c = self.c.n, self.c
        theta = x[:, :n]
        d = theta[:, c.i] - theta[:, c.j]
        wi, wj, wt = w[:, 0], w[:, 1], w[:, 2]
        total = wi + wj + wt
        # prior: _PRIOR pseudo-battles, half won, against a virtual model at theta = 0
        ll = (0.5 * _PRIOR * (log_expit(theta) + log_expit(-theta))).sum(axis=1)
        if not self.davidson:
            ll = ll + ((wi + 0.5 * wt) * log_expit(d) + (wj + 0.5 * wt) * log_expit(-d)).sum(axis=1)
            if not derivs:
                return (ll,)
            p = expit(d)
            return ll, wi + 0.5 * wt - total * p, total * p * (1.0 - p)
        eta = x[:, n:]
        # log D = log(e^{d/2} + e^{-d/2} + nu), computed without overflow
        half = 0.5 * np.abs(d)
        top = np.maximum(half, eta)
        log_d = top + np.log(np.exp(half - top) + np.exp(-half - top) + np.exp(eta - top))
        ll = ll + (0.5 * (wi - wj) * d + wt * eta - total * log_d).sum(axis=1)
        # prior on nu: _PRIOR ties and _PRIOR decisive pseudo-battles between equal models
        ll = ll + _PRIOR * (eta[:, 0] - 2.0 * np.logaddexp(math.log(2.0), eta[:, 0]))
        if not derivs:
            return (ll,)
        plus, minus = np.exp(0.5 * d - log_d), np.exp(-0.5 * d - log_d)
        sh, ch, nu_d, inv_d = (
            0.5 * (plus - minus),
            0.5 * (plus + minus),
            np.exp(eta - log_d),
            np.exp(-log_d),
        )
        gd = 0.5 * (wi - wj) - total * sh
        ge = wt - total * nu_d
        hdd = total * (inv_d * inv_d + 0.5 * nu_d * ch)
        hde = -total * sh * nu_d
        hee = 2.0 * total * nu_d * ch
        return ll, gd, hdd, ge, hde, hee

    def loglik(self, x: NDArray[np.float64], w: NDArray[np.float64]) -> NDArray[np.float64]:
        return self._parts(x, w, derivs=False)[0]

    def derivatives(
        self, x: NDArray[np.float64], w: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """(loglik (R,), gradient (R, m), negated Hessian (R, m, m)), prior included.

        The prior's curvature is floored at ``_PRIOR * _FLOOR`` (see below).
        """
        n = self.c.n
        parts = self._parts(x, w, derivs=True)
        ll, gd, hdd = parts[0], parts[1], parts[2]
        q = expit(x[:, :n])
        grad = np.empty_like(x)
        grad[:, :n] = (self.incidence.T @ gd.T).T + _PRIOR * (0.5 - q)
        if self.davidson:
            ge, hde, hee = parts[3], parts[4], parts[5]
            hess = self.assemble(hdd, hde, hee)
            e = x[:, n]
            nu = np.exp(e)
            grad[:, n] = ge.sum(axis=1) + _PRIOR * (1.0 - 2.0 * nu / (2.0 + nu))
            hess[:, n, n] += _PRIOR * np.maximum(4.0 * nu / (2.0 + nu) ** 2, _FLOOR)
        else:
            hess = self.assemble(hdd)
        # The prior's curvature has a floor: where the logistic curve is flat (a model far out that
        # only the prior pins, e.g. absent from a bootstrap round) the Hessian stays invertible and
        # the line search brings the step back; the fixed point is the same.
        diag = np.arange(n)
        hess[:, diag, diag] += _PRIOR * np.maximum(q * (1.0 - q), _FLOOR)
        return ll, grad, hess


def _newton(model: _Model, w: NDArray[np.float64], x0: NDArray[np.float64]) -> NDArray[np.float64]:
    """Maximise the (concave) penalised log-likelihood for every round of ``w`` at once.

    Damped Newton: full steps, halved per round until the Armijo condition holds. The prior makes
    the negated Hessian positive definite, so every step is an ascent direction.
    """
    x = np.array(x0, dtype=np.float64, copy=True)
    active = np.arange(x.shape[0])
    for _ in range(_MAX_ITER):
        xa, wa = x[active], w[active]
        ll, grad, hess = model.derivatives(xa, wa)
        step = np.linalg.solve(hess, grad[:, :, None])[:, :, 0]
        slope = (grad * step).sum(axis=1)
        t = np.ones(active.size)
        # a small Newton decrement means the quadratic model is trusted: take the full step (a
        # likelihood test there would compare numbers that differ only by rounding)
        todo = np.flatnonzero(slope > _TRUST)
        for _ in range(40):
            cand = xa[todo] + t[todo, None] * step[todo]
            ok = model.loglik(cand, wa[todo]) >= ll[todo] + 1e-4 * t[todo] * slope[todo]
            todo = todo[~ok]
            if todo.size == 0:
                break
            t[todo] *= 0.5
        x[active] = xa + t[:, None] * step
        moved = np.abs(t[:, None] * step).max(axis=1)
        flat = np.abs(grad).max(axis=1) <= _TOL * (1.0 + wa.sum(axis=(1, 2)))
        active = active[(moved > _TOL) & ~flat]
        if active.size == 0:
            return x
    warnings.warn(
        f"Newton did not converge in {_MAX_ITER} iterations for {active.size} of {x.shape[0]} fits",
        ConvergenceWarning,
        stacklevel=3,
    )
    return x


def _scores(
    model: _Model, x: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
    """Per-battle scores (per unit weight) for each pair and outcome: d-part (3, P), nu-part."""
    c, n = model.c, model.c.n
    d = x[c.i] - x[c.j]
    if not model.davidson:
        p = expit(d)
        return np.stack([1.0 - p, -p, 0.5 - p]), None
    eta = x[n]
    half = 0.5 * np.abs(d)
    top = np.maximum(half, eta)
    log_d = top + np.log(np.exp(half - top) + np.exp(-half - top) + np.exp(eta - top))
    sh = 0.5 * (np.exp(0.5 * d - log_d) - np.exp(-0.5 * d - log_d))
    nu_d = np.exp(eta - log_d)
    return np.stack([0.5 - sh, -0.5 - sh, -sh]), np.stack([-nu_d, -nu_d, 1.0 - nu_d])


def _sandwich(model: _Model, x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Robust covariance of theta (n, n), centred: ``P H^-1 B H^-1 P`` with battle-level ``B``.

    ``H`` has a (near) null direction along ``1`` (ratings are defined up to a constant); adding
    ``1 1^T / n`` there and projecting with ``P = I - 1 1^T / n`` afterwards gives the covariance
    of the centred ratings without inverting anything singular.
    """
    c, n = model.c, model.c.n
    _, _, hess = model.derivatives(x[None, :], c.w[None])
    sd, se = _scores(model, x)
    a = (c.w2 * sd * sd).sum(axis=0)
    if se is None:
        meat = model.assemble(a[None])[0]
    else:
        b = (c.w2 * sd * se).sum(axis=0)
        e = (c.w2 * se * se).sum(axis=0)
        meat = model.assemble(a[None], b[None], e[None])[0]
    h = hess[0]
    h[:n, :n] += np.trace(h[:n, :n]) / (n * n)  # scale of the fix is irrelevant after projection
    bread = np.linalg.inv(h)
    cov = (bread @ meat @ bread)[:n, :n]
    proj = np.eye(n) - 1.0 / n
    return proj @ cov @ proj


def _bootstrap(
    model: _Model, x: NDArray[np.float64], rounds: int, seed: int
) -> NDArray[np.float64]:
    """(rounds, m) refits on resampled counts.

    Resampling battles with replacement is, per (pair, outcome) cell, a Poisson number of copies of
    each battle (the Poisson bootstrap). For equal weights that is a Poisson count per cell; with
    unequal weights the cell is drawn as a Poisson count of its Kish effective size
    ``w**2 / w2`` times the mean weight ``w2 / w``, which keeps the mean (``w``) and variance
    (``w2``) of the resampled weighted count exact.
    """
    c = model.c
    rng = np.random.default_rng(seed)
    seen = c.w > 0
    n_eff = np.where(seen, c.w * c.w / np.where(seen, c.w2, 1.0), 0.0)
    unit = np.where(seen, c.w2 / np.where(seen, c.w, 1.0), 0.0)
    batch = max(1, int(_BATCH_BYTES // (8 * model.m * model.m)))
    out = np.empty((rounds, model.m))
    for start in range(0, rounds, batch):
        r = min(batch, rounds - start)
        w = rng.poisson(n_eff, size=(r, *n_eff.shape)) * unit
        out[start : start + r] = _newton(model, w, np.broadcast_to(x, (r, model.m)))
    return out


# --- the public functions ----------------------------------------------------------------------


def _options(ties: str, interval: str, rounds: int, alpha: float, scale: float) -> int:
    if ties not in ("half", "davidson"):
        raise ValueError(f"ties must be 'half' or 'davidson', got {ties!r}")
    if interval not in ("bootstrap", "sandwich", "none"):
        raise ValueError(f"interval must be 'bootstrap', 'sandwich' or 'none', got {interval!r}")
    try:
        rounds = operator.index(rounds)
    except TypeError:
        raise ValueError(f"rounds must be an integer, got {rounds!r}") from None
    if interval == "bootstrap" and rounds < 2:
        raise ValueError(f"rounds must be >= 2 for bootstrap intervals, got {rounds}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    return rounds


def leaderboard(
    model_a: Sequence[str],
    model_b: Sequence[str],
    outcome: Sequence[str],
    *,
    weights: ArrayLike | None = None,
    ties: Ties = "half",
    both_bad: Literal["tie", "drop"] = "tie",
    interval: Interval = "bootstrap",
    rounds: int = 100,
    alpha: float = 0.05,
    seed: int = 0,
    scale: float = 400.0,
    base: float = 1000.0,
) -> Leaderboard:
    """Fit a Bradley-Terry leaderboard with intervals from battles.

    Parameters
    ----------
    model_a, model_b : sequence of str
        The two models of each battle.
    outcome : sequence of str
        One of ``OUTCOMES`` per battle, in any spelling of ``OUTCOME_SPELLINGS``
        (``"model_a"`` is ``"A"``, ``"Both bad"`` is ``"both_bad"``).
    weights : array_like of shape (n_battles,), optional
        A battle's weight, e.g. the judge's reliability: a battle of weight 2 counts as two. Zero
        drops the battle.
    ties : {"half", "davidson"}
        A tie as half a win each (Bradley-Terry), or Davidson's tie model.
    both_bad : {"tie", "drop"}
        Whether "both bad" is a tie or no information.
    interval : {"bootstrap", "sandwich", "none"}
        Percentile intervals over ``rounds`` resamples of the battles, robust (sandwich)
        normal intervals, or none.
    rounds, alpha, seed
        Bootstrap rounds, ``1 - alpha`` interval level, bootstrap seed.
    scale, base
        ``rating = scale / ln(10) * theta``, shifted so that the mean rating is ``base``.

    Returns
    -------
    Leaderboard

    Raises
    ------
    ValueError
        On empty or malformed input, or when the battles do not connect all models (the message
        names the groups).
    """
    rounds = _options(ties, interval, rounds, alpha, scale)
    names, a, b, o, w = _prepare(model_a, model_b, outcome, weights, both_bad)
    n = len(names)
    counts = _collapse(n, a, b, o, w)
    _check_connected(counts, names)
    model = _Model(counts, davidson=ties == "davidson")
    x = _newton(model, counts.w[None], np.zeros((1, model.m)))[0]
    k = scale / math.log(10.0)
    theta = x[:n]
    rating = k * (theta - theta.mean()) + base
    played = np.bincount(a, minlength=n) + np.bincount(b, minlength=n)
    lower = upper = np.full(n, np.nan)
    cov: NDArray[np.float64] | None = None
    if interval == "sandwich":
        cov = k * k * _sandwich(model, x)
        half = ndtri(1.0 - alpha / 2.0) * np.sqrt(np.clip(np.diag(cov), 0.0, None))
        lower, upper = rating - half, rating + half
    elif interval == "bootstrap":
        boot = _bootstrap(model, x, rounds, seed)[:, :n]
        boot = k * (boot - boot.mean(axis=1, keepdims=True)) + base
        cov = np.atleast_2d(np.cov(boot, rowvar=False))
        lo, hi = np.quantile(boot, [alpha / 2.0, 1.0 - alpha / 2.0], axis=0)
        # a percentile interval can miss the point estimate on tiny or lopsided data; widen it
        lower, upper = np.minimum(lo, rating), np.maximum(hi, rating)
    order = np.lexsort((np.array(names, dtype=object), -rating))
    rating, lower, upper, played = rating[order], lower[order], upper[order], played[order]
    if cov is not None:
        cov = cov[np.ix_(order, order)]
    if interval == "none":
        rank = 1 + (rating[None, :] > rating[:, None]).sum(axis=1)
    else:
        rank = 1 + (lower[None, :] > upper[:, None]).sum(axis=1)
    return Leaderboard(
        models=[names[m] for m in order],
        rating=rating,
        lower=lower,
        upper=upper,
        rank=rank.astype(np.int64),
        battles=played.astype(np.int64),
        cov=cov,
        ties=ties,
        interval=interval,
        tie_param=float(np.exp(x[n])) if ties == "davidson" else None,
        scale=float(scale),
        base=float(base),
    )


def pair_priority(board: Leaderboard, counts: ArrayLike) -> NDArray[np.float64]:
    """How much one more battle between models ``i`` and ``j`` is expected to settle the ranking.

    Returns an (n, n) symmetric matrix, 0 on the diagonal, rows and columns in ``board.models``
    order; pick the pair with the largest value (active selection). ``counts[i, j]`` is the
    number of battles between ``i`` and ``j`` so far (``counts[i, j] + counts[j, i]`` is used, so
    either a symmetric or a one-sided matrix works).

    Why this formula. The ranking is uncertain where two models' rating difference is small
    compared with its standard deviation. With ``Sigma`` the covariance of the strengths implied
    by ``counts`` (the inverse Fisher information of the battles so far, at the board's ratings),
    one more battle between ``i`` and ``j`` adds information ``h = p (1 - p)`` along
    ``u = e_i - e_j`` (``p`` the predicted win probability), and by Sherman-Morrison lowers the
    variance of every difference ``theta_k - theta_l`` by
    ``h (u_kl' Sigma u)^2 / (1 + h u' Sigma u)``. The priority is that reduction summed over all
    pairs ``k, l``, each weighted by ``phi(z_kl) / sd_kl`` (``z_kl`` the difference over its
    standard deviation): the density of the difference at zero, i.e. how much probability sits on
    the boundary where the order of ``k`` and ``l`` flips. Clearly ordered pairs weigh nothing, so
    battles go where they can change the ranking, including to a third model that links two
    uncertain ones. The sum is ``u' Sigma L_w Sigma u`` with ``L_w`` the Laplacian of the weights,
    so all n^2 priorities cost two n x n products. ``counts`` rather than ``board.cov`` defines
    ``Sigma`` so that the caller can add planned battles to ``counts`` and re-rank without a refit.
    """
    n = len(board.models)
    cnt = np.asarray(counts, dtype=np.float64)
    if cnt.shape != (n, n):
        raise ValueError(f"counts must have shape ({n}, {n}) (board.models order), got {cnt.shape}")
    if not np.isfinite(cnt).all() or (cnt < 0).any():
        raise ValueError("counts must be finite and >= 0")
    cnt = cnt + cnt.T
    np.fill_diagonal(cnt, 0.0)
    theta = board.rating * (math.log(10.0) / board.scale)
    d = theta[:, None] - theta[None, :]
    p = expit(d)
    h = p * (1.0 - p)
    info = cnt * h
    fisher = np.diag(info.sum(axis=1) + _PRIOR * 0.25) - info
    fisher += fisher.trace() / (n * n)  # the 1 1^T direction, removed by the projection below
    proj = np.eye(n) - 1.0 / n
    sigma = proj @ np.linalg.inv(fisher) @ proj
    dv = np.diag(sigma)
    var = np.clip(dv[:, None] + dv[None, :] - 2.0 * sigma, 1e-300, None)
    sd = np.sqrt(var)
    weight = np.exp(-0.5 * d * d / var) / sd
    np.fill_diagonal(weight, 0.0)
    lap = np.diag(weight.sum(axis=1)) - weight
    g = sigma @ lap @ sigma
    gd = np.diag(g)
    gain = gd[:, None] + gd[None, :] - 2.0 * g
    out = h * np.clip(gain, 0.0, None) / (1.0 + h * var)
    out = 0.5 * (out + out.T)
    np.fill_diagonal(out, 0.0)
    return out


class BradleyTerry:
    """A scikit-learn-like face on :func:`leaderboard`.

    Parameters are those of :func:`leaderboard` (``interval`` defaults to ``"none"`` here: a
    model fit, not a report). ``fit`` returns ``self`` with ``board_``, ``models_``, ``rating_``
    and ``tie_param_`` set.

    Examples
    --------
    >>> bt = BradleyTerry().fit(["x", "x", "y"], ["y", "y", "x"], ["A", "tie", "A"])
    >>> bt.models_
    ['x', 'y']
    """

    def __init__(
        self,
        *,
        ties: Ties = "half",
        both_bad: Literal["tie", "drop"] = "tie",
        interval: Interval = "none",
        rounds: int = 100,
        alpha: float = 0.05,
        seed: int = 0,
        scale: float = 400.0,
        base: float = 1000.0,
    ) -> None:
        self.ties = ties
        self.both_bad = both_bad
        self.interval = interval
        self.rounds = rounds
        self.alpha = alpha
        self.seed = seed
        self.scale = scale
        self.base = base

    def get_params(self) -> dict[str, Any]:
        return {
            "ties": self.ties,
            "both_bad": self.both_bad,
            "interval": self.interval,
            "rounds": self.rounds,
            "alpha": self.alpha,
            "seed": self.seed,
            "scale": self.scale,
            "base": self.base,
        }

    def fit(
        self,
        model_a: Sequence[str],
        model_b: Sequence[str],
        outcome: Sequence[str],
        sample_weight: ArrayLike | None = None,
    ) -> BradleyTerry:
        """Fit on battles; see :func:`leaderboard`."""
        self.board_ = leaderboard(
            model_a, model_b, outcome, weights=sample_weight, **self.get_params()
        )
        self.models_ = list(self.board_.models)
        self.rating_ = self.board_.rating
        self.tie_param_ = self.board_.tie_param
        return self

    def predict_proba(self, model_a: Sequence[str], model_b: Sequence[str]) -> NDArray[np.float64]:
        """(m, 3) probabilities of ``OUTCOMES[:3]`` (A wins, B wins, tie) for new pairs.

        With ``ties="half"`` the tie column is 0 (the model has no tie outcome).
        """
        if not hasattr(self, "board_"):
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet; call fit first")
        la, lb = _as_list(model_a, "model_a"), _as_list(model_b, "model_b")
        if len(la) != len(lb):
            raise ValueError(f"model_a and model_b differ in length ({len(la)}, {len(lb)})")
        index = {m: k for k, m in enumerate(self.models_)}
        unseen = set(la + lb) - index.keys()
        if unseen:
            raise ValueError(
                f"model_a/model_b name models that were not in the fitted battles: "
                f"{sorted(map(str, unseen))[:_MAX_LISTED]}"
            )
        a, b = _codes(la, index), _codes(lb, index)
        theta = self.rating_ * (math.log(10.0) / self.scale)
        d = theta[a] - theta[b]
        if self.tie_param_ is None:
            pa = expit(d)
            return np.column_stack([pa, 1.0 - pa, np.zeros_like(pa)])
        nu = self.tie_param_
        denom = np.exp(d / 2) + np.exp(-d / 2) + nu
        return np.column_stack([np.exp(d / 2) / denom, np.exp(-d / 2) / denom, nu / denom])
