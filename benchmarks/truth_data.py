"""Data for benchmarks/truth.py: real crowd datasets, a synthetic crowd, text-model probabilities.

    load_crowd(name)               -> CrowdData: integer-coded claims + ground truth, original ids
    crowd_names()                  -> the folders under <shared>/data/crowd
    synthetic(n_items=10**6, ...)  -> SyntheticData: 5 claims per item, mixed-quality worker pool
    write_claims_csv(path, item, worker, label)
                                   -> the ``task,worker,label`` CSV crowd-kit reads
    subsample_per_item(item, k, seed)
                                   -> indices of k claims per item (seeded, deterministic)
    majority_labels(item, label, n_items, n_classes, seed)
                                   -> one label per item (-1: none), random tie-break
    oof_text_probs(data, train_labels)
                                   -> (n_items, K) out-of-fold probabilities of TF-IDF + LR

All randomness goes through ``numpy.random.default_rng(seed)``; the same arguments give the same
arrays on every run.

The shared data folder is ``<repo>/../shared/data`` (override with VERITAG_SHARED_DATA). Labels are
coded ``0..K-1`` in the sorted order of the values seen in labels.csv and gt.csv (numerically when
they are all integers): ``snow_temp`` uses 1 and 2, which become 0 and 1.
"""

from __future__ import annotations

import csv
import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

SHARED_DATA = Path(
    os.environ.get("VERITAG_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
CROWD_DIR = SHARED_DATA / "crowd"
TEXT_DATASETS = ("snow_rte", "product")

IntArray = NDArray[np.int64]


# --------------------------------------------------------------------------- real crowd data


@dataclass(frozen=True)
class CrowdData:
    """One crowd dataset as COO claims. ``gt[i]`` is item i's true class, -1 where unknown."""

    name: str
    item: IntArray
    worker: IntArray
    label: IntArray
    gt: IntArray
    task_ids: NDArray[np.str_]  # original task id of item i
    worker_ids: NDArray[np.str_]  # original worker id of worker j
    classes: list[str]  # original label value of class c

    @property
    def n_items(self) -> int:
        return int(self.task_ids.size)

    @property
    def n_workers(self) -> int:
        return int(self.worker_ids.size)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def n_claims(self) -> int:
        return int(self.item.size)

    def accuracy(self, pred: ArrayLike) -> float:
        """Share of items of known truth that ``pred`` matches (a missing pred, -1, is wrong)."""
        known = self.gt >= 0
        return float(np.mean(np.asarray(pred)[known] == self.gt[known]))

    def texts(self):
        """texts.csv as a pandas DataFrame, one row per item in item order; None without one."""
        path = CROWD_DIR / self.name / "texts.csv"
        if not path.exists():
            return None
        import pandas as pd

        df = pd.read_csv(path, dtype=str, keep_default_na=False).set_index("task")
        missing = set(self.task_ids) - set(df.index)
        if missing:
            raise ValueError(f"{path} lacks {len(missing)} tasks, e.g. {sorted(missing)[:3]}")
        return df.loc[self.task_ids].reset_index()


def crowd_names() -> list[str]:
    return sorted(
        p.name
        for p in CROWD_DIR.iterdir()
        if (p / "labels.csv").exists() and (p / "gt.csv").exists()
    )


def _read_columns(path: Path, columns: tuple[str, ...]) -> list[NDArray[np.str_]]:
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        if tuple(header) != columns:
            raise ValueError(f"{path}: header {header}, expected {list(columns)}")
        rows = list(reader)
    return [np.array([r[i] for r in rows], dtype=str) for i in range(len(columns))]


def _class_order(values: NDArray[np.str_]) -> list[str]:
    uniq = sorted(set(values.tolist()))
    try:
        return sorted(uniq, key=int)
    except ValueError:
        return uniq


def load_crowd(name: str) -> CrowdData:
    """``<shared>/data/crowd/<name>/{labels,gt}.csv`` as integer codes, items by sorted task id."""
    folder = CROWD_DIR / name
    task, worker, label = _read_columns(folder / "labels.csv", ("task", "worker", "label"))
    gt_task, gt_label = _read_columns(folder / "gt.csv", ("task", "label"))
    task_ids, item = np.unique(np.concatenate([task, gt_task]), return_inverse=True)
    item, gt_item = item[: task.size], item[task.size :]
    worker_ids, worker_code = np.unique(worker, return_inverse=True)
    classes = _class_order(np.concatenate([label, gt_label]))
    code = {c: i for i, c in enumerate(classes)}
    label_code = np.array([code[v] for v in label.tolist()], dtype=np.int64)
    gt = np.full(task_ids.size, -1, dtype=np.int64)
    gt[gt_item] = [code[v] for v in gt_label.tolist()]
    if np.unique(gt_item).size != gt_item.size:
        raise ValueError(f"{folder / 'gt.csv'} has a task twice")
    return CrowdData(
        name,
        item.astype(np.int64),
        worker_code.astype(np.int64),
        label_code,
        gt,
        task_ids,
        worker_ids,
        classes,
    )


# --------------------------------------------------------------------------- synthetic crowd


@dataclass(frozen=True)
class SyntheticData:
    """A generated crowd. ``confusion[w, t, l]`` = P(worker w answers l | truth t)."""

    item: IntArray
    worker: IntArray
    label: IntArray
    truth: IntArray
    worker_kind: NDArray[np.str_]  # "spammer" | "good" | "confuser" per worker
    confusion: NDArray[np.float64]
    prior: NDArray[np.float64]
    seed: int

    @property
    def n_items(self) -> int:
        return int(self.truth.size)

    @property
    def n_workers(self) -> int:
        return int(self.worker_kind.size)

    @property
    def n_classes(self) -> int:
        return int(self.prior.size)

    @property
    def n_claims(self) -> int:
        return int(self.item.size)

    def accuracy(self, pred: ArrayLike) -> float:
        return float(np.mean(np.asarray(pred) == self.truth))


def _worker_pool(rng: np.random.Generator, n_workers: int, k: int, mix: tuple[float, float, float]):
    """Confusion matrices for a pool of spammers, good one-coin workers and class-confusers."""
    kinds = rng.choice(np.array(["spammer", "good", "confuser"]), size=n_workers, p=list(mix))
    conf = np.empty((n_workers, k, k))
    eye = np.eye(k)
    for w, kind in enumerate(kinds):
        if kind == "spammer":
            # Near random: a little above chance, with a personal bias toward some answers.
            # Near random: answers from a personal bias, barely tied to the truth.
            tie = rng.uniform(0.0, 0.1)
            bias = rng.dirichlet(np.full(k, 2.0))
            conf[w] = tie * eye + (1 - tie) * bias[None, :]
        elif kind == "good":
            acc = rng.uniform(0.65, 0.95)
            conf[w] = acc * eye + (1 - acc) / (k - 1) * (1 - eye)
        else:
            # Good in general, but two true classes are mostly answered as another class.
            acc = rng.uniform(0.8, 0.95)
            conf[w] = acc * eye + (1 - acc) / (k - 1) * (1 - eye)
            for t in rng.choice(k, size=2, replace=False):
                wrong = rng.choice(np.delete(np.arange(k), t))
                swap = rng.uniform(0.4, 0.7)
                conf[w, t] = (1 - swap) * conf[w, t]
                conf[w, t, wrong] += swap
    conf /= conf.sum(axis=2, keepdims=True)
    return kinds, conf


def synthetic(
    n_items: int = 10**6,
    claims_per_item: int = 5,
    n_classes: int = 5,
    n_workers: int = 1000,
    *,
    mix: tuple[float, float, float] = (0.2, 0.5, 0.3),
    seed: int = 0,
) -> SyntheticData:
    """``n_items`` items, each labeled by ``claims_per_item`` distinct workers.

    Workers: ``mix`` = shares of near-random spammers, good one-coin workers (accuracy 0.65-0.95)
    and class-confusers (accuracy 0.8-0.95 except on two true classes, 40-70% of which they give a
    fixed wrong answer). Workloads are skewed (lognormal weights), true classes imbalanced
    (prior proportional to k, k-1, ..., 1). Claims come out item by item (the row order a CSV has).
    """
    if claims_per_item > n_workers:
        raise ValueError("claims_per_item cannot exceed n_workers")
    rng = np.random.default_rng(seed)
    k = n_classes
    prior = np.arange(k, 0, -1, dtype=np.float64)
    prior /= prior.sum()
    kinds, conf = _worker_pool(rng, n_workers, k, mix)
    load = rng.lognormal(0.0, 1.0, n_workers)
    load /= load.sum()
    truth = rng.choice(k, size=n_items, p=prior).astype(np.int64)

    # Distinct workers per item: draw with the workload weights, redraw rows that repeat a worker.
    workers = rng.choice(n_workers, size=(n_items, claims_per_item), p=load)
    while True:
        srt = np.sort(workers, axis=1)
        bad = np.flatnonzero((srt[:, 1:] == srt[:, :-1]).any(axis=1))
        if bad.size == 0:
            break
        workers[bad] = rng.choice(n_workers, size=(bad.size, claims_per_item), p=load)

    item = np.repeat(np.arange(n_items, dtype=np.int64), claims_per_item)
    worker = workers.ravel().astype(np.int64)
    cum = np.cumsum(conf, axis=2)
    cum[:, :, -1] = 1.0
    label = np.empty(item.size, dtype=np.int64)
    u = rng.random(item.size)
    step = 1_000_000
    for lo in range(0, item.size, step):
        hi = min(lo + step, item.size)
        rows = cum[worker[lo:hi], truth[item[lo:hi]]]  # (chunk, K)
        label[lo:hi] = (u[lo:hi, None] >= rows).sum(axis=1)
    return SyntheticData(item, worker, label, truth, kinds, conf, prior, seed)


def write_claims_csv(path: Path, item: IntArray, worker: IntArray, label: IntArray) -> Path:
    """``task,worker,label`` CSV of integer codes (what crowd-kit and cleanlab's runner read)."""
    import pandas as pd

    path = Path(path)
    pd.DataFrame({"task": item, "worker": worker, "label": label}).to_csv(path, index=False)
    return path


# --------------------------------------------------------------------------- subsampling, voting


def subsample_per_item(item: IntArray, k: int, seed: int = 0) -> IntArray:
    """Ascending indices of ``k`` uniformly random claims per item; items with fewer keep all."""
    item = np.asarray(item, dtype=np.int64)
    rng = np.random.default_rng(seed)
    key = rng.random(item.size)
    order = np.lexsort((key, item))
    sorted_item = item[order]
    starts = np.flatnonzero(np.r_[True, sorted_item[1:] != sorted_item[:-1]])
    counts = np.diff(np.r_[starts, sorted_item.size])
    rank = np.arange(item.size) - np.repeat(starts, counts)
    return np.sort(order[rank < k])


def majority_labels(
    item: IntArray, label: IntArray, n_items: int, n_classes: int, seed: int = 0
) -> IntArray:
    """The most voted class per item; ties broken uniformly at random (seeded); -1 for no votes."""
    votes = np.bincount(
        np.asarray(item) * n_classes + np.asarray(label), minlength=n_items * n_classes
    )
    votes = votes.reshape(n_items, n_classes).astype(np.float64)
    jitter = np.random.default_rng(seed).random(votes.shape) * 0.5  # < 1: only breaks ties
    out = (votes + jitter).argmax(axis=1).astype(np.int64)
    out[votes.sum(axis=1) == 0] = -1
    return out


# --------------------------------------------------------------------------- text model

_NEGATIONS = frozenset(
    [
        "no",
        "not",
        "never",
        "none",
        "nobody",
        "nothing",
        "neither",
        "nor",
        "n't",
        "without",
        "cannot",
    ]
)


def _tokens(texts) -> list[list[str]]:
    import re

    word = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
    return [word.findall(t.lower()) for t in texts]


def _rowwise_cosine(a, b) -> NDArray[np.float64]:
    """Cosine of row i of ``a`` with row i of ``b`` (TF-IDF rows are L2-normalized already)."""
    return np.asarray(a.multiply(b).sum(axis=1)).ravel()


def _overlap(ta: list[list[str]], tb: list[list[str]]) -> NDArray[np.float64]:
    """Per pair: share of b's tokens in a, Jaccard, share of b's bigrams in a, share of b's
    alphanumeric codes (tokens with digits, e.g. model numbers) in a, a negation in exactly one."""
    out = np.zeros((len(ta), 5))
    for i, (a, b) in enumerate(zip(ta, tb)):
        sa, sb = set(a), set(b)
        if sb:
            out[i, 0] = len(sa & sb) / len(sb)
        if sa | sb:
            out[i, 1] = len(sa & sb) / len(sa | sb)
        bb = set(itertools.pairwise(b))
        if bb:
            out[i, 2] = len(set(itertools.pairwise(a)) & bb) / len(bb)
        codes_b = {t for t in sb if any(c.isdigit() for c in t) and len(t) > 2}
        codes_a = {t for t in sa if any(c.isdigit() for c in t) and len(t) > 2}
        if codes_a or codes_b:
            out[i, 3] = len(codes_a & codes_b) / len(codes_a | codes_b)
        else:
            out[i, 3] = 0.5
        out[i, 4] = float(bool(sa & _NEGATIONS) != bool(sb & _NEGATIONS))
    return out


def _price(values) -> NDArray[np.float64]:
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        digits = "".join(c for c in v if c.isdigit() or c == ".")
        try:
            out[i] = float(digits) if digits else np.nan
        except ValueError:
            pass
    return out


def _pair_fields(
    name: str, df
) -> tuple[list[str], list[str], list[str], list[str], NDArray[np.float64]]:
    """(short a, short b, long a, long b, extra dense features) for one dataset's texts.csv."""
    if name == "snow_rte":
        # Premise and hypothesis; the short and long forms are the same text.
        a, b = df["text"].tolist(), df["hypothesis"].tolist()
        extra = np.zeros((len(df), 0))
        return a, b, a, b, extra
    if name == "product":
        na, nb = df["name_a"].tolist(), df["name_b"].tolist()
        la = (df["name_a"] + " " + df["desc_a"]).tolist()
        lb = (df["name_b"] + " " + df["desc_b"]).tolist()
        pa, pb = _price(df["price_a"].tolist()), _price(df["price_b"].tolist())
        both = np.isfinite(pa) & np.isfinite(pb) & (pa > 0) & (pb > 0)
        ratio = np.where(
            both, np.abs(np.log(np.where(both, pa, 1.0) / np.where(both, pb, 1.0))), 0.0
        )
        extra = np.column_stack(
            [both.astype(float), ratio, both & (ratio < 0.1), both & (ratio > 0.7)]
        )
        return na, nb, la, lb, extra.astype(float)
    raise ValueError(f"no text features defined for {name!r}; texts exist for {TEXT_DATASETS}")


def _fold_features(name: str, df, train: IntArray, test: IntArray):
    """Train and test rows' features; each vocabulary and scaler is fit on the train rows only."""
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import StandardScaler

    sa, sb, la, lb, extra = _pair_fields(name, df)
    ta, tb = _tokens(sa), _tokens(sb)
    lta, ltb = _tokens(la), _tokens(lb)

    def pick(seq, idx):
        return [seq[i] for i in idx]

    words = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    words.fit(pick(la, train) + pick(lb, train))
    chars = TfidfVectorizer(
        analyzer="char_wb", ngram_range=(3, 5), min_df=2, sublinear_tf=True, max_features=200_000
    )
    chars.fit(pick(sa, train) + pick(sb, train))

    def build(idx):
        wa_s, wb_s = words.transform(pick(sa, idx)), words.transform(pick(sb, idx))
        wa_l, wb_l = words.transform(pick(la, idx)), words.transform(pick(lb, idx))
        ca, cb = chars.transform(pick(sa, idx)), chars.transform(pick(sb, idx))
        dense = np.column_stack(
            [
                _rowwise_cosine(wa_s, wb_s),
                _rowwise_cosine(wa_l, wb_l),
                _rowwise_cosine(ca, cb),
                _rowwise_cosine(wa_s, wb_l),
                _rowwise_cosine(wa_l, wb_s),
                _overlap(pick(ta, idx), pick(tb, idx)),
                _overlap(pick(lta, idx), pick(ltb, idx)),
                np.log1p([len(t) for t in pick(tb, idx)]),
                np.log1p([len(t) for t in pick(ta, idx)]),
                extra[idx],
            ]
        )
        # Sparse blocks: which terms the two sides share (element-wise product), and side b alone
        # (a hypothesis's own words; the second product's own name).
        return dense, sp.hstack([wa_l.multiply(wb_l), wb_s]).tocsr()

    d_train, s_train = build(train)
    d_test, s_test = build(test)
    scaler = StandardScaler().fit(d_train)
    x_train = sp.hstack([sp.csr_matrix(scaler.transform(d_train)), s_train]).tocsr()
    x_test = sp.hstack([sp.csr_matrix(scaler.transform(d_test)), s_test]).tocsr()
    return x_train, x_test


def oof_text_probs(
    data: CrowdData, train_labels: IntArray, *, folds: int = 5, seed: int = 0
) -> NDArray[np.float64]:
    """Out-of-fold class probabilities of a TF-IDF + logistic-regression model, one row per item.

    ``train_labels[i]`` is the label the model may learn item i from: in truth.py it is the
    majority vote of the *human labels of the scenario* (the k sampled labels per item; with k=1,
    that one label), never the ground truth; -1 means item i has none and is not trained on.
    Items are split by ``StratifiedKFold(folds, shuffle=True, random_state=seed)`` stratified on
    those training labels; the model that predicts a fold is trained only on the other folds (its
    TF-IDF vocabularies and feature scaling too), so an item's probabilities never depend on its
    own labels. Features pair the two texts of each item (premise/hypothesis for snow_rte; the two
    product records for product): TF-IDF cosine similarities (word 1-2 grams and char 3-5 grams),
    token/bigram/model-number overlap, shared-term TF-IDF products, side-b TF-IDF terms, and for
    product the price ratio.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    df = data.texts()
    if df is None:
        raise ValueError(f"{data.name} has no texts.csv")
    y = np.asarray(train_labels, dtype=np.int64)
    if y.shape != (data.n_items,):
        raise ValueError("train_labels needs one entry per item")
    k = data.n_classes
    probs = np.full((data.n_items, k), np.nan)
    strat = np.where(y >= 0, y, k)  # unlabeled items are spread over the folds too
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(
        np.zeros(data.n_items), strat
    ):
        train = train[y[train] >= 0]
        x_train, x_test = _fold_features(data.name, df, train, test)
        clf = LogisticRegression(C=1.0, max_iter=5000)
        clf.fit(x_train, y[train])
        p = np.zeros((test.size, k))
        p[:, clf.classes_] = clf.predict_proba(x_test)
        probs[test] = p
    # A class never seen in a training fold gets probability 0 there; keep rows strictly positive.
    probs = np.clip(probs, 1e-6, None)
    return probs / probs.sum(axis=1, keepdims=True)
