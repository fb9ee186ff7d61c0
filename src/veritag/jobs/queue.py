"""The job queue: rows of the ``jobs`` table that workers take, heartbeat and finish.

A job is a row with its ``kind`` and ``params`` (JSON): everything a worker in any process or on
any host needs to run it. States go queued → running → done or failed. Taking a job is one
transaction: the oldest queued job (or a running one whose heartbeat is older than the timeout:
its worker died) is selected ``FOR UPDATE SKIP LOCKED`` on PostgreSQL and marked running with the
taker's name and one more attempt. On SQLite the same transaction starts with a write, which
takes the database's one write lock before the select (what ``BEGIN IMMEDIATE`` does), so two
processes never read the same queued row as free. Every later change of a running job is made
only while the row still names this worker and attempt (``_ours``): a worker that was presumed
dead and replaced cannot overwrite what its successor does.

Why ``SKIP LOCKED`` on our own table rather than a queue library such as procrastinate: the
job's record already lives in ``jobs`` (the API answers polls from it, on SQLite and PostgreSQL
alike), procrastinate runs on PostgreSQL only and would keep a second copy of every job in its
own tables and schema migrations, while SQLite must stay the one-file default. The queue needs
four short statements (enqueue, claim, heartbeat, finish), which both databases run.

``enqueue_once`` queues a job unless one of its kind is already queued for the project (a write
that asks for work done "soon", such as fitting again after an import, needs one waiting job, not
one per write). It looks and inserts in one transaction that first takes a lock: the project's
advisory lock for that kind on PostgreSQL, the write lock on SQLite (a write first, as in
``claim``), so two callers never both find none and both insert.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa

from ..store.engine import Store
from ..store.models import Job as JobRow

__all__ = [
    "MAX_ATTEMPTS",
    "Job",
    "JobState",
    "claim",
    "enqueue",
    "enqueue_once",
    "fail",
    "finish",
    "get",
    "hand_back",
    "heartbeat",
]

JobState = Literal["queued", "running", "done", "failed"]

#: Attempts of a job before it fails for good (a crash or an unexpected error each use one).
MAX_ATTEMPTS = 3


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


@dataclass(frozen=True)
class Job:
    """One job as read from the store: who started it (user id), what it runs, where it stands."""

    id: str
    owner: int
    kind: str
    project: str
    state: str
    params: Any
    attempts: int
    max_attempts: int
    runner: str
    result: Any
    error: str | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        """What ``GET /api/v1/jobs/{id}`` answers: the result once done, the error once failed."""
        out: dict[str, Any] = {
            "job": self.id,
            "kind": self.kind,
            "project": self.project,
            "state": self.state,
            "attempts": self.attempts,
        }
        if self.state == "done":
            out["result"] = self.result
        if self.state == "failed":
            out["error"] = self.error
        for name in ("created_at", "started_at", "finished_at"):
            out[name] = _iso(getattr(self, name))
        return out


_COLUMNS = (
    JobRow.id,
    JobRow.user_id,
    JobRow.kind,
    JobRow.project,
    JobRow.state,
    JobRow.params,
    JobRow.attempts,
    JobRow.max_attempts,
    JobRow.runner,
    JobRow.result,
    JobRow.error,
    JobRow.created_at,
    JobRow.started_at,
    JobRow.finished_at,
)


#: The first key of the PostgreSQL advisory lock ``enqueue_once`` takes ("vjob"); the second
#: hashes the kind and project.
_ENQUEUE_NAMESPACE = 0x766A6F62
_ENQUEUE_LOCK = sa.text("SELECT pg_advisory_xact_lock(:ns, hashtext(:key))")


def _insert(
    conn: sa.Connection,
    *,
    kind: str,
    project: str,
    owner: int,
    params: dict[str, Any],
    max_attempts: int,
) -> str:
    job_id = secrets.token_urlsafe(12)
    conn.execute(
        sa.insert(JobRow).values(
            id=job_id,
            user_id=owner,
            kind=kind,
            project=project,
            state="queued",
            params=params,
            attempts=0,
            max_attempts=max_attempts,
            runner="",
        )
    )
    return job_id


def _read(store: Store, job_id: str) -> Job:
    found = get(store, job_id)
    assert found is not None
    return found


def enqueue(
    store: Store,
    *,
    kind: str,
    project: str,
    owner: int,
    params: dict[str, Any],
    max_attempts: int = MAX_ATTEMPTS,
) -> Job:
    """Queue a job of ``kind`` on ``project`` for any worker; ``params`` must be JSON."""
    with store.begin_write() as conn:
        job_id = _insert(
            conn,
            kind=kind,
            project=project,
            owner=owner,
            params=params,
            max_attempts=max_attempts,
        )
    return _read(store, job_id)


def enqueue_once(
    store: Store,
    *,
    kind: str,
    project: str,
    owner: int,
    params: dict[str, Any],
    max_attempts: int = MAX_ATTEMPTS,
) -> tuple[Job, bool]:
    """Queue a job as ``enqueue`` does unless a ``kind`` job of ``project`` is queued already;
    that job (and False) then, else the new one (and True).

    Only a job that no worker took yet stands in for a new one: it will read everything
    committed before it starts. A running job may have read the project before the caller's
    write committed, so it does not count, and at most one job per kind and project waits
    behind it.
    """
    waiting = sa.select(JobRow.id).where(
        JobRow.kind == kind, JobRow.project == project, JobRow.state == "queued"
    )
    with store.begin_write() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(_ENQUEUE_LOCK, {"ns": _ENQUEUE_NAMESPACE, "key": f"{kind}:{project}"})
        else:  # a write first: SQLite's write lock, taken before the select reads
            conn.execute(sa.update(JobRow).where(waiting.whereclause).values(kind=JobRow.kind))
        found = conn.execute(waiting.order_by(JobRow.created_at, JobRow.id).limit(1)).scalar()
        job_id = found or _insert(
            conn,
            kind=kind,
            project=project,
            owner=owner,
            params=params,
            max_attempts=max_attempts,
        )
    return _read(store, job_id), found is None


def get(store: Store, job_id: str) -> Job | None:
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(*_COLUMNS).where(JobRow.id == job_id)).first()
    return None if row is None else Job(*row)


def claim(store: Store, runner: str, *, timeout: float) -> Job | None:
    """Take the oldest job to run for ``runner``: a queued one, or a running one whose worker sent
    no heartbeat for ``timeout`` seconds. A dead worker's job that used its last attempt fails
    instead. None when there is nothing to do."""
    now = _now()
    dead = sa.and_(
        JobRow.state == "running", JobRow.heartbeat_at < now - timedelta(seconds=timeout)
    )
    with store.engine.connect() as conn:  # an idle poll reads only: no write lock taken
        waiting = sa.select(JobRow.id).where(sa.or_(JobRow.state == "queued", dead)).limit(1)
        if conn.execute(waiting).first() is None:
            return None
    with store.begin_write() as conn:
        # A write first: on SQLite it takes the write lock before the select below reads.
        conn.execute(
            sa.update(JobRow)
            .where(dead, JobRow.attempts >= JobRow.max_attempts)
            .values(
                state="failed",
                finished_at=now,
                error=f"its worker stopped (no heartbeat for {timeout:g} s) on the last attempt; "
                "start it again",
            )
        )
        row = conn.execute(
            sa.select(JobRow.id)
            .where(
                sa.or_(
                    JobRow.state == "queued", sa.and_(dead, JobRow.attempts < JobRow.max_attempts)
                )
            )
            .order_by(JobRow.created_at, JobRow.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if row is None:
            return None
        conn.execute(
            sa.update(JobRow)
            .where(JobRow.id == row.id)
            .values(
                state="running",
                runner=runner,
                attempts=JobRow.attempts + 1,  # in SQL: a job taken twice shows 2
                heartbeat_at=now,
                started_at=now,
                finished_at=None,
            )
        )
    return get(store, row.id)


def _ours(job: Job, runner: str) -> sa.ColumnElement[bool]:
    """The job's row while ``runner`` still holds it on the attempt it took."""
    return sa.and_(
        JobRow.id == job.id,
        JobRow.state == "running",
        JobRow.runner == runner,
        JobRow.attempts == job.attempts,
    )


def _update_ours(store: Store, job: Job, runner: str, **values: Any) -> bool:
    with store.begin_write() as conn:
        changed = conn.execute(sa.update(JobRow).where(_ours(job, runner)).values(**values))
    return changed.rowcount == 1


def heartbeat(store: Store, job: Job, runner: str) -> bool:
    """Say that ``runner`` still works on ``job``; False when the job is no longer its own (it
    was taken over after a missed heartbeat, or handed back)."""
    return _update_ours(store, job, runner, heartbeat_at=_now())


def finish(store: Store, job: Job, runner: str, result: Any) -> bool:
    """Mark ``job`` done with its JSON ``result``; False (and nothing stored) when it is no
    longer this runner's."""
    return _update_ours(store, job, runner, state="done", result=result, finished_at=_now())


def fail(store: Store, job: Job, runner: str, error: str, *, retry: bool) -> JobState | None:
    """Record ``error``: the job is queued again while ``retry`` and attempts are left, else
    failed. The new state, or None when the job is no longer this runner's."""
    again = retry and job.attempts < job.max_attempts
    values: dict[str, Any] = {"error": error, "heartbeat_at": None}
    values |= {"state": "queued"} if again else {"state": "failed", "finished_at": _now()}
    if not _update_ours(store, job, runner, **values):
        return None
    return "queued" if again else "failed"


def hand_back(store: Store, job: Job, runner: str) -> bool:
    """Queue ``job`` again without counting this attempt (a worker asked to stop before it was
    done); the next worker starts it afresh."""
    return _update_ours(
        store, job, runner, state="queued", attempts=job.attempts - 1, heartbeat_at=None
    )
