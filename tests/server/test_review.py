"""The reviewer's API: the queue of suspected errors, accept and correct as new claims, who may."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from server_helpers import HTML, PASSWORD, World
from sqlalchemy.exc import DBAPIError

from veritag.errors import LabelError
from veritag.resolve import resolve_and_store
from veritag.review import review_item, review_queue
from veritag.server.auth import Principal
from veritag.store import Store
from veritag.store.models import Claim, Gold, Item, Project, Review, Source
from veritag.store.queries import create_project, create_user, source_ids

#: Unanimous items (three tutors agree), then two where one tutor of three disagrees.
UNANIMOUS = {f"u{i}": "yes" if i % 2 else "no" for i in range(6)}
SPLIT = {"split": ("yes", "yes", "no"), "split2": ("no", "no", "yes")}


@pytest.fixture
def rw(world: World) -> World:
    """``world`` plus items labeled by three imported tutors: six unanimous, two split 2 to 1."""
    store = world.store
    with store.session() as session:
        project = session.scalar(sa.select(Project).where(Project.name == "p"))
        assert project is not None
        rows = [
            Item(project_id=project.id, external_id=name, text=f"text of {name}")
            for name in [*UNANIMOUS, *SPLIT]
        ]
        session.add_all(rows)
        session.flush()
        world.items.update({r.external_id: r.id for r in rows})
        pid = project.id
    with store.engine.begin() as conn:
        src = source_ids(conn, project_id=pid, kind="human", names={"t1", "t2", "t3"})
        claims = [
            {"project_id": pid, "item_id": world.items[name], "source_id": src[t], "value": value}
            for name, value in UNANIMOUS.items()
            for t in ("t1", "t2", "t3")
        ]
        claims += [
            {"project_id": pid, "item_id": world.items[name], "source_id": src[t], "value": value}
            for name, values in SPLIT.items()
            for t, value in zip(("t1", "t2", "t3"), values, strict=True)
        ]
        conn.execute(sa.insert(Claim), claims)
    with (
        store.session() as session
    ):  # resolved once, as `veritag resolve` would: GETs read the stored run
        project = session.scalar(sa.select(Project).where(Project.name == "p"))
        session.expunge(project)
    resolve_and_store(store, project)
    return world


def _queue(w: World, who: str = "rev") -> dict[str, dict]:
    r = w.call(who, "GET", "/projects/p/review/queue", params={"limit": 50})
    assert r.status_code == 200, r.text
    return {e["external_id"]: e for e in r.json()["items"]}


def _claims(w: World) -> list[tuple[int, int, str, object]]:
    with w.store.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                sa.select(Claim.id, Claim.item_id, Source.name, Claim.value)
                .join(Source, Source.id == Claim.source_id)
                .order_by(Claim.id)
            )
        ]


def test_queue_has_disagreements_not_unanimous_items(rw: World) -> None:
    w = rw
    body = w.call("rev", "GET", "/projects/p/review/queue").json()
    queue = {e["external_id"]: e for e in body["items"]}
    assert set(SPLIT) <= set(queue) and body["total"] >= 2
    assert not set(UNANIMOUS) & set(queue)
    assert "html" not in queue and "plain" not in queue  # no claims: nothing to review
    entry = queue["split"]
    assert (
        entry["label"] == "yes" and 0.5 < entry["probability"] <= 1.0 and entry["basis"] == "claims"
    )
    assert entry["text"] == "text of split" and entry["item_id"] == w.items["split"]
    assert "disagreement" in {r["code"] for r in entry["reasons"]}
    assert all(r["message"] for r in entry["reasons"])
    assert [(c["source"], c["kind"], c["value"]) for c in entry["claims"]] == [
        ("t1", "human", "yes"),
        ("t2", "human", "yes"),
        ("t3", "human", "no"),
    ]
    assert all(c["created_at"] for c in entry["claims"])
    # ranked most suspicious first
    scores = [e["score"] for e in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert (
        len(w.call("rev", "GET", "/projects/p/review/queue", params={"limit": 1}).json()["items"])
        == 1
    )


def test_accept_and_correct_only_add_claims(rw: World) -> None:
    w = rw
    before = _claims(w)
    r = w.call("rev", "POST", f"/projects/p/review/{w.items['split']}", json={"action": "accept"})
    assert r.status_code == 201, r.text
    accepted = r.json()
    assert accepted["value"] == "yes" and accepted["action"] == "accept"
    r = w.call(
        "ana",
        "POST",
        f"/projects/p/review/{w.items['split2']}",
        json={"action": "correct", "value": "yes"},
    )
    assert r.status_code == 201, r.text
    corrected = r.json()
    after = _claims(w)
    assert after[: len(before)] == before  # the claims table only grows
    assert after[len(before) :] == [
        (accepted["claim_id"], w.items["split"], "rev", "yes"),
        (corrected["claim_id"], w.items["split2"], "ana", "yes"),
    ]
    with w.store.engine.connect() as conn:
        reviews = conn.execute(
            sa.select(Review.item_id, Review.action, Review.claim_id, Review.user_id).order_by(
                Review.id
            )
        ).all()
        kinds = set(conn.scalars(sa.select(Source.kind).where(Source.name.in_(["rev", "ana"]))))
    assert [(r[0], r[1], r[2]) for r in reviews] == [
        (w.items["split"], "accept", accepted["claim_id"]),
        (w.items["split2"], "correct", corrected["claim_id"]),
    ]
    assert kinds == {"human"}
    queue = _queue(w)
    assert "split" not in queue and "split2" not in queue
    # a tutor's claim after the review brings the item back
    with w.store.engine.begin() as conn:
        pid = conn.scalar(sa.select(Project.id).where(Project.name == "p"))
        t3 = source_ids(conn, project_id=pid, kind="human", names={"t3"})["t3"]
        conn.execute(
            sa.insert(Claim).values(
                project_id=pid, item_id=w.items["split"], source_id=t3, value="no"
            )
        )
    assert "split" in _queue(w)


def test_reviews_are_append_only(rw: World) -> None:
    w = rw
    assert (
        w.call(
            "rev", "POST", f"/projects/p/review/{w.items['split']}", json={"action": "accept"}
        ).status_code
        == 201
    )
    for stmt in (sa.update(Review).values(action="correct"), sa.delete(Review)):
        with pytest.raises(DBAPIError), w.store.engine.begin() as conn:
            conn.execute(stmt)


def test_bad_reviews_are_refused_with_the_reason(rw: World) -> None:
    w = rw
    before = _claims(w)
    split = w.items["split"]
    r = w.call(
        "rev", "POST", f"/projects/p/review/{split}", json={"action": "correct", "value": "maybe"}
    )
    assert r.status_code == 422 and "maybe" in r.json()["detail"] and "yes" in r.json()["detail"]
    r = w.call("rev", "POST", f"/projects/p/review/{split}", json={"action": "correct"})
    assert r.status_code == 422 and "needs a value" in r.json()["detail"]
    assert (
        w.call("rev", "POST", f"/projects/p/review/{split}", json={"action": "delete"}).status_code
        == 422
    )
    r = w.call("rev", "POST", f"/projects/p/review/{w.items['plain']}", json={"action": "accept"})
    assert r.status_code == 422 and "no resolved label" in r.json()["detail"]
    assert (
        w.call("rev", "POST", "/projects/p/review/999999", json={"action": "accept"}).status_code
        == 404
    )
    q1 = w.items["q1"]  # an item of another project
    assert (
        w.call(
            "ana", "POST", f"/projects/p/review/{q1}", json={"action": "correct", "value": "no"}
        ).status_code
        == 404
    )
    assert _claims(w) == before
    with w.store.engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(Review)) == 0


def test_item_text_comes_back_as_data(rw: World) -> None:
    w = rw
    with w.store.engine.begin() as conn:
        pid = conn.scalar(sa.select(Project.id).where(Project.name == "p"))
        src = source_ids(conn, project_id=pid, kind="human", names={"t1", "t2"})
        conn.execute(
            sa.insert(Claim),
            [
                {
                    "project_id": pid,
                    "item_id": w.items["html"],
                    "source_id": src["t1"],
                    "value": "yes",
                },
                {
                    "project_id": pid,
                    "item_id": w.items["html"],
                    "source_id": src["t2"],
                    "value": "no",
                },
            ],
        )
    assert _queue(w)["html"]["text"] == HTML


def test_who_may_review(rw: World) -> None:
    w = rw
    split = w.items["split"]
    routes = [
        ("GET", "/projects/p/review/queue", None),
        ("POST", f"/projects/p/review/{split}", {"action": "accept"}),
        ("GET", "/projects/p/dashboard", None),
    ]
    for method, path, body in routes:
        assert w.call(None, method, path, json=body).status_code == 401, path
        assert w.call("tut", method, path, json=body).status_code == 403, path  # a tutor of p
        assert w.call("out", method, path, json=body).status_code == 403, path  # not a member of p
        assert w.call("rev", "GET", "/projects/q/review/queue").status_code == 403
    assert w.call("ana", "GET", "/projects/missing/review/queue").status_code == 404
    assert w.call("rev", "GET", "/projects/p/dashboard").status_code == 200
    assert w.call("ana", "GET", "/projects/p/dashboard").status_code == 200
    with w.store.engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(Review)) == 0


def test_pages_need_a_reviewer(rw: World) -> None:
    w = rw
    for path in ("/p/p/review", "/p/p/plots/accuracy.svg"):
        assert w.client.get(path, follow_redirects=False).status_code in (303, 401)
    assert w.client.get("/p/p/plots/accuracy.svg", headers=w.as_("tut")).status_code == 403
    r = w.client.get("/p/p/plots/accuracy.svg", headers=w.as_("rev"))
    assert (
        r.status_code == 200
        and r.headers["content-type"].startswith("image/svg+xml")
        and "<svg" in r.text
    )
    assert "sandbox" in r.headers["content-security-policy"]
    assert w.client.get("/p/p/plots/secret.svg", headers=w.as_("rev")).status_code == 404


def test_accepting_a_fact_check_keeps_a_tutors_evidence(store: Store) -> None:
    """A resolved verdict has no evidence; accepting it takes the newest agreeing tutor's answer."""
    with store.session() as session:
        user = create_user(session, username="rev", password=PASSWORD, role="reviewer")
        project = create_project(session, name="fc", schema={"type": "fact_check"})
        item = Item(project_id=project.id, external_id="c1", text="the sky is green")
        session.add(item)
        session.flush()
        who = Principal(user.id, "rev", "reviewer", "token")
    with store.engine.begin() as conn:
        src = source_ids(conn, project_id=project.id, kind="human", names={"t1", "t2", "t3"})
        conn.execute(
            sa.insert(Claim),
            [
                {"project_id": project.id, "item_id": item.id, "source_id": src[t], "value": v}
                for t, v in (
                    ("t1", {"verdict": "refuted", "evidence": "look up"}),
                    ("t2", {"verdict": "refuted", "evidence": "blue"}),
                    ("t3", {"verdict": "supported", "evidence": "at dusk"}),
                )
            ],
        )
    resolve_and_store(store, project)
    (entry,), total, _ = review_queue(store, project)
    assert total == 1 and entry.label == {"verdict": "refuted"} and entry.external_id == "c1"
    done = review_item(store, project, item.id, who, "accept")
    assert done["value"] == {"verdict": "refuted", "evidence": "blue"}
    with pytest.raises(LabelError, match="evidence"):
        review_item(store, project, item.id, who, "correct", {"verdict": "supported"})
    assert review_queue(store, project)[:2] == ([], 0)


def test_gold_items_never_come_up(rw: World) -> None:
    w = rw
    with w.store.engine.begin() as conn:
        pid = conn.scalar(sa.select(Project.id).where(Project.name == "p"))
        conn.execute(sa.insert(Gold).values(project_id=pid, item_id=w.items["split"], value="no"))
    queue = _queue(w)
    assert "split" not in queue and "split2" in queue
