"""A run's answers in compressed Arrow blocks: round trips, range reads, and what is refused."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from veritag.store import posterior_blocks as pb
from veritag.store.models import PosteriorBlock, TruthRun
from veritag.store.posterior_blocks import (
    BlockReader,
    decode_block,
    encode_block,
    insert_blocks,
    labels_of,
    probs_of,
    run_table,
)
from veritag.store.queries import create_project

LABELS = st.sampled_from(["a", "b", ["a", "b"], {"k": 1}, "é ü", ""])


@st.composite
def runs(draw: st.DrawFn) -> dict:
    n = draw(st.integers(0, 40))
    k = draw(st.integers(1, 4))
    ids = np.array(sorted(draw(st.sets(st.integers(1, 10_000), min_size=n, max_size=n))))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return {
        "item_id": ids.astype(np.int64),
        "label": [draw(LABELS) for _ in range(n)],
        "confidence": rng.random(n),
        "n_claims": rng.integers(0, 50, n),
        "n_labels": rng.integers(0, 50, n),
        "basis": rng.integers(0, 3, n).astype(np.int8),
        "probs": rng.dirichlet(np.ones(k), n) if draw(st.booleans()) else None,
    }


def _table(run: dict) -> pa.Table:
    return run_table(**{**run, "label": [json.dumps(v) for v in run["label"]]})


@given(runs())
@settings(max_examples=60, deadline=None)
def test_a_block_gives_back_exactly_what_was_stored(run: dict) -> None:
    table = decode_block(encode_block(_table(run)))
    assert table.column("item_id").to_numpy().tolist() == run["item_id"].tolist()
    assert labels_of(table).tolist() == run["label"]
    np.testing.assert_array_equal(table.column("confidence").to_numpy(), run["confidence"])
    assert table.column("n_claims").to_numpy().tolist() == run["n_claims"].tolist()
    assert table.column("basis").to_numpy().tolist() == run["basis"].tolist()
    if run["probs"] is None:
        assert probs_of(table) is None
    else:  # float64 exactly, not rounded
        np.testing.assert_array_equal(probs_of(table), run["probs"])


def test_rows_are_sorted_by_item_whatever_order_they_come_in() -> None:
    table = run_table(
        np.array([5, 2, 9]),
        ['"x"', '"y"', '"z"'],
        np.array([0.5, 0.6, 0.7]),
        np.array([1, 2, 3]),
        np.array([1, 2, 3]),
        np.array([0, 1, 2], np.int8),
    )
    assert table.column("item_id").to_pylist() == [2, 5, 9]
    assert labels_of(table).tolist() == ["y", "x", "z"]
    assert table.column("confidence").to_pylist() == [0.6, 0.5, 0.7]


def test_bytes_of_another_format_are_refused() -> None:
    sink = pa.BufferOutputStream()
    plain = pa.table({"item_id": [1]})
    with pa.ipc.new_stream(sink, plain.schema) as writer:
        writer.write_table(plain)
    with pytest.raises(ValueError, match="not a veritag posterior block"):
        decode_block(sink.getvalue().to_pybytes())


def test_a_classification_run_compresses_well_below_its_raw_size() -> None:
    """Dictionary-encoded labels and zstd: far below the 8 + 8 + 4 + 4 + 1 bytes an item
    that the fixed-width columns without probabilities take raw."""
    n = 50_000
    rng = np.random.default_rng(0)
    labels = ['"spam"', '"ham"']
    table = run_table(
        np.arange(1, n + 1),
        [labels[i] for i in rng.integers(0, 2, n)],
        np.round(rng.random(n), 2),
        np.full(n, 3),
        np.full(n, 3),
        np.zeros(n, np.int8),
    )
    assert len(encode_block(table)) < 10 * n


POOL = 60  # items of the project the range test's runs are drawn from


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory):
    """A SQLite store with one project of ``POOL`` items (their ids, ascending)."""
    from veritag.store import Item, open_store

    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('blocks')}/v.db")
    with store.session() as session:
        project = create_project(
            session, name="p", schema={"type": "classification", "labels": ["a", "b"]}
        )
        session.flush()
        session.add_all(
            Item(project_id=project.id, external_id=str(i), text="t") for i in range(POOL)
        )
    with store.engine.connect() as conn:
        ids = np.array(conn.scalars(sa.select(Item.id).order_by(Item.id)).all())
        project_id = conn.scalar(sa.select(Item.project_id).limit(1))
    yield store, project_id, ids
    store.close()


@given(
    runs(),
    st.integers(1, 7),
    st.integers(0, POOL + 1),
    st.integers(0, POOL + 1),
)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_range_reads_equal_slicing_the_whole_run(
    pool, monkeypatch: pytest.MonkeyPatch, run: dict, block_items: int, a: int, b: int
) -> None:
    """Whatever the block size, reading ``[first, last]`` gives exactly the run's items in that
    range, in order, and a reader kept across calls gives the same as a fresh one."""
    store, project_id, item_ids = pool
    ids = item_ids[np.unique(run["item_id"] % POOL)]
    run = {key: (value[: ids.size] if value is not None else None) for key, value in run.items()}
    run["item_id"] = ids
    bounds = np.concatenate([[0], item_ids, [item_ids[-1] + 1]])
    first, last = int(bounds[min(a, b)]), int(bounds[max(a, b)])
    with store.session() as session:
        run_row = TruthRun(
            project_id=project_id,
            method="mv",
            engine_version="t/1",
            params={},
            max_claim_id=0,
            gold_count=0,
            n_items=ids.size,
            n_iter=0,
            converged=True,
        )
        session.add(run_row)
        session.flush()
        run_id = run_row.id
    monkeypatch.setattr(pb, "BLOCK_ITEMS", block_items)
    with store.engine.begin() as conn:
        count = insert_blocks(conn, run_id, _table(run))
    assert count == -(-ids.size // block_items)
    want = (ids >= first) & (ids <= last)
    kept = BlockReader(run_id)
    with store.engine.connect() as conn:
        for reader in (kept, kept, BlockReader(run_id)):
            tables = list(reader.tables(conn, first, last))
            got = np.concatenate([t.column("item_id").to_numpy() for t in tables] or [[]])
            assert got.tolist() == ids[want].tolist()
            labels = [v for t in tables for v in labels_of(t).tolist()]
            assert labels == [v for v, w in zip(run["label"], want, strict=True) if w]
        whole = list(BlockReader(run_id).tables(conn))
        assert sum(t.num_rows for t in whole) == ids.size
        n_rows = conn.scalar(sa.select(sa.func.count()).where(PosteriorBlock.run_id == run_id))
    assert n_rows == count
