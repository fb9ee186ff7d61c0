"""A scikit-learn-like face on the engine: construct with parameters, ``fit`` on claims.

Truth inference is transductive (the items being labeled are the training data), so, as with
scikit-learn's clustering estimators, the fitted answers live on the estimator
(``posterior_``, ``labels_``) and ``fit_predict`` / ``fit_predict_proba`` return them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .claims import Claims
from .engine import TruthResult, fit_truth

__all__ = ["DawidSkene", "MajorityVote", "OneCoinDawidSkene", "ShrunkDawidSkene", "WeightedVote"]


class _TruthEstimator:
    """Shared fit/predict; subclasses pin ``_method``."""

    _method = "ds"

    def __init__(
        self,
        *,
        max_iter: int = 100,
        tol: float | None = None,
        shrinkage: float = 0.5,
        bins: int = 5,
    ) -> None:
        self.max_iter = max_iter
        self.tol = tol
        self.shrinkage = shrinkage
        self.bins = bins

    def get_params(self) -> dict[str, Any]:
        return {
            "max_iter": self.max_iter,
            "tol": self.tol,
            "shrinkage": self.shrinkage,
            "bins": self.bins,
        }

    def fit(
        self,
        claims: Claims,
        *,
        gold_items: ArrayLike | None = None,
        gold_labels: ArrayLike | None = None,
    ) -> _TruthEstimator:
        """Fit on ``claims``; returns ``self`` with ``posterior_``, ``labels_``, ``confusion_``,
        ``prior_``, ``accuracy_``, ``n_iter_``, ``log_likelihood_`` and ``result_`` set."""
        r = fit_truth(
            claims,
            self._method,
            gold_items=gold_items,
            gold_labels=gold_labels,  # type: ignore[arg-type]
            max_iter=self.max_iter,
            tol=self.tol,
            shrinkage=self.shrinkage,
            bins=self.bins,
        )
        self.result_: TruthResult = r
        self.posterior_ = r.posterior
        self.labels_ = r.labels()
        self.confusion_ = r.confusion
        self.prior_ = r.prior
        self.accuracy_ = r.accuracy
        self.n_iter_ = r.n_iter
        self.log_likelihood_ = r.log_likelihood
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "result_"):
            raise RuntimeError(
                f"this {type(self).__name__} is not fitted yet; call fit(claims) first"
            )

    def predict(self) -> NDArray[np.int64]:
        self._check_fitted()
        return self.labels_

    def predict_proba(self) -> NDArray[np.float64]:
        self._check_fitted()
        return self.posterior_

    def fit_predict(self, claims: Claims, **gold: ArrayLike | None) -> NDArray[np.int64]:
        return self.fit(claims, **gold).predict()

    def fit_predict_proba(self, claims: Claims, **gold: ArrayLike | None) -> NDArray[np.float64]:
        return self.fit(claims, **gold).predict_proba()


class DawidSkene(_TruthEstimator):
    """Full confusion matrix per source: crowd-kit's model on hard claims, models as calibrated
    sources when there are probability rows (see ``fit_truth``)."""

    _method = "ds"


class ShrunkDawidSkene(_TruthEstimator):
    """Dawid-Skene with sparse sources shrunk toward the pool (``fit_truth``'s ``ds-shrunk``)."""

    _method = "ds-shrunk"


class OneCoinDawidSkene(_TruthEstimator):
    """One accuracy per human source; sturdier than DS when each source labels few items."""

    _method = "onecoin"


class MajorityVote(_TruthEstimator):
    """Most voted class; a model's row counts as fractional votes."""

    _method = "mv"


class WeightedVote(_TruthEstimator):
    """Votes weighted by each source's agreement with the majority (crowd-kit's Wawa)."""

    _method = "wmv"
