"""The web UI in a real browser: Debian's Chromium driven by Playwright, the app under uvicorn.

Log in through the form, label five items with the keyboard only, read the dashboard as an admin,
and check that an item whose text is HTML is shown as text and never runs. Screenshots go to
``tests/artifacts/`` (gitignored). Skipped when ``/usr/bin/chromium`` is missing
(``scripts/test`` installs it); Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from browser_helpers import ARTIFACTS, Live, chromium, needs_chromium, serve
from browser_helpers import login as _login
from fastapi.testclient import TestClient
from server_helpers import PASSWORD

from veritag.routing import service as routing
from veritag.server import create_app
from veritag.server.auth import COOKIE
from veritag.store import Store
from veritag.store.models import Claim, Item, Membership
from veritag.store.queries import create_project, create_user

XSS = '<img src=x onerror="window.__pwned=1">'
SCHEMA = {
    "type": "classification",
    "labels": ["positive", "negative", "neutral"],
    "instructions": "Label the sentiment of each sentence.\nUse neutral when unsure.",
}
TEXTS = [
    "I loved every minute of it.",
    "The service was slow and rude.",
    "It arrived on Tuesday.",
    "Best purchase this year!",
    "Would not recommend to anyone.",
]


def _seed(store: Store) -> None:
    """``ana`` admin; ``tut`` tutor of ``p`` (five sentences) and ``x`` (one item that is HTML)."""
    with store.session() as session:
        users = {
            name: create_user(session, username=name, password=PASSWORD, role=role)
            for name, role in [("ana", "admin"), ("tut", "tutor")]
        }
        p = create_project(session, name="p", schema=SCHEMA, description="sentiment <b>x</b>")
        x = create_project(session, name="x", schema=SCHEMA)
        session.add_all(
            [
                Item(project_id=p.id, external_id=f"s{i}", text=t, meta={"domain": "general"})
                for i, t in enumerate(TEXTS)
            ]
        )
        session.add(Item(project_id=x.id, external_id="html", text=XSS, meta={"domain": "general"}))
        session.add_all(
            [
                Membership(project_id=proj.id, user_id=users["tut"].id, role="tutor")
                for proj in (p, x)
            ]
        )
    for proj in (p, x):
        routing.configure(store, proj, gold_rate=0.0, max_labels=1, target=0.5)
        routing.add_tutor(store, proj, "tut")


@pytest.fixture
def seeded(sqlite_store: Store) -> Store:
    _seed(sqlite_store)
    return sqlite_store


# --- without a browser: forms, redirects, CSRF, headers -------------------------------------------


def _form_login(client: TestClient, who: str, password: str = PASSWORD) -> Any:
    page = client.get("/login")
    token = re.search(r'name="login_csrf" value="([^"]+)"', page.text)
    assert token, page.text
    return client.post(
        "/login",
        data={"username": who, "password": password, "login_csrf": token.group(1)},
        follow_redirects=False,
    )


def test_pages_login_logout_and_csrf(seeded: Store) -> None:
    with TestClient(create_app(seeded)) as client:
        for path in ("/", "/p/p/label", "/p/p/dashboard"):
            r = client.get(path, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"] == "/login"
        # the login form's double-submit token is needed
        assert (
            client.post(
                "/login",
                data={"username": "tut", "password": PASSWORD, "login_csrf": "guess"},
                follow_redirects=False,
            ).status_code
            == 403
        )
        bad = _form_login(client, "tut", "wrong password")
        assert bad.status_code == 401 and "Wrong username or password" in bad.text
        ok = _form_login(client, "tut")
        assert (
            ok.status_code == 303 and ok.headers["location"] == "/" and client.cookies.get(COOKIE)
        )
        home = client.get("/")
        assert (
            home.status_code == 200
            and "/p/p/label" in home.text
            and "/p/p/dashboard" not in home.text
        )
        assert "sentiment &lt;b&gt;x&lt;/b&gt;" in home.text  # templates escape what they show
        assert "script-src 'self'" in home.headers["content-security-policy"]
        label = client.get("/p/p/label")
        csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', label.text)
        assert label.status_code == 200 and csrf and "Use neutral when unsure." in label.text
        assert [m for m in re.findall(r'data-value="([^"]+)"', label.text)] == SCHEMA["labels"]
        # the page's token is the session's: the JSON API takes it in X-CSRF-Token
        work = client.post("/api/v1/projects/p/work", headers={"X-CSRF-Token": csrf.group(1)})
        assert work.status_code == 200, work.text
        assert (
            "not available" in client.get("/p/p/dashboard").text.lower()
        )  # a tutor has no dashboard
        assert client.get("/p/p/dashboard").status_code == 403
        # logging out is a form post with the CSRF token
        assert client.post("/logout", data={"csrf_token": "guess"}).status_code == 403
        out = client.post("/logout", data={"csrf_token": csrf.group(1)}, follow_redirects=False)
        assert out.status_code == 303 and client.get("/", follow_redirects=False).status_code == 303


# --- in Chromium ---------------------------------------------------------------------------------


@pytest.fixture
def live(seeded: Store) -> Iterator[Live]:
    """The app under uvicorn in a background thread on a free local port."""
    with serve(seeded) as running:
        yield running


@pytest.fixture
def browser() -> Iterator[Any]:
    """A factory of fresh Chromium profiles (each its own cookie jar), all closed afterwards."""
    with chromium() as profile:
        yield profile


@needs_chromium
def test_label_five_items_by_keyboard_then_dashboard(live: Live, browser: Any) -> None:
    from playwright.sync_api import expect

    page = browser()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _login(page, live, "tut")
    page.click("a[href='/p/p/label']")
    page.wait_for_url(live.url + "/p/p/label")
    expect(page.locator("#instructions")).to_contain_text("Use neutral when unsure.")
    expect(page.locator("#count-total")).to_have_text("0")
    seen: dict[str, str] = {}
    for n in range(5):
        # the count is bumped before the next lease is asked for: wait for the next item itself
        expect(page.locator("#status")).to_contain_text("Pick a label")
        expect(page.locator("#item")).to_be_visible()
        text = page.locator("#item-text").inner_text()
        assert text in TEXTS and text not in seen
        choice = n % 3
        page.keyboard.press(str(choice + 1))
        expect(page.locator("#labels .label").nth(choice)).to_have_class(re.compile(r"\bpicked\b"))
        if n == 2:
            page.screenshot(path=str(ARTIFACTS / "label.png"))
        page.keyboard.press("Enter")
        expect(page.locator("#count-total")).to_have_text(str(n + 1))
        expect(page.locator("#count-today")).to_have_text(str(n + 1))
        seen[text] = SCHEMA["labels"][choice]
    expect(page.locator("#status")).to_contain_text("Nothing left")
    expect(page.locator("#last-seconds")).not_to_have_text("–")
    page.screenshot(path=str(ARTIFACTS / "label-done.png"))
    assert errors == []
    with live.store.session() as session:
        got = session.execute(
            sa.select(Item.text, Claim.value).join(Claim, Claim.item_id == Item.id)
        ).all()
    assert dict(got) == seen

    # a reload shows the stored progress
    page.reload()
    expect(page.locator("#count-total")).to_have_text("5")

    # log out through the form, then the dashboard as the admin
    page.click(".logout button")
    page.wait_for_url(live.url + "/login")
    admin = browser()
    _login(admin, live, "ana")
    admin.click("a[href='/p/p/dashboard']")
    expect(admin.locator("#labels-submitted")).to_have_text("5")
    expect(admin.locator("#items-done")).to_have_text("5")
    expect(admin.locator("#items-pending")).to_have_text("0")
    expect(admin.locator("#tutors")).to_contain_text("tut")
    admin.screenshot(path=str(ARTIFACTS / "dashboard.png"))


@needs_chromium
def test_item_html_is_shown_as_text(live: Live, browser: Any) -> None:
    from playwright.sync_api import expect

    page = browser()
    _login(page, live, "tut")
    page.goto(live.url + "/p/x/label")
    expect(page.locator("#item-text")).to_have_text(XSS)
    assert page.locator("#item img").count() == 0
    page.wait_for_timeout(300)  # give a broken image's onerror time to fire, were it an element
    assert page.evaluate("typeof window.__pwned") == "undefined"
    page.screenshot(path=str(ARTIFACTS / "label-html-item.png"))

    # S asks for a reason and releases the lease; the item goes back to the pool, not to this tutor
    page.keyboard.press("s")
    expect(page.locator("#skip-reason")).to_be_focused()
    page.keyboard.type("cannot tell")
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_contain_text("Nothing left")
    with live.store.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Claim)) == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"
