"""The test database fixtures reach real, working databases."""

from __future__ import annotations

import sqlalchemy as sa


def _round_trip(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        metadata = sa.MetaData()
        items = sa.Table(
            "items",
            metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.String(100), nullable=False),
        )
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(items.insert(), [{"id": 1, "name": "héllo wörld"}])
        with engine.connect() as conn:
            rows = conn.execute(sa.select(items.c.id, items.c.name)).all()
        assert [tuple(row) for row in rows] == [(1, "héllo wörld")]
    finally:
        engine.dispose()


def test_postgres_server_is_real_postgresql(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+psycopg://veritag@127.0.0.1:")
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            version = conn.execute(sa.text("select version()")).scalar_one()
    finally:
        engine.dispose()
    assert "PostgreSQL" in version
    _round_trip(postgres_url)


def test_db_url_round_trips_a_row(db_url: str) -> None:
    _round_trip(db_url)


def test_db_url_gives_each_test_an_empty_database(db_url: str) -> None:
    # The previous test created "items" in its own database; this one must
    # not see it.
    engine = sa.create_engine(db_url)
    try:
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
    _round_trip(db_url)
