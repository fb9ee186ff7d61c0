"""Background jobs of the API: project operations that take minutes (autolabel, automate).

A request that starts one gets ``202`` and a job id at once; the work runs on the app's job
runner and the client polls ``GET /api/v1/jobs/{id}``.

Each process runs its jobs one at a time on a single worker thread, so two trainings never
fight over the cores and the request threads stay free. A job's record (state, result or
error) is kept in the database (table ``jobs``), so any process of a server run with several
workers answers a poll, and a restart keeps the record. A job whose process died while running
it is marked failed when a process on the same host starts (``runner`` is ``host:pid:tag``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from fastapi import FastAPI

from ..errors import VeritagError
from ..store.engine import Store
from ..store.models import Job as JobRow
from .common import pid_alive

__all__ = ["Job", "JobRunner", "JobState", "job_runner", "lifespan"]

log = logging.getLogger(__name__)

JobState = Literal["queued", "running", "done", "failed"]


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
    result: Any
    error: str | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "job": self.id,
            "kind": self.kind,
            "project": self.project,
            "state": self.state,
        }
        if self.state == "done":
            out["result"] = self.result
        if self.state == "failed":
            out["error"] = self.error
        for name in ("created_at", "started_at", "finished_at"):
            out[name] = _iso(getattr(self, name))
        return out


class JobRunner:
    """Runs this process's jobs one at a time on one thread; their records live in the store."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="veritag-job")
        self.name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"  # one per app
        self._fail_orphans()

    def submit(self, work: Callable[[], Any], *, owner: int, kind: str, project: str) -> Job:
        """Queue ``work`` (which returns JSON-ready data); a ``VeritagError`` it raises fails the
        job with its message, anything else fails it with a pointer to the server log."""
        job_id = secrets.token_urlsafe(12)
        with self._store.engine.begin() as conn:
            conn.execute(
                sa.insert(JobRow).values(
                    id=job_id,
                    user_id=owner,
                    kind=kind,
                    project=project,
                    state="queued",
                    runner=self.name,
                )
            )
        self._pool.submit(self._run, job_id, work)
        found = self.get(job_id)
        assert found is not None
        return found

    def get(self, job_id: str) -> Job | None:
        with self._store.engine.connect() as conn:
            row = conn.execute(
                sa.select(
                    JobRow.id,
                    JobRow.user_id,
                    JobRow.kind,
                    JobRow.project,
                    JobRow.state,
                    JobRow.result,
                    JobRow.error,
                    JobRow.created_at,
                    JobRow.started_at,
                    JobRow.finished_at,
                ).where(JobRow.id == job_id)
            ).first()
        return None if row is None else Job(*row)

    def shutdown(self) -> None:
        """Drop queued jobs (marked failed) and wait for the running one (never cut off midway)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._set(
            sa.and_(JobRow.runner == self.name, JobRow.state == "queued"),
            state="failed",
            error="the server stopped before this job started; start it again",
            finished_at=_now(),
        )

    def _set(self, where: Any, **values: Any) -> None:
        with self._store.engine.begin() as conn:
            conn.execute(sa.update(JobRow).where(where).values(**values))

    def _run(self, job_id: str, work: Callable[[], Any]) -> None:
        this = JobRow.id == job_id
        self._set(this, state="running", started_at=_now())
        try:
            result = work()
        except VeritagError as exc:
            self._set(this, state="failed", error=str(exc), finished_at=_now())
        except Exception:
            log.exception("job %s failed", job_id)
            self._set(
                this,
                state="failed",
                error=f"internal error in job {job_id}; see the server log",
                finished_at=_now(),
            )
        else:
            self._set(this, state="done", result=result, finished_at=_now())

    def _fail_orphans(self) -> None:
        """Jobs left queued or running by a process of this host that is gone."""
        host = f"{socket.gethostname()}:"
        with self._store.engine.connect() as conn:
            rows = conn.execute(
                sa.select(JobRow.id, JobRow.runner).where(
                    JobRow.state.in_(("queued", "running")),
                    JobRow.runner.startswith(host, autoescape=True),
                )
            ).all()
        dead = [r.id for r in rows if not pid_alive(int(r.runner[len(host) :].split(":")[0]))]
        if dead:
            self._set(
                JobRow.id.in_(dead),
                state="failed",
                finished_at=_now(),
                error="the server process running this job stopped; start it again",
            )


_create = threading.Lock()


def job_runner(app: FastAPI) -> JobRunner:
    """The app's job runner, made on first use."""
    runner: JobRunner | None = getattr(app.state, "jobs", None)
    if runner is None:
        with _create:
            runner = getattr(app.state, "jobs", None)
            if runner is None:
                runner = app.state.jobs = JobRunner(app.state.store)
    return runner


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Stop the app's job runner when the app stops."""
    yield
    runner: JobRunner | None = getattr(app.state, "jobs", None)
    if runner is not None:
        await asyncio.to_thread(runner.shutdown)
