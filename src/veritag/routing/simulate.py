"""What routing would save, replayed on a real crowd: every answer is one a worker really gave.

A ``ReplayPool`` holds the recorded ``(task, worker, label)`` rows. Asking worker w about item i
returns w's recorded answer, and only workers who answered item i can be asked, so the simulator
never invents an answer. ``simulate_routing`` then spends human labels the way a policy would:

* ``adaptive``: every item starts with ``min_labels`` answers from random workers (with texts, a
  share of the items starts from the auto-labeler's claim instead); then, round after round, the
  truth engine (Dawid-Skene) is refit, each worker's confusion is measured (shrunk toward the pool),
  items at the target posterior, at the cap or without anyone left to ask are done, and the next
  batch of labels goes to the pending items whose best worker has the highest gain per cost.
* ``fixed``: the generalist pool, k answers per item from random workers.

Both are measured against the ground truth on the items that have one, together with majority
vote and Dawid-Skene over *all* recorded labels, the usual way of spending the whole crowd.
"""

from __future__ import annotations

import math
import warnings
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import InputError, RowError
from ..truth import Claims, ConvergenceWarning, fit_truth, majority_vote
from .policy import RoutingConfig, item_done, plan_batch, tutor_confusion, tutor_scores

__all__ = [
    "CrowdFiles",
    "ReplayPool",
    "SimulationResult",
    "read_crowd",
    "simulate_crowd",
    "simulate_routing",
]

POLICIES = ("adaptive", "fixed")
Policy = Literal["adaptive", "fixed"]


@dataclass(frozen=True)
class CrowdFiles:
    """A crowd read from files, integer-coded; ``gt`` is -1 where the truth is unknown."""

    tasks: list[str]
    workers: list[str]
    classes: list[str]
    item: NDArray[np.int64]
    worker: NDArray[np.int64]
    label: NDArray[np.int64]
    gt: NDArray[np.int64]
    texts: list[str | None] | None = None

    @property
    def n_items(self) -> int:
        return len(self.tasks)


def _ints(values: array) -> NDArray[np.int64]:
    return np.frombuffer(values, dtype=np.int64).copy() if len(values) else np.zeros(0, np.int64)


def read_crowd(
    labels: Path, truth: Path, texts: Path | None = None, *, encoding: str = "utf-8"
) -> CrowdFiles:
    """LABELS (task,worker,label), GT (task,label) and optional TEXTS (task and any text columns).

    Text columns other than ``task`` are joined, so ``text,hypothesis`` or a product pair's fields
    all reach the labeler. Ground truth for tasks nobody labeled is ignored; a ground-truth label
    nobody answered becomes a class of its own. Every bad row is named by file and line.
    """
    # Not at module level: the file readers pull in the store, and `import veritag.routing` need
    # not.
    from ..io.labels import RowTable, class_order, raise_bad_rows, read_long_labels

    errors: list[RowError] = []
    bad = [0]
    long = read_long_labels(labels, encoding, errors, bad)
    tasks, workers, classes = long.tasks, long.workers, long.classes
    h_item, h_worker, h_label = long.item, long.worker, long.label
    gt_of: dict[str, tuple[int, str]] = {}
    table = RowTable(truth, encoding, ("task", "label"), errors, bad)
    for line, values in table.rows():
        task, label = table.text(line, values, "task"), table.text(line, values, "label")
        if task is None or label is None:
            continue
        if task in gt_of and gt_of[task][1] != label:
            table.fail(
                line,
                "label",
                f"task {task!r} has label {gt_of[task][1]!r} on line {gt_of[task][0]}",
            )
            continue
        gt_of[task] = (line, label)
    text_of: dict[str, str] = {}
    if texts is not None:
        table = RowTable(texts, encoding, ("task",), errors, bad)
        for line, values in table.rows():
            task = table.text(line, values, "task")
            parts = [
                str(v).strip() for c, v in values.items() if c != "task" and v not in (None, "")
            ]
            if task is None:
                continue
            if not parts:
                table.fail(line, None, "no text besides the task id")
                continue
            text_of[task] = " | ".join(parts)
    raise_bad_rows(errors, bad, "nothing was simulated")
    if not h_item:
        raise InputError(f"{labels}: no labels to replay")
    for _, label in gt_of.values():
        classes.setdefault(label, len(classes))
    order = class_order(list(classes))
    remap = np.array([order.index(c) for c in classes], dtype=np.int64)
    code = {c: i for i, c in enumerate(order)}
    gt = np.full(len(tasks), -1, np.int64)
    for task, (_, label) in gt_of.items():
        if task in tasks:
            gt[tasks[task]] = code[label]
    if not (gt >= 0).any():
        raise InputError(f"{truth}: no task with a ground-truth label appears in {labels}")
    return CrowdFiles(
        list(tasks),
        list(workers),
        order,
        _ints(h_item),
        _ints(h_worker),
        remap[_ints(h_label)],
        gt,
        [text_of.get(t) for t in tasks] if texts is not None else None,
    )


@dataclass(frozen=True)
class ReplayPool:
    """The recorded answers, one per (item, worker) pair (a repeated pair keeps its first
    answer)."""

    item: NDArray[np.int64]
    worker: NDArray[np.int64]
    label: NDArray[np.int64]
    n_items: int
    n_workers: int

    @classmethod
    def from_rows(
        cls, item: ArrayLike, worker: ArrayLike, label: ArrayLike, *, n_items: int, n_workers: int
    ) -> ReplayPool:
        it, wo, la = (np.asarray(a, dtype=np.int64) for a in (item, worker, label))
        key = it * n_workers + wo
        _, first = np.unique(key, return_index=True)  # sorted by key: ask() can binary-search it
        return cls(it[first], wo[first], la[first], n_items, n_workers)

    def recorded(self) -> NDArray[np.bool_]:
        """(items, workers): True where the worker answered the item, i.e. where they can be
        asked."""
        mask = np.zeros((self.n_items, self.n_workers), bool)
        mask[self.item, self.worker] = True
        return mask

    def ask(self, items: ArrayLike, workers: ArrayLike) -> NDArray[np.int64]:
        """Each worker's recorded answer about each item; asking for one never given is an error."""
        key = np.asarray(items, dtype=np.int64) * self.n_workers + np.asarray(
            workers, dtype=np.int64
        )
        have = self.item * self.n_workers + self.worker
        pos = np.minimum(np.searchsorted(have, key), max(have.size - 1, 0))
        if key.size and (not have.size or np.any(have[pos] != key)):
            raise ValueError(
                "asked a worker about an item they never answered: the replay has no such answer"
            )
        return self.label[pos]


@dataclass
class SimulationResult:
    """One replayed run and the all-labels baselines, accuracy on the items with ground truth."""

    policy: str
    accuracy: float
    human_labels: int
    items: int
    scored_items: int
    curve: list[tuple[int, float]]
    labels_per_item: NDArray[np.int64]
    baselines: dict[str, dict[str, float]]
    claims: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]
    model_claims: int = 0
    labeler: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the headline keys, the curve, and the spread of labels per item."""
        return {
            "accuracy": self.accuracy,
            "human_labels": self.human_labels,
            "baselines": self.baselines,
            "policy": self.policy,
            "items": self.items,
            "scored_items": self.scored_items,
            "labels_per_item": {
                "mean": float(self.labels_per_item.mean()) if self.items else 0.0,
                "max": int(self.labels_per_item.max()) if self.items else 0,
                "counts": np.bincount(self.labels_per_item).tolist(),
            },
            "model_claims": self.model_claims,
            "labeler": self.labeler,
            "curve": [{"human_labels": n, "accuracy": a} for n, a in self.curve],
            **self.settings,
        }


class _Run:
    """The state of one replay: who was asked what, what it cost, and the model's claims."""

    def __init__(
        self, data: CrowdFiles, pool: ReplayPool, cost: NDArray[np.float64], gold: NDArray[np.int64]
    ) -> None:
        self.data, self.pool, self.cost, self.gold = data, pool, cost, gold
        self.asked = np.zeros((pool.n_items, pool.n_workers), bool)
        self.recorded = pool.recorded()
        self.item, self.worker, self.label = (np.zeros(0, np.int64) for _ in range(3))
        self.probs: NDArray[np.float64] | None = None  # the model's rows, one per item with a text
        self.spent = 0.0
        self.scored = data.gt >= 0
        self.scored[gold] = False
        self.curve: list[tuple[int, float]] = []

    def ask(self, items: NDArray[np.int64], workers: NDArray[np.int64]) -> None:
        """Record the replayed answers; the pool raises if any pair was never answered."""
        answers = self.pool.ask(items, workers)
        self.asked[items, workers] = True
        self.item = np.concatenate([self.item, items])
        self.worker = np.concatenate([self.worker, workers])
        self.label = np.concatenate([self.label, answers])
        self.spent += float(self.cost[workers].sum())

    def fit(self) -> NDArray[np.float64]:
        """Dawid-Skene on the claims so far (the model as one more source), and a curve point.

        The guarded EM (``ds-shrunk``): mid-collection most items have one label, where a source
        measured on its own lone claims agrees with itself and crowd-kit's unguarded model drifts.
        """
        k, w = len(self.data.classes), self.pool.n_workers
        soft: dict[str, Any] = {}
        if self.probs is not None:
            has = np.flatnonzero(~np.isnan(self.probs[:, 0]))
            soft = {"prob_item": has, "prob_source": np.full(has.size, w), "probs": self.probs[has]}
        claims = Claims.from_arrays(
            self.item,
            self.worker,
            self.label,
            n_items=self.pool.n_items,
            n_sources=w + 1,
            n_classes=k,
            **soft,
        )
        gi = self.gold if self.gold.size else None
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", ConvergenceWarning
            )  # a rare unsettled mid-run fit is still a fine guide
            post = fit_truth(
                claims,
                "ds-shrunk",
                gold_items=gi,
                gold_labels=self.data.gt[self.gold] if gi is not None else None,
            ).posterior
        self.curve.append((self.item.size, self.accuracy(post)))
        return post

    def accuracy(self, posterior: NDArray[np.float64]) -> float:
        return float(np.mean(posterior[self.scored].argmax(axis=1) == self.data.gt[self.scored]))

    def random_workers(
        self, items: NDArray[np.int64], per_item: int, rng: np.random.Generator, budget_left: float
    ) -> None:
        """Ask ``per_item`` random not-yet-asked workers about each item, within the budget."""
        free = self.recorded[items] & ~self.asked[items]
        keys = np.where(free, rng.random(free.shape), np.inf)
        pick = np.argsort(keys, axis=1, kind="stable")[:, :per_item]
        ok = np.isfinite(np.take_along_axis(keys, pick, axis=1))
        rows = np.repeat(items, pick.shape[1]).reshape(pick.shape)
        # Round by round (every item's first answer, then every item's second ...) so a budget cut
        # leaves items evenly covered, not some full and others empty.
        it, wo = rows.T[ok.T], pick.T[ok.T]
        keep = np.cumsum(self.cost[wo]) <= budget_left + 1e-9
        self.ask(it[keep], wo[keep])


def _train_model(run: _Run, posterior: NDArray[np.float64], labeler: str, seed: int) -> bool:
    """Model claims from a labeler trained on the current labels (never the ground truth).

    Items with a human label get out-of-fold probabilities; the rest a model fit on all of them.
    Returns False (no model claims) while there is too little to train on.
    """
    from ..labelers import out_of_fold_proba
    from ..labelers.registry import labeler_factory

    texts = run.data.texts or []
    has_text = np.array([t is not None for t in texts], bool)
    labeled = has_text & (np.bincount(run.item, minlength=run.pool.n_items) > 0)
    train = np.flatnonzero(labeled)
    y = posterior[train].argmax(axis=1)
    if train.size < 20 or np.unique(y).size < 2:
        return False
    names = [str(c) for c in range(len(run.data.classes))]
    ys = np.array(names, dtype=object)[y]
    text_arr = np.array(texts, dtype=object)
    make = labeler_factory(labeler)
    probs = np.full((run.pool.n_items, len(names)), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn convergence chatter on small folds
        probs[train] = out_of_fold_proba(
            make, list(text_arr[train]), ys, classes=names, folds=3, seed=seed
        )
        rest = np.flatnonzero(has_text & ~labeled)
        if rest.size:
            model = make().fit(list(text_arr[train]), list(ys))
            cols = [int(c) for c in model.classes_]
            probs[rest] = 0.0
            probs[np.ix_(rest, cols)] = model.predict_proba(list(text_arr[rest]))
    probs[has_text] = np.maximum(probs[has_text], 1e-6)
    run.probs = probs
    return True


def _adaptive(
    run: _Run,
    config: RoutingConfig,
    rng: np.random.Generator,
    *,
    refit_every: float,
    labeler: str | None,
    model_start: float,
    retrains: int,
    seed: int,
    shrinkage: float,
) -> None:
    n = run.pool.n_items
    budget = math.inf if config.budget is None else float(config.budget)
    order = rng.permutation(n)
    start = order if labeler is None else order[: max(1, round(model_start * n))]
    run.random_workers(start, config.min_labels, rng, budget)
    trained_at = -1.0
    while True:
        post = run.fit()
        # (Re)train when the labels have doubled since the last training, a few times at most.
        due = trained_at < 0 or (retrains > 0 and run.spent >= 2 * max(trained_at, 1.0))
        if labeler is not None and due and _train_model(run, post, labeler, seed):
            if trained_at >= 0:
                retrains -= 1
            trained_at = run.spent
            post = run.fit()
        free = run.recorded & ~run.asked
        # A model claim stands in for a human one: an item it alone makes confident is done.
        n_labels = run.asked.sum(axis=1) + (0 if run.probs is None else ~np.isnan(run.probs[:, 0]))
        pending = np.flatnonzero(~item_done(post, n_labels, config, exhausted=~free.any(axis=1)))
        left = budget - run.spent
        if not pending.size or left <= 0:
            return
        conf = tutor_confusion(
            run.item,
            run.worker,
            run.label,
            post,
            n_tutors=run.pool.n_workers,
            measurable=np.bincount(run.item, minlength=n) >= 2,
            strength=shrinkage,
        )
        scores = tutor_scores(post[pending], conf, free[pending], cost=run.cost)
        best = scores.argmax(axis=1)
        size = max(1, math.ceil(refit_every * pending.size))
        pick = plan_batch(
            scores[np.arange(pending.size), best], run.cost[best], size=size, budget_left=left
        )
        if not pick.size:
            return
        run.ask(pending[pick], best[pick])


def _fixed(run: _Run, per_item: int, config: RoutingConfig, rng: np.random.Generator) -> None:
    """k random workers per item, one round at a time: each round is a point on the curve."""
    budget = math.inf if config.budget is None else float(config.budget)
    items = rng.permutation(run.pool.n_items)
    for _ in range(per_item):
        before = run.item.size
        run.random_workers(items, 1, rng, budget - run.spent)
        if run.item.size == before:
            break
        run.fit()


def simulate_crowd(
    data: CrowdFiles,
    *,
    policy: Policy = "adaptive",
    config: RoutingConfig | None = None,
    labeler: str | None = None,
    seed: int = 0,
    refit_every: float = 0.05,
    fixed_k: int | None = None,
    cost: ArrayLike | None = None,
    model_start: float = 0.5,
    retrains: int = 2,
    shrinkage: float = 4.0,
) -> SimulationResult:
    """Replay ``policy`` on an already read crowd; see ``simulate_routing``."""
    if policy not in POLICIES:
        raise InputError(f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}")
    if not 0 < refit_every <= 1 or not 0 < model_start <= 1:
        raise InputError("refit_every and model_start must lie in (0, 1]")
    config = config or RoutingConfig()
    pool = ReplayPool.from_rows(
        data.item, data.worker, data.label, n_items=data.n_items, n_workers=len(data.workers)
    )
    c = np.ones(pool.n_workers) if cost is None else np.asarray(cost, dtype=np.float64)
    rng = np.random.default_rng(seed)
    known = np.flatnonzero(data.gt >= 0)
    gold = np.sort(rng.choice(known, size=int(config.gold_share * known.size), replace=False))
    run = _Run(data, pool, c, gold)
    use_model = (
        labeler
        if (labeler is not None and data.texts is not None and policy == "adaptive")
        else None
    )
    if policy == "adaptive":
        _adaptive(
            run,
            config,
            rng,
            refit_every=refit_every,
            labeler=use_model,
            model_start=model_start,
            retrains=retrains,
            seed=seed,
            shrinkage=shrinkage,
        )
    else:
        budget_k = (
            None if config.budget is None else max(1, round(config.budget / max(pool.n_items, 1)))
        )
        _fixed(run, fixed_k or budget_k or min(3, config.max_labels), config, rng)
    post = run.fit()
    if len(run.curve) > 1 and run.curve[-2][0] == run.curve[-1][0]:
        run.curve.pop(
            -2
        )  # the final fit is the result; an earlier fit of the same labels is not a new point
    model_claims = int((~np.isnan(run.probs[:, 0])).sum()) if run.probs is not None else 0
    return SimulationResult(
        policy=policy,
        accuracy=run.accuracy(post),
        human_labels=int(run.item.size),
        items=pool.n_items,
        scored_items=int(run.scored.sum()),
        curve=run.curve,
        labels_per_item=np.bincount(run.item, minlength=pool.n_items),
        baselines=baselines(data, run.scored),
        claims=(run.item, run.worker, run.label),
        model_claims=model_claims,
        labeler=use_model,
        settings={
            "target": config.target,
            "max_labels": config.max_labels,
            "budget": config.budget,
            "min_labels": config.min_labels,
            "gold_items": int(gold.size),
            "seed": seed,
            "human_cost": run.spent,
        },
    )


def baselines(
    data: CrowdFiles, scored: NDArray[np.bool_] | None = None
) -> dict[str, dict[str, float]]:
    """Majority vote and Dawid-Skene over every recorded label: the cost of asking everyone."""
    mask = data.gt >= 0 if scored is None else scored
    vote = majority_vote(data.item, data.label, n_items=data.n_items).label
    claims = Claims.from_arrays(
        data.item,
        data.worker,
        data.label,
        n_items=data.n_items,
        n_sources=len(data.workers),
        n_classes=len(data.classes),
    )
    ds = fit_truth(claims, "ds").labels()
    n = int(data.item.size)
    return {
        "mv_all": {"accuracy": float(np.mean(vote[mask] == data.gt[mask])), "human_labels": n},
        "ds_all": {"accuracy": float(np.mean(ds[mask] == data.gt[mask])), "human_labels": n},
    }


def simulate_routing(
    labels: Path,
    truth: Path,
    *,
    texts: Path | None = None,
    policy: Policy = "adaptive",
    config: RoutingConfig | None = None,
    labeler: str = "tfidf",
    seed: int = 0,
    refit_every: float = 0.05,
    fixed_k: int | None = None,
    encoding: str = "utf-8",
) -> SimulationResult:
    """Replay a routing policy on LABELS (task,worker,label) scored against GT (task,label).

    ``texts`` (task plus text columns) lets the adaptive policy add ``labeler``'s claims as a
    source, trained on the labels collected so far. ``refit_every`` is the share of pending items
    labeled between two refits of the truth engine. ``fixed_k`` sets the fixed policy's labels per
    item [default: budget / items, else 3]. Deterministic for a ``seed``.
    """
    from ..labelers.registry import LABELER_NAMES

    if labeler not in LABELER_NAMES:
        raise InputError(f"unknown labeler {labeler!r}; choose one of {', '.join(LABELER_NAMES)}")
    data = read_crowd(labels, truth, texts, encoding=encoding)
    return simulate_crowd(
        data,
        policy=policy,
        config=config,
        labeler=labeler if texts is not None else None,
        seed=seed,
        refit_every=refit_every,
        fixed_k=fixed_k,
    )
