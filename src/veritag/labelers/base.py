"""The labeler interface, and out-of-fold probabilities for the items a labeler trains on.

A labeler's probabilities on its own training items are optimistic; the truth engine and the
automation policy need honest ones, so every item's row comes from a copy that never saw it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Labeler", "ScikitLabeler", "out_of_fold_proba"]


class Labeler(ABC):
    """A model labelling texts; ``classes_`` (set by ``fit``) orders ``predict_proba``'s columns."""

    #: Stored with every model claim, so a label can be traced to the model that made it.
    name: str = "labeler"
    version: str = "0"

    @abstractmethod
    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> Labeler:
        """Learn from human-labeled texts; returns ``self``."""

    @abstractmethod
    def predict_proba(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """One probability row per text, columns in ``classes_`` order."""


class ScikitLabeler(Labeler):
    """A labeler that is a scikit-learn classifier over some features of the texts.

    Subclasses say how texts become features (``features``) and which classifier learns from
    them (``make_model``); this class keeps the column order in ``classes_`` and the one-class
    case (every text gets the only class seen, with certainty), which scikit-learn refuses.
    """

    @abstractmethod
    def make_model(self) -> Any:
        """A fresh, unfitted scikit-learn classifier (``fit``/``predict_proba``/``classes_``)."""

    def features(self, texts: Sequence[str]) -> Any:
        """What the classifier reads; the texts themselves unless the subclass encodes them."""
        return list(texts)

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> ScikitLabeler:
        y = np.asarray(labels, dtype=object)
        if len(texts) != y.size or y.size == 0:
            raise ValueError("fit needs one label per text and at least one text")
        self.classes_ = sorted(set(y.tolist()), key=str)
        if len(self.classes_) == 1:
            self.model_ = None
            return self
        self.model_ = self.make_model()
        self.model_.fit(self.features(texts), y.astype(str))
        return self

    def predict_proba(self, texts: Sequence[str]) -> NDArray[np.float64]:
        if not hasattr(self, "classes_"):
            raise RuntimeError(
                f"this {type(self).__name__} is not fitted yet; call fit(texts, labels) first"
            )
        if self.model_ is None:
            return np.ones((len(texts), 1))
        if len(texts) == 0:
            return np.zeros((0, len(self.classes_)))
        probs = self.model_.predict_proba(self.features(texts))
        order = [list(self.model_.classes_).index(str(c)) for c in self.classes_]
        return np.asarray(probs, dtype=np.float64)[:, order]


def out_of_fold_proba(
    make: Callable[[], Labeler],
    texts: Sequence[str],
    labels: ArrayLike,
    *,
    classes: Sequence[str],
    folds: int = 5,
    seed: int = 0,
) -> NDArray[np.float64]:
    """Each text's probabilities from a labeler trained on the other folds (stratified, seeded).

    Columns follow ``classes``; a class missing from a fold's training part gets probability 0
    there. Needs at least ``folds`` texts.
    """
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(labels, dtype=object)
    n = len(texts)
    if y.shape != (n,):
        raise ValueError(f"labels must give one label per text ({n}); got shape {y.shape}")
    if folds < 2 or n < folds:
        raise ValueError(
            f"need at least {folds} labeled texts and folds >= 2 for out-of-fold probabilities"
        )
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({str(v) for v in y if v not in index})
    if unknown:
        raise ValueError(f"label {unknown[0]!r} is not among the classes {list(classes)}")
    codes = np.array([index[v] for v in y])
    counts = np.bincount(codes, minlength=len(classes))
    # Stratify only when every class can fill every fold; otherwise plain shuffled folds.
    strat = codes if counts[counts > 0].min() >= folds else np.zeros(n, np.int64)
    out = np.zeros((n, len(classes)))
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    text_arr = np.asarray(texts, dtype=object)
    for train, test in splitter.split(np.zeros(n), strat):
        model = make().fit(list(text_arr[train]), list(y[train]))
        cols = [index[c] for c in model.classes_]
        out[np.ix_(test, cols)] = model.predict_proba(list(text_arr[test]))
    return out
