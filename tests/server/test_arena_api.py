"""Arena projects over the API: the leaderboard (reviewers and admins only), the tutor's battle
without model names, the four answers stored as A/B/tie/both_bad, and the leaderboard page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from server_helpers import World, form_login

from veritag.arena import import_battles, import_responses
from veritag.routing import service as routing
from veritag.server import create_app
from veritag.store import Project
from veritag.store.models import Claim, Item, Membership, User
from veritag.store.queries import create_project

MODELS = ("secret-alpha", "secret-beta", "secret-gamma")


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def ar(world: World, tmp_path: Path) -> Project:
    """Arena project ``ar``: 4 prompts x 3 models, the battles of two prompts judged (those of the
    other two are left for ``tut``); rev reviews, tut labels."""
    store = world.store
    with store.session() as session:
        proj = create_project(session, name="ar", schema={"type": "arena"})
        users = {u.username: u.id for u in session.scalars(sa.select(User))}
        session.add_all(
            [
                Membership(project_id=proj.id, user_id=users["rev"], role="reviewer"),
                Membership(project_id=proj.id, user_id=users["tut"], role="tutor"),
            ]
        )
    import_responses(
        store,
        proj,
        _jsonl(
            tmp_path / "r.jsonl",
            [
                {
                    "prompt_id": f"q{p}",
                    "prompt": f"Question {p}?",
                    "model": m,
                    "response": f"answer {p} number {k}",
                    "domain": "math" if p % 2 else "code",
                }
                for p in range(4)
                for k, m in enumerate(MODELS)
            ],
        ),
    )
    import_battles(
        store,
        proj,
        _jsonl(
            tmp_path / "b.jsonl",
            [
                {
                    "question_id": f"q{p}",
                    "model_a": a,
                    "model_b": b,
                    "winner": "model_a",
                    "judge": j,
                }
                for p in range(2)
                for a, b in (
                    ("secret-alpha", "secret-beta"),
                    ("secret-beta", "secret-gamma"),
                    ("secret-alpha", "secret-gamma"),
                )
                for j in ("j1", "j2")
            ]
            + [
                {
                    "question_id": "q0",
                    "model_a": "secret-gamma",
                    "model_b": "secret-alpha",
                    "winner": "model_a",
                    "judge": "j1",
                }
            ],
        ),
    )
    routing.configure(
        store, proj, gold_rate=0.0, max_labels=6, target=0.9999, domains=["code", "math"]
    )
    routing.add_tutor(store, proj, "tut", domains=["code", "math"])
    return proj


def test_the_leaderboard_is_for_reviewers_and_admins(world: World, ar: Project) -> None:
    for who in ("ana", "rev"):
        r = world.call(who, "GET", "/projects/ar/arena/leaderboard?rounds=20")
        assert r.status_code == 200, r.text
        board = r.json()
        assert [m["model"] for m in board["models"]] == list(MODELS)
        assert board["domains"] == ["code", "math"] and board["weighted"] is True
    assert world.call("tut", "GET", "/projects/ar/arena/leaderboard").status_code == 403
    assert world.call("out", "GET", "/projects/ar/arena/leaderboard").status_code == 403

    math = world.call(
        "rev", "GET", "/projects/ar/arena/leaderboard?domain=math&interval=sandwich&ties=davidson"
    ).json()
    assert math["domain"] == "math" and math["tie_param"] is not None
    assert sum(m["battles"] for m in math["models"]) == 2 * 6
    assert world.call("rev", "GET", "/projects/ar/arena/leaderboard?ties=elo").status_code == 422
    r = world.call("rev", "GET", "/projects/ar/arena/leaderboard?domain=poetry")
    assert r.status_code == 422 and "no votes in domain 'poetry'" in r.json()["detail"]
    r = world.call("rev", "GET", "/projects/p/arena/leaderboard")
    assert r.status_code == 422 and "not an arena project" in r.json()["detail"]


def test_a_tutor_answers_a_battle_without_seeing_the_models(world: World, ar: Project) -> None:
    stored: dict[int, list[str]] = {}
    for answer in ("left", "right", "tie", "both_bad"):
        lease = world.call("tut", "POST", "/projects/ar/work").json()
        assert lease["type"] == "arena" and lease["data"] is None
        pair = lease["pair"]
        assert set(pair) == {"prompt", "left", "right"}
        assert not any(
            m in json.dumps(pair) for m in ("secret-alpha", "secret-beta", "secret-gamma")
        )
        with world.store.session() as session:
            data = session.get(Item, lease["item_id"]).data
        r = world.call(
            "tut", "POST", f"/projects/ar/work/{lease['lease']}/submit", json={"value": answer}
        )
        assert r.status_code == 200, r.text
        left_is_a = pair["left"] == data["response_a"]
        expected = {"left": "A" if left_is_a else "B", "right": "B" if left_is_a else "A"}.get(
            answer, answer
        )
        stored.setdefault(lease["item_id"], []).append(expected)
    with world.store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(Claim.item_id, Claim.value)
            .join(Item, Item.id == Claim.item_id)
            .where(Claim.project_id == ar.id, Claim.dedup_key.is_(None))
        ).all()
    got: dict[int, list[str]] = {}
    for item_id, value in rows:
        got.setdefault(item_id, []).append(value)
    assert got == stored


def test_a_tutors_lease_names_no_model(world: World, ar: Project) -> None:
    lease = world.call("tut", "POST", "/projects/ar/work").json()
    assert not any(m in json.dumps(lease) for m in MODELS)


def test_the_leaderboard_page_and_its_plot(world: World, ar: Project) -> None:
    with TestClient(create_app(world.store)) as client:
        form_login(client, "rev")
        assert '/p/ar/arena">Leaderboard</a>' in client.get("/").text
        page = client.get("/p/ar/arena")
        assert (
            page.status_code == 200
            and "script-src 'self'" in page.headers["content-security-policy"]
        )
        for model in MODELS:
            assert f'<td class="model">{model}</td>' in page.text
        assert (
            'src="/p/ar/arena.svg' not in page.text and 'src="/p/ar/plots/arena.svg"' in page.text
        )
        assert '<option value="math">math</option>' in page.text
        plot = client.get("/p/ar/plots/arena.svg")
        assert (
            plot.headers["content-type"].startswith("image/svg+xml")
            and plot.text.count("<circle") == 3
        )
        math = client.get("/p/ar/arena?domain=math")
        assert (
            '<option value="math" selected>math</option>' in math.text
            and "plots/arena.svg?domain=math" in math.text
        )
        assert "no votes in domain" in client.get("/p/ar/arena?domain=poetry").text
        assert "no votes in domain" in client.get("/p/ar/plots/arena.svg?domain=poetry").text
        assert client.get("/p/ar/plots/calibration.svg").status_code in (
            200,
            404,
        )  # review's plots still served
    with TestClient(create_app(world.store)) as client:
        form_login(client, "tut")
        assert client.get("/p/ar/arena").status_code == 403
        assert client.get("/p/ar/plots/arena.svg").status_code == 403
        assert "Leaderboard" not in client.get("/").text
