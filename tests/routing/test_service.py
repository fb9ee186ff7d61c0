"""Routing on a project: leases, the budget, gold checks, skill per domain, and stopping rules."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vt_helpers import make_project

from veritag.errors import AlreadyExists, LabelError, NotFound, VeritagError
from veritag.labelers.tfidf import TfidfLabeler
from veritag.resolve import human_labels
from veritag.resolve.current import REFIT_CLAIMS, refit_lock
from veritag.routing import RoutingConfig, evidence, leases
from veritag.routing import service as routing
from veritag.routing import settings as settings_job
from veritag.routing import status as status_job
from veritag.store import Store
from veritag.store.models import Assignment, Claim, Gold, Item, ItemDomain, Project, Source
from veritag.store.queries import project_counts, project_schema

SCHEMA = {"type": "classification", "labels": ["a", "b"]}
T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
_names = itertools.count()


def _project(
    store: Store,
    items: dict[str, str],
    *,
    gold: dict[str, str] | None = None,
    text: str = "item {}",
    name: str | None = None,
    **settings: Any,
) -> Project:
    """A project with ``items`` (external id -> metadata domain, "" for none) and gold labels."""
    project = make_project(store, name or f"route{next(_names)}", SCHEMA)
    with store.session() as session:
        rows = {
            ext: Item(
                project_id=project.id,
                external_id=ext,
                text=text.format(ext),
                meta={"domain": d} if d else {},
            )
            for ext, d in items.items()
        }
        session.add_all(rows.values())
        session.flush()
        session.add_all(
            Gold(project_id=project.id, item_id=rows[ext].id, value=v)
            for ext, v in (gold or {}).items()
        )
    routing.configure(store, project, **{"gold_rate": 0.0, **settings})
    return project


def _claims(store: Store, project: Project, source: str, labels: dict[str, str]) -> None:
    """Claims made outside routing (an imported history)."""
    with store.session() as session:
        sid = session.scalar(
            sa.select(Source.id).where(Source.project_id == project.id, Source.name == source)
        )
        ids = dict(
            session.execute(
                sa.select(Item.external_id, Item.id).where(Item.project_id == project.id)
            ).all()
        )
        session.add_all(
            Claim(project_id=project.id, item_id=ids[ext], source_id=sid, value=v)
            for ext, v in labels.items()
        )


def _work(store: Store, project: Project, tutor: str, now: datetime = T0) -> str | None:
    lease = routing.request_work(store, project, tutor, now=now)
    return None if lease is None else lease.external_id


def test_leases_expire_and_return_the_item(store: Store) -> None:
    project = _project(store, {"i0": "finance"}, lease_seconds=600)
    routing.add_tutor(store, project, "ann", domains=["finance"])
    routing.add_tutor(store, project, "bob")
    lease = routing.request_work(store, project, "ann", now=T0)
    assert lease is not None and lease.external_id == "i0" and lease.domain == "finance"
    assert lease.expires_at == T0 + timedelta(seconds=600) and not lease.is_gold and lease.gain > 0
    assert (
        routing.request_work(store, project, "bob", now=T0 + timedelta(seconds=599)) is None
    )  # leased to ann
    late = T0 + timedelta(seconds=601)
    again = routing.request_work(store, project, "bob", now=late)
    assert again is not None and again.external_id == "i0"
    with store.engine.connect() as conn:
        assert (
            conn.scalar(sa.select(Assignment.state).where(Assignment.id == lease.id)) == "expired"
        )
    with pytest.raises(VeritagError, match=f"assignment {lease.id} is expired"):
        routing.submit(store, project, lease.id, "a", now=late)
    assert routing.request_work(store, project, "ann", now=late) is None  # she saw it; bob holds it
    status = routing.routing_status(store, project, now=late)
    assert status.in_flight == 1 and status.pending == 1
    assert status.tutors[0].leases == {"leased": 0, "submitted": 0, "expired": 1, "released": 0}
    # a lease past its time counts as expired in the status before anyone expires it
    assert (
        routing.routing_status(store, project, now=late + timedelta(hours=1))
        .tutors[1]
        .leases["expired"]
        == 1
    )


def test_no_tutor_sees_an_item_twice(store: Store) -> None:
    project = _project(store, {f"i{i}": "" for i in range(4)}, max_labels=3, target=0.999)
    for name in ("ann", "bob"):
        routing.add_tutor(store, project, name)
    seen: dict[str, list[str]] = {"ann": [], "bob": []}
    now = T0
    for step in range(12):
        name = ("ann", "bob")[step % 2]
        lease = routing.request_work(store, project, name, now=now)
        if lease is None:
            continue
        seen[name].append(lease.external_id)
        if step % 3 == 2:
            routing.release(store, project, lease.id, now=now)
        else:
            routing.submit(store, project, lease.id, "a", now=now, tutor=name)
        now += timedelta(seconds=1)
    for items in seen.values():
        assert len(items) == len(set(items)) == 4
    assert routing.request_work(store, project, "ann", now=now) is None


def test_budget_counts_running_leases(store: Store) -> None:
    project = _project(store, {f"i{i}": "" for i in range(5)}, budget=3.0)
    routing.add_tutor(store, project, "ann", cost=1.0)
    routing.add_tutor(store, project, "bob", cost=2.0)
    first = routing.request_work(store, project, "ann", now=T0)
    second = routing.request_work(store, project, "bob", now=T0)
    assert first is not None and second is not None
    assert routing.request_work(store, project, "ann", now=T0).resumed  # type: ignore[union-attr]
    assert (
        routing.request_work(store, project, "ann", now=T0, resume=False) is None
    )  # 1 + 2 reserved of 3
    routing.submit(store, project, first.id, "b", now=T0)
    assert routing.request_work(store, project, "ann", now=T0) is None  # 1 spent + 2 reserved
    routing.release(store, project, second.id, now=T0)
    third = routing.request_work(store, project, "ann", now=T0)
    assert third is not None
    assert routing.request_work(store, project, "bob", now=T0) is None  # 2 + 2 > 3
    status = routing.routing_status(store, project, now=T0)
    assert (status.spent, status.reserved, status.budget_left, status.labels_spent) == (
        1.0,
        1.0,
        1.0,
        1,
    )


_OPS = st.lists(
    st.tuples(
        st.sampled_from(["request", "submit", "release", "wait"]),
        st.integers(0, 2),
        st.sampled_from(["a", "b"]),
    ),
    min_size=1,
    max_size=14,
)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_OPS, budget=st.sampled_from([2.0, 3.5, 6.0]), resume=st.booleans())
def test_budget_cap_and_uniqueness_hold_under_any_sequence(
    store: Store, ops: list[tuple[str, int, str]], budget: float, resume: bool
) -> None:
    project = _project(
        store,
        {f"i{i}": ("finance", "medicine", "")[i % 3] for i in range(4)},
        budget=budget,
        max_labels=2,
        target=0.999,
        lease_seconds=100,
    )
    tutors = ["t0", "t1", "t2"]
    for name, cost in zip(tutors, (1.0, 1.5, 0.5), strict=True):
        routing.add_tutor(store, project, name, cost=cost, domains=["finance"] if cost > 1 else [])
    now, leases = T0, []
    for op, who, value in ops:
        if op == "request":
            lease = routing.request_work(store, project, tutors[who], now=now, resume=resume)
            if lease is not None and not lease.resumed:
                leases.append(lease)
        elif op == "wait":
            now += timedelta(seconds=60)
        elif leases:
            lease = leases.pop(who % len(leases))
            try:
                if op == "submit":
                    routing.submit(store, project, lease.id, value, now=now)
                else:
                    routing.release(store, project, lease.id, now=now)
            except VeritagError as exc:
                assert "expired" in str(exc) and lease.expires_at <= now
        with store.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    Assignment.item_id,
                    Assignment.tutor_id,
                    Assignment.state,
                    Assignment.cost,
                    Assignment.expires_at,
                ).where(Assignment.project_id == project.id)
            ).all()
            claims = conn.execute(
                sa.select(Claim.item_id, sa.func.count())
                .where(Claim.project_id == project.id)
                .group_by(Claim.item_id)
            ).all()
        live = [r for r in rows if r.state == "leased" and r.expires_at.replace(tzinfo=UTC) > now]
        spent = sum(r.cost for r in rows if r.state == "submitted")
        assert spent + sum(r.cost for r in live) <= budget + 1e-9
        pairs = [(r.item_id, r.tutor_id) for r in rows]
        assert len(pairs) == len(set(pairs))
        holders = [r.tutor_id for r in live]
        assert not resume or len(holders) == len(set(holders))  # one running lease per tutor
        labels = dict(claims)
        for item in {r.item_id for r in rows}:
            assert labels.get(item, 0) + sum(r.item_id == item for r in live) <= 2


def test_routing_follows_measured_skill_per_domain(store: Store) -> None:
    gold = {f"g{i}": "ab"[i % 2] for i in range(8)}
    project = _project(
        store, {**dict.fromkeys(gold, "finance"), "f0": "finance", "x0": "general"}, gold=gold
    )
    routing.add_tutor(store, project, "ann", domains=["finance"])
    routing.add_tutor(store, project, "bob", domains=["finance"])
    _claims(store, project, "ann", gold)
    _claims(
        store, project, "bob", {g: "a" for g in gold}
    )  # right on half of them: a coin in finance
    ranked = routing.best_tutors(store, project, "f0", now=T0)
    assert [r.tutor for r in ranked] == ["ann", "bob"] and ranked[0].gain > ranked[1].gain
    status = routing.routing_status(store, project, now=T0)
    ann, bob = status.tutors
    assert ann.measured["finance"] == bob.measured["finance"] == 8
    assert ann.skill["finance"] > 0.9 and bob.skill["finance"] < 0.75
    assert (
        ann.skill["medicine"] == bob.skill["medicine"] == pytest.approx(0.7)
    )  # the prior, undeclared
    assert _work(store, project, "bob") == "x0"  # the finance item is left to the specialist
    assert _work(store, project, "ann") == "f0"


def test_gold_items_are_mixed_in_at_the_rate(store: Store) -> None:
    gold = {"g0": "a", "g1": "b", "g2": "a"}
    project = _project(
        store,
        {**dict.fromkeys(gold, ""), **{f"i{i}": "" for i in range(10)}},
        gold=gold,
        gold_rate=0.25,
        target=0.999,
    )
    routing.add_tutor(store, project, "ann")
    kinds = []
    for step in range(9):
        lease = routing.request_work(store, project, "ann", now=T0 + timedelta(seconds=step))
        assert lease is not None
        kinds.append(lease.is_gold)
        assert lease.is_gold == lease.external_id.startswith("g")
        routing.submit(store, project, lease.id, "a", now=T0 + timedelta(seconds=step))
    assert [i for i, g in enumerate(kinds) if g] == [0, 4, 8]


def test_an_item_stops_at_the_target_or_the_cap(store: Store) -> None:
    project = _project(store, {"f0": "finance"}, target=0.8, max_labels=2)
    for name in ("ann", "bob", "cy"):
        routing.add_tutor(store, project, name, domains=["finance"] if name == "ann" else [])
    lease = routing.request_work(store, project, "ann", now=T0)
    assert lease is not None
    routing.submit(store, project, lease.id, "a", now=T0)  # 0.85 in her declared domain reaches 0.8
    assert routing.request_work(store, project, "bob", now=T0) is None
    assert routing.routing_status(store, project, now=T0).done == 1

    capped = _project(store, {"x0": ""}, target=0.999, max_labels=2, min_labels=2)
    for name in ("ann", "bob", "cy"):
        routing.add_tutor(store, capped, name)
    first = routing.request_work(store, capped, "ann", now=T0)
    second = routing.request_work(store, capped, "bob", now=T0)  # min_labels 2: two leases at once
    assert first is not None and second is not None
    assert (
        routing.request_work(store, capped, "cy", now=T0) is None
    )  # the cap counts leases in flight
    routing.submit(store, capped, first.id, "a", now=T0)
    routing.submit(store, capped, second.id, "b", now=T0)
    assert routing.request_work(store, capped, "cy", now=T0) is None
    status = routing.routing_status(store, capped, now=T0)
    assert (status.done, status.pending, status.labels_spent) == (1, 0, 2)


def test_routing_is_deterministic(store: Store) -> None:
    def run(name: str) -> list[str | None]:
        items = {f"i{i}": ("finance", "medicine", "stem", "")[i % 4] for i in range(8)}
        project = _project(store, items, name=name, target=0.9, max_labels=2)
        routing.add_tutor(store, project, "ann", domains=["finance"])
        routing.add_tutor(store, project, "bob", domains=["medicine"], cost=0.5)
        out = []
        for step in range(10):
            tutor = ("ann", "bob")[step % 2]
            lease = routing.request_work(store, project, tutor, now=T0)
            out.append(None if lease is None else lease.external_id)
            if lease is not None:
                routing.submit(store, project, lease.id, "ab"[step % 3 == 0], now=T0)
        return out

    first = run("one")
    assert first == run("two")
    assert first[:2] == ["i0", "i1"]  # each tutor starts in the domain they declared


def test_submit_checks_the_value_and_the_lease(store: Store) -> None:
    project = _project(store, {"i0": "", "i1": ""})
    routing.add_tutor(store, project, "ann")
    routing.add_tutor(store, project, "bob")
    lease = routing.request_work(store, project, "ann", now=T0)
    assert lease is not None
    with pytest.raises(LabelError, match=r"allowed values \['a', 'b'\]"):
        routing.submit(store, project, lease.id, "maybe", now=T0)
    with pytest.raises(routing.NotYourLease, match="leased to 'ann', not 'bob'"):
        routing.submit(store, project, lease.id, "a", now=T0, tutor="bob")
    with pytest.raises(routing.NotYourLease, match="leased to 'ann', not 'bob'"):
        routing.release(store, project, lease.id, now=T0, tutor="bob")
    claim_id = routing.submit(store, project, lease.id, " a ", now=T0, tutor="ann")
    with pytest.raises(VeritagError, match="is submitted"):
        routing.submit(store, project, lease.id, "a", now=T0)
    with pytest.raises(VeritagError, match="is submitted"):
        routing.release(store, project, lease.id, now=T0)
    other = _project(store, {"z": ""})
    with pytest.raises(NotFound, match="no assignment"):
        routing.submit(store, other, lease.id, "a", now=T0)
    with store.engine.connect() as conn:
        claim = conn.execute(
            sa.select(Claim.value, Source.name)
            .join(Source, Source.id == Claim.source_id)
            .where(Claim.id == claim_id)
        ).one()
        assert tuple(claim) == ("a", "ann")
        assert (
            conn.scalar(sa.select(Assignment.claim_id).where(Assignment.id == lease.id)) == claim_id
        )


def test_a_submit_reads_its_lease_once_in_the_transaction_that_submits_it(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _project(store, {"i0": ""})
    routing.add_tutor(store, project, "ann")
    lease = routing.request_work(store, project, "ann", now=T0)
    assert lease is not None
    parsed: list[Project] = []

    def parse(project: Project) -> Any:
        parsed.append(project)
        return project_schema(project)

    monkeypatch.setattr(leases, "project_schema", parse)
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(" ".join(statement.split()))

    sa.event.listen(store.engine, "before_cursor_execute", seen)
    try:
        routing.submit(store, project, lease.id, "a", now=T0, tutor="ann")
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", seen)
    reads = [s for s in statements if s.startswith("SELECT") and "assignments" in s]
    assert len(reads) == 1 and len(parsed) == 1
    # the lease is flipped before it is read, so the read sees it as it stands
    assert statements[0].startswith("UPDATE assignments")
    assert statements.index(reads[0]) == 1


def test_a_project_starts_from_the_policy_defaults(store: Store) -> None:
    project = make_project(store, "defaults", SCHEMA)
    stored = routing.get_settings(store, project)
    assert stored == routing.ProjectRouting()
    assert stored.config() == RoutingConfig() and RoutingConfig().max_labels == 5
    assert stored.gold_rate == 0.1 and stored.gold_period == 10
    with pytest.raises(VeritagError, match=r"gold_rate must lie in \[0, 1\)"):
        routing.configure(store, project, gold_rate=1.0)


def test_the_service_re_exports_each_job_module() -> None:
    jobs = (settings_job, evidence, leases, status_job)
    assert sorted(routing.__all__) == sorted(n for m in jobs for n in m.__all__)
    assert all(getattr(routing, n) is getattr(m, n) for m in jobs for n in m.__all__)


def test_tutors_and_settings_are_checked(store: Store) -> None:
    project = _project(store, {"i0": ""}, domains=["law", "general"])
    with pytest.raises(VeritagError, match=r"unknown domain\(s\) \['finance'\]"):
        routing.add_tutor(store, project, "ann", domains=["finance"])
    routing.add_tutor(store, project, "ann", domains=["law"], cost=2)
    with pytest.raises(AlreadyExists):
        routing.add_tutor(store, project, "ann")
    with pytest.raises(VeritagError, match="unknown routing setting"):
        routing.configure(store, project, speed=3)
    with pytest.raises(VeritagError, match="target"):
        routing.configure(store, project, target=1.5)
    with pytest.raises(NotFound, match="no tutor named 'zed'"):
        routing.request_work(store, project, "zed", now=T0)
    routing.set_tutor_active(store, project, "ann", False)
    with pytest.raises(VeritagError, match="not active"):
        routing.request_work(store, project, "ann", now=T0)
    routing.add_tutor(store, project, "bob")
    assert [t.tutor for t in routing.best_tutors(store, project, "i0", now=T0)] == ["bob"]
    assert routing.get_settings(store, project).domains == ("law", "general")


def test_tasks_without_classes_take_min_labels_each_from_declared_domains_first(
    store: Store,
) -> None:
    project = make_project(store, "free", {"type": "free_text"})
    with store.session() as session:
        session.add_all(
            Item(project_id=project.id, external_id=ext, text=f"text {ext}", meta={"domain": d})
            for ext, d in [("f0", "general"), ("f1", "medicine"), ("f2", "general")]
        )
    routing.configure(store, project, gold_rate=0.0, min_labels=2)
    routing.add_tutor(store, project, "doc", domains=["medicine"])
    routing.add_tutor(store, project, "gen")
    first = routing.request_work(store, project, "doc", now=T0)
    assert first is not None and first.external_id == "f1" and first.gain == 0.0
    with pytest.raises(LabelError):
        routing.submit(store, project, first.id, 7, now=T0)
    routing.submit(store, project, first.id, "a rewrite", now=T0)
    got = []
    while (lease := routing.request_work(store, project, "gen", now=T0)) is not None:
        got.append(lease.external_id)
        routing.submit(store, project, lease.id, "answer", now=T0)
    assert got == ["f0", "f1", "f2"]  # one label each from gen; f1 now has its two
    status = routing.routing_status(store, project, now=T0)
    assert (status.done, status.pending) == (1, 2)
    assert all(
        math.isnan(v) for t in status.tutors for v in t.skill.values()
    )  # no skill without classes
    assert [t.tutor for t in routing.best_tutors(store, project, "f0", now=T0)] == ["doc"]


def test_undo_retracts_the_last_answer_while_the_lease_holds(store: Store) -> None:
    project = _project(
        store, {"i0": "", "i1": "", "i2": ""}, min_labels=1, max_labels=1, target=0.5
    )
    routing.add_tutor(store, project, "ann")
    routing.add_tutor(store, project, "bob")
    lease = routing.request_work(store, project, "ann", now=T0)
    assert lease is not None
    first = routing.submit(store, project, lease.id, "a", now=T0, tutor="ann", seconds=4.5)
    with pytest.raises(VeritagError, match="not 'bob'"):
        routing.undo(store, project, lease.id, now=T0, tutor="bob")
    back, value = routing.undo(store, project, lease.id, now=T0, tutor="ann")
    assert (back.id, back.item_id, value) == (lease.id, lease.item_id, "a")
    with pytest.raises(VeritagError, match="is leased"):
        routing.undo(store, project, lease.id, now=T0, tutor="ann")
    # The item is ann's again (not in the pool for bob), and the retraction hides the first answer.
    assert _work(store, project, "bob") != lease.external_id
    status = routing.routing_status(store, project, now=T0)
    assert status.labels_spent == 0
    with store.session() as session:
        assert project_counts(session, project_id=project.id)["human_claims"] == 0
    with store.engine.connect() as conn:
        assert lease.item_id not in set(human_labels(conn, project).item_ids.tolist())
    second = routing.submit(store, project, lease.id, "b", now=T0, tutor="ann", seconds=2.0)
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(Claim.id, Claim.value, Claim.retracts)
            .where(Claim.item_id == lease.item_id)
            .order_by(Claim.id)
        ).all()
        assert [(r.value, r.retracts) for r in rows] == [("a", None), (None, first), ("b", None)]
        assert rows[2].id == second
        assert conn.execute(
            sa.select(Assignment.seconds, Assignment.claim_id).where(Assignment.id == lease.id)
        ).one() == (2.0, second)
    # Only the newest answer can be undone, and not once the lease has ended.
    other = routing.request_work(store, project, "ann", now=T0)
    assert other is not None
    routing.submit(store, project, other.id, "a", now=T0, tutor="ann")
    with pytest.raises(VeritagError, match="not your last answer"):
        routing.undo(store, project, lease.id, now=T0, tutor="ann")
    with pytest.raises(VeritagError, match="its answer stands"):
        routing.undo(store, project, other.id, now=T0 + timedelta(hours=3), tutor="ann")
    with pytest.raises(VeritagError, match="non-negative"):
        routing.submit(store, project, other.id, "a", now=T0, seconds=-1)


def test_a_skip_keeps_its_reason(store: Store) -> None:
    project = _project(store, {"i0": ""})
    routing.add_tutor(store, project, "ann")
    lease = routing.request_work(store, project, "ann", now=T0)
    assert lease is not None
    routing.release(store, project, lease.id, now=T0, tutor="ann", reason="  outside my field ")
    with store.engine.connect() as conn:
        assert conn.execute(
            sa.select(Assignment.state, Assignment.skip_reason).where(Assignment.id == lease.id)
        ).one() == ("released", "outside my field")


def test_item_domains_from_metadata_keywords_and_model(store: Store) -> None:
    items = {
        "m0": "stem",
        "m1": "stem",
        "m2": "medicine",
        "m3": "medicine",
        "k0": "",
        "u0": "",
        "u1": "",
    }
    project = make_project(store, "domains", SCHEMA)
    texts = {
        "m0": "the telescope found a galaxy",
        "m1": "a planet and its moon in orbit",
        "m2": "the nurse changed the bandage",
        "m3": "the nurse on the ward round",
        "k0": "malware and phishing everywhere",
        "u0": "a galaxy seen through a telescope",
        "u1": "the ward nurse and a bandage",
    }
    with store.session() as session:
        session.add_all(
            Item(
                project_id=project.id,
                external_id=ext,
                text=texts[ext],
                meta={"domain": d} if d else None,
            )
            for ext, d in items.items()
        )
    got = routing.item_domains(store, project, labeler=TfidfLabeler)
    with store.engine.connect() as conn:
        rows = {
            r[0]: (r[1], r[2])
            for r in conn.execute(
                sa.select(Item.external_id, ItemDomain.domain, ItemDomain.origin).join(
                    Item, Item.id == ItemDomain.item_id
                )
            )
        }
    assert rows == {
        "m0": ("stem", "metadata"),
        "m1": ("stem", "metadata"),
        "m2": ("medicine", "metadata"),
        "m3": ("medicine", "metadata"),
        "k0": ("security", "keywords"),
        "u0": ("stem", "model"),
        "u1": ("medicine", "model"),
    }
    assert len(got) == 7
    routing.configure(store, project, domain_field="topic")  # a new field: classified again
    again = routing.item_domains(store, project, labeler=None)
    assert sorted(again.values()).count("general") == 6


def test_concurrent_requests_get_different_items_within_the_budget(store: Store) -> None:
    from concurrent.futures import ThreadPoolExecutor

    project = _project(store, {f"i{i}": "" for i in range(3)}, budget=2.0)
    names = [f"t{i}" for i in range(4)]
    for name in names:
        routing.add_tutor(store, project, name)
    routing.request_work(
        store, project, "t0", now=T0 - timedelta(days=1)
    )  # resolve once, lease lapses
    with ThreadPoolExecutor(4) as pool:
        leases = [
            x
            for x in pool.map(lambda n: routing.request_work(store, project, n, now=T0), names)
            if x
        ]
    assert len(leases) == 2 and len({x.item_id for x in leases}) == 2


def test_a_request_folds_in_new_labels_and_resolves_after_many(store: Store) -> None:
    from veritag.store.models import TruthRun

    project = _project(store, {f"i{i}": "" for i in range(30)}, max_labels=1)
    routing.add_tutor(store, project, "ann")

    def runs() -> int:
        with store.engine.connect() as conn:
            return int(
                conn.scalar(
                    sa.select(sa.func.count())
                    .select_from(TruthRun)
                    .where(TruthRun.project_id == project.id)
                )
            )

    for step in range(REFIT_CLAIMS + 2):
        lease = routing.request_work(store, project, "ann", now=T0)
        assert lease is not None
        routing.submit(store, project, lease.id, "a", now=T0)
        assert runs() == (1 if step <= REFIT_CLAIMS else 2)


def test_while_one_request_refits_the_others_use_the_stale_run(store: Store) -> None:
    from veritag.store.models import TruthRun

    project = _project(store, {f"i{i}": "" for i in range(40)}, max_labels=1)
    routing.add_tutor(store, project, "ann")
    routing.add_tutor(store, project, "bob")

    def runs() -> int:
        with store.engine.connect() as conn:
            return int(
                conn.scalar(
                    sa.select(sa.func.count())
                    .select_from(TruthRun)
                    .where(TruthRun.project_id == project.id)
                )
            )

    assert (
        routing.request_work(store, project, "bob", now=T0) is not None
    )  # the first run: fitted once
    for _ in range(REFIT_CLAIMS + 1):
        lease = routing.request_work(store, project, "ann", now=T0)
        assert lease is not None
        routing.submit(store, project, lease.id, "a", now=T0)
    fitted = runs()
    with refit_lock(store, project, wait=True):  # another request is refitting right now
        lease = routing.request_work(store, project, "bob", now=T0, resume=False)
        assert lease is not None and runs() == fitted  # served from the stale run, no second fit
    assert routing.request_work(store, project, "bob", now=T0, resume=False) is not None
    assert runs() == fitted + 1  # the next request refits


@pytest.mark.parametrize("name", ["a\x00b", "\ud800", "t" * 101])
def test_a_tutor_name_that_no_store_can_keep_is_refused(store: Store, name: str) -> None:
    project = make_project(store, "names", SCHEMA)
    with pytest.raises(VeritagError, match="username"):
        routing.add_tutor(store, project, name)
    assert routing.list_tutors(store, project) == []


def test_a_tutor_asking_again_gets_their_running_lease_back_renewed(store: Store) -> None:
    project = _project(store, {f"i{i}": "" for i in range(4)}, lease_seconds=600)
    routing.add_tutor(store, project, "ann")
    routing.add_tutor(store, project, "bob")
    first = routing.request_work(store, project, "ann", now=T0)
    assert first is not None and not first.resumed
    later = T0 + timedelta(seconds=500)
    again = routing.request_work(store, project, "ann", now=later)
    assert again is not None and again.resumed
    assert (again.id, again.item_id, again.leased_at) == (first.id, first.item_id, first.leased_at)
    assert again.expires_at == later + timedelta(seconds=600)
    other = routing.request_work(store, project, "bob", now=later)
    assert other is not None and not other.resumed and other.id != first.id
    routing.submit(
        store, project, first.id, "a", now=later + timedelta(seconds=400)
    )  # past the first expiry
    nxt = routing.request_work(store, project, "ann", now=later + timedelta(seconds=401))
    assert nxt is not None and not nxt.resumed and nxt.item_id not in (first.item_id,)
    expired = routing.request_work(store, project, "ann", now=later + timedelta(seconds=2000))
    assert (
        expired is not None and not expired.resumed and expired.id != nxt.id
    )  # a lapsed lease is not resumed


def test_orphaned_leases_of_a_dead_process_expire_within_the_grace(store: Store) -> None:
    project = _project(store, {f"i{i}": "" for i in range(6)}, lease_seconds=1800)
    for name in ("ann", "bob", "cy", "dee"):
        routing.add_tutor(store, project, name)
    served = {"ann": "h1:100:aa", "bob": "h1:200:bb", "cy": "h2:100:cc", "dee": None}
    leases = {
        n: routing.request_work(store, project, n, now=T0, served_by=s) for n, s in served.items()
    }
    assert all(lease is not None for lease in leases.values())
    now = T0 + timedelta(seconds=60)
    cut = routing.release_orphaned_leases(
        store, "h1", lambda pid: pid == 200, grace_seconds=30, now=now
    )
    assert (
        cut == 1
    )  # ann's process (pid 100 on h1) is gone; bob's runs; cy's host and dee's process unknown
    with store.engine.connect() as conn:
        expires = dict(conn.execute(sa.select(Assignment.id, Assignment.expires_at)).all())
    ends = {n: expires[lease.id].replace(tzinfo=UTC) for n, lease in leases.items()}  # type: ignore[union-attr]
    assert ends["ann"] == now + timedelta(seconds=30)
    assert ends["bob"] == ends["cy"] == ends["dee"] == T0 + timedelta(seconds=1800)
    back = routing.request_work(store, project, "ann", now=now + timedelta(seconds=10))
    assert back is not None and back.resumed  # a tutor still working asks within the grace: kept
    assert routing.release_orphaned_leases(store, "h1", lambda pid: False, 0, now=now) == 1  # bob's
    gone = routing.request_work(store, project, "bob", now=now + timedelta(seconds=1))
    assert gone is not None and not gone.resumed and gone.item_id != leases["bob"].item_id  # type: ignore[union-attr]


def test_two_requests_of_one_tutor_at_once_share_one_lease(store: Store) -> None:
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    project = _project(store, {f"i{i}": "" for i in range(20)})
    routing.add_tutor(store, project, "ann")
    for round_ in range(3):
        gate = Barrier(2)

        def ask(_: int) -> int:
            gate.wait()
            lease = routing.request_work(store, project, "ann", now=T0)
            assert lease is not None
            return lease.id

        with ThreadPoolExecutor(2) as pool:
            first, second = pool.map(ask, range(2))
        assert first == second, round_
        routing.submit(store, project, first, "a", now=T0)
