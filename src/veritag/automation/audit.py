"""Bias audit of automation: per slice, is the automated label worse than the human one?

Automation (:mod:`veritag.automation.policy`) guarantees an accuracy target, but a target met
on average can hide a slice where the model is clearly worse than the humans it replaces, or a
slice whose automated labels have a different class mix from its human labels. This module
measures both, per slice and overall, from the same uniformly random audit the threshold was
chosen on. Pure numpy/scipy: arrays in, frozen dataclasses out.

Why the audit, and why ``would_auto``: auto-accepted items are never seen by a human, so their
error can only be estimated from audited items that *would* have been auto-accepted (confidence
at or above the slice threshold). Because the audit is uniform, those are a random sample of the
auto-accepted population, and an exact (Clopper-Pearson) binomial interval applies. The caller
passes ``would_auto`` explicitly (e.g. ``confidence >= thresholds``) rather than this module
guessing it from ``auto``, which is False on every audited item by construction.

The human error is the mean of ``1 - human_correct`` over the slice's human-labeled items
(``~auto``) where it is known; it describes the humans on the items they actually label, which
are usually the harder, low-confidence ones, so it is a pessimistic yardstick for humans and
the flag below errs towards *not* accusing the model.

Flag rule (``automation_worse``), per slice, at level ``delta``:

* ``None`` (not enough evidence) when fewer than ``min_evidence`` audited would-auto items or
  fewer than ``min_evidence`` known human labels back the comparison: with a handful of items
  one error moves an estimate by several points, so neither "worse" nor "fine" would mean much;
* ``True`` when a one-sided Fisher exact test rejects "automated error <= human error" at
  level ``delta`` (p-value in ``worse_p``), on the 2 x 2 table of errors and non-errors of the
  audited would-auto items versus the known human labels;
* ``False`` otherwise.

Why Fisher rather than "the automated error's lower bound exceeds the human point estimate":
that simpler rule treats the human rate as exact, so when the human sample is not much larger
than the audit it flags equal slices more often than ``delta`` (6.5-7% at ``delta = 0.05``
in simulation, with a human sample three times the audit). Fisher's test treats both rates as
samples and its size is at most ``delta`` (conditional, hence conservative); the tests check
this by simulation. Rows also carry ``auto_error_lower`` so the simpler comparison stays visible.

The ``delta`` is per slice (no multiplicity correction); pass ``delta / n_slices`` for a
family-wise statement over all slices at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from ..checks import bool_mask, level, slice_codes
from .policy import clopper_pearson_lower

__all__ = [
    "BiasAudit",
    "SliceAudit",
    "bias_audit",
    "error_bounds",
    "label_shift",
]

#: Default minimum of audited would-auto items, and of known human labels, behind a flag.
MIN_EVIDENCE = 30


@dataclass(frozen=True)
class SliceAudit:
    """One row of the audit: a slice (``code >= 0``) or all items (``code is None``).

    Counts: ``n`` items, ``n_auto`` of them auto-accepted (``automation_rate = n_auto / n``,
    NaN for an empty slice). Automated error: ``auto_errors`` wrong model labels among
    ``auto_audit_size`` audited would-auto items, estimate ``auto_error`` (NaN without
    evidence) and exact bounds ``[auto_error_lower, auto_error_upper]``, each one-sided at
    ``1 - delta`` (``[0, 1]`` without evidence). Human error likewise: ``human_errors`` wrong
    among ``human_size`` known labels on human-labeled items. Label shift between automated
    and human-labeled items: total variation distance ``tv_distance`` (NaN when either group
    is empty) and chi-square ``chi2_p`` (NaN when untestable). ``worse_p`` is the one-sided
    Fisher p-value for "automated error > human error" (NaN when either side has no
    evidence) and ``automation_worse`` follows the module's flag rule.
    """

    code: int | None
    name: str
    n: int
    n_auto: int
    automation_rate: float
    auto_audit_size: int
    auto_errors: int
    auto_error: float
    auto_error_lower: float
    auto_error_upper: float
    human_size: int
    human_errors: int
    human_error: float
    human_error_lower: float
    human_error_upper: float
    tv_distance: float
    chi2_p: float
    worse_p: float
    automation_worse: bool | None


@dataclass(frozen=True)
class BiasAudit:
    """The per-slice rows (in slice-code order) and the overall row over all items.

    ``overall`` includes items of no slice (code -1); the slice rows do not.
    """

    slices: tuple[SliceAudit, ...]
    overall: SliceAudit
    delta: float
    min_evidence: int
    n_classes: int | None

    def by_code(self, code: int) -> SliceAudit:
        """The row of slice ``code`` (KeyError if the slice is not reported)."""
        for row in self.slices:
            if row.code == code:
                return row
        raise KeyError(code)

    @property
    def flagged(self) -> tuple[int, ...]:
        """Slice codes where automation was shown worse than the humans."""
        return tuple(r.code for r in self.slices if r.automation_worse is True)  # type: ignore[misc]


def error_bounds(errors: ArrayLike, trials: ArrayLike, delta: float) -> tuple[NDArray, NDArray]:
    """Exact one-sided Clopper-Pearson (lower, upper) bounds on an error rate, each at
    ``1 - delta``.

    Exact because automated error rates are small and approximations are anti-conservative
    there. No trials give the trivial ``(0, 1)``.
    """
    k = np.asarray(errors, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    lower = clopper_pearson_lower(k, n, delta)
    upper = 1.0 - clopper_pearson_lower(n - k, n, delta)
    return lower, upper


def label_shift(counts_a: ArrayLike, counts_b: ArrayLike) -> tuple[float, float]:
    """Total variation distance and chi-square p-value between two class-count vectors.

    TV is half the L1 distance of the two class distributions (NaN if either group is empty).
    The p-value is Pearson's chi-square test of homogeneity on the 2 x k table restricted to
    classes seen at all (scipy's default Yates correction when k = 2); NaN when untestable
    (an empty group, or a single class seen), rather than a warning or a crash.
    """
    a = np.asarray(counts_a, dtype=np.float64)
    b = np.asarray(counts_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("class counts must be two 1-d arrays of the same length")
    if np.any(a < 0) or np.any(b < 0):
        raise ValueError("class counts must be >= 0")
    na, nb = a.sum(), b.sum()
    if na == 0 or nb == 0:
        return math.nan, math.nan
    tv = 0.5 * float(np.abs(a / na - b / nb).sum())
    seen = (a + b) > 0
    if seen.sum() < 2:
        return tv, math.nan
    table = np.vstack([a[seen], b[seen]])
    p = float(stats.chi2_contingency(table).pvalue)
    return tv, p


def _binary(values: ArrayLike, n: int, name: str, required: NDArray[np.bool_]) -> NDArray:
    """0/1 floats with NaN for unknown; every ``required`` item must be known."""
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match slices, got {arr.shape}")
    if arr.dtype == np.bool_:
        return arr.astype(np.float64)
    if not (np.issubdtype(arr.dtype, np.number) and not np.iscomplexobj(arr)):
        raise ValueError(f"{name} must be boolean, or 0/1 with NaN for unknown")
    out = arr.astype(np.float64)
    known = ~np.isnan(out)
    if not np.isin(out[known], (0.0, 1.0)).all():
        raise ValueError(f"{name} must be boolean, or 0/1 with NaN for unknown")
    if np.any(required & ~known):
        raise ValueError(f"{name} must be known (not NaN) on every audited item")
    return out


def _names(slice_names: Mapping[int, str] | Sequence[str] | None) -> dict[int, str]:
    if slice_names is None:
        return {}
    if isinstance(slice_names, Mapping):
        names = {int(k): str(v) for k, v in slice_names.items()}
    else:
        names = {i: str(v) for i, v in enumerate(slice_names)}
    if any(k < 0 for k in names):
        raise ValueError("slice_names keys must be slice codes >= 0")
    return names


def bias_audit(
    slices: ArrayLike,
    auto: ArrayLike,
    audit_mask: ArrayLike,
    model_correct: ArrayLike,
    *,
    would_auto: ArrayLike,
    human_correct: ArrayLike | None = None,
    labels: ArrayLike | None = None,
    n_classes: int | None = None,
    delta: float = 0.05,
    slice_names: Mapping[int, str] | Sequence[str] | None = None,
    min_evidence: int = MIN_EVIDENCE,
) -> BiasAudit:
    """Per-slice and overall bias audit of automated versus human labels.

    Per item: ``slices`` int code (-1 = none), ``auto`` (model label accepted without a human),
    ``audit_mask`` (in the uniform human audit), ``model_correct`` (model label right; read
    only on audited items, must be known there), ``would_auto`` (confidence at or above the
    slice threshold, audited items included; ``auto`` must imply it and exclude audited items).
    Optional ``human_correct`` (bool, or 0/1 with NaN unknown; read on ``~auto`` items only)
    and ``labels`` (final int class per item, ``0 <= label < n_classes``; ``n_classes``
    defaults to ``max + 1``). Slices reported: every code present plus every named one.
    """
    delta = level("delta", delta)
    min_evidence = int(min_evidence)
    if min_evidence < 1:
        raise ValueError(f"min_evidence must be >= 1, got {min_evidence}")
    codes = slice_codes(slices)
    n = codes.size
    is_auto = bool_mask(auto, n, "auto", "slices")
    audited = bool_mask(audit_mask, n, "audit_mask", "slices")
    above = bool_mask(would_auto, n, "would_auto", "slices")
    if np.any(is_auto & audited):
        raise ValueError("audited items are labeled by humans, so none may be auto")
    if np.any(is_auto & ~above):
        raise ValueError("every auto item must be would_auto (above its slice threshold)")
    evidence = audited & above
    model_ok = _binary(model_correct, n, "model_correct", evidence)
    if human_correct is None:
        human_ok = np.full(n, np.nan)
    else:
        human_ok = _binary(human_correct, n, "human_correct", np.zeros(n, dtype=bool))
    human_known = ~is_auto & ~np.isnan(human_ok)

    k_classes: int | None = None
    if labels is not None:
        lab = np.asarray(labels)
        if lab.shape != (n,):
            raise ValueError(f"labels must have shape ({n},) to match slices, got {lab.shape}")
        if lab.size and not np.issubdtype(lab.dtype, np.integer):
            raise ValueError("labels must be integer class indices")
        lab = lab.astype(np.int64)
        if lab.size and lab.min() < 0:
            raise ValueError("labels must be >= 0")
        top = int(lab.max()) + 1 if lab.size else 0
        k_classes = top if n_classes is None else int(n_classes)
        if k_classes < top or (n_classes is not None and k_classes < 1):
            raise ValueError(f"n_classes={k_classes} is too small for labels up to {top - 1}")
    elif n_classes is not None:
        raise ValueError("n_classes is only meaningful with labels")

    names = _names(slice_names)
    slice_ids = np.union1d(np.unique(codes[codes >= 0]), np.fromiter(names, np.int64)).astype(
        np.int64
    )
    s = slice_ids.size
    # Row index per item: its slice's row, or -1; the overall row is index s.
    row = np.full(n, -1, dtype=np.int64)
    member = codes >= 0
    row[member] = np.searchsorted(slice_ids, codes[member])

    def per_row(weights: NDArray) -> NDArray[np.float64]:
        """Sums of ``weights`` per slice row, then over all items, in one bincount."""
        w = np.asarray(weights, dtype=np.float64)
        by_slice = np.bincount(row[member], weights=w[member], minlength=s)[:s]
        return np.append(by_slice, w.sum())

    n_items = per_row(np.ones(n))
    n_auto = per_row(is_auto)
    m_auto = per_row(evidence)
    e_auto = per_row(evidence & (model_ok == 0.0))
    m_human = per_row(human_known)
    e_human = per_row(human_known & (human_ok == 0.0))
    a_lo, a_hi = error_bounds(e_auto, m_auto, delta)
    h_lo, h_hi = error_bounds(e_human, m_human, delta)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(n_items > 0, n_auto / np.maximum(n_items, 1), np.nan)
        a_err = np.where(m_auto > 0, e_auto / np.maximum(m_auto, 1), np.nan)
        h_err = np.where(m_human > 0, e_human / np.maximum(m_human, 1), np.nan)

    if k_classes is not None:
        cls = np.zeros((2, s + 1, k_classes))
        for j, group in enumerate((is_auto, ~is_auto)):
            pick = group & member
            flat = row[pick] * k_classes + lab[pick]
            cls[j, :s] = np.bincount(flat, minlength=s * k_classes)[: s * k_classes].reshape(
                s, k_classes
            )
            cls[j, s] = np.bincount(lab[group], minlength=k_classes)[:k_classes]

    out = []
    for i in range(s + 1):
        code = int(slice_ids[i]) if i < s else None
        if k_classes is not None:
            tv, p = label_shift(cls[0, i], cls[1, i])
        else:
            tv, p = math.nan, math.nan
        if m_auto[i] > 0 and m_human[i] > 0:
            ea, ma, eh, mh = (int(v[i]) for v in (e_auto, m_auto, e_human, m_human))
            table = [[ea, ma - ea], [eh, mh - eh]]
            worse_p = float(stats.fisher_exact(table, alternative="greater").pvalue)
        else:
            worse_p = math.nan
        if m_auto[i] < min_evidence or m_human[i] < min_evidence:
            worse = None
        else:
            worse = bool(worse_p <= delta)
        out.append(
            SliceAudit(
                code=code,
                name="overall" if code is None else names.get(code, str(code)),
                n=int(n_items[i]),
                n_auto=int(n_auto[i]),
                automation_rate=float(rate[i]),
                auto_audit_size=int(m_auto[i]),
                auto_errors=int(e_auto[i]),
                auto_error=float(a_err[i]),
                auto_error_lower=float(a_lo[i]),
                auto_error_upper=float(a_hi[i]),
                human_size=int(m_human[i]),
                human_errors=int(e_human[i]),
                human_error=float(h_err[i]),
                human_error_lower=float(h_lo[i]),
                human_error_upper=float(h_hi[i]),
                tv_distance=tv,
                chi2_p=p,
                worse_p=worse_p,
                automation_worse=worse,
            )
        )
    return BiasAudit(
        slices=tuple(out[:s]),
        overall=out[s],
        delta=delta,
        min_evidence=min_evidence,
        n_classes=k_classes,
    )
