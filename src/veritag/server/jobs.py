"""Background jobs of the API: project operations that take minutes (autolabel, automate).

A request that starts one gets ``202`` and a job id at once; the work runs on the app's job
runner and the client polls ``GET /api/v1/jobs/{id}``.

Jobs are per process: they live in memory on ``app.state`` and run one at a time on a single
worker thread, so two trainings never fight over the cores and the request threads stay free.
A restart forgets the job records (what a finished job wrote is in the database), and a server
run as several processes must send a client's polls to the process that took the job.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import FastAPI

from ..errors import VeritagError

__all__ = ["KEEP_FINISHED", "Job", "JobRunner", "JobState", "job_runner", "lifespan"]

log = logging.getLogger(__name__)

JobState = Literal["queued", "running", "done", "failed"]
#: Finished jobs kept for polling; past this many the oldest finished ones are forgotten.
KEEP_FINISHED = 1000


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Job:
    """One job: who started it (user id), what it runs and where it stands."""

    id: str
    owner: int
    kind: str
    project: str
    state: JobState = "queued"
    result: Any = None
    error: str | None = None
    created_at: datetime = field(default_factory=_now)
    started_at: datetime | None = None
    finished_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"job": self.id, "kind": self.kind, "project": self.project, "state": self.state}
        if self.state == "done":
            out["result"] = self.result
        if self.state == "failed":
            out["error"] = self.error
        for name in ("created_at", "started_at", "finished_at"):
            value = getattr(self, name)
            out[name] = None if value is None else value.isoformat()
        return out


class JobRunner:
    """Runs jobs one at a time on one thread and keeps their records in memory."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="veritag-job")
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def submit(self, work: Callable[[], Any], *, owner: int, kind: str, project: str) -> Job:
        """Queue ``work`` (which returns JSON-ready data); a ``VeritagError`` it raises fails the job
        with its message, anything else fails it with a pointer to the server log."""
        job = Job(id=secrets.token_urlsafe(12), owner=owner, kind=kind, project=project)
        with self._lock:
            self._forget_old()
            self._jobs[job.id] = job
        self._pool.submit(self._run, job, work)
        return dataclasses.replace(job)

    def get(self, job_id: str) -> Job | None:
        """A snapshot of the job, so a reader never sees it half-updated."""
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else dataclasses.replace(job)

    def shutdown(self) -> None:
        """Drop queued jobs and wait for the running one (work is never cut off midway)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _update(self, job: Job, **changes: Any) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(job, name, value)

    def _run(self, job: Job, work: Callable[[], Any]) -> None:
        self._update(job, state="running", started_at=_now())
        try:
            result = work()
        except VeritagError as exc:
            self._update(job, state="failed", error=str(exc), finished_at=_now())
        except Exception:
            log.exception("job %s (%s of project %r) failed", job.id, job.kind, job.project)
            self._update(job, state="failed", error=f"internal error in job {job.id}; see the server log",
                         finished_at=_now())
        else:
            self._update(job, state="done", result=result, finished_at=_now())

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.state in ("done", "failed")]
        for job in sorted(finished, key=lambda j: j.created_at)[: max(0, len(finished) - KEEP_FINISHED + 1)]:
            del self._jobs[job.id]


_create = threading.Lock()


def job_runner(app: FastAPI) -> JobRunner:
    """The app's job runner, made on first use."""
    runner: JobRunner | None = getattr(app.state, "jobs", None)
    if runner is None:
        with _create:
            runner = getattr(app.state, "jobs", None)
            if runner is None:
                runner = app.state.jobs = JobRunner()
    return runner


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Stop the app's job runner when the app stops."""
    yield
    runner: JobRunner | None = getattr(app.state, "jobs", None)
    if runner is not None:
        await asyncio.to_thread(runner.shutdown)
