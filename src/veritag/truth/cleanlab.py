"""cleanlab compatible multi-annotator quality: swap
``from cleanlab.multiannotator import get_label_quality_multiannotator`` for
``from veritag.truth.cleanlab import get_label_quality_multiannotator``.

Input is cleanlab's items x annotators matrix (NaN where an annotator did not label) with
out-of-sample model probabilities; the model becomes one more source of the Dawid-Skene engine
instead of a weighted ensemble member. The returned dict has cleanlab's keys and column names.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from .claims import Claims
from .engine import fit_truth
from .label_issues import claim_issues

__all__ = ["get_label_quality_multiannotator"]


def get_label_quality_multiannotator(
    labels_multiannotator: pd.DataFrame | ArrayLike,
    pred_probs: ArrayLike,
    *,
    consensus_method: str = "ds",
    return_detailed_quality: bool = True,
    return_annotator_stats: bool = True,
) -> dict[str, Any]:
    """Consensus labels, their quality, and per-annotator quality, like cleanlab's CROWDLAB.

    ``labels_multiannotator`` holds class indices 0..K-1 (floats with NaN for missing) with one
    column per annotator; ``pred_probs`` is (items x K). ``consensus_method`` is any engine
    method (``ds``, ``onecoin``, ``mv``, ``wmv``).
    """
    frame = pd.DataFrame(labels_multiannotator)
    probs = np.asarray(pred_probs, dtype=np.float64)
    n, n_annot = frame.shape
    if probs.ndim != 2 or probs.shape[0] != n:
        raise ValueError(f"pred_probs must have one row per item ({n}); got shape {probs.shape}")
    k = probs.shape[1]
    values = frame.to_numpy(dtype=np.float64)
    item, annot = np.nonzero(~np.isnan(values))
    label = values[item, annot]
    if label.size and (np.any(label != np.round(label)) or label.min() < 0 or label.max() >= k):
        raise ValueError(f"labels must be class indices in [0, {k}) or NaN")
    claims = Claims.from_arrays(
        item,
        annot,
        label.astype(np.int64),
        n_items=n,
        n_sources=n_annot + 1,
        n_classes=k,
        prob_item=np.arange(n),
        prob_source=np.full(n, n_annot),
        probs=probs,
    )
    r = fit_truth(claims, consensus_method)  # type: ignore[arg-type]
    consensus = r.labels()
    num = np.bincount(item, minlength=n)
    agree = np.bincount(item, weights=(label == consensus[item]).astype(float), minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        agreement = np.where(num > 0, agree / np.maximum(num, 1), np.nan)
    out: dict[str, Any] = {
        "label_quality": pd.DataFrame(
            {
                "consensus_label": consensus,
                "consensus_quality_score": r.confidence(),
                "annotator_agreement": agreement,
                "num_annotations": num,
            },
            index=frame.index,
        )
    }
    human = Claims.from_arrays(
        item, annot, label.astype(np.int64), n_items=n, n_sources=n_annot + 1, n_classes=k
    )
    quality = claim_issues(human, r.posterior, r.confusion).quality
    if return_detailed_quality:
        detailed = np.full((n, n_annot), np.nan)
        detailed[item, annot] = quality
        out["detailed_label_quality"] = pd.DataFrame(
            detailed, index=frame.index, columns=[f"quality_annotator_{c}" for c in frame.columns]
        )
    if return_annotator_stats:
        labeled = np.bincount(annot, minlength=n_annot)
        with np.errstate(invalid="ignore", divide="ignore"):
            agree_c = (
                np.bincount(
                    annot, weights=(label == consensus[item]).astype(float), minlength=n_annot
                )
                / labeled
            )
        confusion = r.confusion[:n_annot]
        worst = np.argmin(np.diagonal(confusion, axis1=1, axis2=2), axis=1)
        out["annotator_stats"] = pd.DataFrame(
            {
                "annotator_quality": r.accuracy[:n_annot],
                "agreement_with_consensus": agree_c,
                "worst_class": worst,
                "num_examples_labeled": labeled,
            },
            index=pd.Index(frame.columns, name="annotator"),
        ).sort_values("annotator_quality")
    return out
