"""The labeler interface, and out-of-fold probabilities for the items a labeler trains on.

A labeler's probabilities on its own training items are optimistic; the truth engine and the
automation policy need honest ones, so every item's row comes from a copy that never saw it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Labeler", "out_of_fold_proba"]


class Labeler(ABC):
    """A model that labels texts. ``classes_`` (after ``fit``) orders ``predict_proba``'s columns."""

    #: Stored with every model claim, so a label can be traced to the model that made it.
    name: str = "labeler"
    version: str = "0"

    @abstractmethod
    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> Labeler:
        """Learn from human-labeled texts; returns ``self``."""

    @abstractmethod
    def predict_proba(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """One probability row per text, columns in ``classes_`` order."""


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
        raise ValueError(f"need at least {folds} labeled texts and folds >= 2 for out-of-fold probabilities")
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
