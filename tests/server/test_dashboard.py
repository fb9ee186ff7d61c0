"""The dashboard's data against a hand-built project, and the page each role gets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from server_helpers import PASSWORD, form_login

from veritag.automation.project import automate_project
from veritag.resolve import NotResolved, resolve_and_store
from veritag.routing import service as routing
from veritag.server import create_app
from veritag.server.dashboard_data import gather, plot_svg
from veritag.store import Store
from veritag.store.models import Assignment, Claim, Item, Membership, Project
from veritag.store.queries import create_project, create_user, source_ids
from veritag.truth import cohen_kappa

SCHEMA = {"type": "classification", "labels": ["yes", "no"]}
T1 = ["yes", "no", "yes", "no", "yes"]
T2 = ["yes", "no", "yes", "no", "no"]


def seed_automation(store: Store, name: str = "auto", n: int = 300) -> Project:
    """A project where model ``m`` is right about 97% of the time, tutor ``t1`` labeled every item,
    and an automation run (two slices by ``channel``) automated part of it."""
    rng = np.random.default_rng(0)
    with store.session() as session:
        project = create_project(
            session, name=name, schema={"type": "classification", "labels": ["ham", "spam"]}
        )
        rows = [
            Item(
                project_id=project.id,
                external_id=f"m{i}",
                text=f"message {i}",
                meta={"domain": "general", "channel": "ab"[i % 2]},
            )
            for i in range(n)
        ]
        session.add_all(rows)
        session.flush()
        ids = [r.id for r in rows]
    with store.engine.begin() as conn:
        human = source_ids(conn, project_id=project.id, kind="human", names={"t1"})["t1"]
        model = source_ids(conn, project_id=project.id, kind="model", names={"m"})["m"]
        claims = []
        for i, item in enumerate(ids):
            truth = int(i % 3 == 0)
            conf = rng.uniform(0.95, 1.0) if rng.random() < 0.97 else rng.uniform(0.5, 0.7)
            said = truth if rng.random() < conf else 1 - truth
            claims.append(
                {
                    "project_id": project.id,
                    "item_id": item,
                    "source_id": model,
                    "value": None,
                    "probs": [conf, 1 - conf] if said == 0 else [1 - conf, conf],
                }
            )
            claims.append(
                {
                    "project_id": project.id,
                    "item_id": item,
                    "source_id": human,
                    "value": ["ham", "spam"][truth],
                    "probs": None,
                }
            )
        conn.execute(sa.insert(Claim), claims)
    automate_project(store, project, target=0.85, delta=0.1, audit_rate=0.5, slice_field="channel")
    return project


@pytest.fixture
def dash(store: Store) -> Store:
    """Project ``d``: routing tutors t1 and t2 with known timings and skips; ``boss`` is its admin
    (a tutor globally), ``rev`` its reviewer, ``ana`` a global admin; ``newbie`` is no member."""
    with store.session() as session:
        users = {
            name: create_user(session, username=name, password=PASSWORD, role=role)
            for name, role in [
                ("ana", "admin"),
                ("boss", "tutor"),
                ("rev", "reviewer"),
                ("t1", "tutor"),
                ("t2", "tutor"),
                ("newbie", "tutor"),
            ]
        }
        project = create_project(session, name="d", schema=SCHEMA)
        items = [
            Item(
                project_id=project.id,
                external_id=f"i{i}",
                text=f"item {i}",
                meta={"domain": "general"},
            )
            for i in range(len(T1))
        ]
        session.add_all(items)
        session.add_all(
            [
                Membership(project_id=project.id, user_id=users[u].id, role=r)
                for u, r in [
                    ("boss", "admin"),
                    ("rev", "reviewer"),
                    ("t1", "tutor"),
                    ("t2", "tutor"),
                ]
            ]
        )
        session.flush()
        item_ids = [i.id for i in items]
    routing.configure(store, project, gold_rate=0.0, max_labels=2, target=0.9)
    tutors = {t: routing.add_tutor(store, project, t, domains=["general"]) for t in ("t1", "t2")}
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        for name, labels in (("t1", T1), ("t2", T2)):
            conn.execute(
                sa.insert(Claim),
                [
                    {
                        "project_id": project.id,
                        "item_id": i,
                        "source_id": tutors[name].source_id,
                        "value": v,
                    }
                    for i, v in zip(item_ids, labels, strict=True)
                ],
            )
        leases = [
            ("t1", "submitted", 10.0, None),
            ("t1", "submitted", 20.0, None),
            ("t1", "submitted", 60.0, None),
            ("t1", "submitted", None, None),
            ("t2", "submitted", 5.0, None),
            ("t2", "submitted", 7.0, None),
            ("t2", "released", None, "unclear"),
            ("t2", "released", None, "too long"),
            ("t2", "released", None, None),
        ]
        conn.execute(
            sa.insert(Assignment),
            [
                {
                    "project_id": project.id,
                    "item_id": item_ids[j % len(item_ids)],
                    "tutor_id": tutors[t].id,
                    "is_gold": False,
                    "cost": 1.0,
                    "leased_at": now - timedelta(minutes=5),
                    "expires_at": now - timedelta(minutes=1),
                    "state": state,
                    "seconds": seconds,
                    "skip_reason": reason,
                }
                for j, (t, state, seconds, reason) in enumerate(leases)
            ],
        )
    resolve_and_store(
        store, _project(store, "d")
    )  # the stored run the dashboard reads (a GET never fits)
    return store


def _project(store: Store, name: str) -> Project:
    with store.session() as session:
        project = session.scalar(sa.select(Project).where(Project.name == name))
        assert project is not None
        return project


def test_scorecards_match_the_hand_built_project(dash: Store) -> None:
    data = gather(dash, _project(dash, "d"), with_members=True)
    cards = {c.name: c for c in data.tutors}
    assert list(cards) == ["t1", "t2"]
    t1, t2 = cards["t1"], cards["t2"]
    assert (t1.median_seconds, t1.labels_per_hour, t1.submitted, t1.timed, t1.skips) == (
        20.0,
        120.0,
        4,
        3,
        0,
    )
    assert (t2.median_seconds, t2.labels_per_hour, t2.submitted, t2.timed, t2.skips) == (
        6.0,
        600.0,
        2,
        2,
        2,
    )
    assert t1.labels == t2.labels == 5 and t1.tutor and t1.active
    # they disagree on one item of five: whichever way it resolved, one of them agrees fully
    assert sorted([t1.agreement, t2.agreement]) == [0.8, 1.0]
    expected = cohen_kappa([0, 1, 0, 1, 0], [0, 1, 0, 1, 1], n_classes=2)
    assert t1.kappa_tutors == pytest.approx(expected) and t2.kappa_tutors == pytest.approx(expected)
    assert expected == pytest.approx((0.8 - 0.48) / 0.52)
    assert {t1.kappa_resolved, t2.kappa_resolved} >= {1.0}
    assert 0.0 < t1.accuracy <= 1.0 and 0.0 < t2.accuracy <= 1.0
    assert [d.domain for d in t1.domains] == ["general"] and t1.domains[0].measured == 5

    p = data.progress
    assert (p.items, p.labeled, p.human_claims, p.reviews, p.automated) == (5, 5, 10, 0, 0)
    assert p.labels_spent == 6 and p.spent == pytest.approx(6.0) and p.done is not None
    assert data.automation is None
    assert [(m.username, m.role) for m in data.members] == [
        ("boss", "admin"),
        ("rev", "reviewer"),
        ("t1", "tutor"),
        ("t2", "tutor"),
    ]
    assert gather(dash, _project(dash, "d"), with_members=False).members is None


def test_automation_rate_and_its_guarantee(dash: Store) -> None:
    project = seed_automation(dash)
    data = gather(dash, project, with_members=False)
    a = data.automation
    assert (
        a is not None and a.model == "m" and a.target == 0.85 and a.delta == 0.1 and a.items == 300
    )
    assert (
        a.automated > 0
        and a.rate == pytest.approx(a.automated / 300)
        and data.progress.automated == a.automated
    )
    assert a.overall_bound is not None and a.overall_bound >= 0.85
    assert {s.name for s in a.slices} == {"a", "b"} and sum(
        s.automated for s in a.slices
    ) == a.automated
    assert all(s.meets_target == (s.bound is not None and s.bound >= 0.85) for s in a.slices)
    with pytest.raises(NotResolved):  # the quality plots read the stored run, never fit
        plot_svg(dash, project, "accuracy")
    resolve_and_store(dash, project)
    for plot in ("calibration", "bias", "accuracy", "confidence"):
        svg = plot_svg(dash, project, plot)
        assert svg is not None and svg.startswith("<svg") and "<script" not in svg


def _login(client: TestClient, who: str) -> str:
    form_login(client, who)
    return client.get("/").text


def _page(store: Store, who: str, path: str) -> Any:
    with TestClient(create_app(store)) as client:
        _login(client, who)
        return client.get(path)


def test_the_page_by_role(dash: Store) -> None:
    seed_automation(dash)
    with dash.session() as session:
        auto = session.scalar(sa.select(Project.id).where(Project.name == "auto"))
        boss = session.scalar(sa.text("SELECT id FROM users WHERE username = 'boss'"))
        session.add(Membership(project_id=auto, user_id=boss, role="reviewer"))
    admin = _page(dash, "boss", "/p/d/dashboard")  # project admin, not a global admin
    assert admin.status_code == 200
    html = admin.text
    for marker in (
        'id="tutors"',
        "t1",
        "20.0",
        "120",
        "600",
        'id="member-form"',
        'id="import-form"',
        "/api/v1/projects/d/export?format=parquet",
        "/static/admin.js",
        "No automation run yet",
    ):
        assert marker in html, marker
    assert 'id="user-form"' not in html
    assert "script-src 'self'" in admin.headers["content-security-policy"]
    assert "<script>" not in html and "style=" not in html
    glob = _page(dash, "ana", "/p/d/dashboard").text
    assert 'id="user-form"' in glob
    reviewer = _page(dash, "boss", "/p/auto/dashboard").text  # boss is reviewer of auto
    for marker in ('id="member-form"', 'id="import-form"', "/export?", "admin.js", 'id="members"'):
        assert marker not in reviewer, marker
    assert (
        'src="/p/auto/plots/calibration.svg"' in reviewer
        and 'src="/p/auto/plots/bias.svg"' in reviewer
    )
    assert "Guarantee" in reviewer and "read-only" in reviewer
    assert _page(dash, "t1", "/p/d/dashboard").status_code == 403
    assert _page(dash, "rev", "/p/d/review").status_code == 200
    assert _page(dash, "t1", "/p/d/review").status_code == 403
