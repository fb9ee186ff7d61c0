"""Shared pytest fixtures.

veritag must work on both SQLite and PostgreSQL, so database tests take the
``db_url`` fixture, which runs each test once per backend.  The PostgreSQL
side is a real server, not a mock: one throwaway server is started per test
session (see ``postgres_server.py``) and every test gets its own freshly
created database on it, so tests cannot see each other's data.  The server
is only started if a test actually needs it.

This file must not import veritag: the fixtures work on plain URLs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres_server import fresh_database, running_postgres


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
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database, once for SQLite and once for PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/test.db"
    else:
        with fresh_database(request.getfixturevalue("postgres_url")) as url:
            yield url


# --- veritag fixtures -------------------------------------------------------
# The fixtures below import veritag inside their bodies, never at module level,
# so collecting this file (and the PostgreSQL fixtures above) never does.


@pytest.fixture
def store(db_url: str) -> Iterator[object]:
    """A migrated veritag ``Store`` on ``db_url`` (so once on SQLite, once on PostgreSQL)."""
    from veritag.store import open_store

    opened = open_store(db_url)
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
def sqlite_store(tmp_path: Path) -> Iterator[object]:
    """A migrated veritag ``Store`` on a fresh SQLite file, for tests that need one backend only."""
    from veritag.store import open_store

    opened = open_store(f"sqlite:///{tmp_path}/veritag.db")
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def hf_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep ``datasets`` off the network and its caches inside ``tmp_path``; returns the cache dir."""
    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(home / "datasets"))
    return home / "datasets"
