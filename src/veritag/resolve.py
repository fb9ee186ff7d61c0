"""Resolved labels: the one place that turns claims into one answer per item, and keeps the answer.

How each kind of task is resolved:

* **Categorical** schemas (classification, rating, pairwise, fact-check verdicts: every schema
  whose ``classes()`` is not empty) go through the truth engine, ``veritag.truth.fit_truth``,
  over *all* claims at once: a human claim is a hard label, a model claim is its probability
  row, and gold labels are pinned. ``method`` is ``ds`` (Dawid-Skene, the default), ``onecoin``,
  ``wmv`` or ``mv``.
* **Multi-label**: one binary sub-task per (item, label) pair, "label applies or not", all in
  one ``Claims`` for the engine; a source keeps one reliability across labels. A label applies
  where its posterior probability is above one half; the confidence is the mean over labels of
  the probability of the decision taken.
* **Open-ended** schemas (free text, spans) have no fixed classes for the engine: they keep the
  majority vote over exact matches of the canonical value (``vote_key``), and the run's method
  is ``majority_vote`` whatever was asked.

Models are sources like tutors. A model that no human claim and no gold label ever checked
cannot be measured, so an item whose only claims come from such models takes them at face
value: the mean of their probability rows (one model: its own row). Items with only model
claims therefore still get a label, and a model that humans or gold *have* checked is read
through what the engine learned about it (an inverted model gets inverted).

A resolution can be stored as a *run* (``save_resolution``): one ``truth_runs`` row with the
method, engine version and the newest claim id and gold count it covered, plus a ``posteriors``
row per item and a ``source_reliability`` row per source. Runs are append-only history;
``current_resolution`` reuses the newest run while it still covers every claim and gold label
and otherwise resolves again and stores a new run.

``resolve_files`` does the same without a database, on a long ``task,worker,label`` file.
"""

from __future__ import annotations

import csv
import json
import math
import os
import uuid
import warnings
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa
from numpy.typing import NDArray

from .errors import InputError, RowError, VeritagError
from .schema import BaseSchema, MultiLabelSchema, canonical_json
from .store.engine import Store
from .store.models import Claim, Gold, Posterior, Project, Source, SourceReliability, TruthRun
from .store.queries import (
    Watermark,
    claims_watermark,
    insert_truth_run,
    latest_truth_run,
    project_schema,
    run_is_current,
)
from .truth import ENGINE_VERSION, METHODS, Claims, ConvergenceWarning, fit_truth, majority_vote

if TYPE_CHECKING:
    from .io.readers import RowReader

__all__ = [
    "DEFAULT_METHOD",
    "ENGINE_PARAMS",
    "METHODS",
    "OPEN_METHOD",
    "FileResolution",
    "ProjectClaims",
    "Resolution",
    "RunInfo",
    "SourceStats",
    "current_resolution",
    "effective_method",
    "load_project_claims",
    "load_resolution",
    "project_source_rows",
    "rank_sources",
    "resolve_and_store",
    "resolve_files",
    "resolve_project",
    "save_resolution",
    "write_labels",
    "write_sources",
]

DEFAULT_METHOD = "ds"
#: The method of a run over an open-ended schema (free text, spans): exact-match majority vote.
OPEN_METHOD = "majority_vote"
#: Engine settings every run uses; stored with the run.
ENGINE_PARAMS: dict[str, Any] = {"max_iter": 100, "tol": 1e-6, "shrinkage": 0.5, "bins": 5}
BASES = ("claims", "model", "gold")  # Resolution.basis codes 0, 1, 2
_CLAIMS, _MODEL, _GOLD = 0, 1, 2
_CHUNK = 100_000
_WRITE_BATCH = 20_000
SHOWN_ERRORS = 20


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunInfo:
    """How a resolution was made and what it covered (one ``truth_runs`` row once stored)."""

    method: str
    engine_version: str
    params: dict[str, Any]
    log_likelihood: float | None
    n_iter: int
    converged: bool
    max_claim_id: int = 0
    gold_count: int = 0
    run_id: int | None = None
    created_at: datetime | None = None

    @property
    def label_source(self) -> str:
        """What exports write as ``label_source`` for an item resolved from its claims."""
        return OPEN_METHOD if self.method == OPEN_METHOD else f"{self.method}@{self.engine_version}"


@dataclass(frozen=True)
class SourceStats:
    """Per source of a project: store id, expected accuracy, claim count, confusion matrix.

    ``accuracy`` is NaN where nothing measured the source; ``confusion[s, k, l]`` is
    P(source answers l | true class k), None for open-ended tasks.
    """

    source_ids: NDArray[np.int64]
    accuracy: NDArray[np.float64]
    n_claims: NDArray[np.int64]
    confusion: NDArray[np.float64] | None


@dataclass(frozen=True)
class Resolution:
    """Resolved labels for the items that have any evidence, sorted by item id.

    ``method`` holds each item's label source as exports write it: ``gold``, ``model`` (only
    model claims), or the run's method and engine (``ds@veritag-truth/1``; ``majority_vote``
    for open-ended tasks). ``basis`` is the same as codes into ``BASES``. ``probs`` is the
    posterior per class (per label for multi-label; None for open-ended tasks or when loaded
    without it); ``n_labels`` counts human claims and ``n_claims`` all claims.
    """

    item_ids: NDArray[np.int64]
    labels: NDArray[np.object_]
    confidence: NDArray[np.float64]
    n_labels: NDArray[np.int64]
    method: NDArray[np.object_]
    basis: NDArray[np.int8] | None = None
    n_claims: NDArray[np.int64] | None = None
    probs: NDArray[np.float64] | None = None
    classes: tuple[str, ...] = ()
    sources: SourceStats | None = None
    run: RunInfo | None = None

    def lookup(self, item_ids: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """Positions of ``item_ids`` in this resolution, and which of them are present."""
        pos = np.searchsorted(self.item_ids, item_ids)
        pos = np.minimum(pos, max(self.item_ids.size - 1, 0))
        found = self.item_ids[pos] == item_ids if self.item_ids.size else np.zeros(item_ids.size, bool)
        return pos, found


def _resolution(item_ids: NDArray[np.int64], labels: NDArray[np.object_], confidence: NDArray[np.float64],
                n_labels: NDArray[np.int64], n_claims: NDArray[np.int64], basis: NDArray[np.int8],
                run: RunInfo, **extra: Any) -> Resolution:
    names = _objects([run.label_source, "model", "gold"])
    return Resolution(item_ids, labels, confidence, n_labels, names[basis], basis=basis, n_claims=n_claims,
                      run=run, **extra)


# --- small helpers ----------------------------------------------------------------------------


class _Codes:
    """Maps stored JSON text to a small int per distinct value, decoding each text only once."""

    def __init__(self, schema: BaseSchema) -> None:
        self.schema = schema
        self.classes = schema.classes()
        self.values: list[Any] = [schema.class_value(c) for c in self.classes]
        self._index = {canonical_json(c): i for i, c in enumerate(self.classes)}
        self._by_text: dict[str, int] = {}

    def code(self, text: str) -> int:
        code = self._by_text.get(text)
        if code is None:
            value = self.schema.vote_key(json.loads(text))
            key = canonical_json(str(value) if self.classes else value)
            code = self._index.get(key)
            if code is None:
                if self.classes:
                    raise VeritagError(f"a stored label {text} is not one of the schema's classes {self.classes}")
                code = self._index[key] = len(self.values)
                self.values.append(value)
            self._by_text[text] = code
        return code


def _objects(values: list[Any]) -> NDArray[np.object_]:
    """An object array that keeps lists and dicts as single elements."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _cat(parts: list[NDArray[Any]], dtype: Any = np.int64) -> NDArray[Any]:
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def _quiet_fit(claims: Claims, method: str, gold_items: NDArray[np.int64], gold_labels: NDArray[np.int64]) -> Any:
    """``fit_truth`` with the run's settings; non-convergence is reported by ``converged``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit_truth(claims, method, gold_items=gold_items, gold_labels=gold_labels,  # type: ignore[arg-type]
                         **ENGINE_PARAMS)


def effective_method(schema: BaseSchema, method: str) -> str:
    """The method a run over ``schema`` really uses: open-ended schemas always vote."""
    if method not in METHODS:
        raise VeritagError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return method if schema.classes() or isinstance(schema, MultiLabelSchema) else OPEN_METHOD


# --- the numeric core shared by projects and files --------------------------------------------


@dataclass(frozen=True)
class _Fit:
    posterior: NDArray[np.float64]  # (items, classes), gold pinned
    basis: NDArray[np.int8]
    accuracy: NDArray[np.float64]
    n_claims: NDArray[np.int64]
    confusion: NDArray[np.float64]
    log_likelihood: float | None
    n_iter: int
    converged: bool


def _fit_categorical(
    hard: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]],
    soft: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]],
    gold: tuple[NDArray[np.int64], NDArray[np.int64]],
    *, n_items: int, n_sources: int, n_classes: int, method: str,
) -> _Fit:
    """Posteriors and source reliabilities from dense COO claims; see the module docstring."""
    h_item, h_src, h_label = hard
    s_item, s_src, s_probs = soft
    g_item, g_label = gold
    n, k = n_items, n_classes
    has_human = np.bincount(h_item, minlength=n) > 0
    is_gold = np.zeros(n, dtype=bool)
    is_gold[g_item] = True
    anchored = has_human | is_gold
    # A model is measured where it claims on an item a human or a gold label also speaks to.
    measured = np.bincount(s_src, weights=anchored[s_item].astype(float), minlength=n_sources) > 0
    reached = np.bincount(s_item, weights=measured[s_src].astype(float), minlength=n) > 0
    has_model = np.bincount(s_item, minlength=n) > 0
    n_claims = np.bincount(np.concatenate([h_src, s_src]), minlength=n_sources).astype(np.int64)

    if h_item.size or s_item.size:
        claims = Claims.from_arrays(h_item, h_src, h_label, n_items=n, n_sources=n_sources, n_classes=k,
                                    prob_item=s_item, prob_source=s_src, probs=s_probs)
        result = _quiet_fit(claims, method, g_item, g_label)
        posterior = np.asarray(result.posterior, dtype=np.float64)  # ours to edit: no copy of (items x K)
        confusion, accuracy = np.asarray(result.confusion), np.array(result.accuracy, dtype=np.float64)
        ll = float(result.log_likelihood)
        fit_info = (None if math.isnan(ll) else ll, int(result.n_iter), bool(result.converged))
    else:  # gold labels only
        posterior = np.full((n, k), 1.0 / k)
        confusion, accuracy = np.zeros((0, k, k)), np.zeros(0)
        fit_info = (None, 0, True)
    face = has_model & ~anchored & ~reached
    if face.any():
        votes = np.zeros((n, k))
        for c in range(k):
            votes[:, c] = np.bincount(s_item, weights=s_probs[:, c], minlength=n)
        posterior[face] = votes[face] / votes[face].sum(axis=1, keepdims=True)
    posterior[g_item] = 0.0
    posterior[g_item, g_label] = 1.0
    is_model = np.bincount(s_src, minlength=n_sources) > 0
    accuracy[is_model & ~measured] = np.nan
    basis = np.full(n, _CLAIMS, dtype=np.int8)
    basis[~has_human] = _MODEL
    basis[is_gold] = _GOLD
    return _Fit(posterior, basis, accuracy, n_claims, confusion, *fit_info)


# --- reading a project's claims ---------------------------------------------------------------


@dataclass
class _Chunk:
    """One chunk of a project's claims, split into human labels and model probability rows."""

    h_item: NDArray[np.int64]
    h_src: NDArray[np.int64]
    h_text: list[str]
    m_item: NDArray[np.int64]
    m_src: NDArray[np.int64]
    m_text: list[str]


def _claims(conn: sa.Connection, project_id: int, mark: Watermark) -> Iterator[_Chunk]:
    """The project's claims up to ``mark``, in chunks, in one pass straight from the driver's cursor.

    Millions of claims pass through here, so this skips SQLAlchemy's row objects and reads
    human and model claims in one scan (each source's kind is looked up in numpy). PostgreSQL
    gets a server-side (named) cursor, so memory stays flat there too.
    """
    kinds = conn.execute(sa.select(Source.id, Source.kind).where(Source.project_id == project_id)).all()
    known = np.array(sorted(k[0] for k in kinds), dtype=np.int64)
    human_ids = {k[0] for k in kinds if k[1] == "human"}
    model_ids = {k[0] for k in kinds if k[1] == "model"}
    is_human = np.isin(known, list(human_ids))
    is_model = np.isin(known, list(model_ids))
    stmt = sa.select(
        Claim.item_id, Claim.source_id,
        sa.func.coalesce(sa.cast(Claim.value, sa.Text), sa.cast(Claim.probs, sa.Text)), Claim.value.is_(None),
    ).where(Claim.project_id == project_id, Claim.id <= mark.max_claim_id,
            sa.or_(Claim.value.is_not(None), Claim.probs.is_not(None)))
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params: Any = compiled.params
    if compiled.positional:
        params = tuple(params[k] for k in compiled.positiontup or ())
    raw: Any = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        cursor = raw.cursor(name=f"veritag_resolve_{uuid.uuid4().hex}")
    else:
        cursor = raw.cursor()
    try:
        cursor.execute(str(compiled), params)
        while rows := cursor.fetchmany(_CHUNK):
            items, sources, texts, no_value = zip(*rows)
            item = np.array(items, dtype=np.int64)
            src = np.array(sources, dtype=np.int64)
            soft = np.array(no_value, dtype=bool)
            where = np.searchsorted(known, src)
            human = ~soft & is_human[where]
            model = soft & is_model[where]
            text = np.array(texts, dtype=object)
            yield _Chunk(item[human], src[human], text[human].tolist(), item[model], src[model], text[model].tolist())
    finally:
        cursor.close()


def _gold_rows(conn: sa.Connection, project_id: int, mark: Watermark) -> tuple[NDArray[np.int64], list[str]]:
    rows = conn.execute(
        sa.select(Gold.item_id, sa.cast(Gold.value, sa.Text)).where(Gold.project_id == project_id, Gold.id <= mark.max_gold_id)
    ).all()
    return np.fromiter((r[0] for r in rows), np.int64, len(rows)), [r[1] for r in rows]


def _dense(*parts: NDArray[np.int64]) -> NDArray[np.int64]:
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


def _run_info(method: str, mark: Watermark, fit: _Fit | None, tasks: str) -> RunInfo:
    ll, it, conv = (fit.log_likelihood, fit.n_iter, fit.converged) if fit is not None else (None, 0, True)
    return RunInfo(method, ENGINE_VERSION, {**ENGINE_PARAMS, "tasks": tasks}, ll, it, conv,
                   mark.max_claim_id, mark.gold_count)


@dataclass(frozen=True)
class ProjectClaims:
    """A categorical project's claims as dense COO arrays, with the store ids behind them.

    ``hard`` is (item, source, class) of human claims, ``soft`` (item, source, probability rows)
    of model claims, ``gold`` (item, class); positions index ``item_ids``, ``source_ids`` and
    ``classes``. ``gold_texts`` keeps each gold label's stored JSON (fact-check evidence).
    """

    hard: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]
    soft: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]
    gold: tuple[NDArray[np.int64], NDArray[np.int64]]
    gold_texts: list[str]
    item_ids: NDArray[np.int64]
    source_ids: NDArray[np.int64]
    classes: list[str]
    values: list[Any]

    def claims(self) -> Claims:
        """The engine's input."""
        (hi, hs, hc), (mi, ms, probs) = self.hard, self.soft
        return Claims.from_arrays(hi, hs, hc, n_items=self.item_ids.size, n_sources=self.source_ids.size,
                                  n_classes=len(self.classes), prob_item=mi, prob_source=ms, probs=probs)


def load_project_claims(conn: sa.Connection, project: Project, mark: Watermark | None = None) -> ProjectClaims:
    """Read a categorical project's claims and gold into dense arrays (see ``ProjectClaims``)."""
    schema = project_schema(project)
    if not schema.classes():
        raise VeritagError(f"project {project.name!r} has no fixed classes ({schema.type}); only categorical "
                           "projects have per-class reliabilities")
    if mark is None:
        mark = claims_watermark(conn, project_id=project.id)
    codes = _Codes(schema)
    k = len(codes.classes)
    h_item, h_src, h_code, m_item, m_src, m_probs = [], [], [], [], [], []
    for chunk in _claims(conn, project.id, mark):
        h_item.append(chunk.h_item)
        h_src.append(chunk.h_src)
        h_code.append(np.array([codes.code(t) for t in chunk.h_text], dtype=np.int64))
        if chunk.m_text:
            m_item.append(chunk.m_item)
            m_src.append(chunk.m_src)
            m_probs.append(np.array([json.loads(t) for t in chunk.m_text], dtype=np.float64))
    probs = np.concatenate(m_probs) if m_probs else np.zeros((0, k))
    if probs.ndim != 2 or probs.shape[1] != k:
        raise VeritagError(f"stored model probabilities have {probs.shape[1]} columns, the schema has {k} classes")
    g_ids, g_texts = _gold_rows(conn, project.id, mark)
    # Ids become dense positions in place, so the claims are held once (not as ids, then positions).
    hi, mi = _cat(h_item), _cat(m_item)
    del h_item
    item_ids = _dense(hi, mi, g_ids)
    hi, mi = np.searchsorted(item_ids, hi), np.searchsorted(item_ids, mi)
    hs, ms = _cat(h_src), _cat(m_src)
    del h_src
    source_ids = _dense(hs, ms)
    hs, ms = np.searchsorted(source_ids, hs), np.searchsorted(source_ids, ms)
    hc = _cat(h_code)
    del h_code
    g_pos = np.searchsorted(item_ids, g_ids)
    g_codes = np.array([codes.code(t) for t in g_texts], dtype=np.int64)
    return ProjectClaims((hi, hs, hc), (mi, ms, probs), (g_pos, g_codes), g_texts, item_ids, source_ids,
                         list(codes.classes), list(codes.values))


def _resolve_categorical(conn: sa.Connection, project: Project, schema: BaseSchema, mark: Watermark,
                         method: str) -> Resolution:
    pc = load_project_claims(conn, project, mark)
    (hi, hs, hc), (mi, ms, probs) = pc.hard, pc.soft
    (g_pos, g_codes), g_texts, item_ids, source_ids = pc.gold, pc.gold_texts, pc.item_ids, pc.source_ids
    k = len(pc.classes)
    n = item_ids.size
    fit = _fit_categorical((hi, hs, hc), (mi, ms, probs), (g_pos, g_codes),
                           n_items=n, n_sources=source_ids.size, n_classes=k, method=method)
    labels = _objects(pc.values)[fit.posterior.argmax(axis=1)] if n else np.empty(0, object)
    labels[g_pos] = _objects([json.loads(t) for t in g_texts])  # gold keeps its own value (e.g. evidence)
    n_labels = np.bincount(hi, minlength=n).astype(np.int64)
    return _resolution(
        item_ids, labels, fit.posterior.max(axis=1) if n else np.zeros(0), n_labels,
        n_labels + np.bincount(mi, minlength=n), fit.basis, _run_info(method, mark, fit, "classes"),
        probs=fit.posterior, classes=tuple(pc.classes),
        sources=SourceStats(source_ids, fit.accuracy, fit.n_claims, fit.confusion),
    )


def _resolve_multilabel(conn: sa.Connection, project: Project, schema: MultiLabelSchema, mark: Watermark,
                        method: str) -> Resolution:
    names = list(schema.labels)
    n_labels = len(names)
    index = {name: j for j, name in enumerate(names)}
    chosen_by_text: dict[str, list[int]] = {}

    def chosen(texts: list[str]) -> NDArray[np.bool_]:
        rows, cols = [], []
        for i, text in enumerate(texts):
            picks = chosen_by_text.get(text)
            if picks is None:
                picks = chosen_by_text[text] = [index[label] for label in json.loads(text)]
            rows.extend([i] * len(picks))
            cols.extend(picks)
        out = np.zeros((len(texts), n_labels), dtype=bool)
        out[np.asarray(rows, np.int64), np.asarray(cols, np.int64)] = True
        return out

    h_item, h_src, h_mat = [], [], []
    for chunk in _claims(conn, project.id, mark):
        h_item.append(chunk.h_item)
        h_src.append(chunk.h_src)
        h_mat.append(chosen(chunk.h_text))
    g_ids, g_texts = _gold_rows(conn, project.id, mark)
    hi, hs = _cat(h_item), _cat(h_src)
    matrix = np.concatenate(h_mat) if h_mat else np.zeros((0, n_labels), bool)
    item_ids, source_ids = _dense(hi, g_ids), _dense(hs)
    n, pos, src = item_ids.size, np.searchsorted(item_ids, hi), np.searchsorted(source_ids, hs)
    g_pos = np.searchsorted(item_ids, g_ids)
    sub = np.arange(n_labels)
    fit = _fit_categorical(
        ((pos[:, None] * n_labels + sub).ravel(), np.repeat(src, n_labels), matrix.ravel().astype(np.int64)),
        (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 2))),
        ((g_pos[:, None] * n_labels + sub).ravel(), chosen(g_texts).ravel().astype(np.int64)),
        n_items=n * n_labels, n_sources=source_ids.size, n_classes=2, method=method,
    )
    applies = fit.posterior[:, 1].reshape(n, n_labels)
    decided = applies > 0.5
    if n:
        rows, inverse = np.unique(decided, axis=0, return_inverse=True)
        labels = _objects([[names[j] for j in np.flatnonzero(row)] for row in rows])[inverse.ravel()]
    else:
        labels = np.empty(0, object)
    labels[g_pos] = _objects([json.loads(t) for t in g_texts])
    confidence = np.maximum(applies, 1.0 - applies).mean(axis=1) if n else np.zeros(0)
    confidence[g_pos] = 1.0
    basis = fit.basis.reshape(n, n_labels)[:, 0] if n else np.zeros(0, np.int8)
    votes = np.bincount(pos, minlength=n).astype(np.int64)
    return _resolution(
        item_ids, labels, confidence, votes, votes, basis, _run_info(method, mark, fit, "binary per label"),
        probs=applies, classes=tuple(names),
        sources=SourceStats(source_ids, fit.accuracy, np.bincount(src, minlength=source_ids.size).astype(np.int64),
                            fit.confusion),
    )


def _resolve_open(conn: sa.Connection, project: Project, schema: BaseSchema, mark: Watermark) -> Resolution:
    codes = _Codes(schema)
    h_item, h_src, h_code = [], [], []
    for chunk in _claims(conn, project.id, mark):
        h_item.append(chunk.h_item)
        h_src.append(chunk.h_src)
        h_code.append(np.array([codes.code(t) for t in chunk.h_text], dtype=np.int64))
    g_ids, g_texts = _gold_rows(conn, project.id, mark)
    hi, hs, code = _cat(h_item), _cat(h_src), _cat(h_code)
    item_ids, source_ids = _dense(hi, g_ids), _dense(hs)
    n, pos, src = item_ids.size, np.searchsorted(item_ids, hi), np.searchsorted(source_ids, hs)
    vote = majority_vote(pos, code, n_items=n)
    has = vote.label >= 0
    labels = np.empty(n, dtype=object)
    labels[has] = _objects(codes.values)[vote.label[has]]
    confidence = vote.confidence.copy()
    g_pos = np.searchsorted(item_ids, g_ids)
    labels[g_pos] = _objects([json.loads(t) for t in g_texts])
    confidence[g_pos] = 1.0
    basis = np.zeros(n, dtype=np.int8)
    basis[g_pos] = _GOLD
    # A source's accuracy: how often it matches the vote, on items where someone else answered too.
    shared = vote.n_votes[pos] >= 2
    right = (code == vote.label[pos]) & shared
    seen = np.bincount(src, weights=shared.astype(float), minlength=source_ids.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(seen > 0, np.bincount(src, weights=right.astype(float), minlength=source_ids.size) / seen,
                            np.nan)
    votes = vote.n_votes.astype(np.int64)
    return _resolution(
        item_ids, labels, confidence, votes, votes, basis, _run_info(OPEN_METHOD, mark, None, "exact match"),
        sources=SourceStats(source_ids, accuracy, np.bincount(src, minlength=source_ids.size).astype(np.int64), None),
    )


def resolve_project(conn: sa.Connection, project: Project, method: str = DEFAULT_METHOD) -> Resolution:
    """Resolve every item of ``project`` that has a human claim, a model claim or a gold label.

    Reads the claims up to the newest one at call time (streamed, in chunks), fits them with
    ``method`` and returns the result without storing it (see ``save_resolution``). Open-ended
    schemas use a majority vote whatever ``method`` says (see the module docstring).
    """
    schema = project_schema(project)
    method = effective_method(schema, method)
    mark = claims_watermark(conn, project_id=project.id)
    if isinstance(schema, MultiLabelSchema):
        return _resolve_multilabel(conn, project, schema, mark, method)
    if schema.classes():
        return _resolve_categorical(conn, project, schema, mark, method)
    return _resolve_open(conn, project, schema, mark)


# --- stored runs ------------------------------------------------------------------------------


def _float_list(row: list[float]) -> str:
    return "[" + ",".join(map(repr, row)) + "]"


def save_resolution(conn: sa.Connection, project: Project, resolution: Resolution) -> int:
    """Append ``resolution`` as a new run of ``project``; returns the run id. Never edits a run."""
    run = resolution.run
    if run is None or resolution.basis is None or resolution.n_claims is None:
        raise VeritagError("only a resolution made by resolve_project can be stored")
    label_json: dict[int, str] = {}

    def label_text(value: Any) -> str:
        key = id(value)
        text = label_json.get(key)
        if text is None:
            text = label_json[key] = canonical_json(value)
        return text

    probs = resolution.probs

    def batches() -> Iterator[list[dict[str, Any]]]:
        bases = [BASES[b] for b in range(len(BASES))]
        for start in range(0, resolution.item_ids.size, _WRITE_BATCH):
            stop = start + _WRITE_BATCH
            rows = probs[start:stop].tolist() if probs is not None else None
            yield [
                {"item_id": item, "label": label_text(label), "confidence": conf,
                 "probs": _float_list(rows[i]) if rows is not None else None,
                 "n_claims": n_claims, "n_labels": n_labels, "basis": bases[basis]}
                for i, (item, label, conf, n_claims, n_labels, basis) in enumerate(zip(
                    resolution.item_ids[start:stop].tolist(), resolution.labels[start:stop],
                    resolution.confidence[start:stop].tolist(), resolution.n_claims[start:stop].tolist(),
                    resolution.n_labels[start:stop].tolist(), resolution.basis[start:stop].tolist(),
                ))
            ]

    sources = []
    stats = resolution.sources
    if stats is not None:
        for i, (sid, acc, n) in enumerate(zip(stats.source_ids.tolist(), stats.accuracy.tolist(), stats.n_claims.tolist())):
            confusion = None if stats.confusion is None else canonical_json(stats.confusion[i].tolist())
            sources.append({"source_id": sid, "accuracy": None if math.isnan(acc) else acc, "n_claims": n,
                            "confusion": confusion})
    return insert_truth_run(conn, run={
        "project_id": project.id, "method": run.method, "engine_version": run.engine_version, "params": run.params,
        "max_claim_id": run.max_claim_id, "gold_count": run.gold_count, "n_items": int(resolution.item_ids.size),
        "log_likelihood": run.log_likelihood, "n_iter": run.n_iter, "converged": run.converged,
    }, posteriors=batches(), sources=sources)


def _run_info_of(run: Any) -> RunInfo:
    return RunInfo(run.method, run.engine_version, dict(run.params), run.log_likelihood, run.n_iter, run.converged,
                   run.max_claim_id, run.gold_count, run.id, run.created_at)


def load_resolution(conn: sa.Connection, run: Any, *, with_probs: bool = False,
                    with_sources: bool = False) -> Resolution:
    """A stored run (a ``truth_runs`` row, see ``latest_truth_run``) as a ``Resolution``.

    Streamed; the class probabilities and the per-source statistics only on request.
    """
    cols = [Posterior.item_id, sa.cast(Posterior.label, sa.Text), Posterior.confidence, Posterior.n_labels,
            Posterior.n_claims, Posterior.basis]
    if with_probs:
        cols.append(sa.cast(Posterior.probs, sa.Text))
    stmt = sa.select(*cols).where(Posterior.run_id == run.id).order_by(Posterior.item_id)
    decoded: dict[str, Any] = {}
    code = {name: i for i, name in enumerate(BASES)}
    ids, labels, conf, n_labels, n_claims, basis, probs = [], [], [], [], [], [], []
    for chunk in conn.execution_options(stream_results=True, yield_per=_CHUNK).execute(stmt).partitions():
        n = len(chunk)
        ids.append(np.fromiter((r[0] for r in chunk), np.int64, n))
        part = []
        for r in chunk:
            value = decoded.get(r[1])
            if value is None:
                value = decoded[r[1]] = json.loads(r[1])
            part.append(value)
        labels.append(_objects(part))
        conf.append(np.fromiter((r[2] for r in chunk), np.float64, n))
        n_labels.append(np.fromiter((r[3] for r in chunk), np.int64, n))
        n_claims.append(np.fromiter((r[4] for r in chunk), np.int64, n))
        basis.append(np.fromiter((code[r[5]] for r in chunk), np.int8, n))
        if with_probs:
            probs.extend(json.loads(r[6]) if r[6] is not None else None for r in chunk)
    info = _run_info_of(run)
    prob_array = None
    if with_probs and probs and all(p is not None for p in probs):
        prob_array = np.array(probs, dtype=np.float64)
    sources = None
    if with_sources:
        rows = conn.execute(
            sa.select(SourceReliability.source_id, SourceReliability.accuracy, SourceReliability.n_claims,
                      sa.cast(SourceReliability.confusion, sa.Text))
            .where(SourceReliability.run_id == run.id).order_by(SourceReliability.source_id)
        ).all()
        confusion = None
        if rows and all(r[3] is not None for r in rows):
            confusion = np.array([json.loads(r[3]) for r in rows], dtype=np.float64)
        sources = SourceStats(
            np.fromiter((r[0] for r in rows), np.int64, len(rows)),
            np.array([np.nan if r[1] is None else r[1] for r in rows], dtype=np.float64),
            np.fromiter((r[2] for r in rows), np.int64, len(rows)), confusion,
        )
    return _resolution(_cat(ids), np.concatenate(labels) if labels else np.empty(0, object),
                       _cat(conf, np.float64), _cat(n_labels), _cat(n_claims), _cat(basis, np.int8), info,
                       probs=prob_array, sources=sources)


def resolve_and_store(store: Store, project: Project, method: str = DEFAULT_METHOD) -> Resolution:
    """Resolve ``project`` now and append the result as a new run; the result carries its run id."""
    with store.engine.connect() as conn:
        resolution = resolve_project(conn, project, method)
    with store.engine.begin() as conn:
        run_id = save_resolution(conn, project, resolution)
        created = conn.scalar(sa.select(TruthRun.created_at).where(TruthRun.id == run_id))
    assert resolution.run is not None
    return replace(resolution, run=replace(resolution.run, run_id=run_id, created_at=created))


def current_resolution(store: Store, project: Project, method: str | None = None) -> tuple[Resolution, bool]:
    """The newest stored run (of ``method``, if given) while it covers every claim and gold label.

    Otherwise resolve with ``method`` (default ``ds``) and store a new run. Returns the
    resolution and whether it had to be computed.
    """
    wanted = None if method is None else effective_method(project_schema(project), method)
    with store.engine.connect() as conn:
        run = latest_truth_run(conn, project_id=project.id, method=wanted)
        if run is not None and run_is_current(conn, run):
            return load_resolution(conn, run), False
    return resolve_and_store(store, project, wanted or DEFAULT_METHOD), True


# --- file mode: no project, no database -------------------------------------------------------


@dataclass
class FileResolution:
    """What ``resolve_files`` found: one label per task, and per worker (or model) statistics."""

    tasks: list[str]
    labels: list[str]
    confidence: NDArray[np.float64]
    classes: list[str]
    sources: list[tuple[str, str]]  # (name, kind) with kind "human" or "model"
    accuracy: NDArray[np.float64]
    n_claims: NDArray[np.int64]
    method: str
    n_iter: int
    converged: bool
    n_labels: int = 0
    n_model_rows: int = 0
    n_gold: int = 0
    label_source: list[str] = field(default_factory=list)

    def source_rows(self) -> list[SourceRow]:
        """(name, kind, claims, accuracy) per worker and model, best first (see ``rank_sources``)."""
        return rank_sources([(name, kind, int(n), float(acc)) for (name, kind), n, acc
                             in zip(self.sources, self.n_claims.tolist(), self.accuracy.tolist())])


SourceRow = tuple[str, str, int, float]


def rank_sources(rows: list[SourceRow]) -> list[SourceRow]:
    """Sources by estimated accuracy, best first; then by claims; unmeasured (NaN) ones last."""
    return sorted(rows, key=lambda r: (math.isnan(r[3]), -(0.0 if math.isnan(r[3]) else r[3]), -r[2], r[0], r[1]))


def project_source_rows(resolution: Resolution, names: dict[int, tuple[str, str]]) -> list[SourceRow]:
    """``rank_sources`` rows of a project resolution; ``names`` is ``{source id: (kind, name)}``."""
    stats = resolution.sources
    if stats is None:
        return []
    return rank_sources([
        (names.get(sid, ("", str(sid)))[1], names.get(sid, ("", ""))[0], int(n), float(acc))
        for sid, acc, n in zip(stats.source_ids.tolist(), stats.accuracy.tolist(), stats.n_claims.tolist())
    ])


class _Table:
    """Streams one input file's rows, checks the named columns, collects bad rows."""

    def __init__(self, path: Path, encoding: str, required: tuple[str, ...], errors: list[RowError],
                 counts: list[int]) -> None:
        from .io.readers import open_rows  # not at module level: veritag.io imports this module

        self.reader: RowReader = open_rows(path, encoding=encoding)
        self.file = str(path)
        self.required = required
        self.errors = errors
        self.counts = counts
        if self.reader.columns is not None:
            self.check_columns(self.reader.columns)

    def check_columns(self, columns: list[str]) -> None:
        missing = [c for c in self.required if c not in columns]
        if missing:
            self.reader.close()
            raise InputError(f"{self.file}: missing column(s) {missing}; columns found: {columns}")

    def fail(self, line: int, column: str | None, message: str) -> None:
        self.counts[0] += 1
        if len(self.errors) < SHOWN_ERRORS:
            self.errors.append(RowError(self.file, line, column, message, unit=self.reader.unit))

    def rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        try:
            for row in self.reader:
                if row.error is not None:
                    self.fail(row.line, None, row.error)
                    continue
                absent = [c for c in self.required if c not in row.values]
                if absent:
                    self.fail(row.line, absent[0], f"missing field {absent[0]!r}")
                    continue
                yield row.line, row.values
        finally:
            self.reader.close()

    def text(self, line: int, values: dict[str, Any], column: str) -> str | None:
        """A cell as the text it was written as; None (and a row error) if empty or not a scalar."""
        value = values.get(column)
        if isinstance(value, bool):
            value = str(value).lower()
        elif isinstance(value, (int, float)):
            value = str(value)
        if not isinstance(value, str):
            self.fail(line, column, "the value is empty" if value is None else f"expected one value, got {value!r}")
            return None
        value = value.strip()
        if not value:
            self.fail(line, column, "the value is empty")
            return None
        return value


def _class_order(names: list[str]) -> list[str]:
    """Numbers in numeric order when every class is a number, else text order."""
    try:
        return sorted(names, key=lambda s: (float(s), s))
    except ValueError:
        return sorted(names)


def resolve_files(labels: Path, *, method: str = DEFAULT_METHOD, gold: Path | None = None,
                  model_probs: Path | None = None, encoding: str = "utf-8") -> FileResolution:
    """Resolve a long ``task,worker,label`` file, with optional gold labels and model probabilities.

    Classes are the distinct labels of ``labels``, kept as the text they were written as. Gold
    is ``task,label``; model probabilities are ``task,<one column per class>`` (one model) or
    ``task,model,<classes>`` (several), each row normalised to sum to 1. A gold label or a
    probability column that is not one of the classes is an error, as is a class without a
    probability column. Every bad row is named by file and line, and nothing is resolved.
    """
    if method not in METHODS:
        raise VeritagError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    errors: list[RowError] = []
    bad = [0]
    tasks: dict[str, int] = {}
    sources: dict[tuple[str, str], int] = {}
    classes: dict[str, int] = {}
    # Claims go into 8-byte arrays, not lists of Python ints: a file of millions of rows stays small.
    h_item, h_src, h_label = array("q"), array("q"), array("q")
    table = _Table(labels, encoding, ("task", "worker", "label"), errors, bad)
    for line, values in table.rows():
        task, worker, label = (table.text(line, values, c) for c in ("task", "worker", "label"))
        if task is None or worker is None or label is None:
            continue
        h_item.append(tasks.setdefault(task, len(tasks)))
        h_src.append(sources.setdefault((worker, "human"), len(sources)))
        h_label.append(classes.setdefault(label, len(classes)))
    if not h_item and not bad[0]:
        raise InputError(f"{labels}: no labels to resolve")
    order = _class_order(list(classes))
    remap = np.array([order.index(c) for c in classes], dtype=np.int64)
    class_index = {c: i for i, c in enumerate(order)}
    k = max(len(order), 1)

    m_item, m_src, m_rows = array("q"), array("q"), array("d")
    if model_probs is not None:
        table = _Table(model_probs, encoding, ("task",), errors, bad)
        columns: list[str] | None = None
        for line, values in table.rows():
            if columns is None:
                columns = [c for c in (table.reader.columns or list(values)) if c not in ("task", "model")]
                extra = [c for c in columns if c not in class_index]
                if extra:
                    table.reader.close()
                    raise InputError(f"{model_probs}: column(s) {extra} are not among the labels in {labels}: {order}")
                absent = [c for c in order if c not in columns]
                if absent:
                    table.reader.close()
                    raise InputError(f"{model_probs}: no probability column for class(es) {absent}; "
                                     f"expected task[,model],{','.join(order)}")
            task = table.text(line, values, "task")
            model = table.text(line, values, "model") if "model" in values else "model"
            if task is None or model is None:
                continue
            row = []
            for c in order:
                try:
                    p = float(values.get(c))  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    table.fail(line, c, f"{values.get(c)!r} is not a number")
                    break
                if not math.isfinite(p) or p < 0:
                    table.fail(line, c, f"{p!r} is not a probability (finite and >= 0)")
                    break
                row.append(p)
            else:
                if sum(row) <= 0:
                    table.fail(line, None, "the probabilities sum to 0")
                    continue
                m_item.append(tasks.setdefault(task, len(tasks)))
                m_src.append(sources.setdefault((model, "model"), len(sources)))
                m_rows.extend(row)

    g_item, g_label, g_line = array("q"), array("q"), {}
    if gold is not None:
        table = _Table(gold, encoding, ("task", "label"), errors, bad)
        for line, values in table.rows():
            task, label = table.text(line, values, "task"), table.text(line, values, "label")
            if task is None or label is None:
                continue
            if label not in class_index:
                table.fail(line, "label", f"{label!r} is not among the labels in {labels}: {order}")
                continue
            if task in g_line:
                first_line, first_label = g_line[task]
                if first_label != label:
                    table.fail(line, "label", f"task {task!r} has gold label {first_label!r} on line {first_line}")
                continue
            g_line[task] = (line, label)
            g_item.append(tasks.setdefault(task, len(tasks)))
            g_label.append(class_index[label])
    if bad[0]:
        shown = "\n".join(str(e) for e in errors)
        more = f"\n... and {bad[0] - len(errors)} more bad row(s)" if bad[0] > len(errors) else ""
        raise InputError(f"{bad[0]} bad row(s); nothing was resolved:\n{shown}{more}")

    def ints(values: array[int]) -> NDArray[np.int64]:
        return np.frombuffer(values, dtype=np.int64) if len(values) else np.zeros(0, np.int64)

    fit = _fit_categorical(
        (ints(h_item), ints(h_src), remap[ints(h_label)] if len(h_label) else np.zeros(0, np.int64)),
        (ints(m_item), ints(m_src),
         np.frombuffer(m_rows, dtype=np.float64).reshape(-1, k) if len(m_rows) else np.zeros((0, k))),
        (ints(g_item), ints(g_label)),
        n_items=len(tasks), n_sources=len(sources), n_classes=k, method=method,
    )
    best = fit.posterior.argmax(axis=1)
    run = RunInfo(method, ENGINE_VERSION, {}, None, 0, True)
    source_names = [run.label_source, "model", "gold"]
    return FileResolution(
        tasks=list(tasks), labels=[order[i] for i in best.tolist()], confidence=fit.posterior.max(axis=1),
        classes=order, sources=list(sources), accuracy=fit.accuracy, n_claims=fit.n_claims, method=method,
        n_iter=fit.n_iter, converged=fit.converged, n_labels=len(h_item), n_model_rows=len(m_item),
        n_gold=len(g_item), label_source=[source_names[b] for b in fit.basis.tolist()],
    )


def _write_atomic(path: Path, header: list[str], rows: Iterator[list[Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_labels(result: FileResolution, out: Path) -> None:
    """``task,label,confidence`` per task, in the order tasks first appear in the inputs."""
    _write_atomic(out, ["task", "label", "confidence"],
                  ([t, label, round(c, 6)] for t, label, c in zip(result.tasks, result.labels, result.confidence.tolist())))


def write_sources(rows: list[SourceRow], out: Path) -> None:
    """``worker,kind,n_claims,accuracy`` per source (accuracy empty where unmeasured)."""
    _write_atomic(out, ["worker", "kind", "n_claims", "accuracy"], (
        [name, kind, n, "" if math.isnan(acc) else round(acc, 6)] for name, kind, n, acc in rows
    ))
