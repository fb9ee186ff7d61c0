"""The server's side of background jobs (autolabel, automate, resolve, routing refits): queue
them, answer polls, and run the embedded worker.

A request that starts a job gets ``202`` and a job id at once: the job is a row of the queue
(``veritag.jobs.queue``) holding everything needed to run it, and the client polls
``GET /api/v1/jobs/{id}``, which any server process answers from the database.

Who runs it: with ``VERITAG_EMBEDDED_WORKER`` true (the default, so ``veritag serve`` alone does
everything) each server process runs one worker thread of the same queue code, so its jobs run
one at a time and the request threads stay free; a job queued here wakes it at once. With it
false the server only queues, and ``veritag worker`` processes (on this host or others) run the
jobs. A job whose worker died is taken again by another after ``VERITAG_JOB_HEARTBEAT_TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from ..config import load_settings
from ..jobs import queue
from ..jobs.queue import Job, JobState
from ..jobs.worker import Worker
from ..store.models import Project

__all__ = ["Job", "JobState", "enqueue", "enqueue_once", "get", "lifespan", "queue_refit"]

_create = threading.Lock()


def _embedded(app: FastAPI) -> Worker | None:
    """The app's embedded worker, started on first use; None when the setting is off."""
    if not load_settings().embedded_worker:
        return None
    worker: Worker | None = getattr(app.state, "job_worker", None)
    if worker is None:
        with _create:
            worker = getattr(app.state, "job_worker", None)
            if worker is None:
                worker = Worker(app.state.store)
                thread = threading.Thread(target=worker.run, name="veritag-jobs", daemon=True)
                thread.start()
                app.state.job_worker, app.state.job_thread = worker, thread
    return worker


def _wake(app: FastAPI) -> None:
    """Wake this process's embedded worker (if it runs one) for a job just queued, rather than
    leave the job waiting for the worker's next poll."""
    worker = _embedded(app)
    if worker is not None:
        worker.wake()


def enqueue(app: FastAPI, *, kind: str, project: str, owner: int, params: dict[str, Any]) -> Job:
    """Queue a job for a worker (and wake this process's embedded one)."""
    job = queue.enqueue(app.state.store, kind=kind, project=project, owner=owner, params=params)
    _wake(app)
    return job


def enqueue_once(
    app: FastAPI, *, kind: str, project: str, owner: int, params: dict[str, Any]
) -> tuple[Job, bool]:
    """Queue a job unless a ``kind`` job of ``project`` is waiting already (``queue.enqueue_once``:
    that one, and False); a new one wakes this process's embedded worker."""
    job, queued = queue.enqueue_once(
        app.state.store, kind=kind, project=project, owner=owner, params=params
    )
    if queued:
        _wake(app)
    return job, queued


#: When this process last queued a refit job, per store and project.
_refits: dict[tuple[str, int], float] = {}
#: Seconds between two refit jobs queued by one process for one project: the job queue keeps
#: one waiting anyway, this only spares requests its write.
REFIT_QUEUE_SECONDS = 1.0


def queue_refit(app: FastAPI, project: Project, owner: int) -> None:
    """Hand a due refit of the routing queue to the workers (``routing.queue``), at most one
    waiting job per project, instead of fitting in the request; this process's embedded worker
    is woken for it."""
    store = app.state.store
    key = (str(store.engine.url), project.id)
    now = time.monotonic()
    if now - _refits.get(key, -REFIT_QUEUE_SECONDS) < REFIT_QUEUE_SECONDS:
        return
    _refits[key] = now
    enqueue_once(app, kind="refit", project=project.name, owner=owner, params={})


def get(app: FastAPI, job_id: str) -> Job | None:
    return queue.get(app.state.store, job_id)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the embedded worker with the app (it runs jobs queued before a restart), and stop it
    with the app: the job it runs finishes, queued ones wait for the next worker."""
    _embedded(app)
    yield
    worker: Worker | None = getattr(app.state, "job_worker", None)
    if worker is not None:
        worker.stop()
        await asyncio.to_thread(app.state.job_thread.join)
