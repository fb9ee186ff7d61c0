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
