"""Shared pytest fixtures.

veritag must work on both SQLite and PostgreSQL, so database tests take the
``db_url`` fixture, which runs each test once per backend.  The PostgreSQL
side is a real server, not a mock: one throwaway server is started per test
session (see ``postgres_server.py``) and every test gets its own freshly
created database on it, so tests cannot see each other's data.  The server
is only started if a test actually needs it.

Migrations run once per backend and test session, into a template: a test's
migrated database is a copy of it (SQLite's backup API, PostgreSQL's
``CREATE DATABASE ... TEMPLATE``), and ``open_store`` still checks that it is at
the newest revision.  Under pytest-xdist each worker has its own server and
templates, and numeric libraries use one thread per worker, so two workers
share two cores instead of fighting over them.

This file must not import veritag: the fixtures work on plain URLs.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import settings
from postgres_server import fresh_database, running_postgres

# Property tests draw the same examples on every run ("ci", the default), so a red run is a
# change in the code, never the luck of the draw; VERITAG_HYPOTHESIS=explore draws new ones.
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", print_blob=True)
settings.load_profile(os.environ.get("VERITAG_HYPOTHESIS", "ci"))

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Before numpy, scipy or onnxruntime load: their thread pools size themselves from these,
    # and so do the subprocesses (veritag serve, the console script) that tests start.
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Built ONNX model files go to a throwaway folder, never the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("veritag-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VERITAG_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of the session's throwaway PostgreSQL server."""
    with running_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Each test that asks for a database runs once per backend."""
    return str(request.param)


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database, once for SQLite and once for PostgreSQL."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/test.db"
    else:
        with fresh_database(request.getfixturevalue("postgres_url")) as url:
            yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to the newest revision, once per test session."""
    from veritag.store import open_store

    path = tmp_path_factory.mktemp("template") / "template.db"
    open_store(f"sqlite:///{path}").close()
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres_url: str) -> Iterator[str]:
    """The name of a PostgreSQL database migrated to the newest revision, once per session."""
    from sqlalchemy.engine import make_url

    from veritag.store import open_store

    with fresh_database(postgres_url, prefix="veritag_template") as url:
        open_store(url).close()  # closes its pool: a template must have no open connection
        yield str(make_url(url).database)


def migrated_sqlite(template: Path, path: Path) -> str:
    """A copy of the migrated template at ``path`` (the backup API also copies WAL pages)."""
    with closing(sqlite3.connect(template)) as source, closing(sqlite3.connect(path)) as target:
        source.backup(target)
    return f"sqlite:///{path}"


@pytest.fixture
def migrated_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a database already at the newest revision: a copy of the session's template."""
    if backend == "sqlite":
        yield migrated_sqlite(request.getfixturevalue("sqlite_template"), tmp_path / "test.db")
    else:
        with fresh_database(
            request.getfixturevalue("postgres_url"),
            template=request.getfixturevalue("postgres_template"),
        ) as url:
            yield url


# --- veritag fixtures -------------------------------------------------------
# The fixtures below import veritag inside their bodies, never at module level,
# so collecting this file (and the PostgreSQL fixtures above) never does.


@pytest.fixture
def store(migrated_url: str) -> Iterator[object]:
    """A migrated veritag ``Store``, once on SQLite and once on PostgreSQL."""
    from veritag.store import open_store

    opened = open_store(migrated_url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def rte(store: object) -> object:
    """The bundled sample as a project with its texts and labels in (800 items, 8000 claims)."""
    from vt_helpers import LABELS, TEXTS, make_project

    from veritag.io import ColumnMap, import_file

    project = make_project(store)  # type: ignore[arg-type]
    import_file(store, project, TEXTS, ColumnMap(meta=["rte_subtask"]))  # type: ignore[arg-type]
    import_file(store, project, LABELS)  # type: ignore[arg-type]
    return project


@pytest.fixture
def sqlite_store(sqlite_template: Path, tmp_path: Path) -> Iterator[object]:
    """A migrated veritag ``Store`` on a fresh SQLite file, for tests that need one backend only."""
    from veritag.store import open_store

    opened = open_store(migrated_sqlite(sqlite_template, tmp_path / "veritag.db"))
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def hf_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep ``datasets`` off the network, its caches inside ``tmp_path``; returns the cache dir."""
    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(home / "datasets"))
    return home / "datasets"
