"""The audit log in the store: entries written with the change they record (or not at all), read
back newest first with filters and keyset paging, odd text kept, and never updated or deleted
(the triggers of migration 0010, on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from veritag.errors import AlreadyExists
from veritag.routing import service as routing
from veritag.store import Store, audit
from veritag.store.models import AuditEntry
from veritag.store.queries import create_project, create_user

SCHEMA = {"type": "classification", "labels": ["yes", "no"]}
ADA = audit.Actor("ada", None, "10.0.0.1")


def test_record_and_read_back_with_filters_and_paging(store: Store) -> None:
    for i in range(5):
        audit.record(store, "user.create", actor=ADA, target=f"u{i}", detail={"role": "tutor"})
    audit.record(
        store, "user.unlock", actor=audit.Actor("bob"), target="u1", detail={"cleared": True}
    )
    audit.record(store, "export", actor=ADA, project="p", target="csv")
    audit.record(store, "login", actor=audit.Actor("eve", client="10.0.0.9"), outcome="refused")

    everything = audit.read(store)
    assert [e.action for e in everything][:3] == ["login", "export", "user.unlock"]
    assert [e.id for e in everything] == sorted((e.id for e in everything), reverse=True)
    assert everything[0].at.tzinfo is not None and everything[0].client == "10.0.0.9"
    assert len(audit.read(store, action="user")) == 6, "a family matches each of its actions"
    assert len(audit.read(store, action="user.create")) == 5
    assert audit.read(store, action="use") == [], "a family is a whole word before the dot"
    assert {e.target for e in audit.read(store, actor="bob")} == {"u1"}
    assert [e.action for e in audit.read(store, project="p")] == ["export"]
    assert len(audit.read(store, since=datetime.now(UTC) - timedelta(minutes=5))) == 8
    assert audit.read(store, since=datetime.now(UTC) + timedelta(minutes=5)) == []

    first = audit.read(store, action="user.create", limit=2)
    second = audit.read(store, action="user.create", limit=2, before_id=first[-1].id)
    third = audit.read(store, action="user.create", limit=2, before_id=second[-1].id)
    assert [e.target for e in first + second + third] == ["u4", "u3", "u2", "u1", "u0"]
    assert len(audit.read(store, limit=10**6)) == 8, "the page size is capped, not refused"


def test_odd_text_is_kept_escaped_and_cut_to_the_column(store: Store) -> None:
    """Whatever text reaches ``record`` (a NUL, a lone surrogate, far too long) never loses the
    entry; a filter holding such text finds nothing instead of failing on PostgreSQL."""
    audit.record(
        store,
        "login",
        actor=audit.Actor("a\x00b\ud800" + "x" * 500),
        outcome="refused",
        detail={"note\x00": ["\ud800", float("nan")]},
    )
    (entry,) = audit.read(store)
    assert (
        entry.actor is not None
        and entry.actor.startswith("a\\x00b\\ud800")
        and len(entry.actor) == 200
    )
    assert entry.detail == {"note\\x00": ["\\ud800", "nan"]}
    assert audit.read(store, actor="a\x00b") == [] and audit.read(store, action="\ud800") == []
    with pytest.raises(ValueError, match="outcome"):
        audit.record(store, "login", outcome="maybe")


def test_an_entry_commits_with_its_change_or_not_at_all(store: Store) -> None:
    with pytest.raises(RuntimeError), store.session() as session:
        create_user(session, username="ghost", password="long enough pw", actor=ADA)
        raise RuntimeError("the request fails after the write")
    assert audit.read(store, action="user") == []
    with store.session() as session:
        create_user(session, username="kept", password="long enough pw", role="reviewer", actor=ADA)
    (entry,) = audit.read(store, action="user")
    assert (entry.action, entry.actor, entry.target, entry.outcome, entry.detail) == (
        "user.create",
        "ada",
        "kept",
        "ok",
        {"role": "reviewer"},
    )
    assert "long enough pw" not in repr(entry), "never the password"


def test_routing_changes_are_recorded_in_their_transaction(store: Store) -> None:
    with store.session() as session:
        project = create_project(session, name="p", schema=SCHEMA, actor=ADA)
    routing.configure(store, project, actor=ADA, max_labels=2, target=0.9)
    routing.add_tutor(store, project, "tut", cost=2.0, actor=ADA)
    routing.set_tutor_active(store, project, "tut", False, actor=ADA)
    with pytest.raises(AlreadyExists):
        routing.add_tutor(store, project, "tut", actor=ADA)  # already a tutor: nothing recorded
    entries = {e.action: e for e in audit.read(store)}
    assert sorted(entries) == ["project.create", "routing.configure", "tutor.active", "tutor.add"]
    assert entries["project.create"].detail == {"type": "classification"}
    assert entries["routing.configure"].detail["max_labels"]["to"] == 2
    assert entries["routing.configure"].detail["target"]["to"] == 0.9
    assert (entries["tutor.add"].target, entries["tutor.add"].detail["cost"]) == ("tut", 2.0)
    assert entries["tutor.active"].detail == {"active": False, "was": True}
    assert all(e.project == "p" and e.actor == "ada" for e in entries.values())


def test_entries_cannot_be_updated_or_deleted(store: Store) -> None:
    audit.record(store, "login", actor=ADA)
    table = AuditEntry.__table__
    for stmt in (sa.update(table).values(outcome="refused"), sa.delete(table)):
        with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
            conn.execute(stmt)
    (entry,) = audit.read(store)
    assert entry.outcome == "ok"


def test_the_cli_actor_is_the_os_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit.getpass, "getuser", lambda: "root")
    assert audit.Actor.cli() == audit.Actor("cli:root")

    def nobody() -> str:
        raise KeyError("no passwd entry")

    monkeypatch.setattr(audit.getpass, "getuser", nobody)
    assert audit.Actor.cli().name == "cli:?"
