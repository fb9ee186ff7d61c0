"""No request fits the truth model (issue 17 §2): ``POST .../resolve`` queues a job as autolabel
and automate do, and an import whose labels make the run due for a refit queues one resolve job
per project (another import finds it waiting) instead of fitting before it answers."""

from __future__ import annotations

import csv
import io
import threading
from typing import Any

import pytest
import sqlalchemy as sa
from server_helpers import World

from veritag.jobs.worker import Worker
from veritag.resolve.current import REFIT_CLAIMS
from veritag.server import jobs as server_jobs
from veritag.server.responses import ResolveOut
from veritag.server.routes.data import RESOLVE_JOB_HEADER
from veritag.store import Store
from veritag.store.models import TruthRun


@pytest.fixture
def queue_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app ``world`` makes after this only queues jobs; the tests run them."""
    monkeypatch.setenv("VERITAG_EMBEDDED_WORKER", "false")


def _import(w: World, rows: list[tuple[str, str, str]], name: str = "labels.csv") -> Any:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["task", "worker", "label"])
    writer.writerows(rows)
    r = w.call(
        "ana",
        "POST",
        "/projects/p/import",
        files={"file": (name, buf.getvalue().encode(), "text/csv")},
    )
    assert r.status_code == 200, r.text
    return r


def _runs(w: World) -> int:
    with w.store.engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(TruthRun)) or 0)


def _work(w: World) -> None:
    Worker(w.store, name="test").run(once=True)


def test_resolve_answers_202_with_the_job(queue_only: None, world: World) -> None:
    w = world
    _import(w, [("plain", "ann", "yes"), ("plain", "bob", "no"), ("html", "ann", "no")])
    _work(w)
    before = _runs(w)
    started = w.call("rev", "POST", "/projects/p/resolve", json={"method": "mv"})
    assert started.status_code == 202, started.text
    body = started.json()
    assert body == {
        "job": body["job"],
        "kind": "resolve",
        "state": "queued",
        "status_url": f"/api/v1/jobs/{body['job']}",
    }
    assert started.headers["location"] == body["status_url"] and _runs(w) == before
    _work(w)
    job = w.poll("rev", body["status_url"])
    assert job["state"] == "done" and job["result"]["method"] == "mv", job
    assert job["result"]["run"] > 0 and _runs(w) == before + 1
    status = w.call("rev", "GET", "/projects/p/status").json()["resolution"]
    assert status["run"] == job["result"]["run"] and status["stale"] is False
    assert w.call("ana", "POST", "/projects/p/resolve", json={"method": "magic"}).status_code == 422


def test_an_import_queues_one_resolve_job_and_never_fits(queue_only: None, world: World) -> None:
    w = world
    first = _import(w, [("plain", "ann", "yes"), ("plain", "bob", "no")])
    url = first.headers[RESOLVE_JOB_HEADER]  # no run yet: a fit is due
    again = _import(w, [("html", "ann", "no")], "more.csv")
    assert again.headers[RESOLVE_JOB_HEADER] == url  # the waiting job will read both imports
    assert _runs(w) == 0
    assert w.call("rev", "GET", "/projects/p/export?format=jsonl").status_code == 409
    assert w.call("ana", "GET", url.removeprefix("/api/v1")).json()["state"] == "queued"
    _work(w)
    job = w.poll("ana", url)
    assert job["state"] == "done" and job["result"]["from"]["claims"] == 2, job
    export = w.call("rev", "GET", "/projects/p/export?format=jsonl")
    assert export.status_code == 200 and export.headers["X-Veritag-Claims-Since"] == "0"

    few = _import(w, [("html", "bob", "no")], "few.csv")  # under the threshold: folded in later
    assert RESOLVE_JOB_HEADER not in few.headers and _runs(w) == 1
    many = [("plain", f"t{i}", "yes") for i in range(REFIT_CLAIMS + 1)]
    due = _import(w, many, "many.csv")
    later = due.headers[RESOLVE_JOB_HEADER]
    assert later != url and _runs(w) == 1
    _work(w)
    assert w.poll("ana", later)["state"] == "done" and _runs(w) == 2
    export = w.call("rev", "GET", "/projects/p/export?format=jsonl")
    assert export.headers["X-Veritag-Claims-Since"] == "0"


class _WokenOnly(Worker):
    """An embedded worker that looks for jobs once an hour unless woken, and says when it first
    found none: a job it runs within a test's minute was woken for, not found by a poll."""

    def __init__(self, store: Store) -> None:
        super().__init__(store, poll=3600.0)
        self.idle = threading.Event()

    def run_one(self) -> bool:
        found = super().run_one()
        if not found:
            self.idle.set()
        return found


@pytest.fixture
def woken_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app ``world`` makes after this runs a ``_WokenOnly`` embedded worker."""
    monkeypatch.setenv("VERITAG_EMBEDDED_WORKER", "true")
    monkeypatch.setattr(server_jobs, "Worker", _WokenOnly)


def test_an_imports_resolve_job_wakes_the_embedded_worker(woken_only: None, world: World) -> None:
    """The resolve job an import queues runs at once on this process's embedded worker, as a
    ``POST .../resolve`` job does, rather than at its next poll."""
    w = world
    worker = w.client.app.state.job_worker  # type: ignore[attr-defined]
    assert isinstance(worker, _WokenOnly) and worker.idle.wait(30)  # asleep: only a wake runs it
    url = _import(w, [("plain", "ann", "yes"), ("plain", "bob", "no")]).headers[RESOLVE_JOB_HEADER]
    job = w.poll("ana", url, timeout=60)
    assert job["state"] == "done" and _runs(w) == 1, job
    assert ResolveOut.model_validate(job["result"]).basis["claims"] == 1
