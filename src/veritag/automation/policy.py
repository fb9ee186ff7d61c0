"""Automation with a guarantee: pick the confidence threshold above which a model's labels are
accepted without a human, such that their accuracy is at least ``target`` with probability at
least ``1 - delta``.

Pure numpy/scipy: arrays in, arrays out. The evidence is a uniformly random *audit sample* that
humans label whatever the model's confidence, so that audited items above any threshold are a
random sample of all items above it. For each candidate threshold ``t`` the null hypothesis
"accuracy of items with confidence >= t is below target" is rejected when the one-sided exact
binomial (Clopper-Pearson) lower bound on the audited items above ``t`` reaches the target.
Candidates are tested in a fixed sequence, most confident first, stopping at the first failure:
fixed-sequence testing controls the family-wise error at ``delta`` with no multiplicity
correction, because a wrong acceptance requires rejecting the *first* true null of a sequence
fixed in advance, which happens with probability at most ``delta``. (Given its size, the
audit above ``t`` is drawn without replacement from the items above ``t``: a draw more
concentrated than the binomial the bound assumes, so the bound errs on the safe side; the
tests check the guarantee by repeated simulation.)

The sequence must not depend on correctness. The default grid is built from audit confidences
only (at chosen audited counts); candidates whose bound could not reach the target even if every
audited item above them were correct are skipped (this depends on counts, not correctness),
so the sequence starts where there is enough evidence instead of failing at once on the
first, nearly empty, candidate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from ..checks import bool_mask, confidences, level, slice_codes

__all__ = [
    "Decision",
    "Plan",
    "automate",
    "choose_threshold",
    "clopper_pearson_lower",
    "min_audit_for",
    "simulate",
]

#: Default grid: the audited count above each candidate grows by this factor per step...
GRID_GROWTH = 1.2
#: ...but by at most this share of the audit, so the automation rate is resolved to ~2%.
GRID_MAX_STEP = 0.02


@dataclass(frozen=True)
class Decision:
    """One threshold decision: what passed, how strong the evidence is, how much was tested.

    ``threshold`` is ``inf`` when no candidate passed (nothing is automated), so that
    ``confidence >= threshold`` is always the acceptance rule. ``bound`` is the Clopper-Pearson
    lower bound on the accuracy of audited items at or above the threshold (``nan`` when nothing
    passed); ``audit_size`` is the number of those audited items; ``tested`` is how many
    candidates were tested (skipped ones for lack of evidence are not counted).
    """

    threshold: float
    bound: float
    audit_size: int
    accepted_share_of_audit: float
    tested: int
    target: float
    delta: float

    @property
    def automated(self) -> bool:
        """Whether any item at all may be accepted without a human."""
        return math.isfinite(self.threshold)


@dataclass(frozen=True)
class Plan:
    """Per-item automation decisions, with the per-slice evidence behind them.

    ``auto`` is True where the model's label is accepted without a human (never for audited
    items, never for items with slice code -1). ``decisions`` maps slice code to its
    :class:`Decision`. ``overall_bound`` is the Clopper-Pearson lower bound on the pooled
    audited items that the plan would have accepted: a descriptive summary, computed after the
    thresholds were chosen on the same data. The guarantee is per slice: each automated slice
    meets the target except with probability ``delta_per_slice``; all of them at once (hence
    the pooled accepted set, a weighted average of the slices) except with probability
    ``family_delta`` (union bound over the slices tested).
    """

    auto: NDArray[np.bool_]
    decisions: dict[int, Decision]
    automation_rate: float
    overall_bound: float
    audit_size: int
    delta_per_slice: float
    family_delta: float
    target: float


def _check_correct(correct: ArrayLike, n: int, name: str = "correct") -> NDArray[np.bool_]:
    arr = np.asarray(correct)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match the confidences, got {arr.shape}")
    if arr.dtype != np.bool_:
        if arr.size and not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name} must be boolean or 0/1")
        arr = arr.astype(bool)
    return arr


def clopper_pearson_lower(successes: ArrayLike, trials: ArrayLike, delta: float) -> NDArray:
    """One-sided exact binomial lower confidence bound at level ``1 - delta``.

    Exact (not normal-approximate) because the interesting regime is accuracy near 1 with few
    errors, where approximations are anti-conservative. 0 successes or 0 trials give 0.
    """
    delta = level("delta", delta)
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    if np.any(k < 0) or np.any(k > n):
        raise ValueError("successes must lie in [0, trials]")
    positive = k > 0
    a = np.where(positive, k, 1.0)
    b = np.where(positive, n - k + 1.0, 1.0)
    return np.where(positive, stats.beta.ppf(delta, a, b), 0.0)


def min_audit_for(target: float, delta: float) -> int:
    """Fewest audited items for which the bound *can* reach ``target`` (all of them correct).

    With ``n`` successes out of ``n`` the bound is ``delta ** (1 / n)``; below this count a
    candidate is bound to fail, so it is skipped rather than allowed to end the sequence.
    """
    target = level("target", target)
    delta = level("delta", delta)
    n = max(1, math.ceil(math.log(delta) / math.log(target)))
    while n > 1 and delta ** (1.0 / (n - 1)) >= target:  # float safety at the boundary
        n -= 1
    while delta ** (1.0 / n) < target:
        n += 1
    return n


def _count_grid(m: int, start: int) -> NDArray[np.int64]:
    """Audited counts above each default candidate: geometric from ``start``, steps capped.

    Small steps where evidence is thin would give chance dips many occasions to end the
    sequence early; large steps lower down would waste automation. Growing the count by 20%
    per step, never by more than 2% of the audit, balanced both in simulations.
    """
    counts = []
    n = float(start)
    while n <= m:
        counts.append(int(n))
        n += max(1.0, min(n * (GRID_GROWTH - 1.0), m * GRID_MAX_STEP))
    if not counts or counts[-1] != m:
        counts.append(m)
    return np.asarray(counts, dtype=np.int64)


def choose_threshold(
    audit_confidence: ArrayLike,
    audit_correct: ArrayLike,
    *,
    target: float,
    delta: float,
    candidates: ArrayLike | int | None = None,
    min_audit: int = 0,
) -> Decision:
    """Lowest threshold whose accepted items meet ``target`` w.p. ``>= 1 - delta``.

    ``candidates``: explicit thresholds (any order; tested from the highest down), an int for
    that many quantiles of the audit confidences, or None for the default grid: the audit
    confidences below which the audited count reaches ``need``, then grows by 20% a step (at
    most 2% of the audit a step), where ``need = max(min_audit, min_audit_for(target, delta))``.
    Every grid is built from confidences and counts only, never from correctness. Candidates with
    fewer than ``need`` audited items at or above them are skipped: they could not pass, and
    failing would end the sequence. Given the same tested sequence (e.g. explicit candidates and
    a ``min_audit`` above both settings' minimum), a higher target or a smaller delta never
    lowers the threshold; since a stricter setting starts later, this can in rare cases reverse.
    """
    target = level("target", target)
    delta = level("delta", delta)
    conf = confidences(audit_confidence, "audit_confidence")
    correct = _check_correct(audit_correct, conf.size, "audit_correct")
    if int(min_audit) < 0:
        raise ValueError(f"min_audit must be >= 0, got {min_audit!r}")
    m = conf.size
    none = Decision(math.inf, math.nan, 0, 0.0, 0, target, delta)
    need = max(int(min_audit), min_audit_for(target, delta))
    if m == 0:
        return none

    order = np.argsort(-conf, kind="stable")
    conf_desc = conf[order]
    cum_correct = np.concatenate(([0], np.cumsum(correct[order], dtype=np.int64)))

    if candidates is None:
        if need > m:
            return none
        cand = conf_desc[_count_grid(m, need) - 1]
    elif isinstance(candidates, (int, np.integer)):
        grid = int(candidates)
        if grid < 1:
            raise ValueError(f"the number of candidates must be >= 1, got {grid}")
        grid = min(grid, m)
        cand = conf_desc[np.ceil(np.arange(1, grid + 1) * m / grid).astype(np.int64) - 1]
    else:
        cand = confidences(candidates, "candidates")
    cand = np.unique(cand)[::-1]  # fixed sequence: most confident first
    if cand.size == 0:
        return none

    # Audited items with confidence >= t: count via the ascending order.
    n_above = m - np.searchsorted(conf_desc[::-1], cand, side="left")
    k_above = cum_correct[n_above]
    testable = n_above >= need  # a suffix of the sequence, since n_above grows as t falls
    if not testable.any():
        return none
    start = int(np.argmax(testable))
    bounds = clopper_pearson_lower(k_above[start:], n_above[start:], delta)
    passed = bounds >= target
    fails = np.flatnonzero(~passed)
    n_pass = int(fails[0]) if fails.size else passed.size
    tested = n_pass + 1 if fails.size else passed.size
    if n_pass == 0:
        return Decision(math.inf, math.nan, 0, 0.0, tested, target, delta)
    i = start + n_pass - 1
    n_i = int(n_above[i])
    return Decision(float(cand[i]), float(bounds[n_pass - 1]), n_i, n_i / m, tested, target, delta)


def automate(
    confidence: ArrayLike,
    audit_mask: ArrayLike,
    audit_correct: ArrayLike,
    *,
    target: float,
    delta: float,
    slices: ArrayLike | None = None,
    min_audit: int = 0,
    candidates: ArrayLike | int | None = None,
    simultaneous: bool = False,
) -> Plan:
    """Which items to accept without a human, with a separate threshold per slice.

    ``audit_correct`` is either one value per item (read only where ``audit_mask``) or one per
    audited item, in item order. ``slices`` holds an int slice code per item; -1 means the item
    belongs to no slice and is never automated (no evidence speaks for it). Each slice is decided
    on its own audited items only, so a slice without enough evidence is not automated however
    good the others are. With ``simultaneous`` the per-slice delta is ``delta / n_slices``
    (Bonferroni), so that all slices, and hence the pooled accepted set, meet the target at once
    with probability ``>= 1 - delta``.
    """
    target = level("target", target)
    delta = level("delta", delta)
    conf = confidences(confidence)
    n = conf.size
    mask = bool_mask(audit_mask, n, "audit_mask", "confidence")
    n_audit = int(mask.sum())
    raw = np.asarray(audit_correct)
    if raw.shape == (n,):
        correct_all = raw
    elif raw.shape == (n_audit,):
        correct_all = np.zeros(n, dtype=raw.dtype)
        correct_all[mask] = raw
    else:
        raise ValueError(
            f"audit_correct must have shape ({n},) or ({n_audit},) (one per audited "
            f"item), got {raw.shape}"
        )
    audited_correct = _check_correct(correct_all[mask], n_audit, "audit_correct")
    correct_all = np.zeros(n, dtype=bool)
    correct_all[mask] = audited_correct

    if slices is None:
        codes = np.zeros(n, dtype=np.int64)
    else:
        codes = slice_codes(slices, n, "confidence")
    slice_ids = np.unique(codes[codes >= 0])
    per_slice = delta / max(1, slice_ids.size) if simultaneous else delta

    # Group the audited items by slice once: one pass, then contiguous runs per slice.
    audited = np.flatnonzero(mask & (codes >= 0))
    audited = audited[np.argsort(codes[audited], kind="stable")]
    runs = (
        np.searchsorted(codes[audited], slice_ids, side="left"),
        np.searchsorted(codes[audited], slice_ids, side="right"),
    )
    slice_threshold = np.full(slice_ids.size, np.inf)
    decisions: dict[int, Decision] = {}
    for j, (lo, hi) in enumerate(zip(*runs, strict=True)):  # vectorised within each slice
        rows = audited[lo:hi]
        d = choose_threshold(
            conf[rows],
            correct_all[rows],
            target=target,
            delta=per_slice,
            candidates=candidates,
            min_audit=min_audit,
        )
        decisions[int(slice_ids[j])] = d
        slice_threshold[j] = d.threshold
    thresholds = np.full(n, np.inf)
    has_slice = codes >= 0
    thresholds[has_slice] = slice_threshold[np.searchsorted(slice_ids, codes[has_slice])]

    accepted = conf >= thresholds  # inf threshold (no slice, or not automated) accepts nothing
    auto = accepted & ~mask
    audit_accepted = accepted & mask
    k = int(correct_all[audit_accepted].sum())
    m_acc = int(audit_accepted.sum())
    overall = float(clopper_pearson_lower(k, m_acc, delta)) if m_acc else math.nan
    return Plan(
        auto=auto,
        decisions=decisions,
        automation_rate=float(auto.mean()) if n else 0.0,
        overall_bound=overall,
        audit_size=m_acc,
        delta_per_slice=per_slice,
        family_delta=min(1.0, per_slice * slice_ids.size),
        target=target,
    )


def simulate(
    confidence: ArrayLike,
    correct: ArrayLike,
    *,
    audit_size: int,
    target: float,
    delta: float,
    rng: np.random.Generator | int | None = None,
    candidates: ArrayLike | int | None = None,
    min_audit: int = 0,
) -> dict[str, float | int | None]:
    """Replay the policy on a fully labeled data set: what would automation have achieved?

    Draws a uniform audit sample of ``audit_size`` items, chooses the threshold from it alone,
    and measures accuracy only on auto-accepted items *outside* the audit (those the audit did
    not see), which is what the guarantee is about. ``automation_rate`` is the share of all
    items accepted without a human; ``threshold`` is None when nothing is automated and
    ``realized_accuracy`` is None when no item was accepted. ``audit_size`` counts the audited
    items at or above the threshold (the evidence behind it), ``audit_drawn`` the whole audit.
    """
    target = level("target", target)
    delta = level("delta", delta)
    conf = confidences(confidence)
    truth = _check_correct(correct, conf.size)
    audit_size = int(audit_size)
    if not 0 <= audit_size <= conf.size:
        raise ValueError(f"audit_size must lie in [0, {conf.size}], got {audit_size}")
    gen = np.random.default_rng(rng)
    mask = np.zeros(conf.size, dtype=bool)
    mask[gen.choice(conf.size, size=audit_size, replace=False)] = True
    d = choose_threshold(
        conf[mask],
        truth[mask],
        target=target,
        delta=delta,
        candidates=candidates,
        min_audit=min_audit,
    )
    auto = (conf >= d.threshold) & ~mask
    n_auto = int(auto.sum())
    return {
        "automation_rate": n_auto / conf.size if conf.size else 0.0,
        "threshold": d.threshold if d.automated else None,
        "bound": d.bound if d.automated else None,
        "audit_size": d.audit_size,
        "audit_drawn": audit_size,
        "realized_accuracy": float(truth[auto].mean()) if n_auto else None,
    }
