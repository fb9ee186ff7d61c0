"""Bad input at the API's edge (issue 15): lone surrogates, NUL, non-finite numbers, huge ids and
oversized names are refused with 422 (or 404), never stored and never a 500."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from server_helpers import PASSWORD, SCHEMA, World

from veritag import limits
from veritag.errors import InputError
from veritag.routing import service as routing
from veritag.store.models import Item, Membership, User
from veritag.store.queries import create_project

BAD_TEXT = ["\ud800", "a\x00b"]
HUGE = "99999999999999999999"


def post_raw(world: World, who: str | None, path: str, body: str) -> Any:
    """POST a JSON body given as text (so NaN, Infinity and escaped surrogates reach the server as
    sent)."""
    return world.call(
        who,
        "POST",
        path,
        content=body.encode("utf-8"),
        headers={"Content-Type": "application/json"},
    )


def assert_refused(r: Any, field: str) -> None:
    """A 422 in the project's error shape that names ``field``, and an answer that is valid JSON."""
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert field in json.dumps(detail), detail


def free_text_lease(world: World) -> int:
    """A free-text project ``ft`` with one item, ``tut`` as its routing tutor holding a lease on
    it."""
    store = world.store
    with store.session() as session:
        proj = create_project(session, name="ft", schema={"type": "free_text"})
        session.add(Item(project_id=proj.id, external_id="i1", text="rewrite me"))
        tut = session.query(User).filter_by(username="tut").one()
        session.add(Membership(project_id=proj.id, user_id=tut.id, role="tutor"))
    routing.configure(store, proj, gold_rate=0.0, max_labels=1, target=0.5)
    routing.add_tutor(store, proj, "tut")
    r = world.call("tut", "POST", "/projects/ft/work")
    assert r.status_code == 200, r.text
    return int(r.json()["lease"])


@pytest.mark.parametrize("bad", BAD_TEXT)
def test_bad_free_text_answer_is_refused_and_not_stored(world: World, bad: str) -> None:
    lease = free_text_lease(world)
    r = post_raw(world, "tut", f"/projects/ft/work/{lease}/submit", json.dumps({"value": bad}))
    assert_refused(r, "value")
    assert world.call("ana", "GET", "/projects/ft/dashboard").status_code == 200
    assert world.call("ana", "GET", "/projects/ft/review/queue").status_code == 200
    world.resolve("ana", "ft")
    assert world.call("ana", "GET", "/projects/ft/export?format=jsonl").status_code == 200
    ok = post_raw(world, "tut", f"/projects/ft/work/{lease}/submit", json.dumps({"value": "fine"}))
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("bad", BAD_TEXT)
@pytest.mark.parametrize(
    ("path", "who", "body", "field"),
    [
        ("/login", None, {"username": "{bad}", "password": PASSWORD}, "username"),
        ("/projects", "ana", {"name": "n{bad}", "schema": SCHEMA}, "name"),
        (
            "/projects",
            "ana",
            {"name": "n", "schema": SCHEMA, "description": "d{bad}"},
            "description",
        ),
        (
            "/projects",
            "ana",
            {"name": "n", "schema": {"type": "classification", "labels": ["y{bad}", "n"]}},
            "labels",
        ),
        ("/users", "ana", {"username": "u{bad}", "password": PASSWORD}, "username"),
        ("/projects/p/members", "ana", {"username": "u{bad}", "role": "tutor"}, "username"),
        ("/tokens", "tut", {"name": "t{bad}"}, "name"),
    ],
)
def test_bad_text_in_names_is_refused(
    world: World, bad: str, path: str, who: str | None, body: dict[str, Any], field: str
) -> None:
    text = json.dumps(body).replace("{bad}", json.dumps(bad)[1:-1])
    assert_refused(post_raw(world, who, path, text), field)
    assert world.call("ana", "GET", "/projects").status_code == 200
    with world.store.session() as session:
        assert session.query(User).filter(User.username.like("u%")).count() == 0


@pytest.mark.parametrize("bad", BAD_TEXT)
def test_bad_text_in_a_project_path_is_not_found(world: World, bad: str) -> None:
    r = world.call(
        "ana", "GET", "/projects/" + bad.replace("\x00", "%00").replace("\ud800", "%ED%A0%80")
    )
    assert r.status_code == 404, r.text


def test_login_form_with_nul_is_refused(world: World) -> None:
    page = world.client.get("/login")
    token = re.search(r'name="login_csrf" value="([^"]+)"', page.text)
    assert token
    r = world.client.post(
        "/login",
        data={"username": "a\x00b", "password": PASSWORD, "login_csrf": token.group(1)},
        follow_redirects=False,
    )
    assert r.status_code in (401, 422), r.text


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_a_422(world: World, number: str) -> None:
    assert_refused(
        post_raw(world, None, "/login", f'{{"username":{number},"password":"x"}}'), "username"
    )
    lease = world.call("tut", "POST", "/projects/p/work").json()["lease"]
    r = post_raw(
        world, "tut", f"/projects/p/work/{lease}/submit", f'{{"value":"yes","seconds":{number}}}'
    )
    assert_refused(r, "seconds")
    r = post_raw(world, "ana", "/projects/p/tutors", f'{{"username":"tut","cost":{number}}}')
    assert_refused(r, "cost")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/projects/p/work/9223372036854775808/submit"),
        ("POST", f"/projects/p/work/{HUGE}/release"),
        ("POST", "/projects/p/work/2147483648/release"),
        ("GET", "/projects/p/items/2147483648"),
        ("POST", f"/projects/p/work/{HUGE}/undo"),
        ("GET", f"/projects/p/items/{HUGE}"),
        ("POST", f"/projects/p/review/{HUGE}"),
        ("DELETE", f"/tokens/{HUGE}"),
        ("GET", f"/projects/p/queue?run={HUGE}"),
        ("GET", f"/projects/p/reports/automation?run={HUGE}"),
    ],
)
@pytest.mark.parametrize("who", ["ana", "tut"])
def test_huge_ids_are_refused(world: World, method: str, path: str, who: str) -> None:
    body = (
        {"value": "yes"}
        if path.endswith("/submit")
        else {"action": "accept"}
        if "/review/" in path
        else None
    )
    r = world.call(who, method, path, json=body)
    assert r.status_code in (403, 404, 422), r.text


def test_the_largest_id_is_not_found(world: World) -> None:
    assert world.call("ana", "GET", f"/projects/p/items/{limits.MAX_ID}").status_code == 404
    assert world.call("ana", "DELETE", f"/tokens/{limits.MAX_ID}").status_code == 404


@pytest.mark.parametrize(
    "name",
    [
        "a/b",
        "..",
        ".",
        "a b",
        "a?b",
        "a%2Fb",
        ".hidden",
        "",
        "x" * (limits.MAX_PROJECT_NAME_LENGTH + 1),
    ],
)
def test_unreachable_project_names_are_refused(world: World, name: str) -> None:
    assert_refused(
        world.call("ana", "POST", "/projects", json={"name": name, "schema": SCHEMA}), "name"
    )


def test_caps_on_sizes(world: World) -> None:
    def project(**kw: Any) -> Any:
        return world.call("ana", "POST", "/projects", json={"name": "big", "schema": SCHEMA} | kw)

    assert_refused(project(description="d" * (limits.MAX_DESCRIPTION_LENGTH + 1)), "description")
    long = "i" * (limits.MAX_DESCRIPTION_LENGTH + 1)
    assert_refused(project(schema=SCHEMA | {"instructions": long}), "instructions")
    long_label = "l" * (limits.MAX_LABEL_LENGTH + 1)
    assert_refused(
        project(schema={"type": "classification", "labels": [long_label, "n"]}), "labels"
    )
    many = [f"l{i}" for i in range(limits.MAX_LABELS + 1)]
    assert_refused(project(schema={"type": "classification", "labels": many}), "labels")
    assert_refused(
        world.call(
            "ana",
            "POST",
            "/users",
            json={"username": "u" * (limits.MAX_USERNAME_LENGTH + 1), "password": PASSWORD},
        ),
        "username",
    )
    edge = project(
        name="n" * limits.MAX_PROJECT_NAME_LENGTH,
        description="d" * limits.MAX_DESCRIPTION_LENGTH,
        schema={"type": "classification", "labels": ["l" * limits.MAX_LABEL_LENGTH] + many[:-2]},
    )
    assert edge.status_code == 201, edge.text
    assert (
        world.call("ana", "GET", "/projects/" + "n" * limits.MAX_PROJECT_NAME_LENGTH).status_code
        == 200
    )
    for name in ("ünï_code-1.0", "q[b]"):
        assert (
            world.call(
                "ana", "POST", "/projects", json={"name": name, "schema": SCHEMA}
            ).status_code
            == 201
        )
        assert world.call("ana", "GET", "/projects/" + name).status_code == 200


def test_the_server_guide_lists_the_caps() -> None:
    guide = (Path(__file__).parents[2] / "docs" / "guide" / "server.md").read_text(encoding="utf-8")
    section = guide.split("#### Limits", 1)[1].split("\n### ", 1)[0]
    for cap in (
        limits.MAX_PROJECT_NAME_LENGTH,
        limits.MAX_DESCRIPTION_LENGTH,
        limits.MAX_LABELS,
        limits.MAX_LABEL_LENGTH,
        limits.MAX_USERNAME_LENGTH,
        limits.MAX_SOURCE_NAME_LENGTH,
        limits.MAX_EXTERNAL_ID_LENGTH,
        limits.MAX_ITEM_TEXT_LENGTH,
        limits.MAX_ID,
        limits.MAX_DOMAINS,
        limits.MAX_DOMAIN_LENGTH,
        limits.MAX_SEED,
    ):
        assert f"{cap:,}" in section, cap


@pytest.mark.parametrize("seed", [-1, limits.MAX_SEED + 1, 2**70])
@pytest.mark.parametrize("job", ["autolabel", "automate"])
def test_seeds_out_of_range_are_a_422(world: World, job: str, seed: int) -> None:
    assert_refused(world.call("ana", "POST", f"/projects/p/{job}", json={"seed": seed}), "seed")


def test_routing_domain_names_are_capped(world: World) -> None:
    store = world.store
    with store.session() as session:
        proj = create_project(session, name="dom", schema=SCHEMA)
    for bad in (
        ["x" * (limits.MAX_DOMAIN_LENGTH + 1)],
        ["a\x00b"],
        [f"d{i}" for i in range(limits.MAX_DOMAINS + 1)],
    ):
        with pytest.raises(InputError, match="domain"):
            routing.configure(store, proj, domains=bad)
    with pytest.raises(InputError, match="domain_field"):
        routing.configure(store, proj, domain_field="\ud800")
    edge = ["y" * limits.MAX_DOMAIN_LENGTH] + [f"d{i}" for i in range(limits.MAX_DOMAINS - 1)]
    assert routing.configure(store, proj, domains=edge).domains == tuple(edge)
    r = world.call(
        "ana", "POST", "/projects/dom/tutors", json={"username": "tut", "domains": ["z" * 101]}
    )
    assert_refused(r, "domains")
