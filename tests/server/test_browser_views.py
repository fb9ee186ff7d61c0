"""The labeling page for every task type, in a real browser (Chromium via Playwright, uvicorn).

One project per task type with a few items; a tutor labels them through the page, by keyboard
where the task allows, and the stored claims are read back: multilabel lists, a pairwise "left"
stored as whichever of A and B was on the left, span offsets in code points (an emoji before the
span counts as one), free text submitted with Ctrl+Enter, fact checks with evidence (and refused
without it). Skipping with a reason, undo (U) and the seconds per item are checked in the
database too. HTML in item text and data is shown as text. Screenshots go to ``tests/artifacts/``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from browser_helpers import ARTIFACTS, Live, chromium, login, needs_chromium, serve
from server_helpers import PASSWORD

from veritag.routing import service as routing
from veritag.store import Store
from veritag.store.models import Assignment, Claim, Item, Membership
from veritag.store.queries import create_project, create_user

pytestmark = needs_chromium

XSS = '<img src=x onerror="window.__pwned=1">'

PROJECTS: dict[str, tuple[dict[str, Any], list[tuple[str, str | None, dict[str, Any] | None]]]] = {
    "ml": (
        {
            "type": "multilabel",
            "labels": ["sports", "politics", "tech", "health"],
            "min_labels": 1,
            "max_labels": 2,
            "instructions": "Tag each headline with one or two topics.",
        },
        [
            ("m1", "Parliament votes on the new stadium budget", None),
            ("m2", "Minister resigns " + XSS, {"source": XSS, "tags": ["wire", "<b>x</b>"]}),
        ],
    ),
    "pw": (
        {"type": "pairwise", "instructions": "Which answer is more helpful?"},
        [
            (
                f"w{i}",
                None,
                {
                    "prompt": p,
                    "response_a": a,
                    "response_b": b,
                    "model_a": "secret-model-alpha",
                    "model_b": "secret-model-beta",
                },
            )
            for i, (p, a, b) in enumerate(
                [
                    ("What is 2+2?", "It is 4.", "Probably 5."),
                    ("Name a primary colour.", "Red.", "Purple, I think." + XSS),
                    ("Capital of France? " + XSS, "Paris.", "Lyon."),
                ]
            )
        ],
    ),
    "sp": (
        {"type": "span", "labels": ["PLACE", "PERSON"], "instructions": "Mark places and people."},
        [
            ("s1", "🎉 Party at Café Zürich with Ann tonight.", None),
            ("s2", "<b>Bob</b> met 👩‍💻 Eve in Oslo", {"note": XSS}),
        ],
    ),
    "ft": (
        {
            "type": "free_text",
            "min_length": 5,
            "max_length": 200,
            "instructions": "Rewrite the sentence politely.",
        },
        [("f1", "Give me the report now.", None), ("f2", "Your code is bad. " + XSS, None)],
    ),
    "fc": (
        {
            "type": "fact_check",
            "require_evidence": True,
            "instructions": "Check the claim against the evidence.",
        },
        [
            (
                "c1",
                "The Eiffel Tower is in Berlin.",
                {
                    "evidence": "The Eiffel Tower is a landmark in Paris, France.",
                    "sources": ["https://example.org/eiffel", XSS],
                    "note": XSS,
                },
            ),
            (
                "c2",
                "Water boils at 100 °C at sea level.",
                {
                    "evidence": "At 1 atm water boils at 100 degrees Celsius.",
                    "sources": ["https://example.org/water"],
                },
            ),
        ],
    ),
    "rt": (
        {"type": "rating", "min": 1, "max": 5, "instructions": "Rate how clear each sentence is."},
        [
            ("r1", "The meeting is at noon.", None),
            ("r2", "Thing happen when it do.", None),
            ("r3", "Bring " + XSS + " please.", None),
        ],
    ),
}


def _seed(store: Store, name: str) -> None:
    """``tut``, tutor member and routing tutor of project ``name`` (from ``PROJECTS``)."""
    schema, items = PROJECTS[name]
    with store.session() as session:
        tut = create_user(session, username="tut", password=PASSWORD, role="tutor")
        proj = create_project(session, name=name, schema=schema)
        session.add_all(
            [
                Item(
                    project_id=proj.id,
                    external_id=ext,
                    text=text,
                    data=data,
                    meta={"domain": "general"},
                )
                for ext, text, data in items
            ]
        )
        session.add(Membership(project_id=proj.id, user_id=tut.id, role="tutor"))
    routing.configure(store, proj, gold_rate=0.0, max_labels=1, target=0.5)
    routing.add_tutor(store, proj, "tut")


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as profile:
        yield profile


@pytest.fixture
def open_project(
    sqlite_store: Store, browser: Any
) -> Iterator[Callable[[str], tuple[Live, Any, list[str]]]]:
    """Seed one project, serve it, log ``tut`` in and open its labeling page: (live, page, JS
    errors)."""
    with serve(sqlite_store) as live:

        def opener(name: str) -> tuple[Live, Any, list[str]]:
            _seed(sqlite_store, name)
            page = browser()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            login(page, live, "tut")
            page.goto(f"{live.url}/p/{name}/label")
            return live, page, errors

        yield opener


# --- helpers -------------------------------------------------------------------------------------


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def next_item(page: Any, previous: str | None = None) -> str:
    """Wait until an item other than lease ``previous`` is on screen; its lease id."""
    page.wait_for_function(
        "prev => { const i = document.getElementById('item');"
        " return i && !i.hidden && i.dataset.lease && i.dataset.lease !== prev; }",
        arg=previous or "",
    )
    lease = page.locator("#item").get_attribute("data-lease")
    assert lease
    return str(lease)


def nothing_left(page: Any) -> None:
    _expect()(page.locator("#status")).to_contain_text("Nothing left")


def item_of(live: Live, page: Any) -> Item:
    item_id = int(page.locator("#item").get_attribute("data-item-id"))
    with live.store.session() as session:
        row = session.get_one(Item, item_id)
        session.expunge(row)
    return row


def claims(live: Live) -> list[dict[str, Any]]:
    with live.store.session() as session:
        rows = session.execute(
            sa.select(Claim.id, Item.external_id, Claim.value, Claim.retracts)
            .join(Item, Item.id == Claim.item_id)
            .order_by(Claim.id)
        ).all()
    return [{"id": r[0], "item": r[1], "value": r[2], "retracts": r[3]} for r in rows]


def standing(live: Live) -> dict[str, Any]:
    """item external id -> the value of its one claim that is neither retracted nor a retraction."""
    rows = claims(live)
    gone = {r["retracts"] for r in rows if r["retracts"] is not None}
    out: dict[str, Any] = {}
    for r in rows:
        if r["retracts"] is None and r["id"] not in gone:
            assert r["item"] not in out, rows
            out[r["item"]] = r["value"]
    return out


def assignments(live: Live) -> dict[int, dict[str, Any]]:
    with live.store.session() as session:
        rows = session.execute(
            sa.select(
                Assignment.id,
                Assignment.state,
                Assignment.seconds,
                Assignment.skip_reason,
                Assignment.claim_id,
            )
        ).all()
    return {
        r[0]: {"state": r[1], "seconds": r[2], "skip_reason": r[3], "claim_id": r[4]} for r in rows
    }


def no_injection(page: Any) -> None:
    """HTML from items was shown as text: no element made from it, no handler ran."""
    page.wait_for_timeout(200)  # a broken image's onerror would have fired by now
    assert page.locator("#item img, #item b, #item script").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"


def select_text(page: Any, needle: str) -> None:
    """Select ``needle`` in the item text with the mouse: press before its first character, drag
    past its last."""
    box = page.evaluate(
        """needle => {
          const root = document.getElementById('item-text');
          const at = root.textContent.indexOf(needle);
          if (at < 0) { return null; }
          // the box of the text between two UTF-16 offsets of the whole text
          function rect(offset, len) {
            const walk = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
            let node, seen = 0;
            while ((node = walk.nextNode())) {
              const n = node.data.length;
              if (offset < seen + n) {
                const r = document.createRange();
                r.setStart(node, offset - seen);
                r.setEnd(node, offset - seen + len);
                return r.getBoundingClientRect();
              }
              seen += n;
            }
            return null;
          }
          const first = rect(at, 1), last = rect(at + needle.length - 1, 1);
          return {x1: first.left + 1, y1: first.top + first.height / 2,
                  x2: last.right - 1, y2: last.top + last.height / 2};
        }""",
        needle,
    )
    assert box, needle
    page.mouse.move(box["x1"], box["y1"])
    page.mouse.down()
    page.mouse.move((box["x1"] + box["x2"]) / 2, box["y2"], steps=4)
    page.mouse.move(box["x2"], box["y2"], steps=4)
    page.mouse.up()
    assert page.evaluate("window.getSelection().toString()") == needle


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"label-{name}.png"), full_page=True)


# --- the task types ------------------------------------------------------------------------------


def test_multilabel_digits_toggle_within_limits(open_project: Any) -> None:
    expect = _expect()
    live, page, errors = open_project("ml")
    expect(page.locator("#limits")).to_contain_text("at least 1 and at most 2")
    expect(page.locator("#keys")).to_contain_text("turn a label on or off")
    buttons = page.locator("#labels .label")
    done: dict[str, list[str]] = {}
    lease = None
    for _ in range(2):
        lease = next_item(page, lease)
        ext = item_of(live, page).external_id
        if ext == "m1":
            page.keyboard.press("2")
            page.keyboard.press("1")
            page.keyboard.press("4")  # a third label is one too many
            expect(page.locator("#status")).to_contain_text("At most 2")
            expect(buttons.nth(3)).to_have_attribute("aria-pressed", "false")
            page.keyboard.press("1")  # off again
            page.keyboard.press("3")
            for i, on in enumerate(["false", "true", "true", "false"]):
                expect(buttons.nth(i)).to_have_attribute("aria-pressed", on)
            shot(page, "multilabel")
            done[ext] = ["politics", "tech"]
        else:
            # data fields are shown as labeled blocks, as text
            expect(page.locator("#item-data [data-field='source'] .text")).to_have_text(XSS)
            expect(page.locator("#item-data [data-field='tags'] li")).to_have_text(
                ["wire", "<b>x</b>"]
            )
            expect(page.locator("#item-text")).to_have_text(PROJECTS["ml"][1][1][1] or "")
            no_injection(page)
            page.keyboard.press("Enter")  # none chosen: min_labels is 1
            expect(page.locator("#status")).to_contain_text("at least 1")
            page.keyboard.press("4")
            done[ext] = ["health"]
        page.keyboard.press("Enter")
    nothing_left(page)
    assert standing(live) == done
    assert errors == []


def _pair_shown(live: Live, page: Any) -> tuple[str, str, str]:
    """The item on screen and which stored side ("A" or "B") is shown left and right; checks what is
    shown."""
    expect = _expect()
    item = item_of(live, page)
    data = item.data or {}
    left = page.locator("#pair-left").inner_text()
    right = page.locator("#pair-right").inner_text()
    expect(page.locator("#pair-prompt")).to_have_text(data["prompt"])
    assert {left, right} == {data["response_a"], data["response_b"]}
    content = page.content()
    assert "secret-model" not in content  # the page never says which is which
    no_injection(page)
    return (
        item.external_id,
        ("A" if left == data["response_a"] else "B"),
        ("B" if left == data["response_a"] else "A"),
    )


def test_pairwise_left_right_maps_back_to_a_b(open_project: Any) -> None:
    expect = _expect()
    live, page, errors = open_project("pw")
    expect(page.locator("#pair h3")).to_have_text(["Prompt", "Left", "Right"])
    expect(page.locator("#labels .label")).to_have_text(
        [re.compile("Left is better"), re.compile("Right is better"), re.compile("Tie")]
    )
    buttons = page.locator("#labels .label")
    expected: dict[str, str] = {}

    first = next_item(page)
    x1, left1, right1 = _pair_shown(live, page)
    left_text = page.locator("#pair-left").inner_text()
    page.keyboard.press("1")
    expect(buttons.nth(0)).to_have_attribute("aria-pressed", "true")
    shot(page, "pairwise")
    page.keyboard.press("Enter")
    second = next_item(page, first)

    # U brings the first item back, same sides, "left" preselected; then the second item comes back
    page.keyboard.press("u")
    expect(page.locator("#item")).to_have_attribute("data-lease", first)
    expect(page.locator("#undo-note")).to_be_visible()
    expect(page.locator("#pair-left")).to_have_text(left_text)
    expect(buttons.nth(0)).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("2")
    expect(buttons.nth(0)).to_have_attribute("aria-pressed", "false")
    page.keyboard.press("Enter")
    expected[x1] = right1
    expect(page.locator("#item")).to_have_attribute("data-lease", second)

    x2, _, _ = _pair_shown(live, page)
    page.keyboard.press("3")
    page.keyboard.press("Enter")
    expected[x2] = "tie"
    next_item(page, second)
    x3, left3, _ = _pair_shown(live, page)
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    expected[x3] = left3
    nothing_left(page)

    assert standing(live) == expected
    rows = claims(live)
    retractions = [c for c in rows if c["retracts"] is not None]
    assert (
        len(retractions) == 1 and retractions[0]["value"] is None and retractions[0]["item"] == x1
    )
    undone = next(c for c in rows if c["id"] == retractions[0]["retracts"])
    assert undone["value"] == left1
    assert errors == []


def test_span_select_and_label_with_emoji_offsets(open_project: Any) -> None:
    expect = _expect()
    live, page, errors = open_project("sp")
    rows = page.locator("#span-list li")
    expected: dict[str, list[dict[str, Any]]] = {}
    lease = None
    for _ in range(2):
        lease = next_item(page, lease)
        item = item_of(live, page)
        text = item.text or ""
        expect(page.locator("#item-text")).to_have_text(text)

        def span(needle: str, label: str, text: str = text) -> dict[str, Any]:
            start = text.index(needle)  # Python: code points, as the server counts
            return {"start": start, "end": start + len(needle), "label": label}

        if item.external_id == "s1":
            select_text(page, "Café Zürich")
            page.keyboard.press("1")
            select_text(page, "Ann")
            page.locator(
                "#labels .label", has_text="PERSON"
            ).click()  # the mouse, too, keeps the selection
            expect(rows).to_have_count(2)
            select_text(page, "Party")
            page.keyboard.press("2")
            expect(rows).to_have_count(3)
            page.keyboard.press("Backspace")  # takes the last one back
            expect(rows).to_have_count(2)
            select_text(page, "tonight")
            page.keyboard.press("1")
            expect(rows.nth(2)).to_contain_text("tonight")
            rows.nth(2).locator("button.remove").click()  # × removes that one
            expect(rows).to_have_count(2)
            expect(rows.nth(0)).to_contain_text("Café Zürich")
            expect(rows.nth(1)).to_contain_text("Ann")
            expect(page.locator("#item-text mark")).to_have_text(["Café Zürich", "Ann"])
            shot(page, "span")
            expected["s1"] = [span("Café Zürich", "PLACE"), span("Ann", "PERSON")]
            assert expected["s1"][0]["start"] == 11  # the emoji is one character
        else:
            no_injection(page)
            expect(page.locator("#item-data [data-field='note'] .text")).to_have_text(XSS)
            page.keyboard.press("1")  # nothing selected: says so
            expect(page.locator("#status")).to_contain_text("Select some of the text")
            select_text(page, "Oslo")
            page.keyboard.press("1")
            select_text(page, "Eve")
            page.keyboard.press("2")
            expected["s2"] = [span("Eve", "PERSON"), span("Oslo", "PLACE")]
        page.keyboard.press("Enter")
    nothing_left(page)
    assert standing(live) == expected

    # undo the last one: its spans come back as they were, highlighted, and go in again unchanged
    page.keyboard.press("u")
    expect(page.locator("#undo-note")).to_be_visible()
    expect(rows).to_have_count(2)
    last = item_of(live, page).external_id
    texts = ["Café Zürich", "Ann"] if last == "s1" else ["Eve", "Oslo"]
    expect(page.locator("#item-text mark")).to_have_text(texts)
    page.keyboard.press("Enter")
    nothing_left(page)
    assert standing(live) == expected
    assert len([c for c in claims(live) if c["retracts"] is not None]) == 1
    assert errors == []


def test_free_text_ctrl_enter_submits(open_project: Any) -> None:
    expect = _expect()
    live, page, errors = open_project("ft")
    answer = page.locator("#answer")
    expected: dict[str, str] = {}
    lease = None
    for _ in range(2):
        lease = next_item(page, lease)
        item = item_of(live, page)
        expect(page.locator("#item-text")).to_have_text(item.text or "")
        expect(answer).to_be_focused()
        expect(answer).to_have_value("")
        if item.external_id == "f1":
            page.keyboard.type("Could you send the report")
            page.keyboard.press("Enter")  # a new line, not a submit
            page.keyboard.type("soon, please?")
            expect(answer).to_have_value("Could you send the report\nsoon, please?")
            expect(page.locator("#skip-form")).to_be_hidden()  # "s" and "u" were typed, not keys
            expect(page.locator("#answer-count")).to_contain_text("39 characters")
            shot(page, "free-text")
            expected["f1"] = "Could you send the report\nsoon, please?"
        else:
            no_injection(page)
            page.keyboard.type("Hm.")
            page.keyboard.press("Control+Enter")
            expect(page.locator("#status")).to_contain_text("too short")
            expect(page.locator("#answer-count")).to_contain_text("2 more needed")
            page.keyboard.type(" Could it be clearer?")
            expected["f2"] = "Hm. Could it be clearer?"
        page.keyboard.press("Control+Enter")
    nothing_left(page)
    assert standing(live) == expected
    assert errors == []


def test_fact_check_verdict_and_required_evidence(open_project: Any) -> None:
    expect = _expect()
    live, page, errors = open_project("fc")
    expect(page.locator("#labels .label")).to_have_count(3)
    expected: dict[str, dict[str, str]] = {}
    lease = None
    for _ in range(2):
        lease = next_item(page, lease)
        item = item_of(live, page)
        data = item.data or {}
        expect(page.locator("#item-text")).to_have_text(item.text or "")
        expect(page.locator("#item-data [data-field='evidence'] h3")).to_have_text("evidence")
        expect(page.locator("#item-data [data-field='evidence'] .text")).to_have_text(
            data["evidence"]
        )
        expect(page.locator("#item-data [data-field='sources'] li")).to_have_text(data["sources"])
        if item.external_id == "c1":
            no_injection(page)
            expect(page.locator("#item-data [data-field='note'] .text")).to_have_text(XSS)
            page.keyboard.press("2")
            page.keyboard.press("Enter")  # no evidence yet: the page refuses
            expect(page.locator("#status")).to_contain_text("Evidence is required")
            expect(page.locator("#evidence")).to_be_focused()
            # ... and so does the server, for a client that skips the page's check
            status = page.evaluate(
                """lease => fetch(`/api/v1/projects/fc/work/${lease}/submit`, {method: 'POST',
                     headers: {'Content-Type': 'application/json',
                               'X-CSRF-Token':
                                 document.querySelector('meta[name=csrf-token]').content},
                     body: JSON.stringify({value: {verdict: 'refuted', evidence: '  '}})})
                   .then(r => r.status)""",
                lease,
            )
            assert status == 422
            assert claims(live) == []
            page.keyboard.type("It stands in Paris, per the evidence.")
            shot(page, "factcheck")
            page.keyboard.press("Control+Enter")
            expected["c1"] = {
                "verdict": "refuted",
                "evidence": "It stands in Paris, per the evidence.",
            }
        else:
            page.keyboard.press("1")
            page.keyboard.press("e")  # to the evidence box
            page.keyboard.type("At 1 atm: 100 degrees.")
            page.keyboard.press("Escape")  # out of the box: Enter submits again
            page.keyboard.press("Enter")
            expected["c2"] = {"verdict": "supported", "evidence": "At 1 atm: 100 degrees."}
    nothing_left(page)
    assert standing(live) == expected
    assert errors == []


def test_rating_skip_undo_and_seconds(open_project: Any) -> None:
    expect = _expect()
    live, page, errors = open_project("rt")
    status = page.locator("#status")
    first = next_item(page)
    a = item_of(live, page).external_id
    expect(page.locator("#undo")).to_be_disabled()
    page.keyboard.press("u")  # nothing submitted yet
    expect(status).to_contain_text("Nothing to undo")
    page.wait_for_timeout(300)
    page.keyboard.press("4")
    page.keyboard.press("Enter")
    second = next_item(page, first)
    expect(page.locator("#count-total")).to_have_text("1")
    expect(page.locator("#last-seconds")).not_to_have_text("–")

    # U: the first item again, 4 preselected; once answered, the item on screen at U comes back
    page.keyboard.press("u")
    expect(page.locator("#item")).to_have_attribute("data-lease", first)
    expect(page.locator("#labels .label").nth(3)).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#count-total")).to_have_text("0")
    shot(page, "undo")
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    expect(page.locator("#item")).to_have_attribute("data-lease", second)
    expect(page.locator("#undo-note")).to_be_hidden()
    expect(page.locator("#count-total")).to_have_text("1")
    b = item_of(live, page).external_id

    # S: a reason is required, then the lease is given back with it
    page.keyboard.press("s")
    expect(page.locator("#skip-reason")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#skip-form")).to_be_visible()  # empty: not sent
    page.keyboard.type("cannot judge this one")
    page.keyboard.press("Enter")
    third = next_item(page, second)
    expect(status).to_contain_text("Skipped (cannot judge this one)")
    c = item_of(live, page).external_id
    assert len({a, b, c}) == 3
    page.keyboard.press("5")
    page.keyboard.press("Enter")
    nothing_left(page)

    # a refused undo shows the server's reason
    page.route(
        "**/work/*/undo",
        lambda route: route.fulfill(
            status=409, content_type="application/json", body='{"detail": "the lease expired"}'
        ),
    )
    page.keyboard.press("u")
    expect(status).to_contain_text("Cannot undo: the lease expired")
    page.unroute("**/work/*/undo")
    no_injection(page)

    rows = claims(live)
    assert standing(live) == {a: 2, c: 5}
    first_claim = next(r for r in rows if r["item"] == a and r["value"] == 4)
    retraction = next(r for r in rows if r["retracts"] is not None)
    assert (
        retraction["retracts"] == first_claim["id"]
        and retraction["item"] == a
        and retraction["value"] is None
    )
    leases = assignments(live)
    assert leases[int(second)]["state"] == "released"
    assert leases[int(second)]["skip_reason"] == "cannot judge this one"
    for done in (first, third):
        assert leases[int(done)]["state"] == "submitted"
        assert leases[int(done)]["seconds"] is not None and leases[int(done)]["seconds"] > 0
    assert leases[int(first)]["seconds"] >= 0.3
    page.reload()
    expect(page.locator("#count-total")).to_have_text("2")
    assert errors == []
