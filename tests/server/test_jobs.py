"""Job records live in the store: any server process answers a poll, and a dead runner's jobs
fail."""

from __future__ import annotations

import socket
import threading
import time

import sqlalchemy as sa
from fastapi.testclient import TestClient
from server_helpers import World

from veritag.errors import VeritagError
from veritag.server import create_app
from veritag.server.jobs import JobRunner
from veritag.store.models import Job as JobRow
from veritag.store.models import User


def _user_id(w: World, name: str) -> int:
    with w.store.session() as session:
        return int(session.scalar(sa.select(User.id).where(User.username == name)))


def _wait(runner: JobRunner, job_id: str) -> str:
    for _ in range(200):
        job = runner.get(job_id)
        assert job is not None
        if job.state in ("done", "failed"):
            return job.state
        time.sleep(0.02)
    raise AssertionError("job did not finish")


def test_another_process_answers_the_poll(world: World) -> None:
    w = world
    runner = JobRunner(w.store)
    release = threading.Event()
    job = runner.submit(
        lambda: release.wait(5) and {"ok": 1}, owner=_user_id(w, "ana"), kind="test", project="p"
    )
    with TestClient(create_app(w.store)) as other:  # a second worker over the same database
        seen = other.get(f"/api/v1/jobs/{job.id}", headers=w.as_("ana")).json()
        assert seen["state"] in ("queued", "running") and seen["kind"] == "test"
        release.set()
        assert _wait(runner, job.id) == "done"
        assert other.get(f"/api/v1/jobs/{job.id}", headers=w.as_("ana")).json()["result"] == {
            "ok": 1
        }
        assert other.get(f"/api/v1/jobs/{job.id}", headers=w.as_("rev")).status_code == 404
    failing = runner.submit(
        lambda: (_ for _ in ()).throw(VeritagError("too few labels")),
        owner=1,
        kind="t",
        project="p",
    )
    assert _wait(runner, failing.id) == "failed"
    assert runner.get(failing.id).error == "too few labels"  # type: ignore[union-attr]
    runner.shutdown()


def test_jobs_of_a_dead_process_are_failed_at_start(world: World) -> None:
    w = world
    host = socket.gethostname()
    with w.store.engine.begin() as conn:
        for job_id, runner, state in [
            ("dead", f"{host}:999999999:ab", "running"),
            ("alive", f"{host}:1:ab", "running"),  # pid 1 exists
            ("elsewhere", "other-host:999999999:ab", "queued"),
        ]:
            conn.execute(
                sa.insert(JobRow).values(
                    id=job_id,
                    user_id=_user_id(w, "ana"),
                    kind="t",
                    project="p",
                    state=state,
                    runner=runner,
                )
            )
    runner = JobRunner(w.store)
    states = {j: runner.get(j).state for j in ("dead", "alive", "elsewhere")}  # type: ignore[union-attr]
    assert states == {"dead": "failed", "alive": "running", "elsewhere": "queued"}
    assert "stopped" in (runner.get("dead").error or "")  # type: ignore[union-attr]
    runner.shutdown()
