"""The tutor's loop beyond submit: time per item, skip reasons, undo, pairwise sides; API tokens."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient
from server_helpers import World

from veritag.routing import service as routing
from veritag.server.app import create_app
from veritag.store.models import Assignment, Claim, Item, Membership, Project, User

PAIR = {"type": "pairwise"}


def _pairwise_project(w: World, n: int = 12) -> None:
    """Project ``pw``: ``n`` prompts whose responses name their model, ``tut`` as its tutor."""
    assert (
        w.call("ana", "POST", "/projects", json={"name": "pw", "schema": PAIR}).status_code == 201
    )
    with w.store.session() as session:
        proj = session.scalar(sa.select(Project).where(Project.name == "pw"))
        tut = session.scalar(sa.select(User).where(User.username == "tut"))
        assert proj is not None and tut is not None
        session.add_all(
            Item(
                project_id=proj.id,
                external_id=f"c{i}",
                text=None,
                data={
                    "prompt": f"question {i}",
                    "response_a": f"A-answer {i}",
                    "response_b": f"B-answer {i}",
                    "model_a": "gpt-x",
                    "model_b": "llama-y",
                },
                meta={"domain": "general"},
            )
            for i in range(n)
        )
        session.add(Membership(project_id=proj.id, user_id=tut.id, role="tutor"))
    with w.store.session() as session:
        proj = session.scalar(sa.select(Project).where(Project.name == "pw"))
        assert proj is not None
        session.expunge(proj)
    routing.configure(w.store, proj, gold_rate=0.0, max_labels=1, target=0.5)
    routing.add_tutor(w.store, proj, "tut")


def test_pairwise_sides_are_randomised_and_models_hidden(world: World) -> None:
    w = world
    _pairwise_project(w)
    swapped = []
    while (r := w.call("tut", "POST", "/projects/pw/work")).status_code == 200:
        lease = r.json()
        assert lease["data"] is None and lease["type"] == "pairwise"
        assert "gpt-x" not in r.text and "llama-y" not in r.text and "response_a" not in r.text
        pair = lease["pair"]
        i = pair["prompt"].split()[-1]
        assert {pair["left"], pair["right"]} == {f"A-answer {i}", f"B-answer {i}"}
        seen = w.call("tut", "GET", f"/projects/pw/items/{lease['item_id']}").json()
        assert seen["pair"] == pair and seen["data"] is None  # the item read agrees with the lease
        left_is_b = pair["left"].startswith("B")
        swapped.append(left_is_b)
        done = w.call(
            "tut", "POST", f"/projects/pw/work/{lease['lease']}/submit", json={"value": "left"}
        )
        assert done.status_code == 200, done.text
        with w.store.session() as session:  # "left" is stored as whichever response was on the left
            assert session.scalar(
                sa.select(Claim.value).where(Claim.id == done.json()["claim_id"])
            ) == ("B" if left_is_b else "A")
    assert r.status_code == 204 and len(swapped) == 12
    assert 0 < sum(swapped) < 12  # both orders occur (a fair coin per lease; 12 tosses)


def test_undo_takes_back_the_last_answer_and_the_page_can_relabel(world: World) -> None:
    w = world
    _pairwise_project(w, n=3)
    lease = w.call("tut", "POST", "/projects/pw/work").json()
    first = w.call(
        "tut",
        "POST",
        f"/projects/pw/work/{lease['lease']}/submit",
        json={"value": "right", "seconds": 7.25},
    ).json()["claim_id"]
    assert (
        w.call("out", "POST", f"/projects/pw/work/{lease['lease']}/undo").status_code == 403
    )  # not a member
    back = w.call("tut", "POST", f"/projects/pw/work/{lease['lease']}/undo")
    assert back.status_code == 200, back.text
    assert back.json()["lease"] == lease["lease"] and back.json()["previous"] == "right"
    assert back.json()["pair"] == lease["pair"]
    again = w.call("tut", "POST", f"/projects/pw/work/{lease['lease']}/undo")
    assert again.status_code == 409 and "only a submitted answer" in again.json()["detail"]
    second = w.call(
        "tut",
        "POST",
        f"/projects/pw/work/{lease['lease']}/submit",
        json={"value": "tie", "seconds": 3},
    ).json()["claim_id"]
    with w.store.session() as session:
        rows = session.execute(
            sa.select(Claim.id, Claim.value, Claim.retracts)
            .where(Claim.item_id == lease["item_id"])
            .order_by(Claim.id)
        ).all()
        assert [(r.value, r.retracts) for r in rows] == [
            (rows[0].value, None),
            (None, first),
            ("tie", None),
        ]
        assert rows[2].id == second
        assert (
            session.scalar(sa.select(Assignment.seconds).where(Assignment.id == lease["lease"]))
            == 3.0
        )
    bad = w.call(
        "tut",
        "POST",
        f"/projects/pw/work/{lease['lease']}/submit",
        json={"value": "tie", "seconds": -2},
    )
    assert bad.status_code == 422


def test_a_skip_records_its_reason(world: World) -> None:
    w = world
    lease = w.call("tut", "POST", "/projects/p/work").json()
    r = w.call(
        "tut",
        "POST",
        f"/projects/p/work/{lease['lease']}/release",
        json={"reason": "needs a chemist"},
    )
    assert r.status_code == 200
    with w.store.session() as session:
        assert session.execute(
            sa.select(Assignment.state, Assignment.skip_reason).where(
                Assignment.id == lease["lease"]
            )
        ).one() == ("released", "needs a chemist")


def test_free_text_projects_are_routed_to_tutors(world: World) -> None:
    w = world
    assert (
        w.call(
            "ana", "POST", "/projects", json={"name": "ft", "schema": {"type": "free_text"}}
        ).status_code
        == 201
    )
    with w.store.session() as session:
        proj = session.scalar(sa.select(Project).where(Project.name == "ft"))
        assert proj is not None
        session.add(
            Item(project_id=proj.id, external_id="f0", text="Rewrite this politely.", meta={})
        )
    assert (
        w.call(
            "ana", "POST", "/projects/ft/members", json={"username": "tut", "role": "tutor"}
        ).status_code
        == 201
    )
    assert w.call("ana", "POST", "/projects/ft/tutors", json={"username": "tut"}).status_code == 201
    lease = w.call("tut", "POST", "/projects/ft/work").json()
    assert lease["type"] == "free_text" and lease["text"] == "Rewrite this politely."
    empty = w.call(
        "tut", "POST", f"/projects/ft/work/{lease['lease']}/submit", json={"value": "   "}
    )
    assert empty.status_code == 422
    ok = w.call(
        "tut",
        "POST",
        f"/projects/ft/work/{lease['lease']}/submit",
        json={"value": "Please rewrite."},
    )
    assert ok.status_code == 200
    assert w.call("tut", "POST", "/projects/ft/work").status_code == 204


def test_tokens_are_listed_and_revoked(world: World) -> None:
    w = world
    made = w.call("tut", "POST", "/tokens", json={"name": "laptop"}).json()
    listed = w.call("tut", "GET", "/tokens").json()
    assert [t["name"] for t in listed][:2] == ["laptop", "test"] and "token" not in listed[0]
    assert all("hash" not in k for t in listed for k in t)
    assert w.call("rev", "DELETE", f"/tokens/{made['id']}").status_code == 404  # not rev's token
    auth = {"Authorization": f"Bearer {made['token']}"}
    assert w.client.get("/api/v1/me", headers=auth).status_code == 200
    gone = w.call("tut", "DELETE", f"/tokens/{made['id']}")
    assert gone.status_code == 200 and gone.json()["revoked"] is True
    assert w.client.get("/api/v1/me", headers=auth).status_code == 401
    other = w.call("out", "POST", "/tokens", json={"name": "x"}).json()
    assert (
        w.call("ana", "DELETE", f"/tokens/{other['id']}").status_code == 200
    )  # a global admin may
    assert (
        w.client.get(
            "/api/v1/me", headers={"Authorization": f"Bearer {other['token']}"}
        ).status_code
        == 401
    )


def test_a_tutor_member_who_is_no_routing_tutor_gets_no_work(world: World) -> None:
    w = world
    assert (
        w.call(
            "ana", "POST", "/projects/p/members", json={"username": "out", "role": "tutor"}
        ).status_code
        == 201
    )
    r = w.call("out", "POST", "/projects/p/work")
    assert r.status_code == 403 and "not a routing tutor" in r.json()["detail"]
    assert w.call("ana", "POST", "/projects/p/tutors", json={"username": "out"}).status_code == 201
    assert w.call("out", "POST", "/projects/p/work").status_code == 200


def test_asking_again_hands_back_the_running_lease_with_the_same_sides(world: World) -> None:
    w = world
    _pairwise_project(w, n=3)
    first = w.call("tut", "POST", "/projects/pw/work").json()
    again = w.call("tut", "POST", "/projects/pw/work")
    assert again.status_code == 200 and not first["resumed"] and again.json()["resumed"]
    assert {k: again.json()[k] for k in ("lease", "item_id", "pair")} == {
        k: first[k] for k in ("lease", "item_id", "pair")
    }
    assert again.json()["expires_at"] >= first["expires_at"]
    with w.store.session() as session:  # the process that handed it out is recorded
        served = session.scalar(
            sa.select(Assignment.served_by).where(Assignment.id == first["lease"])
        )
    assert served is not None and served.split(":")[1] == str(os.getpid())


def test_a_restarted_server_releases_the_leases_of_its_dead_predecessor(
    world: World, monkeypatch: Any
) -> None:
    w = world
    _pairwise_project(w, n=2)
    lease = w.call("tut", "POST", "/projects/pw/work").json()
    child = subprocess.Popen(["true"])  # a pid that has exited (and was reaped)
    child.wait()
    with w.store.engine.begin() as conn:
        conn.execute(
            sa.update(Assignment)
            .where(Assignment.id == lease["lease"])
            .values(served_by=f"{socket.gethostname()}:{child.pid}:dead")
        )
    monkeypatch.setenv("VERITAG_ORPHAN_LEASE_SECONDS", "0")
    with TestClient(create_app(w.store)):  # its start-up runs, as a restarted `veritag serve` would
        pass
    with w.store.session() as session:
        row = session.execute(
            sa.select(Assignment.state, Assignment.expires_at).where(
                Assignment.id == lease["lease"]
            )
        ).one()
    assert row.expires_at.replace(tzinfo=UTC) <= datetime.now(UTC)
    nxt = w.call("tut", "POST", "/projects/pw/work").json()
    assert not nxt["resumed"] and nxt["lease"] != lease["lease"]


def test_a_zombie_process_counts_as_dead() -> None:
    from veritag.server.common import pid_alive

    child = subprocess.Popen(["true"])
    for _ in range(200):  # exited, not yet reaped: a zombie
        with open(f"/proc/{child.pid}/stat", encoding="ascii") as stat:
            if stat.read().rpartition(")")[2].split()[0] == "Z":
                break
        time.sleep(0.01)
    assert not pid_alive(child.pid)
    child.wait()
    assert not pid_alive(child.pid) and pid_alive(os.getpid())


def test_a_due_refit_is_queued_as_a_job_and_the_embedded_worker_runs_it(world: World) -> None:
    """Tutors' requests never fit the truth: past the refit threshold a request queues a
    ``refit`` job, which this process's embedded worker runs, storing a run."""
    from veritag.resolve.current import REFIT_CLAIMS
    from veritag.store.models import Job, TruthRun

    w = world
    schema = {"type": "classification", "labels": ["a", "b"]}
    assert (
        w.call("ana", "POST", "/projects", json={"name": "rq", "schema": schema}).status_code == 201
    )
    with w.store.session() as session:
        proj = session.scalar(sa.select(Project).where(Project.name == "rq"))
        assert proj is not None
        session.add_all(
            Item(project_id=proj.id, external_id=f"r{j}", text=f"item {j}", meta={})
            for j in range(REFIT_CLAIMS + 10)
        )
    member = {"username": "tut", "role": "tutor"}
    assert w.call("ana", "POST", "/projects/rq/members", json=member).status_code == 201
    assert w.call("ana", "POST", "/projects/rq/tutors", json={"username": "tut"}).status_code == 201

    def runs() -> int:
        with w.store.engine.connect() as conn:
            return int(
                conn.scalar(
                    sa.select(sa.func.count())
                    .select_from(TruthRun)
                    .where(TruthRun.project_id == proj.id)
                )
            )

    for _ in range(REFIT_CLAIMS + 2):
        lease = w.call("tut", "POST", "/projects/rq/work").json()
        got = w.call(
            "tut", "POST", f"/projects/rq/work/{lease['lease']}/submit", json={"value": "a"}
        )
        assert got.status_code == 200
    assert w.call("tut", "POST", "/projects/rq/work").status_code == 200  # queues the refit

    def jobs() -> list[Any]:
        with w.store.engine.connect() as conn:
            return list(conn.execute(sa.select(Job.kind, Job.state).where(Job.project == "rq")))

    deadline = time.monotonic() + 60
    while ("refit", "done") not in jobs() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert jobs() == [("refit", "done")] and runs() == 1
