"""A reviewer's verdict on an item: accept the resolved label or correct it.

A review changes nothing that was said before: ``accept`` writes the resolved label, ``correct``
the reviewer's value (normalised by the schema), as a new claim of a human source named after
the reviewer, plus one append-only ``reviews`` row. The truth engine then weighs the reviewer
like any other source.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

import numpy as np
import sqlalchemy as sa

from ..errors import InputError, LabelError, NotFound
from ..resolve import current_resolution
from ..schema import BaseSchema, canonical_json
from ..store.claims import add_claim
from ..store.engine import Store
from ..store.models import Claim, Item, Project, Review, Source
from ..store.queries import project_schema, source_ids, standing_claims

__all__ = ["Action", "Reviewer", "review_item"]

#: What a review does: keep the resolved label, or put the reviewer's value in its place.
Action = Literal["accept", "correct"]


class Reviewer(Protocol):
    """Who reviews: a user's id (for the ``reviews`` row) and name (their human source)."""

    @property
    def id(self) -> int: ...

    @property
    def username(self) -> str: ...


def _resolved_label(store: Store, project: Project, item_id: int) -> Any:
    """The item's resolved label now (resolving again if needed); ``InputError`` when it has
    none."""
    resolution, _ = current_resolution(store, project)
    pos, found = resolution.lookup(np.array([item_id], dtype=np.int64))
    if not found[0]:
        raise InputError(
            f"item {item_id} has no resolved label to accept (no claims "
            "yet); correct it with a value instead"
        )
    return resolution.labels[int(pos[0])]


def _backing_claim(
    store: Store,
    project: Project,
    schema: BaseSchema,
    item_id: int,
    resolved: Any,
    text: str | None,
) -> Any:
    """The newest human claim that says what ``resolved`` says, normalised, or None.

    A resolved label holds only what votes compare (a fact-check verdict without its evidence);
    accepting it takes the full answer of a tutor who gave that verdict.
    """
    key = canonical_json(schema.vote_key(resolved))
    with store.engine.connect() as conn:
        values = conn.scalars(
            sa.select(Claim.value)
            .join(Source, Source.id == Claim.source_id)
            .where(
                Claim.item_id == item_id,
                Claim.project_id == project.id,
                Source.kind == "human",
                Claim.value.is_not(None),
                standing_claims(),
            )
            .order_by(Claim.id.desc())
        ).all()
    for value in values:
        if canonical_json(schema.vote_key(value)) == key:
            try:
                return schema.normalize(value, item_text=text)
            except LabelError:
                continue
    return None


def review_item(
    store: Store,
    project: Project,
    item_id: int,
    user: Reviewer,
    action: Action,
    value: Any = None,
) -> dict[str, Any]:
    """Write a review: a new claim of the reviewer's human source plus a ``reviews`` row. Raises
    ``NotFound`` for an item not in the project, ``InputError`` for a correction without a value
    or an accept with nothing resolved, and ``LabelError`` for a value the schema refuses (all
    422 but the first); nothing existing is changed.

    ``accept`` writes the resolved label, or where that alone is no valid answer (a fact-check
    verdict needing evidence) the newest tutor's answer that agrees with it.
    """
    schema = project_schema(project)
    with store.engine.connect() as conn:
        text = conn.execute(
            sa.select(Item.text).where(Item.id == item_id, Item.project_id == project.id)
        ).first()
    if text is None:
        raise NotFound(f"no item {item_id} in project {project.name!r}")
    if action == "accept":
        raw = _resolved_label(store, project, item_id)
    elif value is None:
        raise InputError("a correction needs a value")
    else:
        raw = value
    try:
        label = schema.normalize(raw, item_text=text[0])
    except LabelError as exc:
        if action != "accept":
            raise
        label = _backing_claim(store, project, schema, item_id, raw, text[0])
        if label is None:
            raise LabelError(
                "label", f"the resolved label cannot be accepted as is ({exc}); correct it instead"
            ) from None
    with store.begin_write() as conn:  # the writer lock tutors' submits queue on
        sid = source_ids(conn, project_id=project.id, kind="human", names={user.username})[
            user.username
        ]
        claim_id = add_claim(conn, project.id, item_id, sid, value=label)
        review_id = int(
            conn.execute(
                sa.insert(Review).values(
                    project_id=project.id,
                    item_id=item_id,
                    user_id=user.id,
                    action=action,
                    claim_id=claim_id,
                )
            ).inserted_primary_key[0]
        )
    return {
        "item_id": item_id,
        "action": action,
        "value": label,
        "claim_id": claim_id,
        "review_id": review_id,
    }
