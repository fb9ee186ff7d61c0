"""crowd-kit compatible aggregators: swap ``from crowdkit.aggregation import DawidSkene`` for
``from veritag.truth.crowdkit import DawidSkene`` and keep the rest of the code.

Input is a ``task, worker, label`` DataFrame; outputs are indexed by task like crowd-kit's
(``labels_`` a Series named ``agg_label``, ``probas_`` a task x label DataFrame, ``errors_``
and ``priors_`` for Dawid-Skene, ``skills_`` for the one-coin model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from .claims import Claims
from .engine import TruthResult, fit_truth

__all__ = ["DawidSkene", "MajorityVote", "OneCoinDawidSkene", "Wawa", "from_long", "to_long"]


@dataclass(frozen=True)
class Coded:
    """A long table as claims, plus the original task, worker and label values."""

    claims: Claims
    tasks: pd.Index
    workers: pd.Index
    labels: pd.Index


def from_long(data: pd.DataFrame, *, labels: Any = None, tasks: Any = None) -> Coded:
    """Code a ``task, worker, label`` DataFrame as integer claims (labels sorted)."""
    missing = {"task", "worker", "label"} - set(data.columns)
    if missing:
        raise ValueError(f"data needs columns task, worker, label; missing {', '.join(sorted(missing))}")
    if data[["task", "worker", "label"]].isna().any().any():
        raise ValueError("data has missing task, worker or label values")
    label_index = pd.Index(sorted(pd.unique(data["label"])) if labels is None else labels)
    task_index = pd.Index(pd.unique(data["task"]) if tasks is None else tasks)
    worker_codes, worker_index = pd.factorize(data["worker"])
    task_codes = task_index.get_indexer(data["task"])
    label_codes = label_index.get_indexer(data["label"])
    if (label_codes < 0).any():
        raise ValueError(f"label {data['label'][label_codes < 0].iloc[0]!r} is not among the labels")
    if (task_codes < 0).any():
        raise ValueError(f"task {data['task'][task_codes < 0].iloc[0]!r} is not among the tasks")
    claims = Claims.from_arrays(task_codes, worker_codes, label_codes, n_items=len(task_index),
                                n_sources=len(worker_index), n_classes=len(label_index))
    return Coded(claims, task_index, pd.Index(worker_index), label_index)


def to_long(labels: pd.Series) -> pd.DataFrame:
    """A task-indexed label Series back to a ``task, label`` frame."""
    return labels.rename("label").rename_axis("task").reset_index()


class _Aggregator:
    _method = "ds"

    def __init__(self, n_iter: int = 100, tol: float = 1e-6) -> None:
        self.n_iter = n_iter
        self.tol = tol

    def fit(self, data: pd.DataFrame, true_labels: pd.Series | None = None) -> _Aggregator:
        """``true_labels`` (task-indexed Series) are gold: pinned and used to measure workers."""
        coded = from_long(data)
        gold_items = gold_labels = None
        if true_labels is not None:
            known = true_labels[true_labels.index.isin(coded.tasks)]
            gold_items = coded.tasks.get_indexer(known.index)
            gold_labels = coded.labels.get_indexer(known.to_numpy())
            if (gold_labels < 0).any():
                raise ValueError("a true label is not among the workers' labels")
        r = fit_truth(coded.claims, self._method, gold_items=gold_items, gold_labels=gold_labels,  # type: ignore[arg-type]
                      max_iter=self.n_iter, tol=self.tol)
        self._store(coded, r)
        return self

    def _store(self, coded: Coded, r: TruthResult) -> None:
        self.result_ = r
        self.probas_ = pd.DataFrame(r.posterior, index=coded.tasks.rename("task"),
                                    columns=coded.labels.rename("label"))
        self.labels_ = pd.Series(coded.labels[r.labels()], index=coded.tasks.rename("task"), name="agg_label")
        self.priors_ = pd.Series(r.prior, index=coded.labels.rename("label"), name="prior")
        # crowd-kit's layout: rows (worker, given label), columns the true label.
        k = len(coded.labels)
        errors = r.confusion.transpose(0, 2, 1).reshape(-1, k)
        index = pd.MultiIndex.from_product([coded.workers, coded.labels], names=["worker", "label"])
        self.errors_ = pd.DataFrame(errors, index=index, columns=coded.labels)
        self.skills_ = pd.Series(r.accuracy, index=coded.workers.rename("worker"), name="skill")

    def fit_predict(self, data: pd.DataFrame, true_labels: pd.Series | None = None) -> pd.Series:
        return self.fit(data, true_labels).labels_

    def fit_predict_proba(self, data: pd.DataFrame, true_labels: pd.Series | None = None) -> pd.DataFrame:
        return self.fit(data, true_labels).probas_


class DawidSkene(_Aggregator):
    _method = "ds"


class OneCoinDawidSkene(_Aggregator):
    _method = "onecoin"


class MajorityVote(_Aggregator):
    _method = "mv"


class Wawa(_Aggregator):
    _method = "wmv"
