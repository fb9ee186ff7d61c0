"""An arena project in a real browser (Chromium via Playwright, uvicorn).

A tutor answers four battles with the keys 1-4 (left, right, tie, both bad); the stored claims are
A/B/tie/both_bad matching what was on the left and right, and no model name is ever on the page.
A reviewer opens the leaderboard: the models are listed and the interval plot loads. The
leaderboard's screenshot (``tests/artifacts/arena.png``) is the README's ``docs/img/arena.png``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from browser_helpers import ARTIFACTS, chromium, login, needs_chromium, serve
from server_helpers import PASSWORD

from veritag.arena import import_battles, import_responses
from veritag.routing import service as routing
from veritag.store import Store
from veritag.store.models import Claim, Item, Membership
from veritag.store.queries import create_project, create_user

pytestmark = needs_chromium

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "prd_vicuna80_battles_sample.jsonl"
MODELS = ("secret-model-alpha", "secret-model-beta")
XSS = '<img src=x onerror="window.__pwned=1">'


def _seed(store: Store, tmp_path: Path) -> None:
    """``ar``: four prompts answered by two hidden models, ``tut`` labels; ``prd``: the prd_vicuna80
    sample's battles; ``rev`` reviews both."""
    with store.session() as session:
        tut = create_user(session, username="tut", password=PASSWORD, role="tutor")
        rev = create_user(session, username="rev", password=PASSWORD, role="reviewer")
        ar = create_project(
            session, name="ar", schema={"type": "arena", "instructions": "Which answer is better?"}
        )
        prd = create_project(session, name="prd", schema={"type": "arena"})
        session.add_all(
            [
                Membership(project_id=ar.id, user_id=tut.id, role="tutor"),
                Membership(project_id=ar.id, user_id=rev.id, role="reviewer"),
                Membership(project_id=prd.id, user_id=rev.id, role="reviewer"),
            ]
        )
    rows = [
        {
            "prompt_id": f"p{i}",
            "prompt": prompt,
            "model": m,
            "response": f"Answer {k + 1} to prompt {i}." + (XSS if i == 1 else ""),
            "domain": "general",
        }
        for i, prompt in enumerate(
            [
                "What is 2+2?",
                "Name a primary colour " + XSS,
                "Capital of France?",
                "A haiku about rain?",
            ]
        )
        for k, m in enumerate(MODELS)
    ]
    path = tmp_path / "responses.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    import_responses(store, ar, path)
    routing.configure(store, ar, gold_rate=0.0, max_labels=1, target=0.5, domains=["general"])
    routing.add_tutor(store, ar, "tut")
    import_battles(store, prd, SAMPLE, source_name="prd-humans")


@pytest.fixture
def live(sqlite_store: Store, tmp_path: Path) -> Iterator[Any]:
    _seed(sqlite_store, tmp_path)
    with serve(sqlite_store) as running:
        yield running


def _next(page: Any, previous: str | None) -> str:
    page.wait_for_function(
        "prev => { const i = document.getElementById('item');"
        " return i && !i.hidden && i.dataset.lease && i.dataset.lease !== prev; }",
        arg=previous or "",
    )
    return str(page.locator("#item").get_attribute("data-lease"))


def test_a_tutor_votes_with_keys_1_to_4_and_a_reviewer_sees_the_board(live: Any) -> None:
    from playwright.sync_api import expect

    with chromium() as profile:
        page = profile()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        login(page, live, "tut")
        page.goto(f"{live.url}/p/ar/label")
        expect(page.locator("#labels .label")).to_have_text(
            ["1 Left is better", "2 Right is better", "3 Tie", "4 Both bad"]
        )
        expect(page.locator("#keys")).to_contain_text("both bad")
        expected: dict[int, str] = {}
        lease = None
        for key, answer in (("1", "left"), ("2", "right"), ("3", "tie"), ("4", "both_bad")):
            lease = _next(page, lease)
            item_id = int(page.locator("#item").get_attribute("data-item-id"))
            with live.store.session() as session:
                data = session.get_one(Item, item_id).data
            left = page.locator("#pair-left").inner_text()
            assert {left, page.locator("#pair-right").inner_text()} == {
                data["response_a"],
                data["response_b"],
            }
            expect(page.locator("#pair-prompt")).to_have_text(data["prompt"])
            content = page.content()
            assert not any(
                m in content for m in MODELS
            )  # neither in the text nor in the item's meta line
            assert page.evaluate("window.__pwned") is None
            page.keyboard.press(key)
            expect(page.locator("#labels .label").nth(int(key) - 1)).to_have_attribute(
                "aria-pressed", "true"
            )
            if key == "4":
                page.screenshot(path=str(ARTIFACTS / "arena-label.png"))
            page.keyboard.press("Enter")
            left_is_a = left == data["response_a"]
            expected[item_id] = {
                "left": "A" if left_is_a else "B",
                "right": "B" if left_is_a else "A",
            }.get(answer, answer)
        expect(page.locator("#status")).to_contain_text("Nothing left")
        with live.store.engine.connect() as conn:
            stored = dict(
                conn.execute(
                    sa.select(Claim.item_id, Claim.value)
                    .join(Item, Item.id == Claim.item_id)
                    .where(Item.external_id.like("p%"))
                ).all()
            )
        assert stored == expected
        assert errors == []

        page = profile()
        login(page, live, "rev")
        expect(page.locator('a[href="/p/prd/arena"]')).to_have_text("Leaderboard")
        page.goto(f"{live.url}/p/ar/arena")
        expect(page.locator("#leaderboard td.model")).to_have_count(2)
        page.goto(f"{live.url}/p/prd/arena")
        models = page.locator("#leaderboard td.model")
        expect(models).to_have_count(9)
        assert "gpt4" in models.all_inner_texts()
        plot = page.locator("#arena-plot")
        page.wait_for_function(
            "() => { const i = document.getElementById('arena-plot');"
            " return i && i.complete && i.naturalWidth > 0; }"
        )
        assert plot.evaluate("i => i.naturalWidth") > 0
        page.screenshot(path=str(ARTIFACTS / "arena.png"), full_page=True)
