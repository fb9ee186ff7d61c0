"""Importing items, labels, gold and model probabilities: the happy paths, on both backends."""

from __future__ import annotations

import csv
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from vt_helpers import LABELS, TEXTS, counts, make_project, read_csv, write_csv, write_jsonl

from veritag.io import ColumnMap, ImportResult, import_file
from veritag.store import Claim, Gold, ImportRecord, Item, Source, Store


def items_by_id(store: Store, project) -> dict[str, Item]:
    with store.session() as session:
        return {
            i.external_id: i
            for i in session.scalars(sa.select(Item).where(Item.project_id == project.id))
        }


def claim_rows(store: Store, project) -> list[tuple[str, str, str, object, object]]:
    """(item external id, source kind, source name, value, probs) for every claim."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(Item.external_id, Source.kind, Source.name, Claim.value, Claim.probs)
            .join(Item, Item.id == Claim.item_id)
            .join(Source, Source.id == Claim.source_id)
            .where(Claim.project_id == project.id)
            .order_by(Claim.id)
        ).all()
    return [tuple(r) for r in rows]


def gold_by_item(store: Store, project) -> dict[str, object]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(Item.external_id, Gold.value)
            .join(Item, Item.id == Gold.item_id)
            .where(Gold.project_id == project.id)
        ).all()
    return dict(rows)


# --- the bundled sample -----------------------------------------------------------------------


def test_import_sample_texts_then_labels(store: Store) -> None:
    project = make_project(store)
    texts = import_file(store, project, TEXTS, ColumnMap(meta=["rte_subtask"]))
    assert isinstance(texts, ImportResult)
    assert (texts.rows, texts.items_added, texts.claims_added, texts.gold_added) == (800, 800, 0, 0)
    assert texts.imported_before is None
    assert not texts.added_nothing
    assert texts.rows_skipped == 0 and texts.report is None

    labels = import_file(store, project, LABELS)
    assert (labels.rows, labels.items_added, labels.claims_added) == (8000, 0, 8000)

    c = counts(store, project)
    assert c["items"] == 800
    assert c["claims"] == c["human_claims"] == 8000
    assert c["labeled_items"] == 800
    assert c["sources"] == 164
    assert c["imports"] == 2
    with store.engine.connect() as conn:
        kinds = conn.execute(sa.select(Source.kind, sa.func.count()).group_by(Source.kind)).all()
    assert dict(kinds) == {"human": 164}

    first = next(r for r in read_csv(TEXTS))
    item = items_by_id(store, project)[first["task"]]
    assert item.text == first["text"]
    assert item.data == {"hypothesis": first["hypothesis"]}
    assert item.meta == {"rte_subtask": first["rte_subtask"]}

    # every (task, worker, label) of the file is a claim, in canonical form
    expected = {(r["task"], r["worker"], r["label"]) for r in read_csv(LABELS)}
    got = {(task, worker, value) for task, kind, worker, value, probs in claim_rows(store, project)}
    assert got == expected
    assert all(probs is None for *_, probs in claim_rows(store, project)[:50])


def test_reimport_adds_nothing(store: Store) -> None:
    project = make_project(store)
    import_file(store, project, TEXTS, ColumnMap(meta=["rte_subtask"]))
    import_file(store, project, LABELS)
    before = counts(store, project)

    again = import_file(store, project, LABELS)
    assert again.rows == 8000
    assert (again.items_added, again.claims_added, again.gold_added) == (0, 0, 0)
    assert again.added_nothing
    assert again.imported_before is not None
    texts_again = import_file(store, project, TEXTS, ColumnMap(meta=["rte_subtask"]))
    assert texts_again.added_nothing and texts_again.imported_before is not None

    after = counts(store, project)
    assert after == {**before, "imports": before["imports"] + 2}


def test_same_rows_in_another_file_are_not_added_twice(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    import_file(store, project, LABELS)
    rows = read_csv(LABELS)[:500]
    copy = write_csv(
        tmp_path / "subset.csv",
        ["task", "worker", "label"],
        [(r["task"], r["worker"], r["label"]) for r in reversed(rows)],
    )
    result = import_file(store, project, copy)
    assert result.added_nothing
    assert result.imported_before is None  # a different file, never imported before
    assert counts(store, project)["claims"] == 8000


def test_labels_before_texts_fills_item_text(store: Store) -> None:
    project = make_project(store)
    labels = import_file(store, project, LABELS)
    assert labels.items_added == 800
    assert all(
        i.text is None and i.data is None and i.meta is None
        for i in items_by_id(store, project).values()
    )

    texts = import_file(store, project, TEXTS, ColumnMap(meta=["rte_subtask"]))
    assert texts.items_added == 0
    items = items_by_id(store, project)
    assert len(items) == 800
    for row in read_csv(TEXTS):
        item = items[row["task"]]
        assert item.text == row["text"]
        assert item.data == {"hypothesis": row["hypothesis"]}
        assert item.meta == {"rte_subtask": row["rte_subtask"]}
    assert counts(store, project)["claims"] == 8000


def test_filling_item_text_is_not_nothing(sqlite_store: Store) -> None:
    project = make_project(sqlite_store)
    import_file(sqlite_store, project, LABELS)
    texts = import_file(sqlite_store, project, TEXTS, ColumnMap(meta=["rte_subtask"]))
    assert not texts.added_nothing


def test_items_with_text_are_not_overwritten(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    import_file(store, project, write_csv(tmp_path / "a.csv", ["id", "text"], [("1", "first")]))
    import_file(
        store,
        project,
        write_csv(tmp_path / "b.csv", ["id", "text"], [("1", "second"), ("2", "new")]),
    )
    items = items_by_id(store, project)
    assert items["1"].text == "first"
    assert items["2"].text == "new"


def test_small_batches_give_the_same_result(store: Store) -> None:
    project = make_project(store)
    import_file(store, project, TEXTS, ColumnMap(meta=["rte_subtask"]), batch_rows=64)
    result = import_file(store, project, LABELS, batch_rows=997)
    assert result.claims_added == 8000
    c = counts(store, project)
    assert (c["items"], c["claims"], c["sources"]) == (800, 8000, 164)


def test_progress_reaches_the_end(sqlite_store: Store) -> None:
    project = make_project(sqlite_store)
    calls: list[tuple[int, int]] = []
    import_file(
        sqlite_store,
        project,
        LABELS,
        batch_rows=1000,
        progress=lambda done, total: calls.append((done, total)),
    )
    total = LABELS.stat().st_size
    assert calls[-1] == (total, total)
    assert len(calls) >= 8
    assert all(t == total for _, t in calls)
    done = [d for d, _ in calls]
    assert done == sorted(done)


def test_import_record_is_kept(store: Store) -> None:
    project = make_project(store)
    import_file(store, project, LABELS)
    with store.session() as session:
        record = session.scalar(sa.select(ImportRecord))
        assert record.project_id == project.id
        assert record.path == str(LABELS)
        assert len(record.sha256) == 64
        assert (
            record.rows,
            record.items_added,
            record.claims_added,
            record.gold_added,
            record.rows_skipped,
        ) == (8000, 800, 8000, 0, 0)


# --- other formats ----------------------------------------------------------------------------


def test_jsonl_items_and_labels(store: Store, tmp_path: Path) -> None:
    project = make_project(store, schema={"type": "multilabel", "labels": ["toxic", "spam", "ok"]})
    items = write_jsonl(
        tmp_path / "items.jsonl",
        [
            {"id": 1, "text": "buy now", "lang": "en", "extra": {"nested": [1, 2]}},
            {"id": "2", "text": "hallo", "lang": "de", "extra": None},
        ],
    )
    result = import_file(store, project, items, ColumnMap(meta=["lang"]))
    assert (result.rows, result.items_added) == (2, 2)
    got = items_by_id(store, project)
    assert got["1"].text == "buy now"
    assert got["1"].data == {"extra": {"nested": [1, 2]}}
    assert got["1"].meta == {"lang": "en"}
    assert got["2"].meta == {"lang": "de"}

    labels = write_jsonl(
        tmp_path / "labels.jsonl",
        [
            {"task": 1, "worker": "w1", "label": ["spam", "toxic"]},
            {"task": 1, "worker": "w2", "label": "spam"},
            {"task": 2, "worker": "w1", "label": []},
        ],
    )
    assert import_file(store, project, labels).claims_added == 3
    values = {(item, worker): value for item, _, worker, value, _ in claim_rows(store, project)}
    assert values == {("1", "w1"): ["toxic", "spam"], ("1", "w2"): ["spam"], ("2", "w1"): []}


def test_ndjson_suffix_and_explicit_format(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    nd = write_jsonl(tmp_path / "x.ndjson", [{"id": "a", "text": "t"}])
    assert import_file(store, project, nd).items_added == 1
    odd = write_jsonl(tmp_path / "x.data", [{"id": "b", "text": "t"}])
    assert import_file(store, project, odd, fmt="jsonl").items_added == 1
    tsv = tmp_path / "x.tsv"
    tsv.write_text("id\ttext\nc\thas, a comma\n", encoding="utf-8")
    assert import_file(store, project, tsv).items_added == 1
    assert items_by_id(store, project)["c"].text == "has, a comma"


def test_parquet_items_and_labels(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    table = pa.table(
        {
            "id": pa.array([10, 11, 12], pa.int64()),
            "text": ["a", "b", "c"],
            "score": pa.array([0.5, None, 1.5]),
            "domain": ["x", "y", "x"],
        }
    )
    pq.write_table(table, tmp_path / "items.parquet")
    result = import_file(store, project, tmp_path / "items.parquet", ColumnMap(meta=["domain"]))
    assert (result.rows, result.items_added) == (3, 3)
    items = items_by_id(store, project)
    assert items["10"].data == {"score": 0.5}
    assert items["11"].data == {"score": None}
    assert items["12"].meta == {"domain": "x"}

    labels = pa.table(
        {
            "task": [10, 10, 12],
            "worker": ["w1", "w2", "w1"],
            "label": pa.array([1, 0, 1], pa.int64()),
        }
    )
    pq.write_table(labels, tmp_path / "labels.pq")
    assert import_file(store, project, tmp_path / "labels.pq").claims_added == 3
    assert sorted((i, w, v) for i, _, w, v, _ in claim_rows(store, project)) == [
        ("10", "w1", "1"),
        ("10", "w2", "0"),
        ("12", "w1", "1"),
    ]


def test_metadata_columns(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    path = write_csv(
        tmp_path / "items.csv",
        ["id", "text", "domain", "split", "notes"],
        [("1", "t1", "news", "train", "n1"), ("2", "t2", "web", "test", "")],
    )
    import_file(store, project, path, ColumnMap(meta=["domain", "split"]))
    items = items_by_id(store, project)
    assert items["1"].meta == {"domain": "news", "split": "train"}
    assert items["1"].data == {"notes": "n1"}
    assert items["2"].meta == {"domain": "web", "split": "test"}


def test_explicit_fields_and_columns(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    path = write_csv(tmp_path / "items.csv", ["key", "body", "a", "b"], [("k1", "hello", "x", "y")])
    import_file(store, project, path, ColumnMap(id="key", text="body", fields=["b"]))
    item = items_by_id(store, project)["k1"]
    assert (item.text, item.data) == ("hello", {"b": "y"})


def test_source_names_one_annotator(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    path = write_csv(
        tmp_path / "mine.csv", ["id", "text", "label"], [("1", "t", "0"), ("2", "u", "1")]
    )
    result = import_file(store, project, path, ColumnMap(source="alice"))
    assert (result.items_added, result.claims_added) == (2, 2)
    assert sorted((i, k, w, v) for i, k, w, v, _ in claim_rows(store, project)) == [
        ("1", "human", "alice", "0"),
        ("2", "human", "alice", "1"),
    ]
    assert items_by_id(store, project)["1"].text == "t"


def test_custom_label_and_worker_columns(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    path = write_csv(
        tmp_path / "l.csv", ["item", "annotator", "answer"], [("1", "w", "1"), ("2", "w", "0")]
    )
    result = import_file(
        store, project, path, ColumnMap(id="item", worker="annotator", label="answer")
    )
    assert result.claims_added == 2


# --- gold and model probabilities -------------------------------------------------------------


def test_gold_column(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    path = write_csv(
        tmp_path / "items.csv",
        ["id", "text", "gold"],
        [("1", "a", "1"), ("2", "b", ""), ("3", "c", 0)],
    )
    result = import_file(store, project, path, ColumnMap(gold="gold"))
    assert (result.items_added, result.gold_added, result.claims_added) == (3, 2, 0)
    assert gold_by_item(store, project) == {"1": "1", "3": "0"}
    assert items_by_id(store, project)["1"].data is None  # the gold column is not an item field
    again = import_file(store, project, path, ColumnMap(gold="gold"))
    assert again.added_nothing
    assert counts(store, project)["gold"] == 2


def test_gold_only_file(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    import_file(store, project, TEXTS, ColumnMap(meta=["rte_subtask"]))
    gold = tmp_path / "gt.csv"
    gold.write_text(
        "task,label\n"
        + "".join(f"{r['task']},{r['label']}\n" for r in read_csv(TEXTS.with_name("gt.csv")))
    )
    result = import_file(store, project, gold, ColumnMap(gold="label"))
    assert result.gold_added == 800
    assert result.items_added == 0
    # the items keep their text
    assert all(i.text for i in items_by_id(store, project).values())


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("[0.2, 0.8]", [0.2, 0.8]),
        ('{"1": 0.9, "0": 0.1}', [0.1, 0.9]),
        ('{"0": 1}', [1.0, 0.0]),
    ],
)
def test_model_probs_column(store: Store, tmp_path: Path, cell: str, expected: list[float]) -> None:
    project = make_project(store)
    path = write_csv(tmp_path / "preds.csv", ["id", "text", "p"], [("1", "t", cell)])
    result = import_file(store, project, path, ColumnMap(probs="p", model="gpt-judge"))
    assert (result.items_added, result.claims_added) == (1, 1)
    rows = claim_rows(store, project)
    assert len(rows) == 1
    item, kind, name, value, probs = rows[0]
    assert (item, kind, name, value) == ("1", "model", "gpt-judge", None)
    assert probs == pytest.approx(expected)
    assert counts(store, project)["human_claims"] == 0
    assert items_by_id(store, project)["1"].data is None
    assert import_file(store, project, path, ColumnMap(probs="p", model="gpt-judge")).added_nothing


def test_model_probs_in_jsonl_and_default_model_name(store: Store, tmp_path: Path) -> None:
    project = make_project(store, schema={"type": "rating", "min": 1, "max": 3})
    path = write_jsonl(
        tmp_path / "preds.jsonl",
        [
            {"id": "a", "probs": [0.1, 0.2, 0.7]},
            {"id": "b", "probs": {"2": 1.0}},
        ],
    )
    import_file(store, project, path, ColumnMap(probs="probs"))
    rows = {item: (kind, name, probs) for item, kind, name, _, probs in claim_rows(store, project)}
    assert rows["a"][:2] == ("model", "model")
    assert rows["a"][2] == pytest.approx([0.1, 0.2, 0.7])
    assert rows["b"][2] == pytest.approx([0.0, 1.0, 0.0])


def test_labels_gold_and_probs_in_one_file(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    path = write_csv(
        tmp_path / "all.csv",
        ["task", "worker", "label", "truth", "p"],
        [
            ("1", "w1", "1", "1", "[0.3, 0.7]"),
            ("1", "w2", "0", "1", "[0.3, 0.7]"),
        ],
    )
    result = import_file(store, project, path, ColumnMap(gold="truth", probs="p"))
    assert (result.items_added, result.claims_added, result.gold_added) == (1, 3, 1)
    kinds = sorted(kind for _, kind, *_ in claim_rows(store, project))
    assert kinds == ["human", "human", "model"]


# --- skip invalid -----------------------------------------------------------------------------


def test_skip_invalid_writes_good_rows_and_a_report(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    path = tmp_path / "mixed.csv"
    path.write_text(
        "task,worker,label\n"
        "1,w1,1\n"
        "1,w2,maybe\n"  # line 3: not a label
        "2,w1,0\n"
        "3,,1\n"  # line 5: no worker
        "4,w1\n"  # line 6: wrong number of columns
        "5,w3,0\n",
        encoding="utf-8",
    )
    report = tmp_path / "bad.csv"
    result = import_file(store, project, path, skip_invalid=True, report=report)
    assert result.rows == 6
    assert result.rows_skipped == 3
    assert result.report == report
    assert result.claims_added == 3
    assert sorted((i, w, v) for i, _, w, v, _ in claim_rows(store, project)) == [
        ("1", "w1", "1"),
        ("2", "w1", "0"),
        ("5", "w3", "0"),
    ]

    with report.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["file", "line", "field", "error"]
    by_line = {int(r[1]): r for r in rows[1:]}
    assert sorted(by_line) == [3, 5, 6]
    assert all(r[0] == str(path) for r in rows[1:])
    assert by_line[3][2] == "label" and "maybe" in by_line[3][3] and "['0', '1']" in by_line[3][3]
    assert by_line[5][2] == "worker"
    assert "columns" in by_line[6][3]
    with store.session() as session:
        record = session.scalar(sa.select(ImportRecord))
        assert record.rows_skipped == 3


def test_skip_invalid_without_bad_rows_writes_no_report(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    report = tmp_path / "bad.csv"
    result = import_file(store, project, LABELS, skip_invalid=True, report=report)
    assert result.rows_skipped == 0
    assert result.report is None
    assert not report.exists()


# --- memory -----------------------------------------------------------------------------------


def test_streamed_import_keeps_memory_bounded(sqlite_store: Store, tmp_path: Path) -> None:
    psutil = pytest.importorskip("psutil")
    n_rows, n_items = 200_000, 20_000
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write("task,worker,label\n")
        for i in range(n_rows):
            fh.write(f"item-{i % n_items:06d},worker-{(i * 7919) % 997:04d},{(i * 31) % 2}\n")
    project = make_project(sqlite_store)
    process = psutil.Process()
    start_rss = process.memory_info().rss
    peak = [start_rss]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            stop.wait(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    try:
        result = import_file(sqlite_store, project, path, batch_rows=5000)
    finally:
        stop.set()
        sampler.join()
    elapsed = time.monotonic() - started
    if elapsed > 20:
        pytest.skip(f"import of {n_rows} rows took {elapsed:.0f}s; too slow to judge memory here")
    assert result.claims_added == n_rows
    growth = peak[0] - start_rss
    # Streamed in batches of 5000 this grows ~10 MiB; holding all 200k parsed rows at once
    # (one batch) grows it by ~160 MiB.
    assert growth < 60 * 2**20, (
        f"RSS grew by {growth / 2**20:.0f} MiB while importing {n_rows} rows"
    )
