"""Who may do what: 401 without a user on every route, and the role x route matrix."""

from __future__ import annotations

import itertools
import re

import pytest
from server_helpers import PASSWORD, World

PUBLIC = {"/api/v1/login", "/api/v1/openapi.json", "/api/v1/docs", "/api/v1/docs/oauth2-redirect"}
WHO = ("ana", "rev", "tut", "out")  # global admin, reviewer of p, tutor of p, tutor of q only
_n = itertools.count()


def _routes(w: World) -> list[tuple[str, str]]:
    """Every (method, path) the OpenAPI description lists, less the public ones."""
    paths = w.client.get("/api/v1/openapi.json").json()["paths"]
    return [
        (method.upper(), path)
        for path, ops in paths.items()
        if path not in PUBLIC
        for method in ops
    ]


def test_every_route_needs_a_user(world: World) -> None:
    w = world
    routes = _routes(w)
    assert len(routes) >= 13
    for method, path in routes:
        url = (
            path.replace("{name}", "p")
            .replace("{lease}", "1")
            .replace("{item_id}", str(w.items["plain"]))
        )
        for headers in (
            {},
            {"Authorization": "Bearer vt_wrong"},
            {"Cookie": "veritag_session=forged"},
        ):
            r = w.client.request(method, url, headers=headers, json={})
            assert r.status_code == 401, (method, url, headers, r.status_code)
            assert r.json()["detail"]


def _expect(**by_user: int) -> dict[str, int]:
    return by_user


MATRIX = [
    ("GET", "/me", None, _expect(ana=200, rev=200, tut=200, out=200)),
    ("GET", "/projects", None, _expect(ana=200, rev=200, tut=200, out=200)),
    (
        "POST",
        "/projects",
        lambda: {
            "name": f"x{next(_n)}",
            "schema": {"type": "classification", "labels": ["a", "b"]},
        },
        _expect(ana=201, rev=403, tut=403, out=403),
    ),
    ("GET", "/projects/p", None, _expect(ana=200, rev=200, tut=200, out=403)),
    ("GET", "/projects/q", None, _expect(ana=200, rev=403, tut=403, out=200)),
    ("GET", "/projects/missing", None, _expect(ana=404, rev=403, tut=403, out=403)),
    (
        "POST",
        "/projects/p/members",
        lambda: {"username": "rev", "role": "reviewer"},
        _expect(ana=200, rev=403, tut=403, out=403),
    ),
    (
        "POST",
        "/projects/p/tutors",
        lambda: {"username": "rev"},
        _expect(ana=422, rev=403, tut=403, out=403),
    ),
    ("GET", "/projects/p/routing", None, _expect(ana=200, rev=200, tut=403, out=403)),
    ("GET", "/projects/q/routing", None, _expect(ana=200, rev=403, tut=403, out=403)),
    ("GET", "/projects/p/items/{plain}", None, _expect(ana=200, rev=200, tut=404, out=403)),
    ("GET", "/projects/q/items/{q1}", None, _expect(ana=200, rev=403, tut=403, out=404)),
    (
        "GET",
        "/projects/q/items/{plain}",
        None,
        _expect(ana=404, rev=403, tut=403, out=404),
    ),  # p's item via q
    (
        "POST",
        "/projects/p/work/999999/submit",
        lambda: {"value": "yes"},
        _expect(ana=403, rev=403, tut=404, out=403),
    ),
    ("POST", "/projects/p/work/999999/release", None, _expect(ana=403, rev=403, tut=404, out=403)),
    ("POST", "/projects/p/work/999999/undo", None, _expect(ana=403, rev=403, tut=404, out=403)),
    ("POST", "/projects/q/work", None, _expect(ana=403, rev=403, tut=403, out=200)),
    (
        "POST",
        "/users",
        lambda: {"username": f"u{next(_n)}", "password": PASSWORD},
        _expect(ana=201, rev=403, tut=403, out=403),
    ),
    ("POST", "/users/tut/unlock", None, _expect(ana=200, rev=403, tut=403, out=403)),
    ("POST", "/users/nobody/unlock", None, _expect(ana=404, rev=403, tut=403, out=403)),
    ("GET", "/audit", None, _expect(ana=200, rev=403, tut=403, out=403)),
    ("POST", "/tokens", None, _expect(ana=201, rev=201, tut=201, out=201)),
    ("GET", "/tokens", None, _expect(ana=200, rev=200, tut=200, out=200)),
    ("DELETE", "/tokens/999999", None, _expect(ana=404, rev=404, tut=404, out=404)),
    # project operations (routes.data, .automation): the upload form is checked only after the role
    ("POST", "/projects/p/import", None, _expect(ana=422, rev=403, tut=403, out=403)),
    ("GET", "/projects/p/export?format=jsonl", None, _expect(ana=200, rev=200, tut=403, out=403)),
    ("GET", "/projects/p/status", None, _expect(ana=200, rev=200, tut=200, out=403)),
    (
        "POST",
        "/projects/p/resolve",
        lambda: {"method": "mv"},
        _expect(ana=202, rev=202, tut=403, out=403),
    ),
    ("GET", "/jobs/999999", None, _expect(ana=404, rev=404, tut=404, out=404)),
    (
        "GET",
        "/projects/p/queue",
        None,
        _expect(ana=404, rev=404, tut=403, out=403),
    ),  # no automation run yet
    (
        "GET",
        "/projects/p/reports/quality?format=json",
        None,
        _expect(ana=200, rev=200, tut=403, out=403),
    ),
    (
        "GET",
        "/projects/p/reports/automation?format=json",
        None,
        _expect(ana=404, rev=404, tut=403, out=403),
    ),
    # review and dashboard
    ("GET", "/projects/p/review/queue", None, _expect(ana=200, rev=200, tut=403, out=403)),
    (
        "POST",
        "/projects/p/review/{plain}",
        lambda: {"action": "accept"},
        _expect(ana=422, rev=422, tut=403, out=403),
    ),
    ("GET", "/projects/p/dashboard", None, _expect(ana=200, rev=200, tut=403, out=403)),
    # arena leaderboards: reviewers and admins only (tutors never see model names); p is no
    # arena project
    ("GET", "/projects/p/arena/leaderboard", None, _expect(ana=422, rev=422, tut=403, out=403)),
    # jobs last: they run in the background and change what the rows above read
    (
        "POST",
        "/projects/p/autolabel",
        lambda: {"labeler": "tfidf"},
        _expect(ana=202, rev=403, tut=403, out=403),
    ),
    (
        "POST",
        "/projects/p/automate",
        lambda: {"target": 0.9, "delta": 0.1},
        _expect(ana=202, rev=403, tut=403, out=403),
    ),
]


def test_the_matrix_covers_every_route(world: World) -> None:
    """A new route without a row here fails this test, so the matrix cannot fall behind."""
    covered = {(method, re.sub(r"\?.*$", "", path)) for method, path, _, _ in MATRIX}
    for method, path in _routes(world):
        if path in ("/api/v1/logout",):
            continue  # session-only, tested in test_api
        pattern = re.compile(
            "^" + re.sub(r"\{[^}]+\}", "[^/]+", path.removeprefix("/api/v1")) + "$"
        )
        assert any(m == method and pattern.match(p) for m, p in covered), (method, path)


@pytest.mark.parametrize("who", WHO)
def test_authorisation_matrix(world: World, who: str) -> None:
    w = world
    w.resolve("ana")  # GET export reads a stored run
    for method, path, body, expected in MATRIX:
        url = path.format(**w.items)
        r = w.call(who, method, url, json=body() if body else None)
        assert r.status_code == expected[who], (who, method, url, r.status_code, r.text)


def test_tutors_stay_in_their_lane(world: World) -> None:
    w = world
    lease = w.call("tut", "POST", "/projects/p/work").json()
    item, lease_id = lease["item_id"], lease["lease"]
    assert w.call("tut", "GET", f"/projects/p/items/{item}").status_code == 200
    # a tutor of another project cannot read it, take the lease or ask for work here
    assert w.call("out", "GET", f"/projects/p/items/{item}").status_code == 403
    assert (
        w.call(
            "out", "POST", f"/projects/p/work/{lease_id}/submit", json={"value": "yes"}
        ).status_code
        == 403
    )
    assert w.call("out", "POST", "/projects/p/work").status_code == 403
    # made a tutor of p as well, they still cannot touch tut's lease or read tut's item
    assert (
        w.call(
            "ana", "POST", "/projects/p/members", json={"username": "out", "role": "tutor"}
        ).status_code
        == 201
    )
    assert w.call("ana", "POST", "/projects/p/tutors", json={"username": "out"}).status_code == 201
    assert w.call("out", "GET", f"/projects/p/items/{item}").status_code == 404
    assert (
        w.call(
            "out", "POST", f"/projects/p/work/{lease_id}/submit", json={"value": "yes"}
        ).status_code
        == 404
    )
    assert w.call("out", "POST", f"/projects/p/work/{lease_id}/release").status_code == 404
    # nor can tut act as reviewer or admin
    assert w.call("tut", "GET", "/projects/p/routing").status_code == 403
    assert (
        w.call(
            "tut", "POST", "/projects/p/members", json={"username": "tut", "role": "admin"}
        ).status_code
        == 403
    )
    assert (
        w.call(
            "tut",
            "POST",
            "/users",
            json={"username": "evil", "password": PASSWORD, "role": "admin"},
        ).status_code
        == 403
    )
    assert w.call("tut", "GET", "/me").json()["role"] == "tutor"
    # the lease is still tut's to answer
    assert (
        w.call(
            "tut", "POST", f"/projects/p/work/{lease_id}/submit", json={"value": "no"}
        ).status_code
        == 200
    )


def test_a_project_admin_member_manages_only_their_project(world: World) -> None:
    w = world
    assert (
        w.call(
            "ana", "POST", "/projects/p/members", json={"username": "rev", "role": "admin"}
        ).status_code
        == 200
    )
    assert (
        w.call(
            "rev", "POST", "/projects/p/members", json={"username": "out", "role": "reviewer"}
        ).status_code
        == 201
    )
    assert (
        w.call(
            "rev", "POST", "/projects/q/members", json={"username": "rev", "role": "admin"}
        ).status_code
        == 403
    )
    assert (
        w.call("rev", "POST", "/users", json={"username": "zed", "password": PASSWORD}).status_code
        == 403
    )
    assert w.call("out", "GET", "/projects/p/routing").status_code == 200
