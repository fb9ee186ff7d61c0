"""The auto-labeler: a model trained on a project's resolved human labels writes a model claim for
every item with text.

Training items are those whose current resolution rests on human claims or gold (basis
``claims`` or ``gold``); their probabilities are out-of-fold, so each comes from a copy of the
labeler that never saw the item. A labeler fit on all of them predicts the other items with text.
Every item gets one claim from the model source (``kind='model'``, the labeler's name and
version), its ``probs`` in the order of the schema's classes. Claims carry the dedup key
``autolabel:<version>``, so running again with the same labeler version adds nothing; all claims
are written in one transaction.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa

from ..errors import VeritagError
from ..labelers import Labeler, TfidfLabeler, out_of_fold_proba
from ..resolve import current_resolution
from ..resolve.core import BASES
from ..schema import MultiLabelSchema, canonical_json
from ..store.engine import Store
from ..store.models import Claim, Item, Project, Source
from ..store.queries import execute_many, insert_ignore, project_schema, source_ids

__all__ = ["LABELERS", "AutolabelResult", "autolabel_project"]

#: Labelers that can be named (the CLI's ``--labeler``); the Python API also takes a factory.
LABELERS: dict[str, Callable[[], Labeler]] = {"tfidf": TfidfLabeler}
_TRAINED_BASES = ("claims", "gold")


@dataclass(frozen=True)
class AutolabelResult:
    """What an auto-labeling run did; ``accuracy`` is out-of-fold, against the resolved labels."""

    trained: int
    predicted: int
    claims_added: int
    source: str
    accuracy: float


def _factory(labeler: str | Callable[[], Labeler]) -> Callable[[], Labeler]:
    if isinstance(labeler, str):
        try:
            return LABELERS[labeler]
        except KeyError:
            raise VeritagError(f"unknown labeler {labeler!r}; choose one of {', '.join(LABELERS)}") from None
    return labeler


def _model_source(conn: sa.Connection, project_id: int, name: str, version: str) -> int:
    """The model source's id, created if missing; its version is set to ``version``."""
    sid = source_ids(conn, project_id=project_id, kind="model", names={name})[name]
    conn.execute(sa.update(Source).where(Source.id == sid, Source.version.is_distinct_from(version))
                 .values(version=version))
    return sid


def autolabel_project(store: Store, project: Project, *, labeler: str | Callable[[], Labeler] = "tfidf",
                      folds: int = 5, seed: int = 0) -> AutolabelResult:
    """Train ``labeler`` on the project's resolved human/gold labels and store a model claim per item.

    See the module docstring. Raises ``VeritagError`` for a project without fixed classes, or
    with fewer than ``folds`` labeled items with text or fewer than two classes among them.
    """
    make = _factory(labeler)
    schema = project_schema(project)
    classes = schema.classes()
    if not classes or isinstance(schema, MultiLabelSchema):
        raise VeritagError(f"project {project.name!r} is a {schema.type} task; autolabel needs a single-label "
                           "categorical task (classification, rating, pairwise, fact_check)")
    if folds < 2:
        raise VeritagError("--folds must be at least 2")
    resolution, _ = current_resolution(store, project)
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(Item.id, Item.text).where(
            Item.project_id == project.id, Item.text.is_not(None)).order_by(Item.id)).all()
    rows = [(i, t) for i, t in rows if t.strip()]
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    texts = [r[1] for r in rows]
    pos, found = resolution.lookup(ids)
    labeled = np.zeros(ids.size, dtype=bool)
    if found.any() and resolution.basis is not None:
        basis = np.array(BASES, dtype=object)[resolution.basis[pos[found]]]
        labeled[found] = np.isin(basis, _TRAINED_BASES)
    index = {c: k for k, c in enumerate(classes)}
    train = np.flatnonzero(labeled)
    rest = np.flatnonzero(~labeled)
    y = np.array([str(schema.vote_key(resolution.labels[p])) for p in pos[train]], dtype=object)
    if train.size < folds:
        raise VeritagError(f"project {project.name!r} has {train.size} items with text and a label resolved from "
                           f"human claims or gold; autolabel needs at least {folds} (--folds)")
    if len(set(y.tolist())) < 2:
        raise VeritagError(f"the labeled items of project {project.name!r} all have one class; autolabel needs "
                           "at least two classes to learn from")
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
    key = f"autolabel:{version}"
    with store.engine.begin() as conn:
        sid = _model_source(conn, project.id, name, version)

        def count() -> int:
            return int(conn.scalar(sa.select(sa.func.count()).select_from(Claim).where(
                Claim.project_id == project.id, Claim.source_id == sid)) or 0)

        before = count()
        claims = [{"project_id": project.id, "item_id": int(item), "source_id": sid, "value": None,
                   "probs": canonical_json(row), "dedup_key": key}
                  for item, row in zip(ids.tolist(), probs.tolist())]
        execute_many(conn, insert_ignore(conn, Claim.__table__, ["item_id", "source_id", "dedup_key"]), claims)
        added = count() - before
    return AutolabelResult(trained=int(train.size), predicted=int(rest.size), claims_added=added,
                           source=f"{name}@{version}", accuracy=accuracy)
