"""The JSON API: login and CSRF, bearer tokens, the tutor's loop, admin routes, errors as JSON."""

from __future__ import annotations

import sqlalchemy as sa
from server_helpers import HTML, PASSWORD, World

from veritag.routing import service as routing
from veritag.server.auth import COOKIE, hash_secret
from veritag.store.models import ApiToken, Claim, LoginSession
from veritag.store.queries import get_project


def _login(w: World, who: str = "ana") -> str:
    r = w.client.post("/api/v1/login", json={"username": who, "password": PASSWORD})
    assert r.status_code == 200, r.text
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and COOKIE in cookie
    return r.json()["csrf_token"]


def test_login_cookie_and_csrf(world: World) -> None:
    w = world
    assert (
        w.client.post(
            "/api/v1/login", json={"username": "ana", "password": "wrong password"}
        ).status_code
        == 401
    )
    assert (
        w.client.post(
            "/api/v1/login", json={"username": "nobody", "password": PASSWORD}
        ).status_code
        == 401
    )
    csrf = _login(w)
    me = w.client.get("/api/v1/me")  # a GET needs no CSRF token
    assert (
        me.status_code == 200 and me.json()["username"] == "ana" and me.json()["auth"] == "session"
    )
    body = {"username": "newbie", "password": PASSWORD, "role": "tutor"}
    refused = w.client.post("/api/v1/users", json=body)
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert (
        w.client.post("/api/v1/users", json=body, headers={"X-CSRF-Token": "guess"}).status_code
        == 403
    )
    assert (
        w.client.post("/api/v1/users", json=body, headers={"X-CSRF-Token": csrf}).status_code == 201
    )
    with w.store.session() as session:  # only the hash of the cookie's secret is stored
        secret = w.client.cookies[COOKIE]
        assert session.scalar(sa.select(LoginSession.id)) == hash_secret(secret) != secret
    assert w.client.post("/api/v1/logout").status_code == 403  # logging out is state-changing too
    assert w.client.post("/api/v1/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    w.client.cookies.set(COOKIE, secret)  # a stolen cookie is worth nothing after logout
    assert w.client.get("/api/v1/me").status_code == 401


def test_bearer_tokens(world: World) -> None:
    w = world
    assert w.call("tut", "GET", "/me").json()["auth"] == "token"
    made = w.call("tut", "POST", "/tokens", json={"name": "script"})  # bearer: no CSRF token needed
    assert made.status_code == 201 and made.json()["token"].startswith("vt_")
    secret = made.json()["token"]
    with w.store.session() as session:
        hashes = set(session.scalars(sa.select(ApiToken.token_hash)))
        assert hash_secret(secret) in hashes and secret not in hashes
    auth = {"Authorization": f"Bearer {secret}"}
    assert w.client.get("/api/v1/me", headers=auth).json()["username"] == "tut"
    for bad in ("Bearer vt_nope", "Bearer " + secret[:-1], "Basic dHV0OnB3", secret):
        assert w.client.get("/api/v1/me", headers={"Authorization": bad}).status_code == 401
    with w.store.session() as session:
        session.execute(
            sa.update(ApiToken)
            .where(ApiToken.token_hash == hash_secret(secret))
            .values(revoked=True)
        )
    assert w.client.get("/api/v1/me", headers=auth).status_code == 401


def test_tutor_loop(world: World) -> None:
    w = world
    lease = w.call("tut", "POST", "/projects/p/work")
    assert lease.status_code == 200, lease.text
    got = lease.json()
    assert "is_gold" not in got and got["text"] in (HTML, "is water wet?")
    item = w.call("tut", "GET", f"/projects/p/items/{got['item_id']}")
    assert (
        item.status_code == 200 and item.json()["text"] == got["text"] and "meta" not in item.json()
    )
    bad = w.call("tut", "POST", f"/projects/p/work/{got['lease']}/submit", json={"value": "maybe"})
    assert bad.status_code == 422
    assert "yes" in bad.json()["detail"] and "no" in bad.json()["detail"]
    ok = w.call("tut", "POST", f"/projects/p/work/{got['lease']}/submit", json={"value": "yes"})
    assert ok.status_code == 200, ok.text
    with w.store.session() as session:
        assert (
            session.scalar(sa.select(Claim.value).where(Claim.id == ok.json()["claim_id"])) == "yes"
        )
    again = w.call("tut", "POST", f"/projects/p/work/{got['lease']}/submit", json={"value": "no"})
    assert again.status_code == 400 and "submitted" in again.json()["detail"]
    # the item is no longer leased to the tutor, so they cannot read it now
    assert w.call("tut", "GET", f"/projects/p/items/{got['item_id']}").status_code == 404
    second = w.call("tut", "POST", "/projects/p/work").json()
    assert second["item_id"] != got["item_id"]
    assert w.call("tut", "POST", f"/projects/p/work/{second['lease']}/release").status_code == 200
    assert w.call("tut", "POST", "/projects/p/work").status_code == 204  # seen both items
    status = w.call("rev", "GET", "/projects/p/routing").json()
    assert status["items"] == 2 and status["tutors"][0]["name"] == "tut"


def test_a_submit_can_bring_the_next_lease(world: World) -> None:
    """``next``: the answer is stored and the next lease comes back in the same request, as
    ``POST .../work`` would give it; null when nothing is left; an error leasing it is said
    beside the stored answer, not in place of it."""
    w = world
    first = w.call("tut", "POST", "/projects/p/work").json()
    plain = w.call(
        "tut", "POST", f"/projects/p/work/{first['lease']}/submit", json={"value": "yes"}
    ).json()
    assert set(plain) == {"lease", "claim_id"}  # without ``next`` the answer is as before
    second = w.call("tut", "POST", "/projects/p/work").json()
    with w.store.session() as session:
        project = get_project(session, name="p")
    routing.set_tutor_active(w.store, project, "tut", False)
    refused = w.call(
        "tut",
        "POST",
        f"/projects/p/work/{second['lease']}/submit",
        json={"value": "no", "next": True},
    )
    assert refused.status_code == 200, refused.text
    body = refused.json()
    assert body["next"] is None and "not active" in body["next_error"]
    with w.store.session() as session:
        assert session.scalar(sa.select(Claim.value).where(Claim.id == body["claim_id"])) == "no"
    routing.set_tutor_active(w.store, project, "tut", True)
    assert w.call("tut", "POST", "/projects/p/work").status_code == 204  # seen both items


def test_submit_with_next_walks_the_whole_queue(world: World) -> None:
    w = world
    lease = w.call("tut", "POST", "/projects/p/work").json()
    seen = []
    while lease is not None:
        seen.append(lease["item_id"])
        got = w.call(
            "tut",
            "POST",
            f"/projects/p/work/{lease['lease']}/submit",
            json={"value": "yes", "next": True},
        )
        assert got.status_code == 200, got.text
        lease = got.json()["next"]
        if lease is not None:  # a lease like any other: the tutor may read its item now
            assert set(lease) >= {"lease", "item_id", "text", "expires_at"}
            item = w.call("tut", "GET", f"/projects/p/items/{lease['item_id']}")
            assert item.status_code == 200
    assert sorted(seen) == sorted(set(seen)) and len(seen) == 2
    assert "next_error" not in got.json()


def test_html_in_item_text_is_data(world: World) -> None:
    w = world
    r = w.call("rev", "GET", f"/projects/p/items/{w.items['html']}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json()["text"] == HTML and r.json()["meta"] == {"domain": "general"}
    assert r.headers["x-content-type-options"] == "nosniff"


def test_every_answer_carries_the_security_headers(world: World) -> None:
    """API answers (errors too) are never cached, the API docs may be; nothing is framed."""
    w = world
    for answer, no_store in (
        (w.call("rev", "GET", f"/projects/p/items/{w.items['html']}"), True),
        (w.call(None, "GET", "/projects"), True),  # a 401
        (w.client.get("/api/v1/docs"), False),
        (w.client.get("/login"), None),  # a page says for itself
    ):
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "same-origin"
        if no_store is not None:
            assert (answer.headers.get("cache-control") == "no-store") is no_store, answer.url


def test_admin_builds_a_project(world: World) -> None:
    w = world
    made = w.call("ana", "POST", "/projects", json={"name": "new", "schema": SCHEMA_TWO})
    assert made.status_code == 201 and made.json()["name"] == "new"
    assert (
        w.call("ana", "POST", "/projects", json={"name": "new", "schema": SCHEMA_TWO}).status_code
        == 409
    )
    bad = w.call("ana", "POST", "/projects", json={"name": "bad", "schema": {"type": "nonsense"}})
    assert bad.status_code == 422 and isinstance(bad.json()["detail"], str)
    assert (
        w.call(
            "ana", "POST", "/projects/new/members", json={"username": "out", "role": "tutor"}
        ).status_code
        == 201
    )
    assert (
        w.call(
            "ana", "POST", "/projects/new/members", json={"username": "nobody", "role": "tutor"}
        ).status_code
        == 404
    )
    assert (
        w.call("ana", "POST", "/projects/new/tutors", json={"username": "rev"}).status_code == 422
    )  # not a tutor
    t = w.call("ana", "POST", "/projects/new/tutors", json={"username": "out", "cost": 2})
    assert t.status_code == 201 and t.json()["cost"] == 2
    assert (
        w.call("ana", "POST", "/projects/new/tutors", json={"username": "out"}).status_code == 409
    )
    assert [p["name"] for p in w.call("out", "GET", "/projects").json()] == ["q", "new"]
    assert w.call("out", "POST", "/projects/new/work").status_code == 204  # no items yet
    assert w.call("ana", "GET", "/projects/nope").status_code == 404
    u = w.call(
        "ana", "POST", "/users", json={"username": "x", "password": "short", "role": "tutor"}
    )
    assert u.status_code == 400 and "8 characters" in u.json()["detail"]
    assert (
        w.call("ana", "POST", "/users", json={"username": "rev", "password": PASSWORD}).status_code
        == 409
    )
    counts = w.call("rev", "GET", "/projects/p").json()
    assert counts["role"] == "reviewer" and counts["counts"]["items"] == 2


def test_openapi_is_served(world: World) -> None:
    spec = world.client.get("/api/v1/openapi.json")
    assert spec.status_code == 200 and "/api/v1/projects/{name}/work" in spec.json()["paths"]
    assert world.client.get("/api/v1/docs").status_code == 200


SCHEMA_TWO = {"type": "classification", "labels": ["a", "b"]}


def test_cli_user_and_token(tmp_path: object) -> None:
    from typer.testing import CliRunner

    from veritag.cli import app

    db = f"{tmp_path}/cli.db"
    runner = CliRunner()
    added = runner.invoke(
        app,
        ["user", "add", "sam", "--role", "reviewer", "--password-stdin", "--db", db],
        input=PASSWORD + "\n",
    )
    assert added.exit_code == 0, added.output
    made = runner.invoke(app, ["token", "add", "sam", "--name", "script", "--db", db])
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip().splitlines()[-1]
    assert secret.startswith("vt_")
    from fastapi.testclient import TestClient

    from veritag.server import create_app
    from veritag.store import open_store

    listed = runner.invoke(app, ["token", "list", "sam", "--db", db])
    assert listed.exit_code == 0 and "script" in listed.stdout and secret not in listed.stdout
    store = open_store(f"sqlite:///{db}")
    try:
        with TestClient(create_app(store)) as client:
            me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
            assert me.status_code == 200 and me.json()["role"] == "reviewer"
            revoked = runner.invoke(app, ["token", "revoke", "sam", "1", "--db", db])
            assert revoked.exit_code == 0, revoked.output
            assert (
                client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).status_code
                == 401
            )
            assert runner.invoke(app, ["token", "revoke", "sam", "99", "--db", db]).exit_code != 0
    finally:
        store.close()
