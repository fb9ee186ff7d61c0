"""Keyword-only store functions; each takes the session (or connection) it works in."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa
from argon2 import PasswordHasher
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from ..errors import AlreadyExists, InputError, NotFound, VeritagError
from ..limits import (
    check_description,
    check_project_name,
    check_schema,
    check_username,
    refuse,
    text_problem,
)
from ..schema import BaseSchema, canonical_json, parse_schema
from . import audit
from .models import (
    Claim,
    Gold,
    ImportRecord,
    Item,
    PosteriorBlock,
    Project,
    Source,
    SourceReliability,
    TruthRun,
    User,
)
from .posterior_blocks import insert_blocks

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "KEEP_RUNS",
    "ROLES",
    "Watermark",
    "claims_watermark",
    "create_project",
    "create_user",
    "dialect_insert",
    "execute_many",
    "get_project",
    "insert_ignore",
    "insert_truth_run",
    "latest_truth_run",
    "list_projects",
    "prune_truth_runs",
    "project_counts",
    "project_schema",
    "run_is_current",
    "source_ids",
    "source_names",
    "standing_claims",
    "standing_human_labels",
    "verify_password",
]

ROLES = ("admin", "reviewer", "tutor")
_hasher = PasswordHasher()


def dialect_insert(conn: sa.Connection, table: sa.Table) -> Any:
    """The dialect's INSERT, which knows ``ON CONFLICT`` on both SQLite and PostgreSQL."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise VeritagError(f"unsupported database dialect {conn.dialect.name}")


def execute_many(conn: sa.Connection, stmt: Any, rows: list[dict[str, Any]]) -> int:
    """Run ``stmt`` for many rows through the driver's executemany, without per-row type processing;
    returns the rows it changed (what ``ON CONFLICT DO NOTHING`` did not skip).

    Imports spend most of their time here; compiling once and handing plain tuples to the
    driver is about 3x faster than SQLAlchemy's per-parameter processing. JSON values must
    already be serialised (``canonical_json``) by the caller.
    """
    if not rows:
        return 0
    compiled = stmt.compile(dialect=conn.dialect, column_keys=list(rows[0]))
    if compiled.positional:
        order = compiled.positiontup
        result = conn.exec_driver_sql(str(compiled), [tuple(row[k] for k in order) for row in rows])
    else:
        result = conn.exec_driver_sql(str(compiled), rows)
    return int(result.rowcount)


def insert_ignore(conn: sa.Connection, table: sa.Table, index: list[str]) -> Any:
    """``INSERT ... ON CONFLICT (index) DO NOTHING``: how imports stay idempotent."""
    return dialect_insert(conn, table).on_conflict_do_nothing(index_elements=index)


def create_project(
    session: Session,
    *,
    name: str,
    schema: BaseSchema | dict[str, Any],
    description: str = "",
    actor: audit.Actor | None = None,
) -> Project:
    """A new project; its name, description and schema are held to the caps in ``veritag.limits``.
    Recorded in the audit log as done by ``actor``."""
    if not name.strip():
        raise VeritagError("a project needs a name")
    refuse(check_project_name, name)
    refuse(check_description, description)
    if session.scalar(sa.select(Project.id).where(Project.name == name)) is not None:
        raise AlreadyExists(f"project {name!r} already exists")
    task = schema if isinstance(schema, BaseSchema) else parse_schema(schema)
    refuse(check_schema, task.model_dump())
    project = Project(name=name, task_schema=task.model_dump(), description=description)
    session.add(project)
    session.flush()
    audit.record(
        session,
        "project.create",
        actor=actor,
        project=name,
        target=name,
        detail={"type": task.type},
    )
    return project


def get_project(session: Session, *, name: str) -> Project:
    project = (
        None
        if text_problem(name)
        else session.scalar(sa.select(Project).where(Project.name == name))
    )
    if project is None:
        known = list_projects(session)
        hint = (
            f"; projects here: {', '.join(p.name for p in known)}"
            if known
            else "; create it with 'veritag init'"
        )
        raise NotFound(f"no project named {name!r}{hint}")
    return project


def list_projects(session: Session) -> list[Project]:
    return list(session.scalars(sa.select(Project).order_by(Project.id)))


def project_schema(project: Project) -> BaseSchema:
    """The project's task schema, parsed once per distinct schema (schemas are frozen)."""
    return _parsed(canonical_json(project.task_schema))


@functools.lru_cache(maxsize=256)
def _parsed(schema_json: str) -> BaseSchema:
    return parse_schema(json.loads(schema_json))


def project_counts(session: Session, *, project_id: int) -> dict[str, int]:
    """How many items, claims (human and model), sources, gold labels and imports a project has."""

    def count(stmt: sa.Select[Any]) -> int:
        return int(session.scalar(stmt) or 0)

    human = sa.select(Source.id).where(Source.project_id == project_id, Source.kind == "human")
    return {
        "items": count(
            sa.select(sa.func.count()).select_from(Item).where(Item.project_id == project_id)
        ),
        "claims": count(
            sa.select(sa.func.count())
            .select_from(Claim)
            .where(Claim.project_id == project_id, standing_claims())
        ),
        "human_claims": count(
            sa.select(sa.func.count())
            .select_from(Claim)
            .where(Claim.project_id == project_id, Claim.source_id.in_(human), standing_claims())
        ),
        "labeled_items": count(
            sa.select(sa.func.count(sa.distinct(Claim.item_id))).where(
                Claim.project_id == project_id, standing_claims()
            )
        ),
        "sources": count(
            sa.select(sa.func.count()).select_from(Source).where(Source.project_id == project_id)
        ),
        "gold": count(
            sa.select(sa.func.count()).select_from(Gold).where(Gold.project_id == project_id)
        ),
        "imports": count(
            sa.select(sa.func.count())
            .select_from(ImportRecord)
            .where(ImportRecord.project_id == project_id)
        ),
    }


def source_ids(
    conn: sa.Connection, *, project_id: int, kind: str, names: set[str]
) -> dict[str, int]:
    """Ids of the named sources, creating the missing ones."""
    if not names:
        return {}
    conn.execute(
        insert_ignore(conn, Source.__table__, ["project_id", "kind", "name"]),
        [{"project_id": project_id, "kind": kind, "name": n} for n in sorted(names)],
    )
    rows = conn.execute(
        sa.select(Source.name, Source.id).where(
            Source.project_id == project_id, Source.kind == kind, Source.name.in_(names)
        )
    )
    return {name: id_ for name, id_ in rows}


class Watermark(NamedTuple):
    """How far a project's claims and gold labels reach: what a truth run covers.

    ``claims_version`` (``Project.claims_version``) decides staleness: ids are handed out at
    insert, not at commit, so a claim can appear below ``max_claim_id`` after it was read.
    ``max_claim_id`` bounds "the claims up to the run" for readers that load them.
    """

    max_claim_id: int
    max_gold_id: int
    gold_count: int
    claims_version: int = 0


def standing_claims(up_to: int | None = None) -> sa.ColumnElement[bool]:
    """Claims that count: not a retraction (an undo) and not taken back by one.

    Claims are append-only, so undo adds a retraction pointing at the claim it takes back;
    every reader of labels filters with this. ``up_to`` ignores retractions made after that
    claim id (a run reads the claims as they stood at its watermark).
    """
    if up_to is None:
        return _standing_now()
    taken = aliased(Claim)
    back = sa.select(taken.retracts).where(taken.retracts.is_not(None), taken.id <= up_to)
    return sa.and_(Claim.retracts.is_(None), Claim.id.not_in(back))


def standing_human_labels(project_id: int) -> sa.ColumnElement[bool]:
    """The WHERE clause of a project's human labels that stand: claims of its human sources that
    carry a value and are not retracted (what routing counts and reviewers see as votes)."""
    human = sa.select(Source.id).where(Source.project_id == project_id, Source.kind == "human")
    return sa.and_(
        Claim.project_id == project_id,
        Claim.source_id.in_(human),
        Claim.value.is_not(None),
        standing_claims(),
    )


@functools.cache
def _standing_now() -> sa.ColumnElement[bool]:
    """``standing_claims()`` built once: routing asks for it on every request."""
    taken = aliased(Claim)
    back = sa.select(taken.retracts).where(taken.retracts.is_not(None))
    return sa.and_(Claim.retracts.is_(None), Claim.id.not_in(back))


def claims_watermark(conn: sa.Connection | Session, *, project_id: int) -> Watermark:
    """A project's claims version, newest claim id and gold labels (claims and gold are only ever
    added).

    The version is read first: every claim it counts was committed, so the newest id read after
    it covers them all, and a reader of the claims up to that id sees at least what the version
    says (more only errs towards fitting again).
    """
    version = conn.scalar(sa.select(Project.claims_version).where(Project.id == project_id))
    max_claim = conn.scalar(sa.select(sa.func.max(Claim.id)).where(Claim.project_id == project_id))
    max_gold, gold = conn.execute(
        sa.select(sa.func.max(Gold.id), sa.func.count())
        .select_from(Gold)
        .where(Gold.project_id == project_id)
    ).one()
    return Watermark(int(max_claim or 0), int(max_gold or 0), int(gold or 0), int(version or 0))


def latest_truth_run(
    conn: sa.Connection | Session, *, project_id: int, method: str | None = None
) -> Any:
    """The newest stored run of a project (of ``method``, if given) as a row with the
    ``truth_runs`` columns as attributes (``run.id``, ``run.method``, ...), or None."""
    stmt = sa.select(*TruthRun.__table__.c).where(TruthRun.project_id == project_id)
    if method is not None:
        stmt = stmt.where(TruthRun.method == method)
    return conn.execute(stmt.order_by(TruthRun.id.desc()).limit(1)).first()


def run_is_current(conn: sa.Connection | Session, run: Any) -> bool:
    """True while the project got no claim or gold label since ``run`` (a ``truth_runs`` row).

    The claims version catches a claim committed late with a lower id; the newest id also
    catches a claim written past ``store.claims`` (which only tests do)."""
    mark = claims_watermark(conn, project_id=run.project_id)
    return (mark.claims_version, mark.max_claim_id, mark.gold_count) == (
        run.claims_version,
        run.max_claim_id,
        run.gold_count,
    )


def insert_truth_run(
    conn: sa.Connection,
    *,
    run: dict[str, Any],
    posteriors: pa.Table,
    sources: list[dict[str, Any]],
) -> int:
    """Append one run with its answers per item (a ``posterior_blocks.run_table``) and source
    rows; returns the run id.

    JSON values of ``sources`` must already be serialised (``canonical_json``), as for
    ``execute_many``; ``run`` is an ordinary row.
    """
    run_id = int(conn.execute(sa.insert(TruthRun).values(**run)).inserted_primary_key[0])
    insert_blocks(conn, run_id, posteriors)
    execute_many(
        conn, sa.insert(SourceReliability.__table__), [{"run_id": run_id, **row} for row in sources]
    )
    return run_id


#: Runs per method whose posteriors and source rows are kept (see ``prune_truth_runs``).
KEEP_RUNS = 3


def prune_truth_runs(
    conn: sa.Connection, *, project_id: int, method: str, keep: int = KEEP_RUNS
) -> list[int]:
    """Delete the posterior blocks and source rows of all but the newest ``keep`` runs of
    ``method``; their ``truth_runs`` rows stay (when, which method, what they covered) with
    ``pruned`` set.
    Returns the runs pruned now.

    Every refit stores every item's answer again, so without this a project of 10^6 items
    grows by a run of 10^6 items a refit. Readers only ever read the newest run of a method; the two
    before it stay readable for a reader that picked a run just before a refit replaced it.
    """
    old = (
        conn.execute(
            sa.select(TruthRun.id)
            .where(
                TruthRun.project_id == project_id,
                TruthRun.method == method,
                TruthRun.pruned.is_(False),
                TruthRun.id.not_in(
                    sa.select(TruthRun.id)
                    .where(TruthRun.project_id == project_id, TruthRun.method == method)
                    .order_by(TruthRun.id.desc())
                    .limit(keep)
                ),
            )
            .order_by(TruthRun.id)
        )
        .scalars()
        .all()
    )
    if old:  # marked first: the database lets only a pruned run's rows go (migration 0011)
        conn.execute(sa.update(TruthRun).where(TruthRun.id.in_(old)).values(pruned=True))
        conn.execute(sa.delete(PosteriorBlock).where(PosteriorBlock.run_id.in_(old)))
        conn.execute(sa.delete(SourceReliability).where(SourceReliability.run_id.in_(old)))
    return list(old)


def source_names(
    conn: sa.Connection | Session, *, ids: Iterable[int]
) -> dict[int, tuple[str, str]]:
    """``{source id: (kind, name)}`` for the given ids."""
    wanted = sorted({int(i) for i in ids})
    out: dict[int, tuple[str, str]] = {}
    for start in range(0, len(wanted), 10_000):
        chunk = wanted[start : start + 10_000]
        for id_, kind, name in conn.execute(
            sa.select(Source.id, Source.kind, Source.name).where(Source.id.in_(chunk))
        ):
            out[id_] = (kind, name)
    return out


def create_user(
    session: Session,
    *,
    username: str,
    password: str,
    role: str = "tutor",
    actor: audit.Actor | None = None,
) -> User:
    """A user with an argon2 hash of their password; the password itself is never stored.
    Recorded in the audit log as done by ``actor``."""
    if role not in ROLES:
        raise VeritagError(f"role {role!r} is not one of {list(ROLES)}")
    if len(password) < 8:
        raise VeritagError("a password needs at least 8 characters")
    refuse(check_username, username)
    if problem := text_problem(password):
        raise InputError(f"the password {problem}")
    if session.scalar(sa.select(User.id).where(User.username == username)) is not None:
        raise AlreadyExists(f"user {username!r} already exists")
    user = User(username=username, password_hash=_hasher.hash(password), role=role)
    session.add(user)
    session.flush()
    audit.record(session, "user.create", actor=actor, target=username, detail={"role": role})
    return user


def verify_password(user: User, password: str) -> bool:
    try:
        return _hasher.verify(user.password_hash, password)
    except Exception:  # argon2 raises several types for a mismatch or a bad hash
        return False
