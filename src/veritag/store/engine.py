"""Opening a store: one engine per URL, SQLite tuned for a single machine, migrations applied."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ..errors import ConfigError

__all__ = ["Store", "open_store"]

MIGRATIONS = Path(__file__).with_name("migrations")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (the UI) run while an import writes; SQLite has foreign keys off by default.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _alembic_config(connection: sa.Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


#: Key of ``Connection.info`` set while a ``Store.begin_write`` transaction runs.
WRITING = "veritag.begin_write"

#: One write lock per SQLite file in this process (see ``Store.begin_write``).
_SQLITE_WRITERS: dict[str, threading.Lock] = {}
_SQLITE_WRITERS_LOCK = threading.Lock()


class Store:
    """A database holding veritag projects; ``session()`` gives a transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._writer: threading.Lock | None = None
        if engine.dialect.name == "sqlite":
            with _SQLITE_WRITERS_LOCK:
                self._writer = _SQLITE_WRITERS.setdefault(str(engine.url), threading.Lock())

    @contextmanager
    def begin_write(self) -> Iterator[sa.Connection]:
        """A transaction that will write, for the server's hot paths (lease, submit).

        SQLite lets one writer in at a time and makes the others poll with growing sleeps (its
        busy timeout), so under many concurrent tutors a write can wait far longer than the
        writes ahead of it take. Threads of this process therefore queue on a lock instead; other
        processes still meet SQLite's own locking. PostgreSQL needs no such lock.

        The connection is marked (``WRITING`` in its ``info``) while the transaction runs, so
        that writers which must hold the lock (``store.claims``) can refuse any other connection.
        """
        with self._writer or nullcontext(), self.engine.begin() as conn:
            conn.info[WRITING] = True
            try:
                yield conn
            finally:
                conn.info.pop(WRITING, None)  # ``info`` outlives the checkout: the pool reuses it

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success and rolled back on any exception."""
        with self._sessions.begin() as session:
            yield session

    def migrate(self) -> None:
        """Bring the schema to the newest migration (idempotent)."""
        with self.engine.begin() as connection:
            command.upgrade(_alembic_config(connection), "head")

    def is_current(self) -> bool:
        with self.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
            head = ScriptDirectory.from_config(_alembic_config(connection)).get_current_head()
        return current == head

    def close(self) -> None:
        self.engine.dispose()


def open_store(url: str, *, migrate: bool = True) -> Store:
    """Connect to ``url``; create the SQLite file and apply migrations unless told not to."""
    try:
        parsed = sa.make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"invalid database URL {url!r}: {exc}") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        folder = Path(parsed.database).parent
        if not folder.is_dir():
            raise ConfigError(
                f"cannot create database {parsed.database}: folder {folder} does not exist"
            )
    try:
        engine = sa.create_engine(parsed)
    except NoSuchModuleError as exc:
        raise ConfigError(f"unsupported database URL {url!r}: {exc}") from None
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"the driver for {parsed.drivername} is not installed ({exc.name}); "
            "for PostgreSQL: pip install 'veritag[postgres]'"
        ) from None
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    store = Store(engine)
    if migrate:
        try:
            store.migrate()
        except OperationalError as exc:
            raise ConfigError(
                f"cannot open database {parsed.render_as_string(hide_password=True)}: {exc.orig}"
            ) from None
    return store
