"""A server over a store (SQLite and PostgreSQL) with one user of each kind and two projects.

``p`` has items (one with HTML in its text), ``rev`` as reviewer and ``tut`` as tutor member and
routing tutor; ``q`` has ``out`` as its tutor, who is no member of ``p``; ``ana`` is a global admin.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from server_helpers import HTML, PASSWORD, SCHEMA, World

from veritag.routing import service as routing
from veritag.server import create_app
from veritag.server.auth import new_token
from veritag.store import Store
from veritag.store.models import Item, Membership
from veritag.store.queries import create_project, create_user


@pytest.fixture
def world(store: Store) -> Iterator[World]:
    tokens: dict[str, str] = {}
    with store.session() as session:
        users = {
            name: create_user(session, username=name, password=PASSWORD, role=role)
            for name, role in [
                ("ana", "admin"),
                ("rev", "reviewer"),
                ("tut", "tutor"),
                ("out", "tutor"),
            ]
        }
        for name, user in users.items():
            tokens[name] = new_token(session, user, "test")[1]
        p = create_project(session, name="p", schema=SCHEMA)
        q = create_project(session, name="q", schema=SCHEMA)
        rows = [
            Item(project_id=p.id, external_id="html", text=HTML, meta={"domain": "general"}),
            Item(
                project_id=p.id,
                external_id="plain",
                text="is water wet?",
                meta={"domain": "general"},
            ),
            Item(project_id=q.id, external_id="q1", text="q item", meta={"domain": "general"}),
        ]
        session.add_all(rows)
        session.add_all(
            [
                Membership(project_id=p.id, user_id=users["rev"].id, role="reviewer"),
                Membership(project_id=p.id, user_id=users["tut"].id, role="tutor"),
                Membership(project_id=q.id, user_id=users["out"].id, role="tutor"),
            ]
        )
        session.flush()
        items = {r.external_id: r.id for r in rows}
    for project, tutor in ((p, "tut"), (q, "out")):
        routing.configure(store, project, gold_rate=0.0, max_labels=1, target=0.5)
        routing.add_tutor(store, project, tutor)
    with TestClient(create_app(store)) as client:
        yield World(store, client, tokens, items)
