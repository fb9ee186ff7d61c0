"""Probability calibration for model labelers: temperature scaling, isotonic, ECE.

Auto-labeling with a guarantee only works if a model's "0.9" really means right 9 times in 10.
Raw model scores rarely do (modern networks are overconfident), so the probabilities are
recalibrated on human-labeled items before any threshold is chosen, and the reliability
diagram / expected calibration error (ECE) show how well that worked.

Everything here is arrays in, arrays out (no store, no web). Probabilities are ``(n, k)`` rows
summing to 1; a 1-D array is read as binary ``P(class 1)`` and transforms hand back the same
shape. Labels are class indices in ``[0, k)``. Malformed input raises ``ValueError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.isotonic import IsotonicRegression

from ..checks import level

__all__ = [
    "CALIBRATION_METHODS",
    "CalibrationMethod",
    "Calibrator",
    "IdentityCalibration",
    "IsotonicCalibration",
    "ReliabilityCurve",
    "TemperatureScaling",
    "expected_calibration_error",
    "fit_calibrator",
    "negative_log_likelihood",
    "reliability_curve",
]

CalibrationMethod = Literal["temperature", "isotonic", "none"]
CALIBRATION_METHODS: tuple[str, ...] = ("temperature", "isotonic", "none")
InputKind = Literal["probs", "logits"]

_SUM_TOL = 1e-3  # rows may be a little off 1 (float32 softmax), not more


# --- input checks -----------------------------------------------------------------------------


def _as_scores(x: ArrayLike, kind: InputKind = "probs", name: str = "probs") -> NDArray[np.float64]:
    """Validate probabilities (or logits) and return them as a float ``(n, k)`` array."""
    if kind not in ("probs", "logits"):
        raise ValueError(f"input must be 'probs' or 'logits', got {kind!r}")
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:  # binary: P(class 1), or the logit of class 1
        a = (
            np.column_stack([np.zeros_like(a), a])
            if kind == "logits"
            else np.column_stack([1.0 - a, a])
        )
        if kind == "probs" and np.any((a[:, 1] < 0) | (a[:, 1] > 1)):
            raise ValueError(f"{name}: binary probabilities must lie in [0, 1]")
    if a.ndim != 2:
        raise ValueError(f"{name} must be 1-D (binary) or 2-D (n_items, n_classes), got {a.ndim}-D")
    if a.shape[0] == 0:
        raise ValueError(f"{name} is empty: need at least one item")
    if a.shape[1] < 2:
        raise ValueError(f"{name} must have at least 2 classes (columns), got {a.shape[1]}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if kind == "probs":
        if np.any(a < 0):
            raise ValueError(f"{name} contains negative probabilities")
        sums = a.sum(axis=1)
        bad = np.abs(sums - 1.0) > _SUM_TOL
        if np.any(bad):
            i = int(np.argmax(bad))
            raise ValueError(f"{name} rows must sum to 1; row {i} sums to {sums[i]:.6g}")
    return a


def _as_labels(y: ArrayLike, n_items: int, n_classes: int) -> NDArray[np.intp]:
    """Validate class indices against the probability matrix they go with."""
    raw = np.asarray(y)
    if raw.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {raw.shape}")
    if raw.shape[0] != n_items:
        raise ValueError(
            f"shape mismatch: {n_items} rows of probabilities but {raw.shape[0]} labels"
        )
    if raw.dtype.kind not in "biuf":
        raise ValueError(f"labels must be integer class indices, got dtype {raw.dtype}")
    if raw.dtype.kind == "f" and not np.all(np.isfinite(raw) & (raw == np.round(raw))):
        raise ValueError("labels must be integer class indices")
    labels = raw.astype(np.intp)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(
            f"labels out of range: expected class indices in [0, {n_classes}), "
            f"got values from {labels.min()} to {labels.max()}"
        )
    return labels


def _same_shape(out: NDArray[np.float64], x: ArrayLike) -> NDArray[np.float64]:
    """Hand 1-D (binary) input back as 1-D ``P(class 1)``."""
    return out[:, 1] if np.ndim(x) == 1 else out


def _check_fitted(est: BaseEstimator, attr: str) -> None:
    if not hasattr(est, attr):
        raise NotFittedError(f"{type(est).__name__} is not fitted yet; call fit() first")


def _check_classes(est: BaseEstimator, a: NDArray[np.float64]) -> None:
    n = est.n_classes_  # type: ignore[attr-defined]
    if a.shape[1] != n:
        raise ValueError(f"shape mismatch: calibrator was fitted on {n} classes, got {a.shape[1]}")


# --- metrics ----------------------------------------------------------------------------------


def negative_log_likelihood(probs: ArrayLike, labels: ArrayLike, *, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood of the true labels: the score temperature scaling minimises."""
    p = _as_scores(probs)
    y = _as_labels(labels, p.shape[0], p.shape[1])
    return float(-np.mean(np.log(np.clip(p[np.arange(p.shape[0]), y], eps, 1.0))))


@dataclass(frozen=True)
class ReliabilityCurve:
    """Data for a reliability diagram: top-label confidence vs accuracy in equal-width bins.

    ``edges`` has ``n_bins + 1`` entries; bin ``b`` holds confidences in ``(edges[b],
    edges[b+1]]`` (the first bin also holds 0). Empty bins have NaN confidence and accuracy
    (plotting skips them) and count 0.
    """

    edges: NDArray[np.float64]
    confidence: NDArray[np.float64]
    accuracy: NDArray[np.float64]
    count: NDArray[np.int64]

    @property
    def ece(self) -> float:
        """Expected calibration error: count-weighted mean gap between accuracy and confidence."""
        n = int(self.count.sum())
        filled = self.count > 0
        gaps = np.abs(self.accuracy[filled] - self.confidence[filled])
        return float(np.sum(self.count[filled] * gaps) / n)


def reliability_curve(probs: ArrayLike, labels: ArrayLike, *, n_bins: int = 15) -> ReliabilityCurve:
    """Bin items by top-label confidence and compare mean confidence with accuracy per bin."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    p = _as_scores(probs)
    y = _as_labels(labels, p.shape[0], p.shape[1])
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # conf in (edges[b], edges[b+1]] -> b; conf == 0 -> 0; conf slightly above 1 (tolerance) -> last
    bins = np.clip(np.searchsorted(edges[1:-1], conf, side="left"), 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(bins, weights=conf, minlength=n_bins) / count
        accuracy = np.bincount(bins, weights=correct, minlength=n_bins) / count
    return ReliabilityCurve(edges=edges, confidence=confidence, accuracy=accuracy, count=count)


def expected_calibration_error(probs: ArrayLike, labels: ArrayLike, *, n_bins: int = 15) -> float:
    """Top-label ECE with equal-width bins: how far stated confidence is from realised accuracy."""
    return reliability_curve(probs, labels, n_bins=n_bins).ece


# --- calibrators ------------------------------------------------------------------------------


@runtime_checkable
class Calibrator(Protocol):
    """What the auto-label policy needs: fit on human-labeled items, then map probabilities."""

    def fit(self, probs: ArrayLike, labels: ArrayLike) -> Calibrator: ...

    def transform(self, probs: ArrayLike) -> NDArray[np.float64]: ...


class IdentityCalibration(BaseEstimator):
    """No-op calibrator (method ``"none"``), so callers need no special case for "uncalibrated"."""

    def __init__(self, input: InputKind = "probs") -> None:
        self.input = input

    def fit(self, probs: ArrayLike, labels: ArrayLike) -> IdentityCalibration:
        """Check the input and remember the number of classes."""
        a = _as_scores(probs, self.input)
        _as_labels(labels, a.shape[0], a.shape[1])
        self.n_classes_ = a.shape[1]
        return self

    def transform(self, probs: ArrayLike) -> NDArray[np.float64]:
        """Return the probabilities unchanged (logits go through a softmax)."""
        _check_fitted(self, "n_classes_")
        a = _as_scores(probs, self.input)
        _check_classes(self, a)
        out = softmax(a, axis=1) if self.input == "logits" else a / a.sum(axis=1, keepdims=True)
        return _same_shape(out, probs)

    def fit_transform(self, probs: ArrayLike, labels: ArrayLike) -> NDArray[np.float64]:
        """Fit on the labeled items and return their calibrated probabilities."""
        return self.fit(probs, labels).transform(probs)


class TemperatureScaling(BaseEstimator):
    """One temperature ``T`` for all classes: ``softmax(log p / T)``.

    A single parameter cannot overfit a small human-labeled set and never changes the argmax, so
    it fixes over-/under-confidence (``T > 1`` softens, ``T < 1`` sharpens) without touching
    accuracy. ``T`` minimises the negative log-likelihood, searched on ``log T`` within
    ``bounds``. Zero probabilities are clipped to ``eps`` before the log.

    Parameters: ``input`` says whether ``fit``/``transform`` get probabilities or logits.
    Fitted: ``temperature_``, ``n_classes_``, ``nll_before_``, ``nll_after_`` (on the fit data).
    """

    def __init__(
        self,
        input: InputKind = "probs",
        bounds: tuple[float, float] = (1e-2, 1e2),
        eps: float = 1e-12,
    ) -> None:
        self.input = input
        self.bounds = bounds
        self.eps = eps

    def _logits(self, a: NDArray[np.float64]) -> NDArray[np.float64]:
        return a if self.input == "logits" else np.log(np.clip(a, self.eps, 1.0))

    def fit(self, probs: ArrayLike, labels: ArrayLike) -> TemperatureScaling:
        """Fit ``T`` on human-labeled items (model probabilities or logits, true labels)."""
        lo, hi = (float(b) for b in self.bounds)
        if not (0 < lo < hi and np.isfinite(hi)):
            raise ValueError(f"bounds must satisfy 0 < low < high < inf, got {self.bounds!r}")
        level("eps", self.eps)
        a = _as_scores(probs, self.input)
        y = _as_labels(labels, a.shape[0], a.shape[1])
        z = self._logits(a)
        z = z - z.max(axis=1, keepdims=True)
        rows = np.arange(z.shape[0])

        def nll(log_t: float) -> float:
            return float(-np.mean(log_softmax(z / np.exp(log_t), axis=1)[rows, y]))

        if np.all(np.ptp(z, axis=1) == 0):
            # all rows uniform: every T gives the same likelihood, so leave the scores alone
            temperature = 1.0
        else:
            res = minimize_scalar(
                nll, bounds=(np.log(lo), np.log(hi)), method="bounded", options={"xatol": 1e-6}
            )
            temperature = float(np.exp(res.x))
            if lo <= 1.0 <= hi and nll(np.log(temperature)) > nll(0.0):
                temperature = 1.0  # never worse on the fit data than doing nothing
        self.temperature_ = temperature
        self.n_classes_ = a.shape[1]
        self.nll_before_ = nll(0.0)
        self.nll_after_ = nll(np.log(temperature))
        return self

    def transform(self, probs: ArrayLike) -> NDArray[np.float64]:
        """Calibrated probabilities ``softmax(log p / T)`` (same shape as the input)."""
        _check_fitted(self, "temperature_")
        a = _as_scores(probs, self.input)
        _check_classes(self, a)
        return _same_shape(softmax(self._logits(a) / self.temperature_, axis=1), probs)

    def fit_transform(self, probs: ArrayLike, labels: ArrayLike) -> NDArray[np.float64]:
        """Fit on the labeled items and return their calibrated probabilities."""
        return self.fit(probs, labels).transform(probs)


class IsotonicCalibration(BaseEstimator):
    """One-vs-rest isotonic regression per class, then rows renormalised.

    Isotonic regression fixes any monotone distortion of the scores (not just a temperature), at
    the price of needing more labeled items. A class never seen as a true label in the fit data
    is mapped to probability 0 (its observed frequency); a row whose calibrated scores are all 0
    falls back to the model's own probabilities, so output never contains NaN.

    Fitted: ``calibrators_`` (one ``IsotonicRegression`` per class), ``n_classes_``,
    ``classes_seen_`` (bool per class: appeared as a label in the fit data).
    """

    def __init__(self, input: InputKind = "probs") -> None:
        self.input = input

    def _probs(self, a: NDArray[np.float64]) -> NDArray[np.float64]:
        return softmax(a, axis=1) if self.input == "logits" else a / a.sum(axis=1, keepdims=True)

    def fit(self, probs: ArrayLike, labels: ArrayLike) -> IsotonicCalibration:
        """Fit one monotone map per class from the model's score to the observed frequency."""
        a = _as_scores(probs, self.input)
        y = _as_labels(labels, a.shape[0], a.shape[1])
        p = self._probs(a)
        self.calibrators_ = [
            IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(
                p[:, c], (y == c).astype(np.float64)
            )
            for c in range(p.shape[1])
        ]
        self.n_classes_ = p.shape[1]
        self.classes_seen_ = np.bincount(y, minlength=p.shape[1]) > 0
        return self

    def transform(self, probs: ArrayLike) -> NDArray[np.float64]:
        """Calibrated probabilities, rows summing to 1 (same shape as the input)."""
        _check_fitted(self, "calibrators_")
        a = _as_scores(probs, self.input)
        _check_classes(self, a)
        p = self._probs(a)
        q = np.column_stack([iso.predict(p[:, c]) for c, iso in enumerate(self.calibrators_)])
        q = np.nan_to_num(np.clip(q, 0.0, 1.0), nan=0.0)
        sums = q.sum(axis=1, keepdims=True)
        empty = sums[:, 0] <= 0
        q[empty], sums[empty] = p[empty], 1.0
        return _same_shape(q / sums, probs)

    def fit_transform(self, probs: ArrayLike, labels: ArrayLike) -> NDArray[np.float64]:
        """Fit on the labeled items and return their calibrated probabilities."""
        return self.fit(probs, labels).transform(probs)


def fit_calibrator(
    method: CalibrationMethod, probs: ArrayLike, labels: ArrayLike, **params: object
) -> TemperatureScaling | IsotonicCalibration | IdentityCalibration:
    """Build and fit the calibrator named by ``method`` (the project setting), passing ``params``.

    ``"temperature"`` suits small labeled sets; ``"isotonic"`` needs more items but fixes any
    monotone distortion; ``"none"`` keeps the model's probabilities.
    """
    classes = {
        "temperature": TemperatureScaling,
        "isotonic": IsotonicCalibration,
        "none": IdentityCalibration,
    }
    if method not in classes:
        raise ValueError(
            f"unknown calibration method {method!r}; expected one of {list(CALIBRATION_METHODS)}"
        )
    return classes[method](**params).fit(probs, labels)  # type: ignore[arg-type]
