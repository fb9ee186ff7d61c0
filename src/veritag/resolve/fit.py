"""The numeric core every resolution shares: categorical claims as dense COO arrays in, the
engine's posteriors, reliabilities and each item's basis out. Projects (``project``), the
human-only reference (``human``) and long files (``files``) all call ``fit_categorical``."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..truth import Claims, ConvergenceWarning, fit_truth
from .core import _CLAIMS, _GOLD, _MODEL, ENGINE_PARAMS

__all__ = ["CategoricalFit", "fit_categorical"]


def _quiet_fit(
    claims: Claims, method: str, gold_items: NDArray[np.int64], gold_labels: NDArray[np.int64]
) -> Any:
    """``fit_truth`` with the run's settings; non-convergence is reported by ``converged``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit_truth(
            claims,
            method,
            gold_items=gold_items,
            gold_labels=gold_labels,  # type: ignore[arg-type]
            **ENGINE_PARAMS,
        )


@dataclass(frozen=True)
class CategoricalFit:
    posterior: NDArray[np.float64]  # (items, classes), gold pinned
    basis: NDArray[np.int8]
    accuracy: NDArray[np.float64]
    n_claims: NDArray[np.int64]
    confusion: NDArray[np.float64]
    log_likelihood: float | None
    n_iter: int
    converged: bool
    chosen: str | None = None  # for ``auto``: the method its held-out likelihood picked


def fit_categorical(
    hard: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]],
    soft: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]],
    gold: tuple[NDArray[np.int64], NDArray[np.int64]],
    *,
    n_items: int,
    n_sources: int,
    n_classes: int,
    method: str,
) -> CategoricalFit:
    """Posteriors and source reliabilities from dense COO claims (positions, not store ids), gold
    pinned, and each item's basis (``BASES``): what projects, human-only references and files
    share."""
    h_item, h_src, h_label = hard
    s_item, s_src, s_probs = soft
    g_item, g_label = gold
    n, k = n_items, n_classes
    n_claims = np.bincount(np.concatenate([h_src, s_src]), minlength=n_sources).astype(np.int64)
    if h_item.size or s_item.size:
        claims = Claims.from_arrays(
            h_item,
            h_src,
            h_label,
            n_items=n,
            n_sources=n_sources,
            n_classes=k,
            prob_item=s_item,
            prob_source=s_src,
            probs=s_probs,
        )
        result = _quiet_fit(claims, method, g_item, g_label)
        posterior = np.asarray(
            result.posterior, dtype=np.float64
        )  # ours to edit: no copy of (items x K)
        confusion, accuracy = (
            np.asarray(result.confusion),
            np.array(result.accuracy, dtype=np.float64),
        )
        accuracy[result.unchecked] = np.nan  # stored as "not measured"
        ll = float(result.log_likelihood)
        fit_info = (
            None if math.isnan(ll) else ll,
            int(result.n_iter),
            bool(result.converged),
            result.method if method == "auto" else None,
        )
    else:  # gold labels only
        posterior = np.full((n, k), 1.0 / k)
        confusion, accuracy = np.zeros((0, k, k)), np.zeros(0)
        fit_info = (None, 0, True, None)
    posterior[g_item] = 0.0
    posterior[g_item, g_label] = 1.0
    basis = np.full(n, _CLAIMS, dtype=np.int8)
    basis[np.bincount(h_item, minlength=n) == 0] = _MODEL
    basis[g_item] = _GOLD
    return CategoricalFit(posterior, basis, accuracy, n_claims, confusion, *fit_info)
