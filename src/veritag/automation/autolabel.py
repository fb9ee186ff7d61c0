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

The pieces (``autolabel_classes``, ``fit_autolabeler``, ``predict_rows``, ``write_model_claims``)
are also the Ray engine's (``veritag.scale.ray_autolabel``), so both engines write the same claims.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa
from numpy.typing import NDArray

from ..errors import VeritagError
from ..labelers import Labeler, out_of_fold_proba
from ..labelers.registry import DEFAULT_LABELER, LABELER_NAMES, labeler_factory
from ..resolve import human_labels
from ..schema import MultiLabelSchema, canonical_json
from ..store.claims import add_claims, claim_row
from ..store.embeddings import StoreEmbeddingCache
from ..store.engine import Store
from ..store.models import Item, Project, Source
from ..store.queries import project_schema, source_ids

__all__ = [
    "AutolabelFit",
    "AutolabelResult",
    "autolabel_classes",
    "autolabel_key",
    "autolabel_project",
    "fit_autolabeler",
    "items_with_text",
    "labeler_text",
    "predict_rows",
    "store_labeler",
    "write_model_claims",
]


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


def autolabel_classes(
    project: Project, labeler: str | Callable[[], Labeler], folds: int
) -> list[str]:
    """The schema's classes, after refusing what no engine can auto-label (an unknown labeler, a
    task without fixed classes, fewer than two folds)."""
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
    return list(classes)


def items_with_text(
    rows: Sequence[Sequence[Any]], fields: Sequence[str]
) -> tuple[NDArray[np.int64], list[str]]:
    """``(ids, texts)`` of the ``(id, text, data)`` rows whose labeler text is not empty."""
    kept = [(r[0], t) for r in rows if (t := labeler_text(r[1], r[2], fields))]
    return np.array([r[0] for r in kept], dtype=np.int64), [r[1] for r in kept]


def store_labeler(store: Store, labeler: str | Callable[[], Labeler]) -> Callable[[], Labeler]:
    """The factory a run trains with: a name's labelers keep their vectors in the store."""
    if isinstance(labeler, str):
        return labeler_factory(labeler, cache=StoreEmbeddingCache(store))
    return labeler


def autolabel_key(
    version: str, ids: NDArray[np.int64], y: NDArray[Any], fields: Sequence[str]
) -> str:
    """The dedup scope of one fit's claims (see the module docstring)."""
    return f"autolabel:{version}:{_digest(ids, y, fields)}"


@dataclass(frozen=True)
class AutolabelFit:
    """A labeler trained on a project's human labels: ``oof`` holds the training items'
    out-of-fold rows, ``model`` (fitted on all of them) labels every other item."""

    ids: NDArray[np.int64]
    oof: NDArray[np.float64]
    model: Labeler
    key: str
    accuracy: float


def fit_autolabeler(
    project: Project,
    make: Callable[[], Labeler],
    ids: NDArray[np.int64],
    texts: Sequence[str],
    codes: NDArray[np.int64],
    classes: Sequence[str],
    *,
    fields: Sequence[str],
    folds: int,
    seed: int,
    full: bool,
) -> AutolabelFit:
    """Cross-fit ``make`` on the training items (``codes``: their human classes) and, when
    ``full``, fit one on all of them for the other items (else ``model`` stays unfitted)."""
    y = np.array(classes, dtype=object)[codes]
    if ids.size < folds:
        raise VeritagError(
            f"project {project.name!r} has {ids.size} items with text and a human or gold "
            f"label; autolabel needs at least {folds} (--folds)"
        )
    if len(set(y.tolist())) < 2:
        raise VeritagError(
            f"the labeled items of project {project.name!r} all have one class; autolabel needs "
            "at least two classes to learn from"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn convergence chatter on small folds
        try:
            oof = out_of_fold_proba(make, texts, y, classes=classes, folds=folds, seed=seed)
        except ValueError as exc:
            raise VeritagError(str(exc)) from exc
        model = make()
        if full:
            model.fit(texts, list(y))
    accuracy = float(np.mean(np.array(classes, dtype=object)[oof.argmax(axis=1)] == y))
    key = autolabel_key(str(model.version), ids, y, fields)
    return AutolabelFit(ids=ids, oof=oof, model=model, key=key, accuracy=accuracy)


def predict_rows(
    model: Labeler, texts: Sequence[str], classes: Sequence[str]
) -> NDArray[np.float64]:
    """``model``'s probabilities for ``texts``, columns in ``classes`` order (0 for a class it
    never saw)."""
    index = {c: k for k, c in enumerate(classes)}
    probs = np.zeros((len(texts), len(classes)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cols = [index[str(c)] for c in model.classes_]  # type: ignore[attr-defined]
        probs[:, cols] = model.predict_proba(list(texts))
    return probs


def write_model_claims(
    store: Store,
    project: Project,
    model: Labeler,
    key: str,
    ids: Sequence[int],
    probs: NDArray[np.float64],
) -> int:
    """Store one ``key``-scoped model claim per item in one transaction; returns how many were
    new (one fit's claims share a key: refitting on the same labels adds nothing)."""
    with store.begin_write() as conn:
        sid = _model_source(conn, project.id, model.name, str(model.version))
        version = sa.select(Project.claims_version).where(Project.id == project.id)
        before = int(conn.scalar(version) or 0)
        add_claims(
            conn,
            [
                claim_row(project.id, int(item), sid, probs=canonical_json(row), scope=key)
                for item, row in zip(ids, probs.tolist())
            ],
        )
        return int(conn.scalar(version) or 0) - before


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
    classes = autolabel_classes(project, labeler, folds)
    with store.engine.connect() as conn:
        humans = human_labels(conn, project)
        rows = conn.execute(
            sa.select(Item.id, Item.text, Item.data)
            .where(Item.project_id == project.id)
            .order_by(Item.id)
        ).all()
    ids, texts = items_with_text(rows, fields)
    code, _ = humans.lookup(ids)
    train = np.flatnonzero(code >= 0)
    rest = np.flatnonzero(code < 0)
    fit = fit_autolabeler(
        project,
        store_labeler(store, labeler),
        ids[train],
        [texts[i] for i in train],
        code[train],
        classes,
        fields=fields,
        folds=folds,
        seed=seed,
        full=rest.size > 0,
    )
    probs = np.zeros((ids.size, len(classes)))
    probs[train] = fit.oof
    if rest.size:
        probs[rest] = predict_rows(fit.model, [texts[i] for i in rest], classes)
    added = write_model_claims(store, project, fit.model, fit.key, ids.tolist(), probs)
    return AutolabelResult(
        trained=int(train.size),
        predicted=int(rest.size),
        claims_added=added,
        source=f"{fit.model.name}@{fit.model.version}",
        accuracy=fit.accuracy,
    )
