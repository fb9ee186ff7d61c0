"""Partitioned Parquet exports and imports: one file per partition, one schema, written and read
with flat memory, atomically."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner
from vt_helpers import LABELS, TEXTS, make_project, read_jsonl, write_csv

from veritag import cli
from veritag.errors import InputError, RowErrors
from veritag.io import ColumnMap, export_project, import_file
from veritag.io.exporter import MANIFEST
from veritag.resolve import current_truth
from veritag.store import Store

FIELDS = ["hypothesis"]


def _items(store: Store, name: str = "rte") -> Any:
    project = make_project(store, name)
    import_file(store, project, TEXTS, ColumnMap(meta=["rte_subtask"]))
    return project


def _own(path: Path) -> list[dict[str, Any]]:
    """Each exported item without its label columns: what an import of the export gives back."""
    keep = ("id", "text", *FIELDS, "rte_subtask")
    return [{k: r[k] for k in keep} for r in read_jsonl(path)]


def test_dataset_has_one_file_per_partition_and_one_schema(
    sqlite_store: Store, tmp_path: Path
) -> None:
    project = _items(sqlite_store)
    out = tmp_path / "rte"
    result = export_project(sqlite_store, project, out, "parquet-dataset", partition_rows=300)
    assert result.rows == 800
    names = sorted(p.name for p in out.iterdir())
    assert names == [MANIFEST, "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["rows"] == 800
    assert [(f["path"], f["rows"]) for f in manifest["files"]] == [
        ("part-00000.parquet", 300),
        ("part-00001.parquet", 300),
        ("part-00002.parquet", 200),
    ]
    schemas = {pq.read_schema(out / f["path"]) for f in manifest["files"]}
    assert len(schemas) == 1
    table = ds.dataset(out).to_table()  # pyarrow skips the _manifest.json
    export_project(sqlite_store, project, tmp_path / "all.parquet", "parquet")
    assert table.equals(pq.read_table(tmp_path / "all.parquet"))


def test_round_trip_gives_the_same_items(sqlite_store: Store, tmp_path: Path) -> None:
    project = _items(sqlite_store)
    out = tmp_path / "rte"
    export_project(sqlite_store, project, out, "parquet-dataset", partition_rows=256)
    copy = make_project(sqlite_store, "copy")
    result = import_file(
        sqlite_store, copy, out, ColumnMap(fields=FIELDS, meta=["rte_subtask"], gold="label")
    )
    assert (result.rows, result.items_added) == (800, 800)
    a = export_project(sqlite_store, project, tmp_path / "a.jsonl", "jsonl").path
    b = export_project(sqlite_store, copy, tmp_path / "b.jsonl", "jsonl").path
    assert _own(a) == _own(b)
    # A glob of the part files is the same dataset.
    again = make_project(sqlite_store, "again")
    columns = ColumnMap(fields=FIELDS, meta=["rte_subtask"], gold="label")
    assert import_file(sqlite_store, again, out / "part-*.parquet", columns).items_added == 800


def test_hf_export_is_sharded_by_the_same_writer(sqlite_store: Store, tmp_path: Path) -> None:
    project = _items(sqlite_store)
    out = tmp_path / "hf"
    assert export_project(sqlite_store, project, out, "hf", partition_rows=500).rows == 800
    assert sorted(p.name for p in (out / "data").iterdir()) == [
        "train-00000-of-00002.parquet",
        "train-00001-of-00002.parquet",
    ]
    assert ds.dataset(out / "data").count_rows() == 800
    # A second export replaces the first whole: no shard of it is left to be read with the new.
    export_project(sqlite_store, project, out, "hf")
    assert sorted(p.name for p in (out / "data").iterdir()) == ["train-00000-of-00001.parquet"]


def test_a_crash_mid_export_leaves_no_dataset(
    sqlite_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _items(sqlite_store)
    out = tmp_path / "exports" / "rte"
    out.parent.mkdir()
    written = []

    def crash(self: pq.ParquetWriter, table: pa.Table, *args: Any, **kwargs: Any) -> None:
        if written:
            raise OSError("disk full")
        written.append(table.num_rows)
        original(self, table, *args, **kwargs)

    original = pq.ParquetWriter.write_table
    monkeypatch.setattr(pq.ParquetWriter, "write_table", crash)
    with pytest.raises(OSError, match="disk full"):
        export_project(
            sqlite_store, project, out, "parquet-dataset", partition_rows=100, chunk_rows=100
        )
    assert list(out.parent.iterdir()) == []
    # Over an earlier export, the crash leaves that one as it was.
    monkeypatch.setattr(pq.ParquetWriter, "write_table", original)
    export_project(sqlite_store, project, out, "parquet-dataset", partition_rows=500)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    written.clear()
    monkeypatch.setattr(pq.ParquetWriter, "write_table", crash)
    with pytest.raises(OSError, match="disk full"):
        export_project(
            sqlite_store, project, out, "parquet-dataset", partition_rows=100, chunk_rows=100
        )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in out.parent.iterdir()] == ["rte"]


def test_a_folder_that_is_no_export_is_not_replaced(sqlite_store: Store, tmp_path: Path) -> None:
    project = _items(sqlite_store)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not a folder veritag exported"):
        export_project(sqlite_store, project, out, "parquet-dataset")
    assert (out / "notes.txt").read_text() == "keep me"


def test_cli_exports_and_imports_a_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VERITAG_DATABASE_URL", raising=False)
    runner = CliRunner()

    def ok(*args: str) -> str:
        result = runner.invoke(cli.app, [*args, "--db", str(tmp_path / "v.db")])
        assert result.exit_code == 0, (result.output, result.exception)
        return result.stdout

    for name in ("rte", "copy"):
        ok("init", name, "--task", "classification", "--labels", "0,1")
    ok("import", "rte", str(TEXTS), "--meta", "rte_subtask")
    ok("import", "rte", str(LABELS))
    out = tmp_path / "ds"
    text = ok("export", "rte", str(out), "--format", "parquet-dataset", "--partition-rows", "500")
    assert "Wrote 800 rows" in text
    assert sorted(p.name for p in out.glob("part-*")) == [
        "part-00000.parquet",
        "part-00001.parquet",
    ]
    text = ok("import", "copy", str(out), "--meta", "rte_subtask", "--gold", "label")
    assert "800 rows, 800 new items" in " ".join(text.split()) and "800 new gold labels" in text


def _part(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def test_bad_rows_are_named_by_part_file_and_row(sqlite_store: Store, tmp_path: Path) -> None:
    project = make_project(sqlite_store)
    folder = tmp_path / "ds"
    _part(folder / "part-00000.parquet", [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}])
    _part(folder / "part-00001.parquet", [{"id": "c", "text": "z"}, {"id": "", "text": "w"}])
    _part(folder / "part-00002.parquet", [{"id": "a", "text": "v"}])
    (folder / "_manifest.json").write_text("{}")
    (folder / ".part-00003.parquet.tmp").write_text("not parquet, skipped")
    with pytest.raises(RowErrors) as exc:
        import_file(sqlite_store, project, folder)
    assert [(Path(e.file).name, e.line, e.message) for e in exc.value.errors] == [
        ("part-00001.parquet", 2, "the item id is empty"),
        (
            "part-00002.parquet",
            1,
            f"duplicate id (first seen on row 1 of {folder}/part-00000.parquet)",
        ),
    ]
    assert f"{folder}/part-00001.parquet row 2: field 'id'" in str(exc.value)


def test_a_dataset_holds_parquet_only(sqlite_store: Store, tmp_path: Path) -> None:
    project = make_project(sqlite_store)
    folder = tmp_path / "ds"
    folder.mkdir()
    with pytest.raises(InputError, match="no Parquet files found"):
        import_file(sqlite_store, project, folder)
    write_csv(folder / "a.csv", ["id"], [("1",)])
    with pytest.raises(InputError, match="no Parquet files found"):
        import_file(sqlite_store, project, folder)
    with pytest.raises(InputError, match="a dataset holds Parquet files only"):
        import_file(sqlite_store, project, folder / "*")


def _labeled(store: Store, n: int, tmp_path: Path) -> Any:
    """A project of ``n`` items with a label each, resolved and stored once."""
    project = make_project(store, f"p{n}")
    rows = ((f"item-{i}", f"text of item {i}", str(i % 2)) for i in range(n))
    path = write_csv(tmp_path / f"{n}.csv", ["id", "text", "label"], rows)
    import_file(store, project, path, ColumnMap(source="ann"), batch_rows=20_000)
    assert current_truth(store, project, refit="stale").run is not None
    return project


def _peak_export(store: Store, project: Any, out: Path) -> int:
    """Peak Python memory of exporting ``project`` from its stored run, checking what it wrote."""
    tracemalloc.start()
    try:
        result = export_project(
            store, project, out, "parquet-dataset", refit="never", partition_rows=40_000
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert ds.dataset(out).count_rows() == result.rows
    return peak


def test_partitioned_export_memory_is_flat(sqlite_store: Store, tmp_path: Path) -> None:
    small = _labeled(sqlite_store, 25_000, tmp_path)
    large = _labeled(sqlite_store, 100_000, tmp_path)
    _peak_export(sqlite_store, small, tmp_path / "warm")  # first use: imports, caches
    small_peak = _peak_export(sqlite_store, small, tmp_path / "small")
    large_peak = _peak_export(sqlite_store, large, tmp_path / "large")
    # Holding the run or the items would take 4x; a chunk's worth stays the same.
    assert large_peak < 1.25 * small_peak, (small_peak, large_peak)
