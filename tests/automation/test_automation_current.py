"""Whether an automation run is current compares the project's claims version (migration 0014),
as a truth run's does: a claim that took a lower id and committed after the run read the claims
still makes the run stale."""

from __future__ import annotations

from contextlib import ExitStack

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.exc import DBAPIError
from vt_helpers import make_project

from veritag.automation.project import (
    automate_project,
    automation_run_is_current,
    latest_automation_run,
)
from veritag.store import Claim, Store
from veritag.store.claims import _count_in, add_claim
from veritag.store.engine import _alembic_config
from veritag.store.models import AutomationRun, Item, Project
from veritag.store.queries import claims_watermark, source_ids


def _project(store: Store) -> tuple[Project, int, tuple[int, int]]:
    """A classification project with three items, two human sources and one claim."""
    project = make_project(store, schema={"type": "classification", "labels": ["a", "b"]})
    with store.begin_write() as conn:
        items = [
            int(
                conn.execute(
                    sa.insert(Item).values(project_id=project.id, external_id=f"i{n}")
                ).inserted_primary_key[0]
            )
            for n in range(3)
        ]
        names = source_ids(conn, project_id=project.id, kind="human", names={"ann", "bob"})
        add_claim(conn, project.id, items[0], names["ann"], value="a")
    return project, items[0], (names["ann"], names["bob"])


def _claim(store: Store, project: Project, item: int, source: int) -> int:
    with store.begin_write() as conn:
        return add_claim(conn, project.id, item, source, value="b")


def _automate(store: Store, project: Project) -> int:
    return automate_project(store, project, target=0.9, delta=0.1).run_id


def _current(store: Store, project: Project) -> bool:
    with store.engine.connect() as conn:
        return automation_run_is_current(conn, latest_automation_run(conn, project.id))


def test_a_run_stores_the_claims_version_and_a_new_claim_stales_it(store: Store) -> None:
    project, item, (_, bob) = _project(store)
    run_id = _automate(store, project)
    with store.engine.connect() as conn:
        stored = conn.scalar(
            sa.select(AutomationRun.claims_version).where(AutomationRun.id == run_id)
        )
        assert stored == claims_watermark(conn, project_id=project.id).claims_version == 1
    assert _current(store, project)
    _claim(store, project, item, bob)
    assert not _current(store, project)
    _automate(store, project)
    assert _current(store, project)


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_claim_committed_after_the_run_makes_it_stale(store: Store) -> None:
    project, item, (ann, bob) = _project(store)
    with ExitStack() as stack:
        late = stack.enter_context(store.begin_write())
        # What add_claim does, in its two steps: the insert takes the lower id now ...
        low = late.execute(
            sa.insert(Claim).values(project_id=project.id, item_id=item, source_id=bob, value="b")
        ).inserted_primary_key[0]
        high = _claim(store, project, item, ann)  # ... another claim commits first ...
        assert high > low
        run_id = _automate(store, project)  # ... the run reads it ...
        _count_in(late, project.id, 1)  # ... and the lower id commits after the run
    with store.engine.connect() as conn:
        run = latest_automation_run(conn, project.id)
        assert run.id == run_id and run.max_claim_id == high
        mark = claims_watermark(conn, project_id=project.id)
    # the newest id and the gold count say "current"; the claims version does not
    assert (run.max_claim_id, run.gold_count) == (mark.max_claim_id, mark.gold_count)
    assert run.claims_version == mark.claims_version - 1
    assert not _current(store, project)


def test_migration_0014_backfills_runs_and_keeps_them_append_only(store: Store) -> None:
    project, item, (_, bob) = _project(store)
    run_id = _automate(store, project)
    _claim(store, project, item, bob)  # after the run: the backfill must leave it stale
    with store.engine.begin() as conn:
        command.downgrade(_alembic_config(conn), "0013")
    assert "claims_version" not in {
        c["name"] for c in sa.inspect(store.engine).get_columns("automation_runs")
    }
    store.migrate()
    with store.engine.connect() as conn:
        backfilled = conn.scalar(
            sa.select(AutomationRun.claims_version).where(AutomationRun.id == run_id)
        )
    assert backfilled == 1 and not _current(store, project)
    with pytest.raises(DBAPIError), store.engine.begin() as conn:
        conn.execute(sa.update(AutomationRun).values(claims_version=2))
