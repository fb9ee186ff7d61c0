"""Resolved labels for a project: the one place that turns stored claims into one answer per item.

Until the truth engine lands this is a majority vote over human claims, with gold labels pinned
and a model's most probable class used only where no human has answered. Export, status and the
quickstart all call ``resolve_project``, so swapping the method happens here alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa
from numpy.typing import NDArray

from .schema import BaseSchema, MultiLabelSchema, canonical_json
from .store.models import Claim, Gold, Project, Source
from .store.queries import project_schema
from .truth import majority_vote, multilabel_vote

__all__ = ["METHOD", "Resolution", "resolve_project"]

METHOD = "majority_vote"
_CHUNK = 200_000


@dataclass(frozen=True)
class Resolution:
    """Resolved labels for the items that have any evidence, sorted by item id."""

    item_ids: NDArray[np.int64]
    labels: NDArray[np.object_]
    confidence: NDArray[np.float64]
    n_labels: NDArray[np.int64]
    method: NDArray[np.object_]

    def lookup(self, item_ids: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """Positions of ``item_ids`` in this resolution, and which of them are present."""
        pos = np.searchsorted(self.item_ids, item_ids)
        pos = np.minimum(pos, max(self.item_ids.size - 1, 0))
        found = self.item_ids[pos] == item_ids if self.item_ids.size else np.zeros(item_ids.size, bool)
        return pos, found


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
                code = self._index[key] = len(self.values)
                self.values.append(value)
            self._by_text[text] = code
        return code


def _sorted_unique(values: NDArray[np.int64]) -> NDArray[np.int64]:
    """Distinct values of an already sorted array, without another sort."""
    if values.size == 0:
        return values
    keep = np.ones(values.size, dtype=bool)
    keep[1:] = values[1:] != values[:-1]
    return values[keep]


def _objects(values: list[Any]) -> NDArray[np.object_]:
    """An object array that keeps lists and dicts as single elements."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _human_claims(conn: sa.Connection, project_id: int) -> sa.Result[Any]:
    human = sa.select(Source.id).where(Source.project_id == project_id, Source.kind == "human")
    return conn.execution_options(stream_results=True, yield_per=_CHUNK).execute(
        sa.select(Claim.item_id, sa.cast(Claim.value, sa.Text)).where(
            Claim.project_id == project_id, Claim.value.is_not(None), Claim.source_id.in_(human)
        ).order_by(Claim.item_id)  # the (project_id, item_id) index gives this order for free
    )


def resolve_project(conn: sa.Connection, project: Project) -> Resolution:
    """Resolve every item of ``project`` that has a human claim, a model claim or a gold label."""
    schema = project_schema(project)
    item_parts: list[NDArray[np.int64]] = []
    code_parts: list[NDArray[np.int64]] = []
    codes = _Codes(schema)
    multilabel = isinstance(schema, MultiLabelSchema)
    voter_items: list[NDArray[np.int64]] = []
    for chunk in _human_claims(conn, project.id).partitions():
        ids = np.fromiter((row[0] for row in chunk), dtype=np.int64, count=len(chunk))
        if multilabel:
            index = {label: i for i, label in enumerate(schema.labels)}
            pairs = [(item, index[label]) for item, text in chunk for label in json.loads(text)]
            voter_items.append(ids)
            arr = np.array(pairs, dtype=np.int64).reshape(-1, 2)
            item_parts.append(arr[:, 0])
            code_parts.append(arr[:, 1])
        else:
            item_parts.append(ids)
            code_parts.append(np.fromiter((codes.code(row[1]) for row in chunk), dtype=np.int64, count=len(chunk)))

    model_rows = conn.execute(
        sa.select(Claim.item_id, sa.cast(Claim.probs, sa.Text))
        .join(Source, Source.id == Claim.source_id)
        .where(Claim.project_id == project.id, Claim.probs.is_not(None), Source.kind == "model")
        .order_by(Claim.id)
    ).all()
    gold_rows = conn.execute(
        sa.select(Gold.item_id, sa.cast(Gold.value, sa.Text)).where(Gold.project_id == project.id)
    ).all()

    claim_items = np.concatenate(item_parts) if item_parts else np.zeros(0, np.int64)
    all_voters = np.concatenate(voter_items) if voter_items else claim_items
    model_items = np.fromiter((r[0] for r in model_rows), np.int64, len(model_rows))
    gold_items = np.fromiter((r[0] for r in gold_rows), np.int64, len(gold_rows))
    item_ids = np.union1d(_sorted_unique(all_voters), np.union1d(model_items, gold_items))
    n = item_ids.size
    labels = np.empty(n, dtype=object)
    confidence = np.zeros(n)
    method = np.full(n, None, dtype=object)
    n_labels = np.zeros(n, dtype=np.int64)
    if n == 0:
        return Resolution(item_ids, labels, confidence, n_labels, method)
    voter_pos = np.searchsorted(item_ids, all_voters)
    model_pos = np.searchsorted(item_ids, model_items)
    gold_pos = np.searchsorted(item_ids, gold_items)
    codes_all = np.concatenate(code_parts) if code_parts else np.zeros(0, np.int64)

    if multilabel:
        voters = np.bincount(voter_pos, minlength=n)
        chosen, agreement, _ = multilabel_vote(
            np.searchsorted(item_ids, claim_items), codes_all, voters, n_items=n, n_labels=len(schema.labels)
        )
        has = voters > 0
        for i in np.flatnonzero(has):
            labels[i] = [schema.labels[j] for j in np.flatnonzero(chosen[i])]
        confidence[has], n_labels[:] = agreement[has], voters
        method[has] = METHOD
    else:
        vote = majority_vote(voter_pos, codes_all, n_items=n)
        has = vote.label >= 0
        labels[has] = _objects(codes.values)[vote.label[has]]
        confidence[has] = vote.confidence[has]
        n_labels[:] = vote.n_votes.astype(np.int64)
        method[has] = METHOD

    if model_rows and codes.classes:
        # Where no human answered, the most confident model claim stands in.
        probs = np.array([json.loads(r[1]) for r in model_rows], dtype=np.float64)
        top, best = probs.max(axis=1), probs.argmax(axis=1)
        open_ = np.flatnonzero(~has[model_pos])
        order = open_[np.lexsort((top[open_], model_pos[open_]))]
        last = np.ones(order.size, dtype=bool)
        last[:-1] = model_pos[order[:-1]] != model_pos[order[1:]]
        take = order[last]
        labels[model_pos[take]] = _objects(codes.values)[best[take]]
        confidence[model_pos[take]] = top[take]
        method[model_pos[take]] = "model"
    if gold_rows:
        labels[gold_pos] = _objects([json.loads(text) for _, text in gold_rows])
        confidence[gold_pos] = 1.0
        method[gold_pos] = "gold"
    return Resolution(item_ids, labels, confidence, n_labels, method)
