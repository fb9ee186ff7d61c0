"""Resolve as a job (issue 17 §2, "the server only enqueues"), on SQLite and PostgreSQL: the
``resolve`` kind stores a run and answers what ``POST .../resolve`` answered inline before, and
``queue.enqueue_once`` keeps one waiting job per kind and project however many callers race."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from vt_helpers import make_project

from veritag.jobs import queue
from veritag.jobs.worker import Worker
from veritag.store import Store
from veritag.store.claims import add_claim
from veritag.store.models import Item, TruthRun
from veritag.store.models import Job as JobRow
from veritag.store.queries import create_user, source_ids

SCHEMA = {"type": "classification", "labels": ["yes", "no"]}


@pytest.fixture
def owner(store: Store) -> int:
    """A user who starts the jobs, and project ``p``: two items, three claims of two tutors."""
    with store.session() as session:
        user = create_user(session, username="ana", password="correct horse", role="admin")
        user_id = int(user.id)
    project = make_project(store, "p", SCHEMA)
    with store.begin_write() as conn:
        items = [
            int(
                conn.execute(
                    sa.insert(Item).values(project_id=project.id, external_id=name)
                ).inserted_primary_key[0]
            )
            for name in ("a", "b")
        ]
        tutors = source_ids(conn, project_id=project.id, kind="human", names={"ann", "bob"})
        add_claim(conn, project.id, items[0], tutors["ann"], value="yes")
        add_claim(conn, project.id, items[0], tutors["bob"], value="no")
        add_claim(conn, project.id, items[1], tutors["ann"], value="no")
    return user_id


def _once(store: Store, owner: int, project: str = "p", kind: str = "resolve") -> tuple[str, bool]:
    job, new = queue.enqueue_once(
        store, kind=kind, project=project, owner=owner, params={"method": "mv"}
    )
    return job.id, new


def _queued(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(
            conn.scalar(
                sa.select(sa.func.count()).select_from(JobRow).where(JobRow.state == "queued")
            )
            or 0
        )


def test_the_resolve_kind_stores_a_run_and_answers_with_it(store: Store, owner: int) -> None:
    job = queue.enqueue(store, kind="resolve", project="p", owner=owner, params={"method": "mv"})
    assert Worker(store, name="w").run_one()
    done = queue.get(store, job.id)
    assert done is not None and (done.state, done.attempts) == ("done", 1), done
    result = done.result
    with store.engine.connect() as conn:
        run = conn.execute(sa.select(TruthRun.id, TruthRun.method)).one()
    assert (result["run"], result["method"], result["requested_method"]) == (run.id, "mv", "mv")
    assert result["items"] == 2 and result["from"] == {"claims": 2, "model": 0, "gold": 0}
    assert {s["source"] for s in result["sources"]} == {"ann", "bob"}
    assert result["open_ended"] is False and set(result) == {
        "run",
        "method",
        "requested_method",
        "engine_version",
        "open_ended",
        "iterations",
        "converged",
        "items",
        "from",
        "sources",
    }


def test_a_bad_method_fails_the_job_at_once(store: Store, owner: int) -> None:
    job = queue.enqueue(store, kind="resolve", project="p", owner=owner, params={"method": "magic"})
    Worker(store, name="w").run_one()
    failed = queue.get(store, job.id)
    assert failed is not None and (failed.state, failed.attempts) == ("failed", 1)
    assert "magic" in (failed.error or "")


def test_enqueue_once_hands_back_the_job_no_worker_took_yet(store: Store, owner: int) -> None:
    first, new = _once(store, owner)
    assert new
    assert _once(store, owner) == (first, False)
    make_project(store, "q", SCHEMA)
    other_project, new_there = _once(store, owner, project="q")
    other_kind, new_kind = _once(store, owner, kind="automate")
    assert new_there and new_kind and len({first, other_project, other_kind}) == 3
    # once a worker took it, it may have read the project before the caller's write: a new one
    taken = [queue.claim(store, "w", timeout=60) for _ in range(3)]
    assert first in {job.id for job in taken if job is not None}
    second, new = _once(store, owner)
    assert new and second != first
    assert _once(store, owner) == (second, False)
    plain = queue.enqueue(store, kind="resolve", project="p", owner=owner, params={})
    assert plain.id not in (first, second)  # ``enqueue`` itself always queues


def test_racing_callers_queue_one_job(store: Store, owner: int) -> None:
    callers = 8
    start = threading.Barrier(callers)
    got: list[tuple[str, bool]] = []
    lock = threading.Lock()

    def call() -> None:
        start.wait()
        found = _once(store, owner)
        with lock:
            got.append(found)

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(got) == callers and len({job for job, _ in got}) == 1
    assert sum(new for _, new in got) == 1 and _queued(store) == 1
