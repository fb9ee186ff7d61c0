"""Argument checks that automation and routing share: levels, confidences, posteriors, slices.

Each check takes the value and the name the caller knows it by, and returns the value in the type
the caller computes with, or raises ``ValueError`` naming the argument and what was wrong, so two
functions that take the same kind of argument refuse it in the same words. Plain numpy; the
command line turns a ``ValueError`` into its own error where it needs to.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["bool_mask", "confidences", "level", "posteriors", "slice_codes"]


def level(name: str, value: float, *, zero: bool = False, one: bool = False) -> float:
    """A probability-like setting (a target accuracy, a ``delta``, a rate) as a float.

    By default it must lie strictly between 0 and 1; ``zero`` and ``one`` admit that end (a
    target of 1 may be asked for, a gold rate of 0 means no gold). NaN is refused.
    """
    value = float(value)
    low_ok = value >= 0.0 if zero else value > 0.0
    high_ok = value <= 1.0 if one else value < 1.0
    if not (low_ok and high_ok):
        where = (
            "strictly between 0 and 1"
            if not (zero or one)
            else f"in {'[' if zero else '('}0, 1{']' if one else ')'}"
        )
        raise ValueError(f"{name} must lie {where}, got {value!r}")
    return value


def confidences(values: ArrayLike, name: str = "confidence") -> NDArray[np.float64]:
    """One finite score per item, as a 1-d float array."""
    conf = np.asarray(values, dtype=np.float64)
    if conf.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array, got shape {conf.shape}")
    if not np.isfinite(conf).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return conf


def posteriors(values: ArrayLike, name: str = "posterior") -> NDArray[np.float64]:
    """One row of class probabilities per item, as an (items, classes) float array."""
    p = np.asarray(values, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"{name} must be (items, classes), got shape {p.shape}")
    return p


def bool_mask(values: ArrayLike, n: int, name: str, against: str) -> NDArray[np.bool_]:
    """A boolean per item, ``n`` of them (to match the array called ``against``)."""
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match {against}, got {arr.shape}")
    if arr.dtype != np.bool_:
        raise ValueError(f"{name} must be a boolean array, got dtype {arr.dtype}")
    return arr


def slice_codes(
    values: ArrayLike, n: int | None = None, against: str = "confidence"
) -> NDArray[np.int64]:
    """An int slice code per item, -1 for an item in no slice, as int64.

    With ``n`` there must be ``n`` of them (to match the array called ``against``), else any
    1-d array will do.
    """
    codes = np.asarray(values)
    if n is not None and codes.shape != (n,):
        raise ValueError(f"slices must have shape ({n},) to match {against}, got {codes.shape}")
    if codes.ndim != 1:
        raise ValueError(f"slices must be a 1-d array, got shape {codes.shape}")
    if codes.size and not np.issubdtype(codes.dtype, np.integer):
        raise ValueError("slices must be integer slice codes (-1 = no slice)")
    codes = codes.astype(np.int64)
    if codes.size and codes.min() < -1:
        raise ValueError("slice codes must be >= 0, or -1 for no slice")
    return codes
