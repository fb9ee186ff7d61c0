"""The auto-labeler: a model trained on a project's human labels writes a model claim for every
item with text.

Training items are those with a human claim or a gold label, labeled by the humans alone
(``resolve.human_labels``: the model never trains on, or is graded against, its own claims).
Their probabilities are out-of-fold, so each comes from a copy of the labeler that never saw the
item. A labeler fit on all of them predicts the other items with text. Every item gets one claim
from the model source (``kind='model'``, the labeler's name and version), its ``probs`` in the
order of the schema's classes.

Claims carry the dedup key ``autolabel:<version>:<training digest>``: running again on the same
human labels (and input fields) adds nothing, and running after new human labels arrived retrains
and claims every item again. Resolution reads only a model's newest claim per item, so a
retrained model replaces its older probabilities without erasing them. All claims are written in
one transaction.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa

from ..errors import VeritagError
from ..labelers import Labeler, out_of_fold_proba
from ..labelers.registry import DEFAULT_LABELER, LABELER_NAMES, labeler_factory
from ..resolve import human_labels
from ..schema import MultiLabelSchema, canonical_json
from ..store.claims import add_claims, claim_row
from ..store.embeddings import StoreEmbeddingCache
from ..store.engine import Store
from ..store.models import Claim, Item, Project, Source
from ..store.queries import project_schema, source_ids

__all__ = ["AutolabelResult", "autolabel_project", "labeler_text"]


@dataclass(frozen=True)
class AutolabelResult:
    """What an auto-labeling run did; ``accuracy`` is out-of-fold, against the human labels."""

    trained: int
    predicted: int
    claims_added: int
    source: str
    accuracy: float


def _model_source(conn: sa.Connection, project_id: int, name: str, version: str) -> int:
    """The model source's id, created if missing; its version is set to ``version``."""
    sid = source_ids(conn, project_id=project_id, kind="model", names={name})[name]
    conn.execute(
        sa.update(Source)
        .where(Source.id == sid, Source.version.is_distinct_from(version))
        .values(version=version)
    )
    return sid


def _digest(ids: np.ndarray, labels: np.ndarray, fields: Sequence[str]) -> str:
    """A short fingerprint of the training set: same items, labels and input fields, same digest."""
    h = hashlib.sha256("\x1f".join(fields).encode())
    h.update(np.ascontiguousarray(ids, dtype=np.int64).tobytes())
    h.update("\x1f".join(map(str, labels.tolist())).encode())
    return h.hexdigest()[:16]


def labeler_text(text: str | None, data: Any, fields: Sequence[str]) -> str:
    """What the labeler reads: the item's text, then each named field, one per line."""
    parts = [text or ""] + [
        str((data or {}).get(f) or "") if isinstance(data, dict) else "" for f in fields
    ]
    return "\n".join(p for p in parts if p.strip())


def autolabel_project(
    store: Store,
    project: Project,
    *,
    labeler: str | Callable[[], Labeler] = DEFAULT_LABELER,
    fields: Sequence[str] = (),
    folds: int = 5,
    seed: int = 0,
) -> AutolabelResult:
    """Train ``labeler`` (a name, or a factory of labelers) on the project's human and gold labels
    and store a model claim per item with text; named embedding labelers store their vectors.

    ``fields`` names item fields appended to the text (a premise's hypothesis, a prompt's
    response). See the module docstring. Raises ``VeritagError`` for a project without fixed
    classes, or with fewer than ``folds`` labeled items with text or fewer than two classes among
    them.
    """
    if isinstance(labeler, str) and labeler not in LABELER_NAMES:
        raise VeritagError(f"unknown labeler {labeler!r}; choose one of {', '.join(LABELER_NAMES)}")
    schema = project_schema(project)
    classes = schema.classes()
    if not classes or isinstance(schema, MultiLabelSchema):
        raise VeritagError(
            f"project {project.name!r} is a {schema.type} task; autolabel needs a single-label "
            "categorical task (classification, rating, pairwise, fact_check)"
        )
    if folds < 2:
        raise VeritagError("--folds must be at least 2")
    with store.engine.connect() as conn:
        humans = human_labels(conn, project)
        rows = conn.execute(
            sa.select(Item.id, Item.text, Item.data)
            .where(Item.project_id == project.id)
            .order_by(Item.id)
        ).all()
    rows = [(i, t) for i, t in ((r[0], labeler_text(r[1], r[2], fields)) for r in rows) if t]
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    texts = [r[1] for r in rows]
    code, _ = humans.lookup(ids)
    index = {c: k for k, c in enumerate(classes)}
    train = np.flatnonzero(code >= 0)
    rest = np.flatnonzero(code < 0)
    y = np.array(classes, dtype=object)[code[train]]
    if train.size < folds:
        raise VeritagError(
            f"project {project.name!r} has {train.size} items with text and a human or gold "
            f"label; autolabel needs at least {folds} (--folds)"
        )
    if len(set(y.tolist())) < 2:
        raise VeritagError(
            f"the labeled items of project {project.name!r} all have one class; autolabel needs "
            "at least two classes to learn from"
        )
    make = (
        labeler_factory(labeler, cache=StoreEmbeddingCache(store))
        if isinstance(labeler, str)
        else labeler
    )
    train_texts = [texts[i] for i in train]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn convergence chatter on small folds
        try:
            oof = out_of_fold_proba(make, train_texts, y, classes=classes, folds=folds, seed=seed)
        except ValueError as exc:
            raise VeritagError(str(exc)) from exc
        probs = np.zeros((ids.size, len(classes)))
        probs[train] = oof
        model = make()
        if rest.size:
            model.fit(train_texts, list(y))
            cols = [index[str(c)] for c in model.classes_]  # type: ignore[attr-defined]
            probs[np.ix_(rest, cols)] = model.predict_proba([texts[i] for i in rest])
    accuracy = float(np.mean(np.array(classes, dtype=object)[oof.argmax(axis=1)] == y))
    name, version = model.name, str(model.version)
    key = f"autolabel:{version}:{_digest(ids[train], y, fields)}"
    with store.begin_write() as conn:
        sid = _model_source(conn, project.id, name, version)

        def count() -> int:
            return int(
                conn.scalar(
                    sa.select(sa.func.count())
                    .select_from(Claim)
                    .where(Claim.project_id == project.id, Claim.source_id == sid)
                )
                or 0
            )

        before = count()
        # One fit's claims share a key: refitting on the same labels adds nothing.
        add_claims(
            conn,
            [
                claim_row(project.id, int(item), sid, probs=canonical_json(row), scope=key)
                for item, row in zip(ids.tolist(), probs.tolist())
            ],
        )
        added = count() - before
    return AutolabelResult(
        trained=int(train.size),
        predicted=int(rest.size),
        claims_added=added,
        source=f"{name}@{version}",
        accuracy=accuracy,
    )
