"""What automation would give on a labeled text file, before paying for any label.

Ground truth stands in for the audit's human answers: a labeler's out-of-fold probabilities give
every item a confidence, a random audit sample picks the threshold, and accuracy is measured
only on auto-accepted items the audit never saw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, RowError
from ..io.labels import RowTable, raise_bad_rows
from ..labelers import out_of_fold_proba
from ..labelers.registry import DEFAULT_LABELER, LABELER_NAMES, labeler_factory
from .policy import simulate

__all__ = ["read_column_pairs", "simulate_files"]


def read_column_pairs(
    path: Path, key: str, value: str, *, encoding: str = "utf-8"
) -> dict[str, str]:
    """``{key: value}`` from a file with those two columns; a bad row names its file and line."""
    errors: list[RowError] = []
    bad = [0]
    out: dict[str, str] = {}
    table = RowTable(path, encoding, (key, value), errors, bad)
    for line, values in table.rows():
        k, v = table.text(line, values, key), table.text(line, values, value)
        if k is None or v is None:
            continue
        if k in out:
            table.fail(line, key, f"{key} {k!r} appears twice")
            continue
        out[k] = v
    raise_bad_rows(errors, bad, "nothing was simulated")
    return out


def simulate_files(
    texts: Path,
    truth: Path,
    *,
    target: float,
    delta: float,
    audit_size: int | None = None,
    labeler: str = DEFAULT_LABELER,
    folds: int = 5,
    seed: int = 0,
    encoding: str = "utf-8",
) -> dict[str, Any]:
    """Replay the automation policy on ``texts`` (task,text) with ``truth`` (task,label).

    ``audit_size`` defaults to 10% of the items (at least 200, at most all of them).
    """
    if labeler not in LABELER_NAMES:
        raise InputError(f"unknown labeler {labeler!r}; choose one of {', '.join(LABELER_NAMES)}")
    text_of = read_column_pairs(texts, "task", "text", encoding=encoding)
    label_of = read_column_pairs(truth, "task", "label", encoding=encoding)
    tasks = [t for t in text_of if t in label_of]
    if len(tasks) < max(folds, 2):
        raise InputError(
            f"{texts} and {truth} share only {len(tasks)} tasks; the simulation needs at least "
            f"{folds}"
        )
    labels = np.array([label_of[t] for t in tasks], dtype=object)
    classes = sorted(set(labels.tolist()))
    make = labeler_factory(labeler)
    probs = out_of_fold_proba(
        make, [text_of[t] for t in tasks], labels, classes=classes, folds=folds, seed=seed
    )
    correct = np.asarray(classes, dtype=object)[probs.argmax(axis=1)] == labels
    n = len(tasks)
    size = min(n, max(200, n // 10)) if audit_size is None else audit_size
    result = simulate(
        probs.max(axis=1), correct, audit_size=size, target=target, delta=delta, rng=seed
    )
    model = make()
    result.update(
        {
            "items": n,
            "labeler": f"{model.name}@{model.version}",
            "model_accuracy": float(correct.mean()),
            "target": target,
            "delta": delta,
        }
    )
    return result
