"""The one writer of claims: every claim row, imported or live, is inserted here.

Claims are append-only (nothing updates or deletes them; an undo adds a *retraction*, a claim
with no value whose ``retracts`` names the claim it takes back). Callers pass a connection from
``Store.begin_write``, so every claim write queues on the SQLite writer lock; any other
connection is refused.

Every insert adds the claims it stored to ``projects.claims_version`` in the same transaction
(``_count_in``): staleness compares that number, because claim ids are handed out at insert and
a transaction that took a lower id can commit after a fit read the claims. On PostgreSQL the
UPDATE locks the project's row until commit, so the claim writers of one project queue for the
few milliseconds of their transactions (on SQLite they queue on the writer lock anyway).

``dedup_key`` is what makes a re-import add nothing: the unique index on
``(item_id, source_id, dedup_key)`` drops a row already stored. ``dedup_key`` below is the only
place it is computed; live claims (a tutor's answer, a review, a retraction) have none, and a
NULL key is never equal to another, so each live claim is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

import sqlalchemy as sa

from .engine import WRITING
from .models import Claim, Project
from .queries import execute_many, insert_ignore

__all__ = ["NewClaimRow", "add_claim", "add_claims", "claim_row", "dedup_key"]

_DEDUP_INDEX = ["item_id", "source_id", "dedup_key"]


class NewClaimRow(TypedDict):
    """One claim for ``add_claims``; ``value`` and ``probs`` are already ``canonical_json`` text."""

    project_id: int
    item_id: int
    source_id: int
    value: str | None
    probs: str | None
    dedup_key: str


def dedup_key(
    *, value: str | None = None, probs: str | None = None, scope: str | None = None
) -> str:
    """The key that makes an imported claim idempotent, from its ``canonical_json`` value or probs.

    A label file's claim is keyed by its value (the same worker saying the same thing once), a
    model's by ``probs:`` and its probabilities. ``scope`` replaces the content for claims whose
    identity is not their content: a battle log's n-th equal vote (``arena:<n>``), one autolabel
    fit (``autolabel:<version>:<digest>``); the value is still appended when given.
    """
    if (value is None) == (probs is None) and scope is None:
        raise ValueError("a claim key needs a value or probs")
    if scope is None:
        return value if value is not None else "probs:" + probs  # type: ignore[operator]
    return scope if value is None else f"{scope}:{value}"


def claim_row(
    project_id: int,
    item_id: int,
    source_id: int,
    *,
    value: str | None = None,
    probs: str | None = None,
    scope: str | None = None,
) -> NewClaimRow:
    """An ``add_claims`` row and its ``dedup_key``; ``value``/``probs`` hold ``canonical_json``."""
    return {
        "project_id": project_id,
        "item_id": item_id,
        "source_id": source_id,
        "value": value,
        "probs": probs,
        "dedup_key": dedup_key(value=value, probs=probs, scope=scope),
    }


def _writing(conn: sa.Connection) -> None:
    """Refuse a connection not opened by ``Store.begin_write``: a claim written past the SQLite
    writer lock would race the tutors' submits through SQLite's busy polling."""
    if not conn.info.get(WRITING):
        raise RuntimeError("claims are written in a Store.begin_write() transaction")


def _count_in(conn: sa.Connection, project_id: int, n: int) -> None:
    """Add ``n`` stored claims to the project's ``claims_version`` (see the module docstring)."""
    if n:
        conn.execute(_COUNT_IN, {"project": project_id, "n": n})


#: ``add_claim``'s statements, built once: a tutor's every submit runs them.
_NEW_CLAIM = sa.insert(Claim).returning(Claim.id)
_COUNT_IN = (
    sa.update(Project)
    .where(Project.id == sa.bindparam("project"))
    .values(claims_version=Project.claims_version + sa.bindparam("n", type_=sa.BigInteger))
)


def add_claims(
    conn: sa.Connection, rows: Sequence[NewClaimRow], *, chunk: int | None = None
) -> None:
    """Insert imported claims, skipping any already stored (same item, source and key).

    Imports spend their time here, so rows go to the driver's executemany in one go (or in
    chunks of ``chunk`` rows, to bound memory on a huge battle log).
    """
    _writing(conn)
    if not rows:
        return
    stmt = insert_ignore(conn, Claim.__table__, _DEDUP_INDEX)  # type: ignore[arg-type]
    by_project: dict[int, list[NewClaimRow]] = {}
    for row in rows:
        by_project.setdefault(row["project_id"], []).append(row)
    for project_id, group in by_project.items():
        step = chunk or len(group)
        stored = sum(
            execute_many(conn, stmt, group[start : start + step])  # type: ignore[arg-type]
            for start in range(0, len(group), step)
        )
        _count_in(conn, project_id, stored)


def add_claim(
    conn: sa.Connection,
    project_id: int,
    item_id: int,
    source_id: int,
    *,
    value: Any = None,
    probs: Any = None,
    retracts: int | None = None,
) -> int:
    """Insert one live claim (a tutor's answer, a review, a retraction); returns its id.

    ``value`` and ``probs`` are Python values (the column type serialises them). A retraction
    (``retracts`` set) carries neither.
    """
    if retracts is not None and (value is not None or probs is not None):
        raise ValueError("a retraction has no value or probs")
    if retracts is None and value is None and probs is None:
        raise ValueError("a claim needs a value or probs")
    _writing(conn)
    claim_id = conn.scalar(
        _NEW_CLAIM,
        {
            "project_id": project_id,
            "item_id": item_id,
            "source_id": source_id,
            "value": value,
            "probs": probs,
            "retracts": retracts,
        },
    )
    _count_in(conn, project_id, 1)
    return int(claim_id)
