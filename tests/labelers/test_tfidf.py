"""The light labeler and out-of-fold probabilities."""

from __future__ import annotations

import numpy as np
import pytest
from vt_helpers import spam_corpus as corpus

from veritag.labelers import TfidfLabeler, out_of_fold_proba


def test_learns_and_orders_columns_by_classes() -> None:
    texts, labels = corpus(300)
    model = TfidfLabeler().fit(texts, labels)
    assert model.classes_ == ["ham", "spam"]
    probs = model.predict_proba(["win cash prize free", "lunch at home tomorrow"])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert probs[0, 1] > 0.8 and probs[1, 0] > 0.8


def test_out_of_fold_rows_never_see_their_own_label() -> None:
    texts, labels = corpus(400, seed=1)
    classes = ["ham", "spam"]
    oof = out_of_fold_proba(TfidfLabeler, texts, labels, classes=classes, folds=5, seed=0)
    assert oof.shape == (400, 2)
    np.testing.assert_allclose(oof.sum(axis=1), 1.0)
    assert np.mean(np.asarray(classes)[oof.argmax(axis=1)] == labels) > 0.9
    # A text whose label is flipped keeps the prediction of the other folds: out of fold, the
    # flipped label cannot leak into its own row.
    flipped = labels.copy()
    flipped[0] = "ham" if labels[0] == "spam" else "spam"
    again = out_of_fold_proba(TfidfLabeler, texts, flipped, classes=classes, folds=5, seed=0)
    assert again[0].argmax() == oof[0].argmax()


def test_bad_input_is_refused() -> None:
    texts, labels = corpus(20)
    with pytest.raises(ValueError, match="not among the classes"):
        out_of_fold_proba(TfidfLabeler, texts, labels, classes=["ham"], folds=5)
    with pytest.raises(ValueError, match="at least 5 labeled texts"):
        out_of_fold_proba(TfidfLabeler, texts[:3], labels[:3], classes=["ham", "spam"], folds=5)
    with pytest.raises(RuntimeError, match="not fitted"):
        TfidfLabeler().predict_proba(["x"])
    single = TfidfLabeler().fit(["a", "b"], ["ham", "ham"])
    np.testing.assert_allclose(single.predict_proba(["c"]), [[1.0]])
