"""``veritag backup`` and ``restore`` as library calls: consistency under writes, round trips,
refusing to overwrite newer data, and a clear error without PostgreSQL's tools."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from postgres_server import fresh_database
from vt_helpers import make_project

from veritag.errors import ConfigError, InputError
from veritag.store import Claim, Item, Source, Store, open_store
from veritag.store import backup as backup_mod
from veritag.store.backup import NewerDatabase, backup, meta_path, read_meta, restore


def _seed(store: Store) -> tuple[int, int, int]:
    """A project with one item and one human source: (project id, item id, source id)."""
    project = make_project(store)
    with store.session() as session:
        item = Item(project_id=project.id, external_id="i1", text="t")
        source = Source(project_id=project.id, kind="human", name="w")
        session.add_all([item, source])
        session.flush()
        return project.id, item.id, source.id


def _add_claim(store: Store, ids: tuple[int, int, int]) -> int:
    project_id, item_id, source_id = ids
    with store.begin_write() as conn:
        return int(
            conn.scalar(
                sa.insert(Claim)
                .values(project_id=project_id, item_id=item_id, source_id=source_id, value="1")
                .returning(Claim.id)
            )
        )


def _claim_ids(url: str) -> set[int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return set(conn.scalars(sa.select(Claim.id)))
    finally:
        engine.dispose()


@contextmanager
def _empty_target(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database to restore into: a file not there yet, or an empty PostgreSQL database."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/restored.db"
    else:
        with fresh_database(request.getfixturevalue("postgres_url")) as url:
            yield url


def test_round_trip(
    store: Store, migrated_url: str, backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    ids = _seed(store)
    claims = {_add_claim(store, ids) for _ in range(5)}
    out = tmp_path / "veritag.backup"
    info = backup(migrated_url, out)
    assert out.is_file() and info.marks["claims"] == max(claims) and info.dialect == backend
    assert read_meta(out) is not None and read_meta(out).marks == info.marks  # type: ignore[union-attr]
    with _empty_target(backend, request, tmp_path) as target:
        restored = restore(target, out)
        assert restored.marks == info.marks
        assert _claim_ids(target) == claims
        again = open_store(target)  # at the newest revision: opens without migrating anything
        try:
            assert again.is_current()
            _add_claim(again, ids)  # and takes new writes
        finally:
            again.close()


def test_restore_refuses_a_newer_database(store: Store, migrated_url: str, tmp_path: Path) -> None:
    ids = _seed(store)
    kept = _add_claim(store, ids)
    out = tmp_path / "veritag.backup"
    backup(migrated_url, out)
    restore(migrated_url, out)  # the same data: nothing newer, so no --force needed
    later = _add_claim(store, ids)
    with pytest.raises(NewerDatabase, match=r"claims up to id \d+.*--force"):
        restore(migrated_url, out)
    assert _claim_ids(migrated_url) == {kept, later}, "a refused restore changes nothing"
    restore(migrated_url, out, force=True)
    assert _claim_ids(migrated_url) == {kept}
    assert _add_claim(store, ids) > kept, "the store goes on writing after a restore"


def test_restore_leaves_nothing_of_a_newer_schema(
    store: Store, migrated_url: str, backend: str, tmp_path: Path
) -> None:
    _seed(store)
    out = tmp_path / "veritag.backup"
    backup(migrated_url, out)
    engine = sa.create_engine(migrated_url)
    try:
        with engine.begin() as conn:  # what a later migration would add
            conn.execute(sa.text("CREATE TABLE newer_things (id INTEGER PRIMARY KEY)"))
            if backend == "postgresql":
                conn.execute(
                    sa.text(
                        "CREATE FUNCTION veritag_newer() RETURNS integer AS 'SELECT 1' LANGUAGE sql"
                    )
                )
        restore(migrated_url, out, force=True)
        with engine.connect() as conn:
            assert "newer_things" not in sa.inspect(conn).get_table_names()
            assert "claims" in sa.inspect(conn).get_table_names()
            if backend == "postgresql":
                assert (
                    conn.scalar(
                        sa.text("SELECT count(*) FROM pg_proc WHERE proname = 'veritag_newer'")
                    )
                    == 0
                )
                assert (
                    conn.scalar(
                        sa.text(
                            "SELECT count(*) FROM pg_proc WHERE proname = "
                            "'veritag_claims_append_only'"
                        )
                    )
                    == 1
                )  # the dump's own are kept
    finally:
        engine.dispose()


def test_backup_is_consistent_while_claims_are_written(
    store: Store, migrated_url: str, backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    ids = _seed(store)
    project_id, item_id, source_id = ids
    with store.begin_write() as conn:  # enough pages that the copy takes a while
        conn.execute(
            sa.insert(Claim),
            [
                {
                    "project_id": project_id,
                    "item_id": item_id,
                    "source_id": source_id,
                    "value": "1",
                    "dedup_key": "x" * 200 + str(n),
                }
                for n in range(20_000)
            ],
        )
    initial = _claim_ids(migrated_url)
    acked: list[int] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            while not stop.is_set():
                acked.append(_add_claim(store, ids))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(acked) < 20:
            stop.wait(0.01)
        before = set(acked)  # every claim acknowledged before the backup began
        out = tmp_path / "veritag.backup"
        info = backup(migrated_url, out)
        while len(acked) < len(before) + 20:  # the writer kept going during and after it
            stop.wait(0.01)
    finally:
        stop.set()
        thread.join()
    assert not errors, errors
    if backend == "sqlite":
        with closing(sqlite3.connect(out)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with _empty_target(backend, request, tmp_path) as target:
        restore(target, out)
        in_backup = _claim_ids(target)
    assert before <= in_backup
    assert max(in_backup) == info.marks["claims"], "the marks describe the very moment copied"
    committed = initial | set(acked)
    assert in_backup == {i for i in committed if i <= info.marks["claims"]}, (
        "one moment: no later claim, no gap"
    )


def test_missing_pg_tools_give_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(backup_mod, "PG_BIN_GLOBS", ())
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    with pytest.raises(ConfigError, match="pg_dump was not found on PATH.*postgresql-client"):
        backup(url, tmp_path / "pg.backup")
    dump = tmp_path / "pg.backup"
    dump.write_bytes(b"PGDMP")
    with pytest.raises(ConfigError, match="pg_restore was not found"):
        restore(url, dump, force=True)


def test_backups_do_not_cross_backends(sqlite_store: Store, tmp_path: Path) -> None:
    url = str(sqlite_store.engine.url)
    out = tmp_path / "s.backup"
    backup(url, out)
    with pytest.raises(InputError, match="sqlite backup; it cannot be restored into a postgresql"):
        restore("postgresql+psycopg://nobody@127.0.0.1:1/none", out)
    with pytest.raises(InputError, match="the database itself"):
        backup(url, Path(str(sqlite_store.engine.url.database)))
    meta_path(out).unlink()
    junk = tmp_path / "junk.backup"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(InputError, match="not a SQLite database"):
        restore(url, junk)


def test_backup_without_metadata(
    store: Store, migrated_url: str, backend: str, tmp_path: Path
) -> None:
    """A SQLite backup is a database with its own marks; a dump without sidecar needs --force."""
    ids = _seed(store)
    out = tmp_path / "veritag.backup"
    backup(migrated_url, out)
    meta_path(out).unlink()
    if backend == "sqlite":
        _add_claim(store, ids)
        with pytest.raises(NewerDatabase):
            restore(migrated_url, out)
    else:
        with pytest.raises(InputError, match="no metadata file.*--force"):
            restore(migrated_url, out)
    restore(migrated_url, out, force=True)
    assert _claim_ids(migrated_url) == set()
