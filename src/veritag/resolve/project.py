"""Resolving a project: read its claims from the store in one pass and run the engine."""

from __future__ import annotations

import json
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from operator import methodcaller
from typing import Any

import numpy as np
import sqlalchemy as sa
from numpy.typing import NDArray

from ..errors import VeritagError
from ..schema import BaseSchema, MultiLabelSchema, canonical_json
from ..store.models import Claim, Gold, Project, Source
from ..store.queries import (
    Watermark,
    claims_watermark,
    project_schema,
    standing_claims,
)
from ..truth import ENGINE_VERSION, Claims, majority_vote
from .core import (
    _CHUNK,
    _GOLD,
    DEFAULT_METHOD,
    ENGINE_PARAMS,
    OPEN_METHOD,
    Resolution,
    RunInfo,
    SourceStats,
    _cat,
    _objects,
    _resolution,
    effective_method,
)
from .fit import CategoricalFit, fit_categorical

# --- reading a project's claims ---------------------------------------------------------------


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
                    raise VeritagError(
                        f"a stored label {text} is not one of the schema's classes {self.classes}"
                    )
                code = self._index[key] = len(self.values)
                self.values.append(value)
            self._by_text[text] = code
        return code


@dataclass
class _Chunk:
    """One chunk of a project's claims, split into human labels and model probability rows."""

    h_item: NDArray[np.int64]
    h_src: NDArray[np.int64]
    h_text: list[str]
    m_item: NDArray[np.int64]
    m_src: NDArray[np.int64]
    m_text: list[str]
    m_id: NDArray[np.int64]


def _claims(conn: sa.Connection, project_id: int, mark: Watermark) -> Iterator[_Chunk]:
    """The project's claims up to ``mark``, in chunks, in one pass straight from the driver's
    cursor.

    Millions of claims pass through here, so this skips SQLAlchemy's row objects and reads
    human and model claims in one scan (each source's kind is looked up in numpy). PostgreSQL
    gets a server-side (named) cursor, so memory stays flat there too.
    """
    kinds = conn.execute(
        sa.select(Source.id, Source.kind).where(Source.project_id == project_id)
    ).all()
    known = np.array(sorted(k[0] for k in kinds), dtype=np.int64)
    human_ids = {k[0] for k in kinds if k[1] == "human"}
    model_ids = {k[0] for k in kinds if k[1] == "model"}
    is_human = np.isin(known, list(human_ids))
    is_model = np.isin(known, list(model_ids))
    stmt = sa.select(
        Claim.id,
        Claim.item_id,
        Claim.source_id,
        sa.func.coalesce(sa.cast(Claim.value, sa.Text), sa.cast(Claim.probs, sa.Text)),
        Claim.value.is_(None),
    ).where(
        Claim.project_id == project_id,
        Claim.id <= mark.max_claim_id,
        sa.or_(Claim.value.is_not(None), Claim.probs.is_not(None)),
        standing_claims(mark.max_claim_id),
    )
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
            ids, items, sources, texts, no_value = zip(*rows)
            item = np.array(items, dtype=np.int64)
            src = np.array(sources, dtype=np.int64)
            soft = np.array(no_value, dtype=bool)
            where = np.searchsorted(known, src)
            human = ~soft & is_human[where]
            model = soft & is_model[where]
            text = np.array(texts, dtype=object)
            yield _Chunk(
                item[human],
                src[human],
                text[human].tolist(),
                item[model],
                src[model],
                text[model].tolist(),
                np.array(ids, dtype=np.int64)[model],
            )
    finally:
        cursor.close()


def _code_texts(code: Callable[[str], int], texts: Sequence[str]) -> NDArray[np.int64]:
    """``code(t)`` for every stored text, called once per distinct text.

    ``dict.fromkeys`` finds the distinct texts (in first-seen order, so new open-ended values are
    numbered as before) and ``map`` looks each claim up, both loops in C: no Python code runs per
    claim.
    """
    known = {t: code(t) for t in dict.fromkeys(texts)}
    return np.fromiter(map(known.__getitem__, texts), dtype=np.int64, count=len(texts))


def _probability_rows(texts: Sequence[str], k: int) -> NDArray[np.float64]:
    """Stored probability rows (JSON lists of ``k`` numbers) as an (n, k) array.

    numpy's C parser reads them all from one joined string; ``json.loads`` per row is the
    fallback for anything else (a row of another length, a value that is not a plain list),
    and so raises as it always did.
    """
    n = len(texts)
    joined = ",".join(texts)
    if n and k and joined.count("[") == n == joined.count("]") and "{" not in joined:
        commas = np.fromiter(map(methodcaller("count", ","), texts), dtype=np.int64, count=n)
        if (commas == k - 1).all():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter(
                        "error", DeprecationWarning
                    )  # numpy < 2.3 warns where newer ones raise
                    values = np.fromstring(
                        joined.replace("[", "").replace("]", ""), dtype=np.float64, sep=","
                    )
            except (
                ValueError,
                DeprecationWarning,
            ):  # something that is not a number, such as a quoted one
                values = np.zeros(0)
            if values.size == n * k:
                return values.reshape(n, k)
    return np.array([json.loads(t) for t in texts], dtype=np.float64)


def _newest_per_pair(
    ids: NDArray[np.int64], item: NDArray[np.int64], src: NDArray[np.int64]
) -> NDArray[np.int64]:
    """Positions of the newest claim of each (item, source) pair.

    A model that is retrained as human labels arrive claims every item again; its newest
    probabilities replace the older ones, which stay in the history but must not count twice.
    """
    if not ids.size:
        return np.zeros(0, np.int64)
    order = np.lexsort((-ids, src, item))
    first = np.ones(order.size, dtype=bool)
    first[1:] = (item[order][1:] != item[order][:-1]) | (src[order][1:] != src[order][:-1])
    return np.sort(order[first])


def _gold_rows(
    conn: sa.Connection, project_id: int, mark: Watermark
) -> tuple[NDArray[np.int64], list[str]]:
    rows = conn.execute(
        sa.select(Gold.item_id, sa.cast(Gold.value, sa.Text)).where(
            Gold.project_id == project_id, Gold.id <= mark.max_gold_id
        )
    ).all()
    return np.fromiter((r[0] for r in rows), np.int64, len(rows)), [r[1] for r in rows]


def _dense(*parts: NDArray[np.int64]) -> NDArray[np.int64]:
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


def _run_info(method: str, mark: Watermark, fit: CategoricalFit | None, tasks: str) -> RunInfo:
    ll, it, conv = (
        (fit.log_likelihood, fit.n_iter, fit.converged) if fit is not None else (None, 0, True)
    )
    chosen = {"chosen": fit.chosen} if fit is not None and fit.chosen else {}
    return RunInfo(
        method,
        ENGINE_VERSION,
        {**ENGINE_PARAMS, "tasks": tasks, **chosen},
        ll,
        it,
        conv,
        mark.max_claim_id,
        mark.gold_count,
        claims_version=mark.claims_version,
    )


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
        return Claims.from_arrays(
            hi,
            hs,
            hc,
            n_items=self.item_ids.size,
            n_sources=self.source_ids.size,
            n_classes=len(self.classes),
            prob_item=mi,
            prob_source=ms,
            probs=probs,
        )


def load_project_claims(
    conn: sa.Connection, project: Project, mark: Watermark | None = None
) -> ProjectClaims:
    """Read a categorical project's claims and gold into dense arrays (see ``ProjectClaims``)."""
    schema = project_schema(project)
    if not schema.classes():
        raise VeritagError(
            f"project {project.name!r} has no fixed classes ({schema.type}); only categorical "
            "projects have per-class reliabilities"
        )
    if mark is None:
        mark = claims_watermark(conn, project_id=project.id)
    codes = _Codes(schema)
    k = len(codes.classes)
    h_item, h_src, h_code, m_item, m_src, m_probs, m_id = [], [], [], [], [], [], []
    for chunk in _claims(conn, project.id, mark):
        h_item.append(chunk.h_item)
        h_src.append(chunk.h_src)
        h_code.append(_code_texts(codes.code, chunk.h_text))
        if chunk.m_text:
            m_item.append(chunk.m_item)
            m_src.append(chunk.m_src)
            m_id.append(chunk.m_id)
            m_probs.append(_probability_rows(chunk.m_text, k))
    probs = np.concatenate(m_probs) if m_probs else np.zeros((0, k))
    if probs.ndim != 2 or probs.shape[1] != k:
        raise VeritagError(
            f"stored model probabilities have {probs.shape[1]} columns, the schema has {k} classes"
        )
    g_ids, g_texts = _gold_rows(conn, project.id, mark)
    # Ids become dense positions in place, so the claims are held once (not as ids, then positions).
    hi, mi = _cat(h_item), _cat(m_item)
    del h_item
    newest = _newest_per_pair(_cat(m_id), mi, _cat(m_src))
    if newest.size < mi.size:
        mi, probs, m_src = mi[newest], probs[newest], [_cat(m_src)[newest]]
    item_ids = _dense(hi, mi, g_ids)
    hi, mi = np.searchsorted(item_ids, hi), np.searchsorted(item_ids, mi)
    hs, ms = _cat(h_src), _cat(m_src)
    del h_src
    source_ids = _dense(hs, ms)
    hs, ms = np.searchsorted(source_ids, hs), np.searchsorted(source_ids, ms)
    hc = _cat(h_code)
    del h_code
    g_pos = np.searchsorted(item_ids, g_ids)
    g_codes = _code_texts(codes.code, g_texts)
    return ProjectClaims(
        (hi, hs, hc),
        (mi, ms, probs),
        (g_pos, g_codes),
        g_texts,
        item_ids,
        source_ids,
        list(codes.classes),
        list(codes.values),
    )


def _resolve_categorical(
    conn: sa.Connection, project: Project, schema: BaseSchema, mark: Watermark, method: str
) -> Resolution:
    pc = load_project_claims(conn, project, mark)
    (hi, hs, hc), (mi, ms, probs) = pc.hard, pc.soft
    (g_pos, g_codes), g_texts, item_ids, source_ids = (
        pc.gold,
        pc.gold_texts,
        pc.item_ids,
        pc.source_ids,
    )
    k = len(pc.classes)
    n = item_ids.size
    fit = fit_categorical(
        (hi, hs, hc),
        (mi, ms, probs),
        (g_pos, g_codes),
        n_items=n,
        n_sources=source_ids.size,
        n_classes=k,
        method=method,
    )
    labels = _objects(pc.values)[fit.posterior.argmax(axis=1)] if n else np.empty(0, object)
    labels[g_pos] = _objects(
        [json.loads(t) for t in g_texts]
    )  # gold keeps its own value (e.g. evidence)
    n_labels = np.bincount(hi, minlength=n).astype(np.int64)
    return _resolution(
        item_ids,
        labels,
        fit.posterior.max(axis=1) if n else np.zeros(0),
        n_labels,
        n_labels + np.bincount(mi, minlength=n),
        fit.basis,
        _run_info(method, mark, fit, "classes"),
        probs=fit.posterior,
        classes=tuple(pc.classes),
        sources=SourceStats(source_ids, fit.accuracy, fit.n_claims, fit.confusion),
    )


def _resolve_multilabel(
    conn: sa.Connection, project: Project, schema: MultiLabelSchema, mark: Watermark, method: str
) -> Resolution:
    names = list(schema.labels)
    n_labels = len(names)
    index = {name: j for j, name in enumerate(names)}
    row_of: dict[str, int] = {}
    seen: list[NDArray[np.bool_]] = []

    def chosen_row(text: str) -> int:
        row = np.zeros(n_labels, dtype=bool)
        row[[index[label] for label in json.loads(text)]] = True
        seen.append(row)
        return len(seen) - 1

    def chosen(texts: list[str]) -> NDArray[np.bool_]:
        """(claims, labels): which labels each stored text chose; each distinct text decoded
        once."""
        for text in dict.fromkeys(texts):
            if text not in row_of:
                row_of[text] = chosen_row(text)
        if not texts:
            return np.zeros((0, n_labels), dtype=bool)
        rows = np.fromiter(map(row_of.__getitem__, texts), dtype=np.int64, count=len(texts))
        return np.stack(seen)[rows]

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
    fit = fit_categorical(
        (
            (pos[:, None] * n_labels + sub).ravel(),
            np.repeat(src, n_labels),
            matrix.ravel().astype(np.int64),
        ),
        (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 2))),
        ((g_pos[:, None] * n_labels + sub).ravel(), chosen(g_texts).ravel().astype(np.int64)),
        n_items=n * n_labels,
        n_sources=source_ids.size,
        n_classes=2,
        method=method,
    )
    applies = fit.posterior[:, 1].reshape(n, n_labels)
    decided = applies > 0.5
    if n:
        rows, inverse = np.unique(decided, axis=0, return_inverse=True)
        labels = _objects([[names[j] for j in np.flatnonzero(row)] for row in rows])[
            inverse.ravel()
        ]
    else:
        labels = np.empty(0, object)
    labels[g_pos] = _objects([json.loads(t) for t in g_texts])
    confidence = np.maximum(applies, 1.0 - applies).mean(axis=1) if n else np.zeros(0)
    confidence[g_pos] = 1.0
    basis = fit.basis.reshape(n, n_labels)[:, 0] if n else np.zeros(0, np.int8)
    votes = np.bincount(pos, minlength=n).astype(np.int64)
    return _resolution(
        item_ids,
        labels,
        confidence,
        votes,
        votes,
        basis,
        _run_info(method, mark, fit, "binary per label"),
        probs=applies,
        classes=tuple(names),
        sources=SourceStats(
            source_ids,
            fit.accuracy,
            np.bincount(src, minlength=source_ids.size).astype(np.int64),
            fit.confusion,
        ),
    )


def _resolve_open(
    conn: sa.Connection, project: Project, schema: BaseSchema, mark: Watermark
) -> Resolution:
    codes = _Codes(schema)
    h_item, h_src, h_code = [], [], []
    for chunk in _claims(conn, project.id, mark):
        h_item.append(chunk.h_item)
        h_src.append(chunk.h_src)
        h_code.append(_code_texts(codes.code, chunk.h_text))
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
        accuracy = np.where(
            seen > 0,
            np.bincount(src, weights=right.astype(float), minlength=source_ids.size) / seen,
            np.nan,
        )
    votes = vote.n_votes.astype(np.int64)
    return _resolution(
        item_ids,
        labels,
        confidence,
        votes,
        votes,
        basis,
        _run_info(OPEN_METHOD, mark, None, "exact match"),
        sources=SourceStats(
            source_ids, accuracy, np.bincount(src, minlength=source_ids.size).astype(np.int64), None
        ),
    )


def resolve_project(
    conn: sa.Connection, project: Project, method: str = DEFAULT_METHOD
) -> Resolution:
    """Resolve every item of ``project`` that has a human claim, a model claim or a gold label.

    Reads the claims up to the newest one at call time (streamed, in chunks), fits them with
    ``method`` and returns the result without storing it (see ``save_resolution``). The claims
    version it records is read before the claims (``claims_watermark``), so the run covers at
    least what its version says; a claim committed in between makes it look stale, which only
    errs towards fitting again. Open-ended
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
