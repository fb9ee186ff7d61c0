"""The audit log through the server: every security-relevant action of the API and the web pages
is recorded with its actor, client and outcome (a failed login with the name tried, never the
password; a token by id and name, never its value); ``GET /api/v1/audit`` and the ``/audit`` page
are for global admins only, newest first, filtered and paged."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from browser_helpers import ARTIFACTS, Live, chromium, login, needs_chromium, serve
from fastapi.testclient import TestClient
from server_helpers import PASSWORD, World, form_login, post_login_form

from veritag.server import throttle
from veritag.store import Store, audit
from veritag.store.models import AuditEntry

SECRET = "Tr0ub4dor&3-not-the-password"


def _rows(store: Store) -> list[dict[str, Any]]:
    """Every entry with every column, as stored."""
    with store.engine.connect() as conn:
        return [
            dict(r._mapping)
            for r in conn.execute(sa.select(AuditEntry.__table__).order_by(AuditEntry.id))
        ]


def _last(w: World, action: str) -> audit.Entry:
    entries = audit.read(w.store, action=action, limit=1)
    assert entries, f"no {action} entry"
    return entries[0]


def test_logins_are_recorded_without_passwords(world: World) -> None:
    w = world
    assert (
        w.client.post("/api/v1/login", json={"username": "ana", "password": PASSWORD}).status_code
        == 200
    )
    entry = _last(w, "login")
    assert (entry.actor, entry.outcome, entry.client) == ("ana", "ok", "testclient")
    assert entry.actor_id is not None
    assert (
        w.client.post(
            "/api/v1/logout",
            headers={
                "X-CSRF-Token": w.client.post(
                    "/api/v1/login", json={"username": "ana", "password": PASSWORD}
                ).json()["csrf_token"]
            },
        ).status_code
        == 204
    )
    assert (_last(w, "logout").actor, _last(w, "logout").detail) == ("ana", {"session_ended": True})

    assert (
        w.client.post("/api/v1/login", json={"username": "mallory", "password": SECRET}).status_code
        == 401
    )
    entry = _last(w, "login")
    assert (entry.actor, entry.actor_id, entry.outcome) == ("mallory", None, "refused")
    assert post_login_form(TestClient(w.client.app), "<b>tut</b>", SECRET).status_code == 401
    assert (_last(w, "login").actor, _last(w, "login").outcome) == ("<b>tut</b>", "refused")

    for _ in range(throttle.ACCOUNT_LIMIT - 1):
        w.client.post("/api/v1/login", json={"username": "mallory", "password": SECRET})
    assert (
        w.client.post(
            "/api/v1/login", json={"username": "mallory", "password": PASSWORD}
        ).status_code
        == 429
    )
    entry = _last(w, "login")
    assert (entry.actor, entry.outcome) == ("mallory", "locked") and entry.detail[
        "retry_after"
    ] >= 1
    assert post_login_form(TestClient(w.client.app), "mallory", SECRET).status_code == 429
    assert _last(w, "login").outcome == "locked"

    rows = _rows(w.store)
    assert not any(SECRET in repr(r) or PASSWORD in repr(r) for r in rows), (
        "no password anywhere in a row"
    )


def test_form_login_and_logout_are_recorded(world: World) -> None:
    w = world
    client = TestClient(w.client.app)
    form_login(client, "rev")
    assert (_last(w, "login").actor, _last(w, "login").outcome) == ("rev", "ok")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text)
    assert csrf
    assert (
        client.post(
            "/logout", data={"csrf_token": csrf.group(1)}, follow_redirects=False
        ).status_code
        == 303
    )
    assert (_last(w, "logout").actor, _last(w, "logout").detail) == ("rev", {"session_ended": True})


def test_admin_actions_are_recorded_with_their_actor(world: World) -> None:
    w = world
    assert (
        w.call(
            "ana",
            "POST",
            "/users",
            json={"username": "neo", "password": SECRET, "role": "reviewer"},
        ).status_code
        == 201
    )
    assert w.call("ana", "POST", "/users/neo/unlock").status_code == 200
    assert (
        w.call(
            "ana",
            "POST",
            "/projects",
            json={"name": "z", "schema": {"type": "classification", "labels": ["a", "b"]}},
        ).status_code
        == 201
    )
    assert (
        w.call(
            "ana", "POST", "/projects/z/members", json={"username": "tut", "role": "reviewer"}
        ).status_code
        == 201
    )
    assert (
        w.call(
            "ana", "POST", "/projects/z/members", json={"username": "tut", "role": "tutor"}
        ).status_code
        == 200
    )
    assert (
        w.call("ana", "POST", "/projects/z/tutors", json={"username": "tut", "cost": 2}).status_code
        == 201
    )
    w.resolve("rev")
    r = w.call("rev", "GET", "/projects/p/export", params={"format": "csv"})
    assert r.status_code == 200

    got = {e.action: e for e in reversed(audit.read(w.store))}  # the newest of each action
    expect = {
        "user.create": (None, "neo", {"role": "reviewer"}),
        "user.unlock": (None, "neo", {"cleared": False}),
        "project.create": ("z", "z", {"type": "classification"}),
        "member.add": ("z", "tut", {"role": "reviewer", "was": None}),
        "member.role": ("z", "tut", {"role": "tutor", "was": "reviewer"}),
        "tutor.add": ("z", "tut", {"domains": [], "cost": 2.0, "active": True}),
    }
    for action, (project, target, detail) in expect.items():
        e = got[action]
        assert (e.actor, e.client, e.project, e.target, e.outcome, e.detail) == (
            "ana",
            "testclient",
            project,
            target,
            "ok",
            detail,
        ), action
    export = got["export"]
    assert (export.actor, export.project, export.target, export.detail["rows"]) == (
        "rev",
        "p",
        "csv",
        2,
    )
    assert not any(SECRET in repr(r) for r in _rows(w.store))


def test_tokens_are_recorded_by_id_and_name_never_by_value(world: World) -> None:
    w = world
    made = w.call("tut", "POST", "/tokens", json={"name": "laptop"}).json()
    entry = _last(w, "token.create")
    assert (entry.actor, entry.target, entry.detail) == (
        "tut",
        str(made["id"]),
        {"name": "laptop", "user": "tut"},
    )
    assert w.call("ana", "DELETE", f"/tokens/{made['id']}").status_code == 200
    entry = _last(w, "token.revoke")
    assert (entry.actor, entry.target, entry.detail) == (
        "ana",
        str(made["id"]),
        {"name": "laptop", "user": "tut"},
    )
    assert w.call("tut", "DELETE", "/tokens/999999").status_code == 404
    assert _last(w, "token.revoke").id == entry.id, "nothing revoked, nothing recorded"
    secrets = [made["token"], *w.tokens.values()]
    assert not any(s in repr(r) for r in _rows(w.store) for s in secrets)


def test_only_global_admins_read_the_log(world: World) -> None:
    w = world
    assert w.call(None, "GET", "/audit").status_code == 401
    for who in ("rev", "tut", "out"):
        assert w.call(who, "GET", "/audit").status_code == 403, who
    body = w.call("ana", "GET", "/audit").json()
    assert body["entries"] and set(body) == {"entries", "next_before"}
    assert all(e["outcome"] == "ok" for e in body["entries"])
    assert w.call("ana", "GET", "/audit", params={"limit": 1001}).status_code == 422
    assert w.call("ana", "GET", "/audit", params={"limit": 0}).status_code == 422
    assert w.call("ana", "GET", "/audit", params={"actor": "a\x00b"}).json()["entries"] == []


def test_the_api_pages_newest_first_with_filters(world: World) -> None:
    w = world
    for i in range(7):
        w.client.post("/api/v1/login", json={"username": f"guess{i}", "password": SECRET})
    seen: list[str] = []
    before = None
    while True:
        params: dict[str, Any] = {"action": "login", "limit": 3} | (
            {"before": before} if before else {}
        )
        page = w.call("ana", "GET", "/audit", params=params).json()
        seen += [e["actor"] for e in page["entries"]]
        before = page["next_before"]
        if before is None:
            break
    assert seen == [f"guess{i}" for i in reversed(range(7))]
    one = w.call("ana", "GET", "/audit", params={"actor": "guess3"}).json()["entries"]
    assert [(e["actor"], e["outcome"], e["client"]) for e in one] == [
        ("guess3", "refused", "testclient")
    ]
    assert (
        w.call("ana", "GET", "/audit", params={"since": "2999-01-01T00:00:00Z"}).json()["entries"]
        == []
    )
    tokens = w.call("ana", "GET", "/audit", params={"action": "token"}).json()["entries"]
    assert len(tokens) == 4 and {e["action"] for e in tokens} == {
        "token.create"
    }  # the world's four tokens


def test_the_page_is_for_admins_escaped_filtered_and_paged(world: World) -> None:
    w = world
    w.client.post(
        "/api/v1/login", json={"username": '<img src=x onerror="alert(1)">', "password": SECRET}
    )
    anon = TestClient(w.client.app)
    assert anon.get("/audit", follow_redirects=False).headers["location"] == "/login"
    tutor = TestClient(w.client.app)
    form_login(tutor, "tut")
    assert tutor.get("/audit").status_code == 403
    assert 'href="/audit"' not in tutor.get("/").text, "the link is for admins only"

    admin = TestClient(w.client.app)
    form_login(admin, "ana")
    assert 'href="/audit"' in admin.get("/").text
    page = admin.get("/audit")
    assert (
        page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    )
    assert "&lt;img src=x onerror=" in page.text and "<img src=x" not in page.text
    only = admin.get("/audit", params={"action": "token", "actor": "nobody"}).text
    assert "No entries match these filters" in only
    for i in range(60):
        audit.record(w.store, "export", actor=audit.Actor("ana"), project="p", target=f"n{i}")
    first = admin.get("/audit", params={"action": "export"}).text
    older = re.search(r'href="(/audit\?[^"]+)" id="audit-older"', first)
    assert older and "n59" in first and "n9<" not in first
    second = admin.get(older.group(1).replace("&amp;", "&")).text
    assert "n9<" in second and "n59" not in second and 'id="audit-older"' not in second


@pytest.fixture
def live(world: World) -> Iterator[Live]:
    with serve(world.store) as running:
        yield running


@needs_chromium
@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_admin_reads_the_log_in_chromium(live: Live, world: World) -> None:
    from playwright.sync_api import expect

    world.client.post(
        "/api/v1/login", json={"username": "<script>window.__pwned=1</script>", "password": SECRET}
    )
    with chromium() as profile:
        page = profile()
        login(page, live, "ana")
        page.click("#audit-link")
        page.wait_for_url(live.url + "/audit")
        expect(page.locator("#audit tbody tr").first).to_contain_text("login")
        page.select_option("#action", "login")
        page.fill("#actor", "<script>window.__pwned=1</script>")
        page.click("#audit-filter button")
        rows = page.locator("#audit tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("refused")
        assert page.evaluate("window.__pwned") is None
        page.screenshot(path=str(ARTIFACTS / "audit.png"), full_page=True)
