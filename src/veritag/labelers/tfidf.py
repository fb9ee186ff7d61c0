"""A light text labeler: TF-IDF words and character n-grams with logistic regression.

It needs no model download and trains in seconds, so tests and small projects can use it; the
embedding labeler is the stronger default where semantics matter more than wording.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from .base import Labeler

__all__ = ["TfidfLabeler"]


class TfidfLabeler(Labeler):
    """``TfidfVectorizer`` (words 1-2 and characters 3-5) + ``LogisticRegression``."""

    name = "tfidf-logreg"
    version = "1"

    def __init__(self, *, C: float = 4.0, max_features: int = 200_000) -> None:
        self.C = C
        self.max_features = max_features

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> TfidfLabeler:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import FeatureUnion, make_pipeline

        y = np.asarray(labels, dtype=object)
        if len(texts) != y.size or y.size == 0:
            raise ValueError("fit needs one label per text and at least one text")
        self.classes_ = sorted(set(y.tolist()), key=str)
        features = FeatureUnion([
            ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, max_features=self.max_features)),
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True,
                                      max_features=self.max_features)),
        ])
        if len(self.classes_) == 1:
            self.model_ = None  # one class seen: every text gets it with certainty
            return self
        self.model_ = make_pipeline(features, LogisticRegression(C=self.C, max_iter=2000))
        self.model_.fit(list(texts), y.astype(str))
        return self

    def predict_proba(self, texts: Sequence[str]) -> NDArray[np.float64]:
        if not hasattr(self, "classes_"):
            raise RuntimeError("this TfidfLabeler is not fitted yet; call fit(texts, labels) first")
        if self.model_ is None:
            return np.ones((len(texts), 1))
        probs = self.model_.predict_proba(list(texts))
        order = [list(self.model_.classes_).index(str(c)) for c in self.classes_]
        return probs[:, order]
