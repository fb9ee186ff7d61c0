"""Truth runs with many server processes on one database (issue 17): the refit lock, the claims
version that a late commit cannot fool, and the retention of stored runs."""

from __future__ import annotations

import threading
from contextlib import ExitStack
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.exc import DBAPIError
from vt_helpers import make_project, read_jsonl

from veritag.io import export_project
from veritag.report.project import project_report
from veritag.resolve import current_truth, load_resolution, resolve_and_store
from veritag.resolve.current import refit_lock
from veritag.resolve.runs import RunPruned
from veritag.store import Claim, Store, open_store
from veritag.store.claims import _count_in, add_claim, add_claims, claim_row
from veritag.store.engine import _alembic_config
from veritag.store.models import Item, PosteriorBlock, Project, SourceReliability, TruthRun
from veritag.store.queries import (
    KEEP_RUNS,
    claims_watermark,
    latest_truth_run,
    run_is_current,
    source_ids,
)


def _project(store: Store, n_items: int = 3) -> tuple[Project, list[int], list[int]]:
    """A classification project with ``n_items`` items and two human sources."""
    project = make_project(store, schema={"type": "classification", "labels": ["a", "b"]})
    with store.begin_write() as conn:
        items = [
            int(
                conn.execute(
                    sa.insert(Item).values(project_id=project.id, external_id=f"i{n}")
                ).inserted_primary_key[0]
            )
            for n in range(n_items)
        ]
        names = source_ids(conn, project_id=project.id, kind="human", names={"ann", "bob"})
    return project, items, [names["ann"], names["bob"]]


def _claim(store: Store, project: Project, item: int, source: int, value: str = "a") -> int:
    with store.begin_write() as conn:
        return add_claim(conn, project.id, item, source, value=value)


def _runs(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(TruthRun)) or 0)


# --- the claims version -------------------------------------------------------------------------


def test_the_claims_writer_counts_what_it_stores(store: Store) -> None:
    project, items, (ann, bob) = _project(store)
    rows = [claim_row(project.id, item, ann, value='"a"') for item in items]
    with store.begin_write() as conn:
        add_claims(conn, rows)
        add_claims(conn, rows + [claim_row(project.id, items[0], bob, value='"b"')])  # 3 skipped
    _claim(store, project, items[1], bob)
    with store.engine.connect() as conn:
        mark = claims_watermark(conn, project_id=project.id)
        assert mark.claims_version == 5 == conn.scalar(sa.select(sa.func.count(Claim.id)))


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_claim_committed_after_the_fit_makes_the_run_stale(store: Store) -> None:
    project, (item, *_), (ann, bob) = _project(store)
    _claim(store, project, item, ann)
    resolve_and_store(store, project, "mv")
    with ExitStack() as stack:
        late = stack.enter_context(store.begin_write())
        # What add_claim does, in its two steps: the insert takes the lower id now ...
        low = late.execute(
            sa.insert(Claim).values(project_id=project.id, item_id=item, source_id=bob, value="b")
        ).inserted_primary_key[0]
        high = _claim(store, project, item, ann)  # ... another claim commits first ...
        assert high > low
        run = resolve_and_store(store, project, "mv").run  # ... the fit reads it ...
        assert run is not None and run.max_claim_id == high
        _count_in(late, project.id, 1)  # ... and the lower id commits after the fit
    truth = current_truth(store, project)
    assert truth.run.id == run.run_id and truth.run.max_claim_id == truth.mark.max_claim_id
    assert truth.stale and truth.new_claims == 1
    with store.engine.connect() as conn:
        assert not run_is_current(conn, truth.run)
    fitted = current_truth(store, project, refit="stale")
    assert fitted.refitted and not fitted.stale


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
def test_claim_writers_of_one_project_queue_on_its_row(store: Store) -> None:
    project, (item, *_), (ann, bob) = _project(store)
    ids: list[int] = []
    with ExitStack() as stack:
        first = stack.enter_context(store.begin_write())
        ids.append(add_claim(first, project.id, item, ann, value="a"))
        second = threading.Thread(target=lambda: ids.append(_claim(store, project, item, bob)))
        second.start()
        second.join(0.5)
        assert second.is_alive()  # waits for the first transaction's row lock
    second.join(10)
    assert not second.is_alive() and ids[1] > ids[0]
    with store.engine.connect() as conn:
        assert claims_watermark(conn, project_id=project.id).claims_version == 2


# --- the refit lock -----------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_fit_in_another_process_holds_therefit_lock(store: Store, migrated_url: str) -> None:
    """Another ``Store`` on the same database is another session, as another process would be."""
    project, (item, other, _), (ann, bob) = _project(store)
    _claim(store, project, item, ann)
    elsewhere = open_store(migrated_url)
    try:
        with refit_lock(elsewhere, project, wait=True):
            # the first fit waits for the lock: there is no run to serve meanwhile
            first: list[object] = []
            waiting = threading.Thread(
                target=lambda: first.append(current_truth(store, project, refit="due"))
            )
            waiting.start()
            waiting.join(0.5)
            assert waiting.is_alive() and _runs(store) == 0
        waiting.join(30)
        assert not waiting.is_alive() and first[0].refitted and _runs(store) == 1
        _claim(store, project, other, bob)
        with refit_lock(elsewhere, project, wait=True):
            # a later refit is skipped while someone else fits: the stale run serves
            for refit in ("due", "stale"):
                truth = current_truth(store, project, refit=refit)
                assert truth.stale and not truth.refitted
            assert _runs(store) == 1
        assert current_truth(store, project, refit="stale").refitted
        assert _runs(store) == 2
    finally:
        elsewhere.close()


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
def test_two_servers_asking_at_once_store_one_run(store: Store, migrated_url: str) -> None:
    project, items, (ann, bob) = _project(store, n_items=40)
    for item in items:
        _claim(store, project, item, ann)
    servers = [store, open_store(migrated_url)]
    try:
        for refit in ("due", "stale"):
            start = threading.Barrier(len(servers))
            answers: list[object] = []

            def ask(server: Store, refit: str = refit, start: threading.Barrier = start) -> None:
                start.wait()
                answers.append(current_truth(server, project, refit=refit))

            before = _runs(store)
            threads = [threading.Thread(target=ask, args=(s,)) for s in servers]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert len(answers) == 2 and _runs(store) == before + 1
            for item in items:  # enough new claims that the next "due" fits again
                _claim(store, project, item, bob)
    finally:
        servers[1].close()


# --- retention ----------------------------------------------------------------------------------


def test_only_the_newest_runs_of_a_method_keep_their_rows(
    store: Store, rte: Project, tmp_path: Path
) -> None:
    ds = resolve_and_store(store, rte).run
    runs = [resolve_and_store(store, rte, "mv").run for _ in range(KEEP_RUNS + 2)]
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(TruthRun.id, TruthRun.pruned).order_by(TruthRun.id)).all()
        kept = {
            run_id: conn.scalar(
                sa.select(sa.func.coalesce(sa.func.sum(PosteriorBlock.n_items), 0)).where(
                    PosteriorBlock.run_id == run_id
                )
            )
            for run_id, _ in rows
        }
        sources = dict(
            conn.execute(
                sa.select(SourceReliability.run_id, sa.func.count()).group_by(
                    SourceReliability.run_id
                )
            ).all()
        )
    pruned = [r.run_id for r in runs[:2]]
    assert [(run_id, flag) for run_id, flag in rows] == [
        (run_id, run_id in pruned) for run_id in [ds.run_id, *(r.run_id for r in runs)]
    ]
    assert {run_id: n for run_id, n in kept.items() if n} == {
        run_id: 800 for run_id in kept if run_id not in pruned
    }
    assert set(sources) == set(kept) - set(pruned)

    with store.engine.connect() as conn:
        old = conn.execute(sa.select(*TruthRun.__table__.c).where(TruthRun.id == pruned[0])).one()
        with pytest.raises(RunPruned, match=f"truth run {pruned[0]} \\(mv\\) was pruned"):
            load_resolution(conn, old)
        newest = latest_truth_run(conn, project_id=rte.id, method="mv")
    # a reader that picked a run just before refits pruned it is told so, not given no labels
    for _ in range(KEEP_RUNS):
        resolve_and_store(store, rte, "mv")
    with store.engine.connect() as conn, pytest.raises(RunPruned):
        load_resolution(conn, newest)

    # the newest run of each method still serves the export and the report
    result = export_project(store, rte, tmp_path / "labels.jsonl", "jsonl", method="mv")
    assert not result.resolved and len(read_jsonl(tmp_path / "labels.jsonl")) == 800
    report, _ = project_report(store, rte, method="ds")
    assert report is not None
    # and only the retention rule may delete: a kept run's rows and a pruned flag stay put
    for statement in (
        f"DELETE FROM posterior_blocks WHERE run_id = {ds.run_id}",
        f"UPDATE truth_runs SET pruned = false WHERE id = {pruned[0]}",
        f"UPDATE truth_runs SET method = 'ds' WHERE id = {pruned[0]}",
        f"DELETE FROM truth_runs WHERE id = {pruned[0]}",
    ):
        with pytest.raises(DBAPIError) as info, store.engine.begin() as conn:
            conn.execute(sa.text(statement))
        assert "append-only" in str(info.value.orig)


# --- migration 0011 -----------------------------------------------------------------------------


def test_upgrade_from_0010_counts_the_claims_and_what_each_run_saw(db_url: str) -> None:
    store = open_store(db_url, migrate=False)
    try:
        with store.engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "0010")
        with store.engine.begin() as conn:

            def insert(sql: str, **values: object) -> int:
                return int(conn.execute(sa.text(sql + " RETURNING id"), values).scalar_one())

            project = insert(
                "INSERT INTO projects (name, task_schema, description) VALUES ('p', :s, '')",
                s='{"type": "classification", "labels": ["a", "b"]}',
            )
            item = insert("INSERT INTO items (project_id, external_id) VALUES (:p, 'i')", p=project)
            source = insert(
                "INSERT INTO sources (project_id, kind, name) VALUES (:p, 'human', 'ann')",
                p=project,
            )
            claims = [
                insert(
                    "INSERT INTO claims (project_id, item_id, source_id, value) "
                    "VALUES (:p, :i, :s, '\"a\"')",
                    p=project,
                    i=item,
                    s=source,
                )
                for _ in range(3)
            ]
            runs = [
                insert(
                    "INSERT INTO truth_runs (project_id, method, engine_version, params, "
                    "max_claim_id, gold_count, n_items, n_iter, converged) "
                    "VALUES (:p, 'mv', 't', '{}', :m, 0, 1, 0, true)",
                    p=project,
                    m=max_claim,
                )
                for max_claim in (claims[1], claims[2])
            ]
        with store.engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "0011")
        with store.engine.connect() as conn:
            assert claims_watermark(conn, project_id=project).claims_version == 3
            stored = {r.id: r for r in conn.execute(sa.select(*TruthRun.__table__.c)).all()}
            assert [(stored[r].claims_version, stored[r].pruned) for r in runs] == [
                (2, False),
                (3, False),
            ]
            assert [run_is_current(conn, stored[r]) for r in runs] == [False, True]
        with store.engine.begin() as conn:
            command.downgrade(_alembic_config(conn), "0010")
        with pytest.raises(DBAPIError), store.engine.begin() as conn:  # 0002's triggers are back
            conn.execute(sa.text("UPDATE truth_runs SET method = 'ds'"))
        with store.engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "0011")
    finally:
        store.close()
