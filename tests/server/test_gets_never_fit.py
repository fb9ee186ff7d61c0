"""A GET never runs the truth engine and never stores a truth run (issue 16): it reads the newest
stored run and says how stale it is; writes and commands fit."""

from __future__ import annotations

import sqlalchemy as sa
from server_helpers import World

from veritag.store.models import Claim, Posterior, Source, TruthRun

READS = [
    "/projects/p/status",
    "/projects/p/dashboard",
    "/projects/p/review/queue",
    "/projects/p/queue",
    "/projects/p/reports/quality",
    "/projects/p/reports/automation",
    "/projects/p/routing",
    "/projects/p/export?format=jsonl",
    "/projects/p/export?format=csv",
]


def _runs(w: World) -> tuple[int, int]:
    with w.store.engine.connect() as conn:
        return (
            int(conn.scalar(sa.select(sa.func.count()).select_from(TruthRun))),
            int(conn.scalar(sa.select(sa.func.count()).select_from(Posterior))),
        )


def _label(w: World, item: str, value: str, worker: str) -> None:
    with w.store.session() as session:
        project_id = session.scalar(
            sa.text("SELECT project_id FROM items WHERE id = :i"), {"i": w.items[item]}
        )
        source = session.scalar(
            sa.select(Source).where(Source.project_id == project_id, Source.name == worker)
        )
        if source is None:
            source = Source(project_id=project_id, kind="human", name=worker)
            session.add(source)
            session.flush()
        session.add(
            Claim(project_id=project_id, item_id=w.items[item], source_id=source.id, value=value)
        )


def test_no_get_writes_a_truth_run(world: World) -> None:
    w = world
    for worker, value in (("w1", "yes"), ("w2", "no"), ("w3", "yes")):
        _label(w, "plain", value, worker)
    for path in READS:  # a project never resolved: reads answer, nothing is fitted or stored
        r = w.call("ana", "GET", path)
        assert r.status_code < 500, (path, r.text)
        assert _runs(w) == (0, 0), path
    assert w.call("ana", "GET", "/projects/p/export?format=jsonl").status_code == 409
    queue = w.call("ana", "GET", "/projects/p/review/queue").json()
    assert queue["truth"] == {"run": None, "stale": True, "claims_since": 0, "refitted": False}
    assert queue["total"] >= 1  # the tutors' disagreement shows without any run
    assert w.call("ana", "POST", "/projects/p/resolve", json={"method": "ds"}).status_code == 201
    stored = _runs(w)
    assert stored[0] == 1
    _label(w, "html", "no", "w1")  # a claim after the run
    for path in READS:
        assert w.call("ana", "GET", path).status_code < 500, path
        assert _runs(w) == stored, path
    export = w.call("ana", "GET", "/projects/p/export?format=jsonl")
    assert export.status_code == 200 and export.headers["X-Veritag-Claims-Since"] == "1"
    assert w.call("ana", "GET", "/projects/p/review/queue").json()["truth"]["claims_since"] == 1
