"""The job queue (``veritag.jobs``), on SQLite and PostgreSQL: workers never run one job twice, a
failing job is retried then failed with its error, a dead worker's job is taken again (by an old
heartbeat, and by a real ``veritag worker`` killed with SIGKILL), and a server with the embedded
worker off only queues while a ``veritag worker`` process runs the job the API then reports."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from fastapi.testclient import TestClient
from server_helpers import PASSWORD, SCHEMA, VERITAG, World
from test_api_ops import LABELED, N, _spam

from veritag.errors import VeritagError
from veritag.jobs import kinds, queue
from veritag.jobs.worker import Worker
from veritag.server import create_app
from veritag.store import Store, open_store
from veritag.store.engine import _alembic_config
from veritag.store.models import Job as JobRow
from veritag.store.queries import create_project, create_user


@pytest.fixture
def owner(store: Store) -> int:
    """A user who starts the jobs, and project ``p`` they run on."""
    with store.session() as session:
        user = create_user(session, username="ana", password=PASSWORD, role="admin")
        create_project(session, name="p", schema=SCHEMA)
        return int(user.id)


def _enqueue(store: Store, owner: int, kind: str, **params: Any) -> queue.Job:
    return queue.enqueue(store, kind=kind, project="p", owner=owner, params=params)


def _state(store: Store, job_id: str) -> queue.Job:
    found = queue.get(store, job_id)
    assert found is not None
    return found


def _age_heartbeat(store: Store, job_id: str, seconds: float) -> None:
    old = datetime.now(UTC) - timedelta(seconds=seconds)
    with store.engine.begin() as conn:
        conn.execute(sa.update(JobRow).where(JobRow.id == job_id).values(heartbeat_at=old))


def test_two_workers_never_run_one_job_twice(
    store: Store, owner: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: Counter[str] = Counter()
    ran_by: dict[str, str] = {}
    lock = threading.Lock()

    def count(_store: Store, _project: Any, params: dict[str, Any]) -> Any:
        with lock:
            runs[params["n"]] += 1
            ran_by[params["n"]] = threading.current_thread().name
        time.sleep(0.01)
        return {"n": params["n"]}

    monkeypatch.setitem(kinds.KINDS, "count", count)
    jobs = [_enqueue(store, owner, "count", n=str(i)) for i in range(24)]
    workers = [Worker(store, poll=0.05, name=f"w{i}") for i in range(2)]
    threads = [
        threading.Thread(target=w.run, kwargs={"concurrency": 2, "once": True}) for w in workers
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert runs == Counter({str(i): 1 for i in range(24)})
    done = [_state(store, j.id) for j in jobs]
    assert {(j.state, j.attempts) for j in done} == {("done", 1)}
    assert [j.result for j in done] == [{"n": str(i)} for i in range(24)]
    assert {j.runner for j in done} <= {"w0", "w1"}


def test_a_failing_job_is_retried_then_failed_with_its_error(
    store: Store, owner: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: Counter[str] = Counter()

    def flaky(_store: Store, _project: Any, params: dict[str, Any]) -> Any:
        calls[params["name"]] += 1
        if params["name"] == "user mistake":
            raise VeritagError("too few labels")
        if params["name"] == "passing" and calls["passing"] == 1:
            raise ConnectionError("database restarting")
        if params["name"] == "broken":
            raise RuntimeError("secret SQL text")
        return "ok"

    monkeypatch.setitem(kinds.KINDS, "flaky", flaky)
    broken = _enqueue(store, owner, "flaky", name="broken")
    mistake = _enqueue(store, owner, "flaky", name="user mistake")
    passing = _enqueue(store, owner, "flaky", name="passing")
    Worker(store, name="w").run(once=True)
    assert calls == Counter({"broken": 3, "user mistake": 1, "passing": 2})
    failed = _state(store, broken.id)
    assert (failed.state, failed.attempts) == ("failed", 3)
    assert failed.error is not None
    assert "RuntimeError" in failed.error and "attempt 3 of 3" in failed.error
    assert "secret" not in failed.error and "worker w" in failed.error
    assert failed.to_json()["error"] == failed.error
    wrong = _state(store, mistake.id)
    assert (wrong.state, wrong.attempts, wrong.error) == ("failed", 1, "too few labels")
    recovered = _state(store, passing.id)
    assert (recovered.state, recovered.attempts, recovered.result) == ("done", 2, "ok")
    assert recovered.to_json()["result"] == "ok" and "error" not in recovered.to_json()


def test_a_job_without_heartbeat_is_taken_again_and_the_old_worker_stores_nothing(
    store: Store, owner: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(kinds.KINDS, "echo", lambda _s, _p, params: params)
    job = _enqueue(store, owner, "echo", x=1)
    taken = queue.claim(store, "dead", timeout=60)
    assert taken is not None and taken.id == job.id and taken.state == "running"
    assert queue.claim(store, "other", timeout=60) is None  # alive: nobody else takes it
    _age_heartbeat(store, job.id, 61)
    assert Worker(store, name="heir", timeout=60).run_one()
    assert not queue.finish(store, taken, "dead", {"late": True})  # no longer its job
    assert not queue.heartbeat(store, taken, "dead")
    after = _state(store, job.id)
    assert (after.state, after.attempts, after.runner, after.result) == (
        "done",
        2,
        "heir",
        {"x": 1},
    )


def test_a_dead_workers_last_attempt_fails_and_a_handed_back_job_keeps_its_attempts(
    store: Store, owner: int
) -> None:
    last = queue.enqueue(store, kind="echo", project="p", owner=owner, params={}, max_attempts=1)
    assert queue.claim(store, "dead", timeout=60) is not None
    _age_heartbeat(store, last.id, 61)
    assert queue.claim(store, "heir", timeout=60) is None
    failed = _state(store, last.id)
    assert failed.state == "failed" and "no heartbeat for 60 s" in (failed.error or "")
    handed = _enqueue(store, owner, "echo")
    taken = queue.claim(store, "stopping", timeout=60)
    assert taken is not None and queue.hand_back(store, taken, "stopping")
    back = _state(store, handed.id)
    assert (back.state, back.attempts) == ("queued", 0)


def _worker_process(url: str, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "VERITAG_DATABASE_URL"}
    env |= {"VERITAG_TEST_JOB_KINDS": "1", "VERITAG_JOB_HEARTBEAT_TIMEOUT": "2"}
    return subprocess.Popen(
        [str(VERITAG), "worker", "--db", url, "--poll", "0.1", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _until(check: Any, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


def test_a_killed_worker_process_job_is_finished_by_another(
    store: Store, owner: int, migrated_url: str, processes: list[subprocess.Popen[bytes]]
) -> None:
    job = _enqueue(store, owner, "sleep", seconds=3)
    first = _worker_process(migrated_url)
    processes.append(first)
    _until(lambda: _state(store, job.id).state == "running")
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    assert _state(store, job.id).state == "running"  # nobody said it stopped
    second = _worker_process(migrated_url)
    processes.append(second)
    _until(lambda: _state(store, job.id).state == "done")
    done = _state(store, job.id)
    assert (done.attempts, done.result) == (2, {"slept": 3})
    assert done.runner.split(":")[1] == str(second.pid)
    second.send_signal(signal.SIGTERM)  # idle: stops at once
    assert second.wait(30) == 0
    assert b"handed back" not in (second.stdout.read() if second.stdout else b"")


def test_two_worker_processes_share_the_queue(
    store: Store, owner: int, migrated_url: str, processes: list[subprocess.Popen[bytes]]
) -> None:
    jobs = [_enqueue(store, owner, "sleep", seconds=0.3) for _ in range(40)]
    pair = [_worker_process(migrated_url, "--once", "--concurrency", "2") for _ in range(2)]
    processes.extend(pair)
    assert [proc.wait(120) for proc in pair] == [0, 0]
    done = [_state(store, job.id) for job in jobs]
    assert {(job.state, job.attempts) for job in done} == {("done", 1)}  # a double take: 2
    assert {job.runner.split(":")[1] for job in done} == {str(proc.pid) for proc in pair}


def test_sigterm_hands_back_a_job_that_outlasts_the_grace(
    store: Store, owner: int, migrated_url: str, processes: list[subprocess.Popen[bytes]]
) -> None:
    job = _enqueue(store, owner, "sleep", seconds=30)
    worker = _worker_process(migrated_url, "--grace", "0.5")
    processes.append(worker)
    _until(lambda: _state(store, job.id).state == "running")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    back = _state(store, job.id)
    assert (back.state, back.attempts) == ("queued", 0)


@pytest.fixture
def queue_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Servers made after this only queue jobs (asked first, before ``world`` makes its app)."""
    monkeypatch.setenv("VERITAG_EMBEDDED_WORKER", "false")


def test_a_server_without_embedded_worker_only_queues_and_a_worker_runs_it(
    queue_only: None, world: World, migrated_url: str, processes: list[subprocess.Popen[bytes]]
) -> None:
    w = world
    _spam(w)
    started = w.call("ana", "POST", "/projects/spam/autolabel", json={"labeler": "tfidf"})
    assert started.status_code == 202, started.text
    url = started.json()["status_url"]
    time.sleep(1.5)  # an embedded worker would have taken it by now
    waiting = w.client.get(url, headers=w.as_("ana")).json()
    assert (waiting["state"], waiting["attempts"]) == ("queued", 0)
    worker = _worker_process(migrated_url, "--once")
    processes.append(worker)
    assert worker.wait(120) == 0
    job = w.client.get(url, headers=w.as_("ana")).json()
    assert (job["state"], job["kind"], job["attempts"]) == ("done", "autolabel", 1), job
    assert job["result"]["trained"] == LABELED and job["result"]["claims_added"] == N
    with TestClient(create_app(w.store)) as other:  # any server process answers the poll
        assert other.get(url, headers=w.as_("ana")).json()["result"] == job["result"]
        assert other.get(url, headers=w.as_("rev")).status_code == 404


def test_autolabel_run_again_adds_no_claims(world: World) -> None:
    """A worker that crashed after autolabel stored its claims runs it again: nothing is added."""
    w = world
    _spam(w)
    params = {"labeler": "tfidf", "fields": [], "folds": 5, "seed": 0}
    first = kinds.run_kind(w.store, "autolabel", "spam", params)
    again = kinds.run_kind(w.store, "autolabel", "spam", params)
    assert first["claims_added"] == N and again["claims_added"] == 0


def test_upgrade_fails_the_jobs_an_older_server_left_and_downgrade_drops_the_queue(
    db_url: str,
) -> None:
    """Jobs queued before 0012 were closures of a server process: no worker can run them."""
    store = open_store(db_url, migrate=False)
    try:
        with store.engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "0011")
            conn.execute(
                sa.text(
                    "INSERT INTO users (username, password_hash, role) VALUES ('a', 'x', 'admin')"
                )
            )
            for job_id, state in (("left", "running"), ("old", "done")):
                conn.execute(
                    sa.text(
                        "INSERT INTO jobs (id, user_id, kind, project, state, runner) "
                        "VALUES (:id, 1, 'autolabel', 'p', :state, 'h:1:t')"
                    ),
                    {"id": job_id, "state": state},
                )
        store.migrate()
        left, old = queue.get(store, "left"), queue.get(store, "old")
        assert left is not None and old is not None
        assert (left.state, left.attempts, old.state) == ("failed", 0, "done")
        assert "upgraded" in (left.error or "")
        with store.engine.begin() as conn:
            command.downgrade(_alembic_config(conn), "0011")
        columns = {c["name"] for c in sa.inspect(store.engine).get_columns("jobs")}
        assert not columns & {"params", "attempts", "max_attempts", "heartbeat_at"}
    finally:
        store.close()
