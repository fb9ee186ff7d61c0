"""A light text labeler: TF-IDF words and character n-grams with logistic regression.

It needs no model download and trains in seconds, so tests and small projects can use it; the
embedding labeler is the stronger default where semantics matter more than wording.
"""

from __future__ import annotations

from typing import Any

from .base import ScikitLabeler

__all__ = ["TfidfLabeler"]


class TfidfLabeler(ScikitLabeler):
    """``TfidfVectorizer`` (words 1-2 and characters 3-5) + ``LogisticRegression``."""

    name = "tfidf-logreg"
    version = "1"

    def __init__(self, *, C: float = 4.0, max_features: int = 200_000) -> None:
        self.C = C
        self.max_features = max_features

    def make_model(self) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import FeatureUnion, make_pipeline

        features = FeatureUnion(
            [
                (
                    "words",
                    TfidfVectorizer(
                        ngram_range=(1, 2),
                        sublinear_tf=True,
                        min_df=1,
                        max_features=self.max_features,
                    ),
                ),
                (
                    "chars",
                    TfidfVectorizer(
                        analyzer="char_wb",
                        ngram_range=(3, 5),
                        sublinear_tf=True,
                        max_features=self.max_features,
                    ),
                ),
            ]
        )
        return make_pipeline(features, LogisticRegression(C=self.C, max_iter=2000))
