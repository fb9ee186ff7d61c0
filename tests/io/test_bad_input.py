"""Bad input files: every refusal names file, line and field, and nothing is written."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from vt_helpers import counts, make_project, read_csv, write_csv, write_jsonl

from veritag.errors import InputError, RowError, RowErrors, VeritagError
from veritag.io import ColumnMap, import_file
from veritag.store import Gold, ImportRecord, Item, Store


def refused_rows(
    store: Store, project, path: Path, columns: ColumnMap | None = None, **kw
) -> RowErrors:
    before = counts(store, project)
    with pytest.raises(RowErrors) as info:
        import_file(store, project, path, columns, **kw)
    assert counts(store, project) == before, "a refused file must write nothing"
    err = info.value
    assert "nothing was written" in str(err)
    assert err.total >= 1 and err.errors
    return err


def refused_input(
    store: Store, project, path: Path, columns: ColumnMap | None = None, **kw
) -> InputError:
    before = counts(store, project)
    with pytest.raises(InputError) as info:
        import_file(store, project, path, columns, **kw)
    assert counts(store, project) == before
    return info.value


# --- malformed files --------------------------------------------------------------------------


def test_truncated_jsonl(store: Store, rte, tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl"
    good = "".join(
        json.dumps({"task": "754", "worker": f"new{i}", "label": "1"}) + "\n" for i in range(3)
    )
    path.write_text(good + '{"task": "754", "worker": "new9", "lab', encoding="utf-8")
    err = refused_rows(store, rte, path)
    assert err.total == 1
    row = err.errors[0]
    assert isinstance(row, RowError)
    assert (row.file, row.line) == (str(path), 4)
    assert "not valid JSON" in row.message
    assert "truncated" in row.message
    assert f"{path}:4:" in str(err)


def test_truncated_jsonl_skip_invalid_keeps_the_complete_lines(
    store: Store, tmp_path: Path
) -> None:
    project = make_project(store)
    path = tmp_path / "cut.jsonl"
    path.write_text('{"id": "a", "text": "x"}\n{"id": "b", "te', encoding="utf-8")
    result = import_file(store, project, path, skip_invalid=True, report=tmp_path / "r.csv")
    assert (result.items_added, result.rows_skipped) == (1, 1)
    assert "2" in (tmp_path / "r.csv").read_text(encoding="utf-8").splitlines()[1].split(",")


def test_jsonl_line_that_is_not_an_object(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    path = tmp_path / "x.jsonl"
    path.write_text('{"id": "a", "text": "x"}\n\n[1, 2]\n"text"\n', encoding="utf-8")
    err = refused_rows(store, project, path)
    assert [(e.line, "JSON object" in e.message) for e in err.errors] == [(3, True), (4, True)]


def test_csv_row_with_wrong_width(store: Store, rte, tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_text("task,worker,label\n754,a,1\n754,b,1,extra\n", encoding="utf-8")
    err = refused_rows(store, rte, path)
    assert err.errors[0].line == 3
    assert "expected 3 columns, found 4" in str(err)


@pytest.mark.parametrize("content", ["", "\n", " , \n"])
def test_empty_csv(store: Store, tmp_path: Path, content: str) -> None:
    project = make_project(store)
    path = tmp_path / "empty.csv"
    path.write_text(content, encoding="utf-8")
    assert "empty file or missing header" in str(refused_input(store, project, path))


def test_header_only(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    path = write_csv(tmp_path / "h.csv", ["id", "text"], [])
    assert "no rows" in str(refused_input(store, project, path))


def test_duplicate_column_names(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    path = write_csv(tmp_path / "d.csv", ["id", "text", "text"], [("1", "a", "b")])
    err = refused_input(store, project, path)
    assert f"{path}:1" in str(err)
    assert "['text']" in str(err)


# --- columns ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("columns", "named"),
    [
        (ColumnMap(gold="truth"), "'truth'"),
        (ColumnMap(meta=["domain"]), "'domain'"),
        (ColumnMap(id="key"), "'key'"),
        (ColumnMap(probs="scores"), "'scores'"),
        (ColumnMap(text="body"), "'body'"),
        (ColumnMap(fields=["nope"]), "'nope'"),
    ],
)
def test_missing_named_column(store: Store, tmp_path: Path, columns: ColumnMap, named: str) -> None:
    project = make_project(store)
    path = write_csv(tmp_path / "items.csv", ["id", "text"], [("1", "a")])
    err = refused_input(store, project, path, columns)
    assert not isinstance(err, RowErrors)
    assert str(path) in str(err)
    assert f"missing column {named}" in str(err)
    assert "columns found: ['id', 'text']" in str(err)


def test_missing_id_column(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    path = write_csv(tmp_path / "items.csv", ["key", "text"], [("1", "a")])
    err = refused_input(store, project, path)
    assert "missing column 'id'" in str(err)
    assert "--id" in str(err)


def test_jsonl_row_missing_a_field(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    path = write_jsonl(tmp_path / "x.jsonl", [{"id": "1", "text": "a"}, {"id": "2"}, {"text": "c"}])
    err = refused_rows(store, project, path)
    assert [(e.line, e.field) for e in err.errors] == [(2, "text"), (3, "id")]
    assert "missing field 'text'" in str(err)


def test_ambiguous_label_column_suggests_gold(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    path = write_csv(tmp_path / "answers.csv", ["task", "label"], [("1", "0")])
    err = refused_input(store, project, path)
    assert "ambiguous" in str(err)
    assert "--gold label" in str(err)
    assert "--source" in str(err)
    # and with --gold it goes in as gold
    result = import_file(store, project, path, ColumnMap(gold="label"))
    assert result.gold_added == 1


def test_label_column_needs_a_worker(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    path = write_csv(tmp_path / "answers.csv", ["task", "answer"], [("1", "0")])
    err = refused_input(store, project, path, ColumnMap(label="answer"))
    assert "'answer'" in str(err) and "--worker" in str(err)


def test_empty_ids_workers_and_labels(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    path = write_csv(
        tmp_path / "l.csv",
        ["task", "worker", "label"],
        [("", "w", "1"), ("1", " ", "1"), ("2", "w", "")],
    )
    err = refused_rows(store, project, path)
    assert [(e.line, e.field) for e in err.errors] == [(2, "task"), (3, "worker"), (4, "label")]
    assert "the item id is empty" in str(err)


# --- labels against the schema ----------------------------------------------------------------


def test_label_outside_the_schema(store: Store, rte, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "more.csv",
        ["task", "worker", "label"],
        [("754", "x1", "1"), ("754", "x2", "yes"), ("822", "x1", "2")],
    )
    err = refused_rows(store, rte, path)
    assert err.total == 2
    assert [(e.file, e.line, e.field) for e in err.errors] == [
        (str(path), 3, "label"),
        (str(path), 4, "label"),
    ]
    text = str(err)
    assert f"{path}:3: field 'label': 'yes' is not one of the allowed values ['0', '1']" in text
    assert f"{path}:4: field 'label'" in text
    with store.engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(ImportRecord)) == 2


def test_bad_label_in_parquet_names_the_row(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    path = tmp_path / "l.parquet"
    pq.write_table(pa.table({"task": ["a", "b"], "worker": ["w", "w"], "label": ["1", "7"]}), path)
    err = refused_rows(store, project, path)
    assert (err.errors[0].line, err.errors[0].unit) == (2, "row")
    assert f"{path} row 2: field 'label'" in str(err)


def test_bad_gold_and_probs_name_their_columns(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    path = write_csv(
        tmp_path / "x.csv",
        ["id", "text", "truth", "p"],
        [("1", "a", "3", ""), ("2", "b", "", "[0.5, 0.6]"), ("3", "c", "", '{"2": 1}')],
    )
    err = refused_rows(store, project, path, ColumnMap(gold="truth", probs="p"))
    assert [(e.line, e.field) for e in err.errors] == [(2, "truth"), (3, "p"), (4, "p")]
    text = str(err)
    assert "'3' is not one of the allowed values ['0', '1']" in text
    assert "sum to 1.1" in text
    assert "unknown class(es) ['2']" in text


def test_span_offsets_checked_against_stored_text(store: Store, tmp_path: Path) -> None:
    project = make_project(store, schema={"type": "span", "labels": ["PER"]})
    import_file(
        store, project, write_csv(tmp_path / "items.csv", ["id", "text"], [("1", "Ada Lovelace")])
    )
    spans = write_jsonl(
        tmp_path / "spans.jsonl",
        [
            {"task": "1", "worker": "w", "label": [{"start": 0, "end": 3, "label": "PER"}]},
            {"task": "1", "worker": "v", "label": [{"start": 4, "end": 40, "label": "PER"}]},
        ],
    )
    err = refused_rows(store, project, spans)
    assert err.errors[0].line == 2
    assert "12 characters" in str(err)


def test_many_bad_rows_are_summarised(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    path = write_csv(
        tmp_path / "bad.csv", ["task", "worker", "label"], [(str(i), "w", "x") for i in range(50)]
    )
    err = refused_rows(store, project, path)
    assert err.total == 50
    assert len(err.errors) == 20
    assert "... and 30 more bad row(s)" in str(err)
    assert "50 bad row(s)" in str(err)


# --- duplicates and conflicts -----------------------------------------------------------------


@pytest.mark.parametrize("batch_rows", [5000, 2])
def test_duplicate_ids_in_an_items_file(store: Store, tmp_path: Path, batch_rows: int) -> None:
    project = make_project(store)
    path = write_csv(
        tmp_path / "items.csv",
        ["id", "text"],
        [("a", "x"), ("b", "y"), ("c", "z"), ("a", "again"), ("b", "b2"), ("a", "third")],
    )
    err = refused_rows(store, project, path, batch_rows=batch_rows)
    assert err.total == 3
    assert [(e.line, e.field) for e in err.errors] == [(5, "id"), (6, "id"), (7, "id")]
    text = str(err)
    assert f"{path}:5: field 'id': duplicate id (first seen on line 2)" in text
    assert f"{path}:6: field 'id': duplicate id (first seen on line 3)" in text
    assert f"{path}:7: field 'id': duplicate id (first seen on line 2)" in text
    assert counts(store, project)["items"] == 0


def test_a_repeated_id_is_skipped_and_the_next_import_starts_afresh(
    store: Store, tmp_path: Path
) -> None:
    """With --skip-invalid the first row of an id is kept and its repeats are reported and left
    out; the ids a file gave are forgotten when its import ends, so importing the same ids again
    is the idempotent re-import it always was, not a repeat."""
    project = make_project(store)
    rows = [("a", "first"), ("b", "y"), ("a", "again"), ("c", "z"), ("a", "third")]
    path = write_csv(tmp_path / "items.csv", ["id", "text"], rows)
    report = tmp_path / "bad.csv"
    result = import_file(store, project, path, skip_invalid=True, report=report, batch_rows=2)
    assert result.items_added == 3
    assert [r["line"] for r in read_csv(report)] == ["4", "6"]
    assert {r["error"] for r in read_csv(report)} == {"duplicate id (first seen on line 2)"}
    with store.session() as session:
        text = session.scalar(
            sa.select(Item.text).where(Item.project_id == project.id, Item.external_id == "a")
        )
    assert text == "first"
    again = write_csv(tmp_path / "again.csv", ["id", "text"], [("a", "first"), ("b", "y")])
    assert import_file(store, project, again, batch_rows=2).added_nothing


def test_duplicate_ids_with_empty_items(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    path = tmp_path / "ids.jsonl"
    path.write_text('{"id": "a", "text": null}\n{"id": "a", "text": null}\n', encoding="utf-8")
    err = refused_rows(store, project, path)
    assert "duplicate id (first seen on line 1)" in str(err)


def test_conflicting_gold_across_files(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    first = write_csv(tmp_path / "g1.csv", ["id", "gold"], [("1", "0"), ("2", "1")])
    import_file(store, project, first, ColumnMap(gold="gold"))
    same = write_csv(tmp_path / "g2.csv", ["task", "gold"], [("1", "0")])
    assert import_file(store, project, same, ColumnMap(gold="gold")).added_nothing
    clash = write_csv(tmp_path / "g3.csv", ["task", "gold"], [("3", "1"), ("1", "1")])
    err = refused_rows(store, project, clash, ColumnMap(gold="gold"))
    assert [(e.line, e.field) for e in err.errors] == [(3, "gold")]
    assert "item '1' already has gold label '0'" in str(err)
    with store.engine.connect() as conn:
        assert dict(
            conn.execute(
                sa.select(Item.external_id, Gold.value).join(Item, Item.id == Gold.item_id)
            ).all()
        ) == {"1": "0", "2": "1"}


def test_conflicting_gold_within_one_file(sqlite_store: Store, tmp_path: Path) -> None:
    project = make_project(sqlite_store)
    path = write_csv(
        tmp_path / "g.csv",
        ["task", "worker", "label", "gold"],
        [("q", "w1", "0", "0"), ("q", "w2", "1", "1")],
    )
    with pytest.raises(RowErrors):
        import_file(sqlite_store, project, path, ColumnMap(gold="gold"))


# --- encodings --------------------------------------------------------------------------------


def test_wrong_encoding_csv(store: Store, rte, tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("task,worker,label\n754,caf\xe9,1\n".encode("latin-1"))
    err = refused_input(store, rte, path)
    assert not isinstance(err, RowErrors)
    text = str(err)
    assert str(path) in text
    assert "utf-8" in text
    assert "--encoding latin-1" in text
    assert "nothing was written" in text

    result = import_file(store, rte, path, encoding="latin-1")
    assert result.claims_added == 1
    with store.engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT name FROM sources WHERE name LIKE 'caf%'")) == "café"


def test_wrong_encoding_jsonl_names_the_line(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    path = tmp_path / "latin.jsonl"
    lines = [json.dumps({"id": str(i), "text": "plain"}, ensure_ascii=False) for i in range(5)]
    lines.append(json.dumps({"id": "5", "text": "déjà vu"}, ensure_ascii=False))
    path.write_bytes("\n".join(lines).encode("latin-1") + b"\n")
    err = refused_input(store, project, path)
    assert f"{path}:6:" in str(err)
    assert "0xe9" in str(err)
    assert "--encoding latin-1" in str(err)
    assert counts(store, project)["items"] == 0
    import_file(store, project, path, encoding="latin-1")
    with store.session() as session:
        assert session.scalar(sa.select(Item.text).where(Item.external_id == "5")) == "déjà vu"


def test_wrong_encoding_csv_names_the_bad_line(sqlite_store: Store, tmp_path: Path) -> None:
    project = make_project(sqlite_store)
    path = tmp_path / "latin.csv"
    path.write_bytes("id,text\na,x\nb,y\nc,caf\xe9\n".encode("latin-1"))
    with pytest.raises(InputError) as info:
        import_file(sqlite_store, project, path)
    assert f"{path}:4:" in str(info.value)


def test_unknown_encoding(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    path = write_csv(tmp_path / "x.csv", ["id", "text"], [("1", "a")])
    assert "unknown encoding 'klingon'" in str(
        refused_input(store, project, path, encoding="klingon")
    )


def test_jsonl_with_byte_order_mark(sqlite_store: Store, tmp_path: Path) -> None:
    project = make_project(sqlite_store)
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": "a", "text": "x"}\n')
    assert import_file(sqlite_store, project, path).items_added == 1


def test_csv_with_byte_order_mark(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfid,text\n1,a\n")
    assert import_file(store, project, path).items_added == 1


# --- files and formats ------------------------------------------------------------------------


def test_unknown_suffix(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    path = tmp_path / "data.xlsx"
    path.write_text("id,text\n1,a\n", encoding="utf-8")
    err = refused_input(store, project, path)
    assert "'.xlsx'" in str(err)
    assert "--format" in str(err)
    assert "csv, tsv, jsonl, parquet" in str(err)
    # naming the format works
    assert import_file(store, project, path, fmt="csv").items_added == 1


def test_unknown_format(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    path = write_csv(tmp_path / "x.csv", ["id", "text"], [("1", "a")])
    assert "unknown format 'xml'" in str(refused_input(store, project, path, fmt="xml"))


def test_missing_file(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    err = refused_input(store, project, tmp_path / "nope.csv")
    assert "no such file" in str(err)


def test_not_a_parquet_file(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    path = tmp_path / "fake.parquet"
    path.write_text("id,text\n1,a\n", encoding="utf-8")
    assert "not a readable Parquet file" in str(refused_input(store, project, path))


def test_errors_are_veritag_errors() -> None:
    # the CLI turns these into one line; anything else would be a traceback
    assert issubclass(RowErrors, InputError) and issubclass(InputError, VeritagError)
    assert str(RowError("f.csv", 3, "label", "bad")) == "f.csv:3: field 'label': bad"
    assert str(RowError("f.parquet", 3, None, "bad", unit="row")) == "f.parquet row 3: bad"


def test_spans_imported_before_text_are_checked(sqlite_store: Store, tmp_path: Path) -> None:
    project = make_project(sqlite_store, schema={"type": "span", "labels": ["PER"]})
    spans = write_jsonl(
        tmp_path / "spans.jsonl",
        [
            {"task": "1", "worker": "w", "label": [{"start": 4, "end": 40, "label": "PER"}]},
        ],
    )
    texts = write_csv(tmp_path / "items.csv", ["id", "text"], [("1", "Ada Lovelace")])
    with pytest.raises(RowErrors):
        import_file(sqlite_store, project, spans)
        import_file(sqlite_store, project, texts)


# --- text that no store can keep (issue 15) ----------------------------------------------------


@pytest.mark.parametrize("bad", ["\ud800", "a\u0000b"])
@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"id": "n1", "text": "{bad}"}, "text"),
        ({"id": "n{bad}", "text": "t"}, "id"),
        ({"id": "n1", "text": "t", "context": {"k": ["{bad}"]}}, "context"),
        ({"id": "n1", "text": "t", "worker": "w{bad}", "label": "1"}, "worker"),
    ],
)
def test_unstorable_text_names_file_line_and_field(
    store: Store, tmp_path: Path, bad: str, row: dict[str, object], field: str
) -> None:
    project = make_project(store, "texts", {"type": "free_text"} if "worker" not in row else None)
    path = tmp_path / "bad.jsonl"
    good = json.dumps(row).replace("{bad}", "fine").replace('"n1"', '"ok"')
    path.write_text(
        good + "\n" + json.dumps(row).replace("{bad}", json.dumps(bad)[1:-1]) + "\n",
        encoding="utf-8",
    )
    err = refused_rows(store, project, path)
    assert err.total == 1
    assert (err.errors[0].line, err.errors[0].field) == (2, field)
    assert f"{path}:2: field '{field}'" in str(err)
    str(err).encode("utf-8")  # the message itself can be printed


def test_unstorable_free_text_label_is_refused(store: Store, tmp_path: Path) -> None:
    project = make_project(store, "free_labels", {"type": "free_text"})
    path = tmp_path / "labels.jsonl"
    path.write_text('{"id": "i", "worker": "w", "label": "x\\u0000y"}\n', encoding="utf-8")
    err = refused_rows(store, project, path)
    assert (err.errors[0].line, err.errors[0].field) == (1, "label")


def test_oversized_text_ids_and_workers_are_refused(store: Store, tmp_path: Path) -> None:
    from veritag import limits

    project = make_project(store, "sizes")
    rows = [
        {"id": "big", "text": "t" * (limits.MAX_ITEM_TEXT_LENGTH + 1)},
        {"id": "i" * (limits.MAX_EXTERNAL_ID_LENGTH + 1), "text": "t"},
        {"id": "edge", "text": "t" * limits.MAX_ITEM_TEXT_LENGTH},
    ]
    err = refused_rows(store, project, write_jsonl(tmp_path / "big.jsonl", rows))
    assert [(e.line, e.field) for e in err.errors] == [(1, "text"), (2, "id")]
    labels = [{"task": "a", "worker": "w" * (limits.MAX_SOURCE_NAME_LENGTH + 1), "label": "1"}]
    err = refused_rows(store, project, write_jsonl(tmp_path / "labels.jsonl", labels))
    assert (err.errors[0].line, err.errors[0].field) == (1, "worker")


def test_unstorable_source_name_is_refused(store: Store, tmp_path: Path) -> None:
    project = make_project(store, "src")
    path = write_jsonl(tmp_path / "l.jsonl", [{"task": "a", "label": "1"}])
    err = refused_input(store, project, path, ColumnMap(source="a\x00b"))
    assert "--source" in str(err)
