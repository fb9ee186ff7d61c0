"""The store on both backends: migrations, append-only claims, projects, users, SQLite tuning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.exc import DBAPIError, IntegrityError

from veritag.errors import AlreadyExists, ConfigError, NotFound, SchemaError, VeritagError
from veritag.schema import RatingSchema
from veritag.store import Base, Claim, Item, Project, Source, Store, User, open_store
from veritag.resolve import load_resolution
from veritag.store.engine import _alembic_config
from veritag.store import posterior_blocks
from veritag.store.models import Gold, PosteriorBlock, SourceReliability, TruthRun
from veritag.store.posterior_blocks import BlockReader, labels_of, probs_of, run_table
from veritag.store.queries import (
    claims_watermark,
    create_project,
    create_user,
    get_project,
    insert_truth_run,
    latest_truth_run,
    list_projects,
    project_counts,
    project_schema,
    run_is_current,
    source_ids,
    verify_password,
)

TABLES = {"users", "projects", "items", "sources", "claims", "gold", "imports"}
#: The newest migration file names the revision a fresh store is at.
MIGRATIONS = (
    Path(__file__).resolve().parents[2] / "src" / "veritag" / "store" / "migrations" / "versions"
)


def _one_claim(store: Store) -> int:
    """A project with one item, one source and one claim; returns the claim id."""
    with store.session() as session:
        # Core inserts of the 0001 columns, not create_project (it also writes 0010's audit log)
        # nor the ORM (it reads back later columns): a store may be at 0001 here.
        project_id = session.execute(
            sa.insert(Project)
            .values(
                name="p",
                task_schema={"type": "classification", "labels": ["a", "b"]},
                description="",
            )
            .returning(Project.id)
        ).scalar_one()
        item = Item(project_id=project_id, external_id="i1", text="hello")
        source = Source(project_id=project_id, kind="human", name="w1")
        session.add_all([item, source])
        session.flush()
        # Core insert of the 0001 columns only, so this runs on a store left at an old revision too.
        return int(
            session.execute(
                sa.insert(Claim)
                .values(
                    project_id=project_id,
                    item_id=item.id,
                    source_id=source.id,
                    value="a",
                    dedup_key='"a"',
                )
                .returning(Claim.id)
            ).scalar_one()
        )


# --- migrations -------------------------------------------------------------------------------


def test_open_store_migrates(db_url: str) -> None:
    store = open_store(db_url)
    try:
        names = set(sa.inspect(store.engine).get_table_names())
        assert TABLES <= names
        assert "alembic_version" in names
        assert store.is_current()
        with store.engine.connect() as conn:
            assert (
                conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
                == sorted(p.name for p in MIGRATIONS.glob("0*.py"))[-1].split("_")[0]
            )
    finally:
        store.close()


def test_migrate_is_idempotent_and_keeps_data(db_url: str) -> None:
    store = open_store(db_url)
    try:
        with store.session() as session:
            create_project(session, name="kept", schema={"type": "rating"})
        store.migrate()
        store.migrate()
    finally:
        store.close()
    again = open_store(db_url)
    try:
        with again.session() as session:
            assert [p.name for p in list_projects(session)] == ["kept"]
        assert again.is_current()
    finally:
        again.close()


def test_unmigrated_store_is_not_current(db_url: str) -> None:
    store = open_store(db_url, migrate=False)
    try:
        assert sa.inspect(store.engine).get_table_names() == []
        assert not store.is_current()
        store.migrate()
        assert store.is_current()
    finally:
        store.close()


def test_models_match_migrations(store: Store) -> None:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        assert compare_metadata(context, Base.metadata) == []


def test_dialect(store: Store, db_url: str) -> None:
    assert store.dialect == sa.make_url(db_url).get_backend_name()


# --- append-only claims -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE claims SET value = '\"b\"' WHERE id = :id",
        "UPDATE claims SET dedup_key = 'x' WHERE id = :id",
        "DELETE FROM claims WHERE id = :id",
        "DELETE FROM claims",
    ],
)
def test_claims_are_append_only_in_the_database(store: Store, statement: str) -> None:
    claim_id = _one_claim(store)
    with pytest.raises(DBAPIError) as info:
        with store.engine.begin() as conn:
            conn.execute(sa.text(statement), {"id": claim_id})
    assert "append-only" in str(info.value.orig)
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(Claim.id, Claim.value, Claim.dedup_key)).all()
    assert [tuple(r) for r in rows] == [(claim_id, "a", '"a"')]


def test_claims_append_only_through_the_orm(store: Store) -> None:
    claim_id = _one_claim(store)
    with pytest.raises(DBAPIError):
        with store.session() as session:
            session.get(Claim, claim_id).value = "b"
    with pytest.raises(DBAPIError):
        with store.session() as session:
            session.delete(session.get(Claim, claim_id))
    with store.session() as session:
        assert session.get(Claim, claim_id).value == "a"
        # appending still works
        first = session.get(Claim, claim_id)
        session.add(
            Claim(
                project_id=first.project_id,
                item_id=first.item_id,
                source_id=first.source_id,
                value="b",
                dedup_key='"b"',
            )
        )
    with store.engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(Claim)) == 2


def test_other_tables_stay_editable(store: Store) -> None:
    _one_claim(store)
    with store.engine.begin() as conn:
        conn.execute(sa.update(Item).values(text="changed"))
        conn.execute(sa.delete(Source).where(Source.name == "nobody"))
    with store.engine.connect() as conn:
        assert conn.scalar(sa.select(Item.text)) == "changed"


def test_claim_foreign_keys_are_enforced(store: Store) -> None:
    with store.session() as session:
        project = create_project(session, name="p", schema={"type": "rating"})
    with pytest.raises(IntegrityError):
        with store.session() as session:
            session.add(
                Claim(project_id=project.id, item_id=12345, source_id=999, value=3, dedup_key="3")
            )


def test_claim_dedup_key_is_unique(store: Store) -> None:
    claim_id = _one_claim(store)
    with store.session() as session:
        first = session.get(Claim, claim_id)
        keys = dict(project_id=first.project_id, item_id=first.item_id, source_id=first.source_id)
    with pytest.raises(IntegrityError):
        with store.session() as session:
            session.add(Claim(**keys, value="a", dedup_key='"a"'))
    # live claims leave dedup_key NULL and never collide
    with store.session() as session:
        session.add_all([Claim(**keys, value="a"), Claim(**keys, value="a")])
    with store.engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(Claim)) == 3


def test_json_none_is_sql_null(store: Store) -> None:
    claim_id = _one_claim(store)
    with store.engine.connect() as conn:
        assert (
            conn.scalar(sa.select(sa.func.count()).select_from(Claim).where(Claim.probs.is_(None)))
            == 1
        )
        assert conn.scalar(sa.select(Claim.id).where(Claim.value.is_not(None))) == claim_id


# --- projects ---------------------------------------------------------------------------------


def test_create_and_get_project(store: Store) -> None:
    with store.session() as session:
        created = create_project(
            session,
            name="rte",
            schema={"type": "classification", "labels": ["0", "1"]},
            description="entailment",
        )
        assert created.id is not None
    with store.session() as session:
        got = get_project(session, name="rte")
        assert got.id == created.id
        assert got.description == "entailment"
        assert got.created_at is not None
        assert got.task_schema["type"] == "classification"
        schema = project_schema(got)
        assert schema.classes() == ["0", "1"]
        assert project_counts(session, project_id=got.id) == {
            "items": 0,
            "claims": 0,
            "human_claims": 0,
            "labeled_items": 0,
            "sources": 0,
            "gold": 0,
            "imports": 0,
        }


def test_create_project_from_schema_object(store: Store) -> None:
    with store.session() as session:
        create_project(session, name="stars", schema=RatingSchema(min=0, max=3))
    with store.session() as session:
        assert project_schema(get_project(session, name="stars")) == RatingSchema(min=0, max=3)


def test_project_not_found_lists_known_projects(store: Store) -> None:
    with store.session() as session:
        with pytest.raises(NotFound) as info:
            get_project(session, name="nope")
        assert "'nope'" in str(info.value)
        assert "veritag init" in str(info.value)
        create_project(session, name="alpha", schema={"type": "rating"})
        create_project(session, name="beta", schema={"type": "rating"})
        with pytest.raises(NotFound) as info:
            get_project(session, name="nope")
        assert "alpha, beta" in str(info.value)
        assert info.value.status == 404


def test_project_already_exists(store: Store) -> None:
    with store.session() as session:
        create_project(session, name="dup", schema={"type": "rating"})
    with pytest.raises(AlreadyExists) as info:
        with store.session() as session:
            create_project(session, name="dup", schema={"type": "pairwise"})
    assert "'dup'" in str(info.value)
    assert info.value.status == 409
    with store.session() as session:
        assert [p.name for p in list_projects(session)] == ["dup"]
        assert project_schema(get_project(session, name="dup")).type == "rating"


def test_project_needs_name_and_valid_schema(store: Store) -> None:
    with pytest.raises(VeritagError):
        with store.session() as session:
            create_project(session, name="  ", schema={"type": "rating"})
    with pytest.raises(SchemaError):
        with store.session() as session:
            create_project(
                session, name="bad", schema={"type": "classification", "labels": ["only"]}
            )
    with store.session() as session:
        assert list_projects(session) == []


def test_failed_session_rolls_back(store: Store) -> None:
    with pytest.raises(RuntimeError):
        with store.session() as session:
            create_project(session, name="ghost", schema={"type": "rating"})
            raise RuntimeError("boom")
    with store.session() as session:
        assert list_projects(session) == []


def test_unique_external_id_per_project(store: Store) -> None:
    with store.session() as session:
        a = create_project(session, name="a", schema={"type": "rating"})
        b = create_project(session, name="b", schema={"type": "rating"})
        session.add_all(
            [Item(project_id=a.id, external_id="x"), Item(project_id=b.id, external_id="x")]
        )
    with pytest.raises(IntegrityError):
        with store.session() as session:
            session.add(Item(project_id=a.id, external_id="x", text="again"))
    with store.engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(Item)) == 2


def test_source_ids_creates_missing_once(store: Store) -> None:
    with store.session() as session:
        project = create_project(session, name="p", schema={"type": "rating"})
    with store.engine.begin() as conn:
        first = source_ids(conn, project_id=project.id, kind="human", names={"w1", "w2"})
        again = source_ids(conn, project_id=project.id, kind="human", names={"w2", "w3"})
        model = source_ids(conn, project_id=project.id, kind="model", names={"w1"})
        assert source_ids(conn, project_id=project.id, kind="human", names=set()) == {}
    assert set(first) == {"w1", "w2"}
    assert again["w2"] == first["w2"]
    assert len({*first.values(), *again.values(), *model.values()}) == 4
    with store.engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(Source)) == 4


# --- users ------------------------------------------------------------------------------------


def test_create_user_hashes_with_argon2(store: Store) -> None:
    with store.session() as session:
        user = create_user(session, username="ada", password="correct horse", role="admin")
    with store.session() as session:
        stored = session.scalar(sa.select(User).where(User.username == "ada"))
        assert stored.id == user.id
        assert stored.role == "admin"
        assert stored.password_hash != "correct horse"
        assert "correct horse" not in stored.password_hash
        assert stored.password_hash.startswith("$argon2")
        assert verify_password(stored, "correct horse")
        assert not verify_password(stored, "correct horsE")
        assert not verify_password(stored, "")


def test_same_password_gets_different_hashes(store: Store) -> None:
    with store.session() as session:
        a = create_user(session, username="a", password="same password")
        b = create_user(session, username="b", password="same password")
        assert a.password_hash != b.password_hash
        assert a.role == "tutor"


def test_verify_password_with_broken_hash() -> None:
    assert not verify_password(
        User(username="x", password_hash="not-a-hash", role="tutor"), "whatever1"
    )


def test_create_user_refusals(store: Store) -> None:
    with store.session() as session:
        create_user(session, username="ada", password="long enough")
    with pytest.raises(AlreadyExists):
        with store.session() as session:
            create_user(session, username="ada", password="another one")
    with pytest.raises(VeritagError, match="8 characters"):
        with store.session() as session:
            create_user(session, username="bob", password="short")
    with pytest.raises(VeritagError, match="role 'boss'"):
        with store.session() as session:
            create_user(session, username="carl", password="long enough", role="boss")
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(User.username)).scalars().all() == ["ada"]


# --- SQLite specifics and opening errors ------------------------------------------------------


def test_sqlite_uses_wal_and_foreign_keys(sqlite_store: Store) -> None:
    with sqlite_store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar().lower() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000


def test_sqlite_file_is_wal_on_disk(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/x.db")
    store.close()
    # the WAL mode is persistent in the file itself: a plain connection sees it
    engine = sa.create_engine(f"sqlite:///{tmp_path}/x.db")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar().lower() == "wal"
    finally:
        engine.dispose()


def test_open_store_refuses_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        open_store(f"sqlite:///{tmp_path}/no/such/dir/x.db")
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("url", ["not a url://", "nosuchdb://host/db"])
def test_open_store_refuses_bad_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        open_store(url)


def test_open_store_unreachable_postgres() -> None:
    with pytest.raises(ConfigError, match="cannot open database"):
        open_store("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")


def test_project_rows_survive_reopen(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    store = open_store(url)
    with store.session() as session:
        create_project(session, name="p", schema={"type": "rating"})
    store.close()
    store = open_store(url)
    try:
        with store.session() as session:
            assert session.scalar(sa.select(Project.name)) == "p"
    finally:
        store.close()


# --- truth runs (migration 0002) --------------------------------------------------------------


def test_upgrade_from_0001_keeps_data_and_downgrade_removes_runs(db_url: str) -> None:
    store = open_store(db_url, migrate=False)
    try:
        with store.engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "0001")
        assert "truth_runs" not in sa.inspect(store.engine).get_table_names()
        claim_id = _one_claim(store)
        store.migrate()
        assert {"truth_runs", "posterior_blocks", "source_reliability"} <= set(
            sa.inspect(store.engine).get_table_names()
        )
        with store.engine.connect() as conn:
            assert conn.scalar(sa.select(Claim.id)) == claim_id
        with store.engine.begin() as conn:
            command.downgrade(_alembic_config(conn), "0001")
        assert "truth_runs" not in set(sa.inspect(store.engine).get_table_names())
        with (
            pytest.raises(DBAPIError),
            store.engine.begin() as conn,
        ):  # the claims trigger of 0001 stays
            conn.execute(sa.text("DELETE FROM claims"))
        store.migrate()
        assert store.is_current()
    finally:
        store.close()


def test_truth_run_queries(store: Store) -> None:
    claim_id = _one_claim(store)
    with store.engine.connect() as conn:
        project_id, item_id, source_id = conn.execute(
            sa.select(Claim.project_id, Claim.item_id, Claim.source_id)
        ).one()
        assert claims_watermark(conn, project_id=project_id) == (claim_id, 0, 0, 0)
        assert latest_truth_run(conn, project_id=project_id) is None

    def add_run(method: str) -> int:
        with store.engine.begin() as conn:
            mark = claims_watermark(conn, project_id=project_id)
            return insert_truth_run(
                conn,
                run={
                    "project_id": project_id,
                    "method": method,
                    "engine_version": "test/1",
                    "params": {"bins": 5},
                    "max_claim_id": mark.max_claim_id,
                    "gold_count": mark.gold_count,
                    "n_items": 1,
                    "log_likelihood": None,
                    "n_iter": 0,
                    "converged": True,
                },
                posteriors=run_table(
                    np.array([item_id]),
                    ['"a"'],
                    np.array([0.75]),
                    np.array([1]),
                    np.array([1]),
                    np.array([0], np.int8),
                    np.array([[0.75, 0.25]]),
                ),
                sources=[
                    {
                        "source_id": source_id,
                        "accuracy": None,
                        "n_claims": 1,
                        "confusion": "[[1,0],[0,1]]",
                    }
                ],
            )

    first, second = add_run("mv"), add_run("ds")
    with store.engine.connect() as conn:
        assert latest_truth_run(conn, project_id=project_id).id == second
        run = latest_truth_run(conn, project_id=project_id, method="mv")
        assert (run.id, run.params, run.converged, run.log_likelihood) == (
            first,
            {"bins": 5},
            True,
            None,
        )
        assert run_is_current(conn, run)
        (table,) = BlockReader(first).tables(conn)
        assert labels_of(table).tolist() == ["a"]
        assert probs_of(table).tolist() == [[0.75, 0.25]]
        assert conn.execute(
            sa.select(SourceReliability.accuracy, SourceReliability.confusion)
        ).first() == (None, [[1, 0], [0, 1]])
        assert conn.scalar(sa.select(sa.func.count()).select_from(TruthRun)) == 2
    with store.session() as session:
        session.add(Gold(project_id=project_id, item_id=item_id, value="a"))
    with store.engine.connect() as conn:
        assert not run_is_current(conn, latest_truth_run(conn, project_id=project_id))


# --- automation runs and embeddings (migration 0003) ------------------------------------------


def test_upgrade_from_0002_and_downgrade_remove_automation_tables(db_url: str) -> None:
    store = open_store(db_url, migrate=False)
    try:
        with store.engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "0002")
        assert "automation_runs" not in sa.inspect(store.engine).get_table_names()
        store.migrate()
        assert {"automation_runs", "automation_items", "embeddings"} <= set(
            sa.inspect(store.engine).get_table_names()
        )
        with store.engine.begin() as conn:
            command.downgrade(_alembic_config(conn), "0002")
        assert not {"automation_runs", "automation_items", "embeddings"} & set(
            sa.inspect(store.engine).get_table_names()
        )
        assert "truth_runs" in sa.inspect(store.engine).get_table_names()
        store.migrate()
        assert store.is_current()
    finally:
        store.close()


def test_upgrade_to_0015_moves_runs_into_blocks_and_downgrade_moves_them_back(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs stored one row per item before 0015 read back the same from blocks (one item a
    block here, so a run spans several), and back."""
    monkeypatch.setattr(posterior_blocks, "BLOCK_ITEMS", 1)
    store = open_store(db_url, migrate=False)
    json_type = sa.JSON(none_as_null=True)
    posteriors = sa.table(
        "posteriors",
        *(sa.column(c) for c in ("run_id", "item_id", "confidence", "n_claims", "n_labels")),
        sa.column("basis"),
        sa.column("label", json_type),
        sa.column("probs", json_type),
    )
    try:
        with store.engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "0014")
        _one_claim(store)
        with store.session() as session:
            project_id = session.scalar(sa.select(Project.id))
            session.add(Item(project_id=project_id, external_id="i2", text="bye"))
        with store.engine.begin() as conn:
            items = conn.scalars(sa.select(Item.id).order_by(Item.id)).all()
            run_id = conn.execute(
                sa.text(
                    "INSERT INTO truth_runs (project_id, method, engine_version, params, "
                    "max_claim_id, gold_count, n_items, n_iter, converged) VALUES "
                    "(:p, 'ds', 'test/1', '{}', 1, 0, 2, 3, true) RETURNING id"
                ),
                {"p": project_id},
            ).scalar_one()
            rows = [
                dict(run_id=run_id, item_id=items[0], label="a", confidence=0.75,
                     probs=[0.75, 0.25], n_claims=1, n_labels=1, basis="claims"),
                dict(run_id=run_id, item_id=items[1], label="b", confidence=0.5,
                     probs=[0.5, 0.5], n_claims=0, n_labels=0, basis="model"),
            ]  # fmt: skip
            conn.execute(posteriors.insert(), rows)
        store.migrate()
        assert "posteriors" not in sa.inspect(store.engine).get_table_names()
        with store.engine.connect() as conn:
            assert conn.scalars(
                sa.select(PosteriorBlock.block).order_by(PosteriorBlock.block)
            ).all() == [0, 1]
        with store.engine.connect() as conn:
            got = load_resolution(
                conn, latest_truth_run(conn, project_id=project_id), with_probs=True
            )
        assert got.item_ids.tolist() == list(items) and got.labels.tolist() == ["a", "b"]
        assert got.probs.tolist() == [[0.75, 0.25], [0.5, 0.5]]
        assert got.n_claims.tolist() == [1, 0] and got.basis.tolist() == [0, 1]
        with store.engine.begin() as conn:
            command.downgrade(_alembic_config(conn), "0014")
        with store.engine.connect() as conn:
            back = (
                conn.execute(sa.select(*posteriors.c).order_by(posteriors.c.item_id))
                .mappings()
                .all()
            )
        assert [dict(r) for r in back] == rows
        store.migrate()
        assert store.is_current()
    finally:
        store.close()


def test_embedding_cache_round_trip(store: Store) -> None:
    from veritag.store.embeddings import StoreEmbeddingCache

    cache = StoreEmbeddingCache(store)
    rng = np.random.default_rng(0)
    vectors = {f"{i:064x}": rng.normal(size=384).astype(np.float32) for i in range(7)}
    assert cache.get("m/1", list(vectors)) == {}
    cache.put("m/1", vectors)
    cache.put(
        "m/1", {k: v + 1 for k, v in list(vectors.items())[:2]}
    )  # a known key keeps its first vector
    got = cache.get("m/1", [*vectors, "f" * 64])
    assert set(got) == set(vectors)
    for key, vec in vectors.items():
        np.testing.assert_array_equal(got[key], vec)
        assert got[key].dtype == np.float32
    assert cache.get("m/2", list(vectors)) == {}  # another model version shares nothing
