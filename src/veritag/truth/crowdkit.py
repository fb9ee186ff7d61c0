"""crowd-kit compatible aggregators: swap ``from crowdkit.aggregation import DawidSkene`` for
``from veritag.truth.crowdkit import DawidSkene`` and keep the rest of the code.

Each class takes crowd-kit 1.4.2's constructor and ``fit`` arguments, raises the same exception
types (a missing column is a ``KeyError``, as pandas raises it), returns crowd-kit's results
(``DawidSkene`` and ``OneCoinDawidSkene`` are ``faithful``'s exact reproduction; ``n_iter=0``
gives the majority vote they start from; empty input gives empty results) and lays them out
the same way: ``labels_`` a task-indexed Series named ``agg_label``, ``probas_`` a task x label
DataFrame, ``errors_`` rows ``(worker, label)`` for the answers each worker gave, ``priors_``,
``skills_`` and ``loss_history_``. ``result_`` holds the engine's ``TruthResult`` as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from .claims import Claims
from .engine import TruthResult, from_faithful
from .faithful import fit_faithful
from .glad import fit_glad
from .mace import fit_mace

__all__ = [
    "GLAD",
    "MACE",
    "DawidSkene",
    "MajorityVote",
    "NotFittedError",
    "OneCoinDawidSkene",
    "Wawa",
    "from_long",
    "to_long",
]

COLUMNS = ["task", "worker", "label"]


class NotFittedError(ValueError, AttributeError):
    """Like scikit-learn's (which crowd-kit raises): a predict before fit."""


@dataclass(frozen=True)
class Coded:
    """A long table as claims, plus the original task, worker and label values."""

    claims: Claims
    tasks: pd.Index
    workers: pd.Index
    labels: pd.Index


def from_long(data: pd.DataFrame, *, labels: Any = None, tasks: Any = None) -> Coded:
    """Code a ``task, worker, label`` DataFrame as integer claims (labels sorted, tasks and
    workers in order of first appearance). A missing column raises ``KeyError``."""
    data = data[COLUMNS]
    if data.isna().any().any():
        raise ValueError("data has missing task, worker or label values")
    label_index = pd.Index(sorted(pd.unique(data["label"])) if labels is None else labels)
    task_index = pd.Index(pd.unique(data["task"]) if tasks is None else tasks)
    worker_codes, worker_index = pd.factorize(data["worker"])
    task_codes = task_index.get_indexer(data["task"])
    label_codes = label_index.get_indexer(data["label"])
    if (label_codes < 0).any():
        raise ValueError(
            f"label {data['label'][label_codes < 0].iloc[0]!r} is not among the labels"
        )
    if (task_codes < 0).any():
        raise ValueError(f"task {data['task'][task_codes < 0].iloc[0]!r} is not among the tasks")
    claims = Claims.from_arrays(
        task_codes,
        worker_codes,
        label_codes,
        n_items=len(task_index),
        n_sources=len(worker_index),
        n_classes=len(label_index),
    )
    return Coded(claims, task_index, pd.Index(worker_index), label_index)


def to_long(labels: pd.Series) -> pd.DataFrame:
    """A task-indexed label Series back to a ``task, label`` frame."""
    return labels.rename("label").rename_axis("task").reset_index()


def _frame(values: NDArray[np.float64], coded: Coded) -> pd.DataFrame:
    return pd.DataFrame(
        values, index=coded.tasks.rename("task"), columns=coded.labels.rename("label")
    )


def _most_probable(probas: pd.DataFrame) -> pd.Series:
    """The first most probable label per task (labels are sorted, so ties go to the smallest)."""
    if not probas.size:
        return pd.Series([], dtype="O", name="agg_label")
    return pd.Series(
        probas.columns[probas.to_numpy().argmax(axis=1)], index=probas.index, name="agg_label"
    )


def _worker_accuracy(coded: Coded, labels: NDArray[np.int64]) -> pd.Series:
    """crowd-kit's ``get_accuracy(by="worker")``: repeated identical answers count once."""
    c = coded.claims
    k = c.n_classes
    key = np.unique((c.item * c.n_sources + c.source) * k + c.label)
    item, rest = np.divmod(key, c.n_sources * k)
    source, label = np.divmod(rest, k)
    right = np.bincount(
        source, weights=(labels[item] == label).astype(float), minlength=c.n_sources
    )
    seen = np.bincount(source, minlength=c.n_sources)
    skills = pd.Series(
        right / np.maximum(seen, 1), index=coded.workers.rename("worker"), name="skill"
    )
    return skills.sort_index()  # crowd-kit's groupby("worker") sorts


def _votes(coded: Coded, weights: NDArray[np.float64]) -> NDArray[np.float64]:
    c = coded.claims
    cells = np.bincount(
        c.item * c.n_classes + c.label, weights=weights, minlength=c.n_items * c.n_classes
    )
    votes = cells.reshape(c.n_items, c.n_classes)
    return votes / votes.sum(axis=1, keepdims=True)


try:  # crowd-kit's wrappers (BinaryRelevance, clone_aggregator) check for its base class
    from crowdkit.aggregation.base import BaseClassificationAggregator as _Base
except ImportError:  # the usual case: crowd-kit is not installed
    _Base = object


class _Aggregator(_Base):  # type: ignore[misc,valid-type]
    """What every face shares: the empty-input exit and crowd-kit's result layout. Every public
    attribute is a constructor argument, as crowd-kit's ``clone_aggregator`` expects."""

    labels_: pd.Series | None
    probas_: pd.DataFrame | None

    def _empty(self) -> None:
        self.probas_ = pd.DataFrame()
        self.priors_ = pd.Series(dtype=float, name="prior")
        self.errors_ = pd.DataFrame()
        self.labels_ = pd.Series(dtype=float, name="agg_label")
        self.skills_ = pd.Series(dtype=float, name="skill")

    def _labels(self, probas: pd.DataFrame) -> None:
        self.probas_ = probas
        self.labels_ = _most_probable(probas)

    def fit_predict(self, data: pd.DataFrame, *args: Any, **kwargs: Any) -> pd.Series:
        self.fit(data, *args, **kwargs)  # type: ignore[attr-defined]
        assert self.labels_ is not None
        return self.labels_

    def fit_predict_proba(self, data: pd.DataFrame, *args: Any, **kwargs: Any) -> pd.DataFrame:
        self.fit(data, *args, **kwargs)  # type: ignore[attr-defined]
        assert self.probas_ is not None
        return self.probas_


class MajorityVote(_Aggregator):
    """crowd-kit's ``MajorityVote``: vote shares, optionally weighted by given worker skills."""

    def __init__(self, default_skill: float | None = None, on_missing_skill: str = "error") -> None:
        self.default_skill = default_skill
        self.on_missing_skill = on_missing_skill

    def _weights(
        self, data: pd.DataFrame, skills: pd.Series | None
    ) -> tuple[pd.DataFrame, NDArray[np.float64]]:
        if skills is None:
            return data, np.ones(len(data))
        if self.on_missing_skill != "value" and self.default_skill is not None:
            raise ValueError('default_skill is used but on_missing_skill is not "value"')
        weight = data["worker"].map(skills).to_numpy(dtype=float)
        missing = np.isnan(weight)
        if missing.any():
            if self.on_missing_skill == "error":
                raise ValueError(f"Skills for {int(missing.sum())} assignments are unknown")
            if self.on_missing_skill == "ignore":
                lost = len(set(data["task"]) - set(data["task"][~missing]))
                if lost:
                    raise ValueError(
                        f"{lost} tasks has no workers with known skills. Provide at least one "
                        "worker with known skill for each task."
                    )
                data, weight = data[~missing], weight[~missing]
            elif self.on_missing_skill == "value":
                if self.default_skill is None:
                    raise ValueError(
                        'Default skill should be passed if on_missing_skill is "value"'
                    )
                weight = np.where(missing, self.default_skill, weight)
            else:
                raise ValueError(f"Unknown option {self.on_missing_skill!r} of on_missing_skill")
        return data, weight

    def fit(self, data: pd.DataFrame, skills: pd.Series | None = None) -> MajorityVote:
        data = data[COLUMNS]
        if not len(data):
            self._empty()
            return self
        data, weight = self._weights(data, skills)
        coded = from_long(data, tasks=sorted(pd.unique(data["task"])))
        self._labels(_frame(_votes(coded, weight), coded))
        assert self.labels_ is not None
        self.skills_ = _worker_accuracy(coded, coded.labels.get_indexer(self.labels_.to_numpy()))
        return self


class Wawa(_Aggregator):
    """crowd-kit's ``Wawa``: skill is agreement with majority vote, then a skill-weighted vote."""

    def fit(self, data: pd.DataFrame) -> Wawa:
        data = data[COLUMNS]
        if not len(data):
            self._empty()
            return self
        self.skills_ = MajorityVote().fit(data).skills_
        return self

    def _apply(self, data: pd.DataFrame) -> Wawa:
        if not hasattr(self, "skills_"):
            raise NotFittedError("this Wawa is not fitted yet; call fit(data) first")
        mv = MajorityVote().fit(data, skills=self.skills_)
        self.probas_, self.labels_ = mv.probas_, mv.labels_
        return self

    def predict(self, data: pd.DataFrame) -> pd.Series:
        assert self._apply(data).labels_ is not None
        return self.labels_  # type: ignore[return-value]

    def predict_proba(self, data: pd.DataFrame) -> pd.DataFrame:
        assert self._apply(data).probas_ is not None
        return self.probas_  # type: ignore[return-value]

    def fit_predict(self, data: pd.DataFrame) -> pd.Series:  # type: ignore[override]
        return self.fit(data).predict(data)

    def fit_predict_proba(self, data: pd.DataFrame) -> pd.DataFrame:  # type: ignore[override]
        return self.fit(data).predict_proba(data)


def _initial_errors(initial_error: pd.DataFrame | None, coded: Coded) -> NDArray[np.float64] | None:
    """crowd-kit's ``(worker, label)`` x label frame as ``faithful``'s rows; absent rows are NaN."""
    if initial_error is None:
        return None
    if list(initial_error.index.names) != ["worker", "label"]:
        raise ValueError(
            f"The index of initial_error must be: ['worker', 'label'],but got: "
            f"{list(initial_error.index.names)}"
        )
    k = len(coded.labels)
    out = np.full((len(coded.workers) * k, k), np.nan)
    worker = coded.workers.get_indexer(initial_error.index.get_level_values("worker"))
    label = coded.labels.get_indexer(initial_error.index.get_level_values("label"))
    known = (worker >= 0) & (label >= 0)
    values = initial_error.reindex(columns=coded.labels).fillna(0.0).to_numpy(dtype=float)
    out[worker[known] * k + label[known]] = values[known]
    return out


class DawidSkene(_Aggregator):
    """crowd-kit's ``DawidSkene``, reproduced exactly (see ``veritag.truth.faithful``)."""

    _one_coin = False

    def __init__(
        self,
        n_iter: int = 100,
        tol: float = 1e-5,
        initial_error_strategy: Literal["assign", "addition"] | None = None,
    ) -> None:
        self.n_iter = n_iter
        self.tol = tol
        self.initial_error_strategy = initial_error_strategy

    def fit(
        self,
        data: pd.DataFrame,
        true_labels: pd.Series | None = None,
        initial_error: pd.DataFrame | None = None,
    ) -> DawidSkene:
        """``true_labels`` (task-indexed) are pinned; ``initial_error`` shapes the first M-step."""
        data = data[COLUMNS]
        if not len(data):
            self._empty()
            self.loss_history_: list[float] = []
            return self
        coded = from_long(data)
        gold_items = gold_labels = None
        if true_labels is not None:
            known = true_labels[true_labels.index.isin(coded.tasks)]
            gold_items = coded.tasks.get_indexer(known.index)
            gold_labels = coded.labels.get_indexer(known.to_numpy())
            if (gold_labels < 0).any():
                raise ValueError("a true label is not among the workers' labels")
        f = fit_faithful(
            coded.claims,
            one_coin=self._one_coin,
            n_iter=self.n_iter,
            tol=self.tol,
            gold_items=gold_items,
            gold_labels=gold_labels,
            initial_error=_initial_errors(initial_error, coded),
            initial_error_strategy=self.initial_error_strategy,
        )
        k = len(coded.labels)
        self._labels(_frame(f.posterior, coded))
        self.priors_ = pd.Series(f.prior, index=coded.labels.rename("label"), name="prior")
        rows = _first_seen_pairs(coded, f.present)
        index = pd.MultiIndex.from_arrays(
            [coded.workers[rows // k], coded.labels[rows % k]], names=["worker", "label"]
        )
        # crowd-kit's errors_ come out of a groupby that drops the columns' name.
        self.errors_ = pd.DataFrame(f.errors[rows], index=index, columns=coded.labels.rename(None))
        self.skills_ = pd.Series(f.skills, index=coded.workers.rename("worker"), name="skill")
        self.loss_history_ = list(f.loss_history)
        self.result_: TruthResult = from_faithful(
            f, coded.claims, "onecoin" if self._one_coin else "ds"
        )
        return self


def _first_seen_pairs(coded: Coded, present: NDArray[np.bool_]) -> NDArray[np.int64]:
    """``(worker, label)`` rows in the order crowd-kit's ``groupby(sort=False)`` lists them."""
    c = coded.claims
    seen = pd.unique(c.source * c.n_classes + c.label)
    extra = np.setdiff1d(np.flatnonzero(present), seen)
    return np.concatenate([seen, extra]).astype(np.int64)


class OneCoinDawidSkene(DawidSkene):
    """crowd-kit's ``OneCoinDawidSkene``: one skill per worker; ``fit`` takes the data alone."""

    _one_coin = True

    def fit(self, data: pd.DataFrame) -> OneCoinDawidSkene:  # type: ignore[override]
        super().fit(data)
        return self

    def fit_predict(self, data: pd.DataFrame) -> pd.Series:  # type: ignore[override]
        return super().fit_predict(data)

    def fit_predict_proba(self, data: pd.DataFrame) -> pd.DataFrame:  # type: ignore[override]
        return super().fit_predict_proba(data)


def _by(values: pd.Series | None, index: pd.Index) -> NDArray[np.float64] | None:
    """A name-indexed Series (crowd-kit's prior arguments) as an array in ``index`` order."""
    return None if values is None else values.reindex(index).to_numpy(dtype=float)


class GLAD(_Aggregator):
    """crowd-kit's ``GLAD``: worker ability ``alphas_`` times task easiness ``betas_`` (see
    ``veritag.truth.glad``; crowd-kit's private M-step helpers are not offered)."""

    def __init__(
        self,
        n_iter: int = 100,
        tol: float = 1e-5,
        silent: bool = True,
        labels_priors: pd.Series | None = None,
        alphas_priors_mean: pd.Series | None = None,
        betas_priors_mean: pd.Series | None = None,
        m_step_max_iter: int = 25,
        m_step_tol: float = 1e-2,
    ) -> None:
        self.n_iter = n_iter
        self.tol = tol
        self.silent = silent
        self.labels_priors = labels_priors
        self.alphas_priors_mean = alphas_priors_mean
        self.betas_priors_mean = betas_priors_mean
        self.m_step_max_iter = m_step_max_iter
        self.m_step_tol = m_step_tol

    def fit(self, data: pd.DataFrame) -> GLAD:
        data = data[COLUMNS]
        if not len(data):
            self._empty()
            self.loss_history_: list[float] = []
            return self
        coded = from_long(data)
        g = fit_glad(
            coded.claims,
            n_iter=self.n_iter,
            tol=self.tol,
            labels_priors=_by(self.labels_priors, coded.labels),
            alphas_priors_mean=_by(self.alphas_priors_mean, coded.workers),
            betas_priors_mean=_by(self.betas_priors_mean, coded.tasks),
            m_step_max_iter=self.m_step_max_iter,
            m_step_tol=self.m_step_tol,
        )
        self._labels(_frame(g.posterior, coded))
        self.alphas_ = pd.Series(g.alpha, index=coded.workers.rename("worker"), name="alpha")
        self.betas_ = pd.Series(g.beta, index=coded.tasks.rename("task"), name="beta")
        self.priors_ = pd.Series(g.prior, index=coded.labels.rename("label"), name="prior")
        self.loss_history_ = list(g.loss_history)
        return self


class MACE(_Aggregator):
    """crowd-kit's ``MACE``: each worker knows the answer or spams with a strategy of its own.

    ``crowdkit_compat=True`` (the default, so results are crowd-kit's) keeps crowd-kit 1.4.2's
    strategy update, which reads each worker's counts from another worker's row (see
    ``veritag.truth.mace``); ``False`` fits the model as published.
    """

    def __init__(
        self,
        n_restarts: int = 10,
        n_iter: int = 50,
        method: str = "vb",
        smoothing: float = 0.1,
        default_noise: float = 0.5,
        alpha: float = 0.5,
        beta: float = 0.5,
        random_state: int = 0,
        verbose: int = 0,
        crowdkit_compat: bool = True,
    ) -> None:
        self.n_restarts = n_restarts
        self.n_iter = n_iter
        self.method = method
        self.smoothing = smoothing
        self.default_noise = default_noise
        self.alpha = alpha
        self.beta = beta
        self.random_state = random_state
        self.verbose = verbose
        self.crowdkit_compat = crowdkit_compat

    def fit(self, data: pd.DataFrame) -> MACE:
        data = data[COLUMNS]
        if not len(data):
            self._empty()
            return self
        # crowd-kit codes workers and labels by name where its bug bites, tasks as they appear.
        coded = from_long(data)
        workers = pd.Index(sorted(pd.unique(data["worker"])))
        claims = Claims.from_arrays(
            coded.claims.item,
            workers.get_indexer(data["worker"]),
            coded.claims.label,
            n_items=coded.claims.n_items,
            n_sources=len(workers),
            n_classes=coded.claims.n_classes,
        )
        # crowd-kit ignores its smoothing argument (it uses 0.01 / labels): so does the face.
        m = fit_mace(
            claims,
            n_restarts=self.n_restarts,
            n_iter=self.n_iter,
            method=self.method,  # type: ignore[arg-type]
            default_noise=self.default_noise,
            alpha=self.alpha,
            beta=self.beta,
            random_state=self.random_state,
            crowdkit_compat=self.crowdkit_compat,
        )
        self._labels(_frame(m.posterior, coded))
        # crowd-kit's arrays: rows workers and columns labels in order of first appearance.
        rows = workers.get_indexer(coded.workers)
        self.spamming_ = m.spamming[rows]
        self.thetas_ = m.thetas[rows][:, coded.labels.get_indexer(pd.unique(data["label"]))]
        self.skills_ = pd.Series(m.competence, index=workers.rename("worker"), name="skill")
        return self
