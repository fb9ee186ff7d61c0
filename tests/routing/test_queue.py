"""The routing queue (``routing.queue``): rows kept up to date on writes equal rows built from
scratch; requests read a bounded number of rows whatever the project's size; due refits are
handed off; new items, gold labels and settings reach the queue."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vt_helpers import make_project

from veritag.jobs.kinds import run_kind
from veritag.resolve.current import REFIT_CLAIMS
from veritag.routing import queue
from veritag.routing import service as routing
from veritag.store import Store
from veritag.store.claims import add_claims, claim_row
from veritag.store.models import Gold, Item, Project, RoutingItem, Source, TruthRun

SCHEMA = {"type": "classification", "labels": ["a", "b", "c"]}
T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
_names = itertools.count()


def _project(store: Store, n: int, **settings: Any) -> Project:
    project = make_project(store, f"queue{next(_names)}", SCHEMA)
    _add_items(store, project, range(n))
    routing.configure(store, project, **{"gold_rate": 0.0, **settings})
    return project


def _add_items(store: Store, project: Project, numbers: Any) -> list[int]:
    with store.session() as session:
        rows = [
            Item(project_id=project.id, external_id=f"i{j}", text=f"item {j}", meta={})
            for j in numbers
        ]
        session.add_all(rows)
        session.flush()
        return [r.id for r in rows]


def _rows(store: Store, project: Project) -> dict[int, tuple[Any, ...]]:
    with store.engine.connect() as conn:
        got = conn.execute(
            sa.select(
                RoutingItem.item_id,
                RoutingItem.domain,
                RoutingItem.is_gold,
                RoutingItem.labels,
                RoutingItem.leased,
                RoutingItem.need,
                RoutingItem.open,
                RoutingItem.top,
                RoutingItem.probs,
            ).where(RoutingItem.project_id == project.id)
        ).all()
    return {r[0]: tuple(r[1:]) for r in got}


def _same(kept: dict[int, tuple[Any, ...]], built: dict[int, tuple[Any, ...]]) -> None:
    assert kept.keys() == built.keys()
    for item, row in kept.items():
        again = built[item]
        assert row[:6] == again[:6], item
        assert row[6] == pytest.approx(again[6], abs=1e-9)
        assert np.allclose(row[7], again[7], atol=1e-9), item


def _runs(store: Store, project: Project) -> int:
    with store.engine.connect() as conn:
        return int(
            conn.scalar(
                sa.select(sa.func.count())
                .select_from(TruthRun)
                .where(TruthRun.project_id == project.id)
            )
        )


OPS = st.lists(
    st.tuples(
        st.sampled_from(["submit", "release", "expire", "undo", "other"]),
        st.integers(0, 3),
        st.sampled_from(["a", "b", "c"]),
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=OPS)
def test_rows_kept_on_writes_equal_rows_built_from_scratch(store: Store, ops: list[Any]) -> None:
    """Whatever leases, submits, releases, expiries and undos happen, the rows the writes moved
    are the rows a build computes from the tables, and the budget counters are the sums of the
    leases' costs."""
    project = _project(store, 8, min_labels=2, max_labels=3, lease_seconds=60, budget=12.0)
    tutors = [f"t{j}" for j in range(4)]
    for j, name in enumerate(tutors):
        routing.add_tutor(store, project, name, cost=0.5 + 0.25 * j)
    clock = T0
    last: dict[str, int] = {}
    for op, who, value in ops:
        name = tutors[who]
        clock += timedelta(seconds=1)
        if op == "undo" and name in last:
            try:
                routing.undo(store, project, last.pop(name), now=clock, tutor=name)
            except Exception:  # noqa: BLE001 - an undo the rules refuse moves nothing
                pass
            continue
        lease = routing.request_work(store, project, name, now=clock, on_due=lambda: None)
        if lease is None:
            continue
        if op in ("submit", "undo", "other"):
            routing.submit(store, project, lease.id, value, now=clock, tutor=name)
            last[name] = lease.id
        elif op == "release":
            routing.release(store, project, lease.id, now=clock, tutor=name)
        else:
            clock += timedelta(seconds=120)  # the lease lapses; the next request expires it
    routing.request_work(store, project, tutors[0], now=clock, on_due=lambda: None)
    kept = _rows(store, project)
    with store.engine.connect() as conn:
        counted = queue.budget_used(conn, project)
        summed = queue.spending(conn, project)
    assert counted == pytest.approx(summed, abs=1e-9)
    assert summed[0] + summed[1] <= 12.0 + 1e-9  # the budget held throughout
    queue.build(store, project)
    _same(kept, _rows(store, project))


def _statements(store: Store) -> tuple[list[str], Any]:
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", count)
    return seen, count


@pytest.mark.parametrize("n", [40, 1200])
def test_a_request_and_a_submit_read_a_bounded_number_of_rows(store: Store, n: int) -> None:
    """After the queue is built, a lease request and a submit run the same statements whatever
    the project's size, and none of them returns a row per item."""
    project = _project(store, n, min_labels=1, max_labels=1)
    routing.add_tutor(store, project, "ann")
    lease = routing.request_work(store, project, "ann", now=T0)  # builds the queue
    assert lease is not None
    routing.submit(store, project, lease.id, "a", now=T0)
    seen, listener = _statements(store)
    try:
        for _ in range(3):
            lease = routing.request_work(store, project, "ann", now=T0, on_due=lambda: None)
            assert lease is not None
            routing.submit(store, project, lease.id, "b", now=T0)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", listener)
    per_cycle = len(seen) / 3
    assert per_cycle <= 24, seen
    assert not any("GROUP BY" in s for s in seen)  # no count over the project's claims or leases


def test_the_statement_count_does_not_grow_with_the_project(store: Store) -> None:
    counts: dict[int, int] = {}
    for n in (30, 900):
        project = _project(store, n, min_labels=1, max_labels=1)
        routing.add_tutor(store, project, "ann")
        routing.request_work(store, project, "ann", now=T0)
        seen, listener = _statements(store)
        try:
            lease = routing.request_work(store, project, "ann", now=T0, on_due=lambda: None)
            assert lease is not None and lease.resumed
            lease = routing.request_work(
                store, project, "ann", now=T0, resume=False, on_due=lambda: None
            )
            assert lease is not None
        finally:
            sa.event.remove(store.engine, "before_cursor_execute", listener)
        counts[n] = len(seen)
    assert counts[30] == counts[900]


def test_a_due_refit_is_handed_off_and_the_job_builds_from_the_new_run(store: Store) -> None:
    project = _project(store, 60, min_labels=1, max_labels=1)
    routing.add_tutor(store, project, "ann")
    asked: list[int] = []
    lease = routing.request_work(store, project, "ann", now=T0)  # first fit and build
    assert lease is not None and _runs(store, project) == 1
    routing.submit(store, project, lease.id, "a", now=T0)
    for _ in range(REFIT_CLAIMS + 1):
        lease = routing.request_work(store, project, "ann", now=T0, on_due=lambda: asked.append(1))
        assert lease is not None
        routing.submit(store, project, lease.id, "a", now=T0)
    assert _runs(store, project) == 1  # never fitted in a request
    routing.request_work(store, project, "ann", now=T0, on_due=lambda: asked.append(1))
    assert asked  # handed off instead
    result = run_kind(store, "refit", project.name, {})
    assert result["refitted"] and _runs(store, project) == 2
    with store.engine.connect() as conn:
        state = queue.read_state(conn, project)
        newest = conn.scalar(
            sa.select(sa.func.max(TruthRun.id)).where(TruthRun.project_id == project.id)
        )
    assert state.run_id == newest and not state.refit_due()
    assert run_kind(store, "refit", project.name, {})["refitted"] is False  # nothing due


def test_items_gold_and_settings_added_later_reach_the_queue(store: Store) -> None:
    project = _project(store, 3, min_labels=1, max_labels=1)
    routing.add_tutor(store, project, "ann")
    routing.add_tutor(store, project, "bob")
    taken = []
    for _ in range(3):
        lease = routing.request_work(store, project, "ann", now=T0)
        assert lease is not None
        taken.append(lease.item_id)
        routing.submit(store, project, lease.id, "a", now=T0)
    assert routing.request_work(store, project, "ann", now=T0) is None
    new = _add_items(store, project, range(3, 6))
    with store.session() as session:  # one new item becomes gold: never leased as work
        session.add(Gold(project_id=project.id, item_id=new[0], value="a"))
    got = set()
    while (lease := routing.request_work(store, project, "ann", now=T0)) is not None:
        got.add(lease.item_id)
        routing.submit(store, project, lease.id, "b", now=T0)
    assert got == set(new[1:])
    routing.configure(store, project, max_labels=2, min_labels=2)  # every item takes one more
    again = set()
    while (lease := routing.request_work(store, project, "bob", now=T0)) is not None:
        again.add(lease.item_id)
        routing.submit(store, project, lease.id, "a", now=T0)
    assert again == set(taken) | set(new[1:])


def test_claims_from_other_writers_make_the_queue_due(store: Store) -> None:
    project = _project(store, 5, min_labels=1, max_labels=1)
    routing.add_tutor(store, project, "ann")
    lease = routing.request_work(store, project, "ann", now=T0)
    assert lease is not None
    with store.engine.connect() as conn:
        assert not queue.read_state(conn, project).refit_due()
        ann = conn.scalar(sa.select(Source.id).where(Source.project_id == project.id))
        item = conn.scalar(
            sa.select(Item.id).where(Item.project_id == project.id, Item.id != lease.item_id)
        )
    with store.begin_write() as conn:
        add_claims(conn, [claim_row(project.id, item, ann, value='"a"')])
    with store.engine.connect() as conn:
        assert queue.read_state(conn, project).refit_due()
    routing.submit(store, project, lease.id, "a", now=T0)
    nxt = routing.request_work(store, project, "ann", now=T0)  # library mode: rebuilt here
    assert nxt is not None and nxt.item_id != item  # the imported label counts: item is done
    with store.engine.connect() as conn:
        assert not queue.read_state(conn, project).refit_due()
