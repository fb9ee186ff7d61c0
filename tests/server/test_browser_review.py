"""The reviewer page and the admin dashboard in a real browser (Chromium via Playwright, as in
test_browser.py): review two items with the keyboard, then read the dashboard, see its plots
load under the page's CSP and add a member through the form. Screenshots go to tests/artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from browser_helpers import ARTIFACTS, Live, chromium, login, needs_chromium, serve
from server_helpers import PASSWORD
from test_dashboard import seed_automation

from veritag.resolve import resolve_and_store
from veritag.routing import service as routing
from veritag.store import Store
from veritag.store.models import Assignment, Claim, Item, Membership, Project, Review, Source, User
from veritag.store.queries import create_user, source_ids

XSS = '<img src=x onerror="window.__pwned=1">'


@pytest.fixture
def review_live(sqlite_store: Store) -> Iterator[Live]:
    """Project ``p`` (automated, see ``seed_automation``) where t2 labels 24 items and contradicts
    t1 on four, the first of which is HTML; both are routing tutors with timed leases (t1: 12
    taking 4..37 s, t2: 6 taking 9..34 s and two skips). ``rev`` reviews, ``ana`` is a global
    admin, ``newbie`` no member."""
    store = sqlite_store
    project = seed_automation(store, "p", n=200)
    with store.session() as session:
        users = {
            name: create_user(session, username=name, password=PASSWORD, role=role)
            for name, role in [("ana", "admin"), ("rev", "reviewer"), ("newbie", "tutor")]
        }
        session.add(Membership(project_id=project.id, user_id=users["rev"].id, role="reviewer"))
        session.execute(
            sa.update(Item)
            .where(Item.project_id == project.id, Item.external_id == "m0")
            .values(text=XSS)
        )
    with store.engine.begin() as conn:
        t2 = source_ids(conn, project_id=project.id, kind="human", names={"t2"})["t2"]
        ids = [
            conn.scalar(
                sa.select(Item.id).where(Item.project_id == project.id, Item.external_id == f"m{i}")
            )
            for i in range(4)
        ]
        rows = conn.execute(
            sa.select(Claim.item_id, Claim.value)
            .join(Source, Source.id == Claim.source_id)
            .join(Item, Item.id == Claim.item_id)
            .where(Source.name == "t1", Item.external_id.in_([f"m{i}" for i in range(24)]))
        ).all()
        flip = set(ids[:4])
        conn.execute(
            sa.insert(Claim),
            [
                {
                    "project_id": project.id,
                    "item_id": item,
                    "source_id": t2,
                    "value": ("spam" if value == "ham" else "ham") if item in flip else value,
                }
                for item, value in rows
            ],
        )
    routing.configure(store, project, gold_rate=0.0, max_labels=2, target=0.9)
    tutors = {t: routing.add_tutor(store, project, t, domains=["general"]) for t in ("t1", "t2")}
    now = datetime.now(UTC)
    leases = [("t1", 4.0 + 3 * i, None) for i in range(12)] + [
        ("t2", 9.0 + 5 * i, None) for i in range(6)
    ]
    leases += [("t2", None, "cannot tell"), ("t2", None, "too long")]
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(Assignment),
            [
                {
                    "project_id": project.id,
                    "item_id": ids[j % len(ids)],
                    "tutor_id": tutors[t].id,
                    "is_gold": False,
                    "cost": 1.0,
                    "leased_at": now - timedelta(hours=1),
                    "expires_at": now - timedelta(minutes=30),
                    "state": "released" if reason else "submitted",
                    "seconds": seconds,
                    "skip_reason": reason,
                }
                for j, (t, seconds, reason) in enumerate(leases)
            ],
        )
    resolve_and_store(store, project)  # the run the review page and the dashboard read
    with serve(store) as running:
        yield running


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as profile:
        yield profile


def _watch(page: Any) -> list[str]:
    """Script errors, console errors (a CSP violation is one) and failed requests of ``page``
    (the favicon, which the server does not have, apart)."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.on(
        "response",
        lambda r: (
            errors.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico")
            else None
        ),
    )
    return errors


@needs_chromium
def test_review_by_keyboard_then_admin_dashboard(review_live: Live, browser: Any) -> None:
    from playwright.sync_api import expect

    live = review_live
    page = browser()
    errors = _watch(page)
    login(page, live, "rev")
    page.goto(live.url + "/p/p/review")
    expect(page.locator("#status")).to_contain_text("A accept")
    expect(page.locator("#claims tbody tr").first).to_be_visible()
    assert page.locator("#reasons li").count() >= 1
    first = page.locator("#item-meta").inner_text()
    accepted = page.locator("#resolved-label").inner_text()
    assert accepted in ("ham", "spam")
    page.keyboard.press("a")
    expect(page.locator("#count-reviewed")).to_have_text("1")
    expect(page.locator("#item-meta")).not_to_have_text(first)
    second = page.locator("#item-meta").inner_text()
    page.keyboard.press("c")
    expect(page.locator("#correct-form")).to_be_visible()
    page.keyboard.press("2")
    expect(page.locator("#labels .label").nth(1)).to_have_class("label picked")
    page.screenshot(path=str(ARTIFACTS / "review.png"), full_page=True)
    page.keyboard.press("Enter")
    expect(page.locator("#count-reviewed")).to_have_text("2")
    expect(page.locator("#last-action")).to_contain_text("Corrected to spam")
    expect(page.locator("#item-meta")).not_to_have_text(second)
    page.keyboard.press("n")  # pass without a verdict
    page.wait_for_timeout(200)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert errors == []
    with live.store.engine.connect() as conn:
        reviews = conn.execute(
            sa.select(Review.action, Claim.value, Item.external_id, User.username)
            .join(Claim, Claim.id == Review.claim_id)
            .join(Item, Item.id == Review.item_id)
            .join(User, User.id == Review.user_id)
            .order_by(Review.id)
        ).all()
    assert [(r[0], r[1], r[3]) for r in reviews] == [
        ("accept", accepted, "rev"),
        ("correct", "spam", "rev"),
    ]
    assert [f"item {r[2]}" for r in reviews] == [first.split(" (#")[0], second.split(" (#")[0]]

    admin = browser()
    admin_errors = _watch(admin)
    login(admin, live, "ana")
    admin.goto(live.url + "/p/p/dashboard")
    expect(admin.locator("#tutors")).to_contain_text("t1")
    expect(admin.locator("#automation-rate")).to_contain_text("of 200 items")
    expect(admin.locator("#reviews-count")).to_have_text("2")
    for plot in ("#plot-calibration", "#plot-bias", "#plot-accuracy"):
        admin.wait_for_function(
            f"document.querySelector('{plot}').complete && "
            f"document.querySelector('{plot}').naturalWidth > 0",
            timeout=20_000,
        )
    admin.fill("#member-username", "newbie")
    admin.select_option("#member-role", "reviewer")
    admin.click("#member-form button[type=submit]")
    expect(admin.locator("#member-result")).to_contain_text("Added newbie as reviewer")
    expect(admin.locator("#members-table")).to_contain_text("newbie")
    expect(admin.locator("#tutors tr[data-tutor=t1] .median-seconds")).to_have_text("20.5")
    expect(admin.locator("#tutors tr[data-tutor=t2] .skips")).to_have_text("2")
    admin.screenshot(path=str(ARTIFACTS / "dashboard-admin.png"), full_page=True)
    admin.fill("#member-username", "nobody")
    admin.click("#member-form button[type=submit]")
    expect(admin.locator("#member-result")).to_contain_text("no user named 'nobody'")
    assert admin_errors == [f"404 {live.url}/api/v1/projects/p/members"]  # the unknown user
    with live.store.engine.connect() as conn:
        role = conn.scalar(
            sa.select(Membership.role)
            .join(User, User.id == Membership.user_id)
            .join(Project, Project.id == Membership.project_id)
            .where(User.username == "newbie", Project.name == "p")
        )
    assert role == "reviewer"
