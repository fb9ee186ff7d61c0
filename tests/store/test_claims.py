"""``store.claims``: the one writer of claims, its dedup keys and retractions, on both backends."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from vt_helpers import make_project

import veritag
from veritag.schema import canonical_json
from veritag.store import Claim, Item, Store
from veritag.store.claims import add_claim, add_claims, claim_row, dedup_key
from veritag.store.queries import source_ids, standing_claims

SRC = Path(veritag.__file__).parent
#: Any way of inserting into the claims table: ``sa.insert(Claim)``,
#: ``insert_ignore(conn, Claim.__table__)``, ``Claim.__table__.insert()``,
#: ``session.add(Claim(...))`` or raw SQL (``Claim(`` with its capital: a job queue's
#: ``claim(...)`` is no claim).
CLAIM_INSERT = re.compile(
    r"insert\w*\(\s*(?:\w+,\s*)?Claim\b|Claim\.__table__\.insert|(?-i:(?<!class )\bClaim\()"
    r"|INSERT INTO claims",
    re.IGNORECASE,
)


def _sources(store: Store) -> tuple[int, int, int]:
    project = make_project(store)
    with store.begin_write() as conn:
        item = conn.execute(
            sa.insert(Item).values(project_id=project.id, external_id="i")
        ).inserted_primary_key[0]
        sid = source_ids(conn, project_id=project.id, kind="human", names={"ann"})["ann"]
    return project.id, int(item), sid


def _claims(store: Store) -> list[tuple]:
    with store.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                sa.select(Claim.value, Claim.probs, Claim.dedup_key, Claim.retracts).order_by(
                    Claim.id
                )
            )
        ]


def test_only_store_claims_inserts_claims() -> None:
    writers = sorted(
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if CLAIM_INSERT.search(p.read_text("utf-8"))
    )
    assert writers == ["store/claims.py"]


def test_claims_are_written_only_under_the_writer_lock(store: Store) -> None:
    pid, item, sid = _sources(store)
    with store.engine.begin() as conn, pytest.raises(RuntimeError, match="begin_write"):
        add_claim(conn, pid, item, sid, value="yes")
    with store.engine.begin() as conn, pytest.raises(RuntimeError, match="begin_write"):
        add_claims(conn, [claim_row(pid, item, sid, value='"yes"')])
    with store.begin_write() as conn:
        add_claim(conn, pid, item, sid, value="yes")
    with (
        store.engine.begin() as conn,
        pytest.raises(RuntimeError),
    ):  # the mark goes with the transaction
        add_claim(conn, pid, item, sid, value="yes")
    assert len(_claims(store)) == 1


def test_dedup_keys_have_one_form() -> None:
    assert dedup_key(value='"a"') == '"a"'
    assert dedup_key(probs="[0.5,0.5]") == "probs:[0.5,0.5]"
    assert dedup_key(value='"A"', scope="arena:2") == 'arena:2:"A"'
    assert dedup_key(probs="[1]", scope="autolabel:1:abc") == "autolabel:1:abc"
    with pytest.raises(ValueError, match="value or probs"):
        dedup_key()


def test_imported_claims_are_added_once(store: Store) -> None:
    pid, item, sid = _sources(store)
    rows = [
        claim_row(pid, item, sid, value=canonical_json("yes")),
        claim_row(pid, item, sid, probs="[0.2,0.8]"),
        claim_row(pid, item, sid, value=canonical_json("yes"), scope="arena:1"),
    ]
    with store.begin_write() as conn:
        add_claims(conn, rows)
    with store.begin_write() as conn:
        add_claims(conn, rows + [claim_row(pid, item, sid, value=canonical_json("no"))], chunk=2)
        add_claims(conn, [])
    assert _claims(store) == [
        ("yes", None, '"yes"', None),
        (None, [0.2, 0.8], "probs:[0.2,0.8]", None),
        ("yes", None, 'arena:1:"yes"', None),
        ("no", None, '"no"', None),
    ]


def test_live_claims_repeat_and_a_retraction_takes_one_back(store: Store) -> None:
    pid, item, sid = _sources(store)
    with store.begin_write() as conn:
        first = add_claim(conn, pid, item, sid, value="yes")
        second = add_claim(
            conn, pid, item, sid, value="yes"
        )  # no dedup key: a live answer is always kept
        back = add_claim(conn, pid, item, sid, retracts=first)
    assert first < second < back
    assert _claims(store) == [
        ("yes", None, None, None),
        ("yes", None, None, None),
        (None, None, None, first),
    ]
    with store.engine.connect() as conn:
        assert conn.scalars(
            sa.select(Claim.id).where(standing_claims()).order_by(Claim.id)
        ).all() == [second]
    with store.begin_write() as conn, pytest.raises(ValueError, match="retraction has no value"):
        add_claim(conn, pid, item, sid, value="no", retracts=second)
    with store.begin_write() as conn, pytest.raises(ValueError, match="needs a value or probs"):
        add_claim(conn, pid, item, sid)
