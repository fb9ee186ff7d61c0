"""Exporting a project as files that training code reads directly.

Items are streamed in id order in chunks, joined with their resolved label, and written to a
temporary file that replaces the target only when complete. The labels come from the newest
stored truth run (``resolve.current_truth``; a command resolves again first when a claim came
since, the API's GET exports what is stored), read from the store a chunk at a time alongside
the items, so memory stays flat however large the project. ``parquet-dataset`` and ``hf`` write a
folder of Parquet files of at most ``partition_rows`` rows each, one schema for all, each file
written as its chunks arrive, in a temporary folder renamed at the end. CSV text cells
that a spreadsheet would run as a formula are neutralised (see ``_cell``) unless the caller asks
for raw output.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from ..errors import InputError, VeritagError
from ..resolve import Resolution, RunPruned, current_truth, load_truth
from ..resolve.runs import load_range
from ..resolve.current import Refit
from ..schema import BaseSchema, PairwiseSchema
from ..store.engine import Store
from ..store.models import (
    AutomationItem,
    AutomationRun,
    Claim,
    Item,
    Project,
    Source,
    TruthRun,
)
from ..store.posterior_blocks import BlockReader
from ..store.queries import project_schema, standing_claims
from .atomic import atomic_write
from .formats import EXPORT_FORMATS, PARTITION_ROWS

__all__ = [
    "EXPORT_FORMATS",
    "MANIFEST",
    "PARTITION_ROWS",
    "ExportResult",
    "column_name",
    "export_project",
]

ProgressFn = Callable[[int, int], None]
RESOLVED = ("label", "confidence", "n_labels", "label_source")
#: The newest automation run's decision per item (auto, audit, human): only in projects with one.
AUTOMATION = "automation"
#: A folder export's list of its files and their rows; it also marks the folder as one that a
#: later export may replace (pyarrow's dataset reader skips names starting with ``_``).
MANIFEST = "_manifest.json"


@dataclass
class ExportResult:
    """What was written; ``resolved`` is True when the export had to resolve and store a new run."""

    path: Path
    rows: int
    run_id: int | None = None
    method: str | None = None
    resolved: bool = False
    items_resolved: int = 0
    #: Claims added after the run the labels come from (only with ``refit="never"``).
    claims_since: int = 0


def column_name(key: str, prefix: str, taken: Mapping[str, Any]) -> str:
    """The column an item's ``data`` (``prefix="field."``) or ``meta`` (``"meta."``) key is
    exported as: its own name unless a built-in column or, for a meta key, one of the item's
    fields (``taken``) already has it. Public so that readers of an export (the Ray autolabeler
    reading ``--items-parquet``) find a field's column by the same rule that wrote it."""
    builtin = ("id", "text", *RESOLVED, AUTOMATION)
    return f"{prefix}{key}" if key in builtin or (prefix == "meta." and key in taken) else key


def _label_type(schema: BaseSchema) -> pa.DataType:
    return {
        "rating": pa.int64(),
        "multilabel": pa.list_(pa.string()),
        "span": pa.list_(
            pa.struct([("start", pa.int64()), ("end", pa.int64()), ("label", pa.string())])
        ),
        "fact_check": pa.struct([("verdict", pa.string()), ("evidence", pa.string())]),
    }.get(schema.type, pa.string())


@contextmanager
def _atomic_folder(path: Path) -> Iterator[Path]:
    """Write a folder beside ``path`` and rename it into place at the end: a crash leaves no
    half dataset under the final name. A previous export there is replaced whole, so no file of
    it is left to be read with the new ones; any other folder is refused, not deleted."""
    if path.exists() and not _replaceable(path):
        raise InputError(f"{path} exists and is not a folder veritag exported; choose a new folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def _replaceable(path: Path) -> bool:
    """An empty folder, or one holding only what a folder export writes."""
    if not path.is_dir():
        return False
    names = {p.name for p in path.iterdir()}
    return MANIFEST in names or names <= {"data", "README.md"}


class _StoredRun:
    """A stored run's labels read for one chunk of items at a time, so an export of 10^8 items
    never holds the whole run (``load_resolution`` would)."""

    def __init__(self, run: Any) -> None:
        if run.pruned:
            raise RunPruned(run)
        self.run = run
        self.blocks = BlockReader(run.id)

    def chunk(self, conn: sa.Connection, first: int, last: int) -> Resolution:
        """The run's labels of the items with ids from ``first`` to ``last``."""
        return load_range(conn, self.run, self.blocks, first, last)

    def check(self, conn: sa.Connection) -> None:
        """``RunPruned`` if the retention rule emptied the run while it was being exported (the
        items read after would have gone out without labels)."""
        if conn.scalar(sa.select(TruthRun.pruned).where(TruthRun.id == self.run.id)):
            raise RunPruned(self.run)


#: Where an export's labels come from: a run fitted by this call, or a stored one read by chunk.
Labels = Resolution | _StoredRun


class _Exporter:
    def __init__(
        self,
        store: Store,
        project: Project,
        chunk_rows: int,
        progress: ProgressFn | None,
        csv_raw: bool = False,
        partition_rows: int = PARTITION_ROWS,
    ) -> None:
        self.store = store
        self.partition_rows = partition_rows
        self.csv_raw = csv_raw
        self.project = project
        self.schema = project_schema(project)
        self.chunk_rows = chunk_rows
        self.progress = progress
        with store.engine.connect() as conn:
            self.automation_run: int | None = conn.scalar(
                sa.select(sa.func.max(AutomationRun.id)).where(
                    AutomationRun.project_id == project.id
                )
            )

    @property
    def resolved(self) -> tuple[str, ...]:
        """The columns every item gets after its own: the label, and the automation decision."""
        return RESOLVED if self.automation_run is None else (*RESOLVED, AUTOMATION)

    def columns(self, conn: sa.Connection) -> list[str]:
        """Every column any item will have, in first-seen order: CSV and Parquet need them up
        front."""
        names: dict[str, None] = {"id": None, "text": None}
        stmt = (
            sa.select(Item.data, Item.meta)
            .where(Item.project_id == self.project.id)
            .order_by(Item.id)
        )
        for part in (
            conn.execution_options(stream_results=True, yield_per=self.chunk_rows)
            .execute(stmt)
            .partitions()
        ):
            for data, meta in part:
                for key in data or ():
                    names.setdefault(column_name(key, "field.", names), None)
                for key in meta or ():
                    names.setdefault(column_name(key, "meta.", data or {}), None)
        return [*names, *self.resolved]

    def records(
        self, conn: sa.Connection, labels: Labels, columns: list[str] | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """Chunks of flat item records with their resolved label, by keyset pagination on id."""
        total = int(
            conn.scalar(
                sa.select(sa.func.count())
                .select_from(Item)
                .where(Item.project_id == self.project.id)
            )
            or 0
        )
        done, last = 0, 0
        cols = (Item.id, Item.external_id, Item.text, Item.data, Item.meta, AutomationItem.decision)
        decided = sa.and_(
            AutomationItem.item_id == Item.id, AutomationItem.run_id == self.automation_run
        )
        while True:
            rows = conn.execute(
                sa.select(*cols)
                .outerjoin(AutomationItem, decided)
                .where(Item.project_id == self.project.id, Item.id > last)
                .order_by(Item.id)
                .limit(self.chunk_rows)
            ).all()
            if not rows:
                break
            first, last = rows[0][0], rows[-1][0]
            ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
            resolution = (
                labels.chunk(conn, first, last) if isinstance(labels, _StoredRun) else labels
            )
            pos, found = resolution.lookup(ids)
            chunk = []
            for (_, external_id, text, data, meta, decision), p, ok in zip(
                rows, pos.tolist(), found.tolist()
            ):
                record: dict[str, Any] = dict.fromkeys(columns) if columns else {}
                record.update(id=external_id, text=text)
                for key, value in (data or {}).items():
                    record[column_name(key, "field.", {})] = value
                for key, value in (meta or {}).items():
                    record[column_name(key, "meta.", data or {})] = value
                if ok:
                    record.update(
                        label=resolution.labels[p],
                        confidence=float(resolution.confidence[p]),
                        n_labels=int(resolution.n_labels[p]),
                        label_source=resolution.method[p],
                    )
                else:
                    record.update(label=None, confidence=None, n_labels=0, label_source=None)
                if self.automation_run is not None:
                    record[AUTOMATION] = decision
                chunk.append(record)
            done += len(rows)
            if self.progress:
                self.progress(done, total)
            yield chunk
        if isinstance(labels, _StoredRun):
            labels.check(conn)

    def jsonl(self, conn: sa.Connection, out: Path, resolution: Labels) -> int:
        n = 0
        with atomic_write(out) as fh:
            for chunk in self.records(conn, resolution):
                fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in chunk))
                n += len(chunk)
        return n

    def csv(self, conn: sa.Connection, out: Path, resolution: Labels) -> int:
        n = 0
        with atomic_write(out) as fh:
            columns = self.columns(conn)
            writer = csv.writer(fh)
            # Column names come from item fields, so the header is user text as well.
            writer.writerow([_cell(c, self.csv_raw) for c in columns])
            for chunk in self.records(conn, resolution):
                writer.writerows([_cell(r.get(c), self.csv_raw) for c in columns] for r in chunk)
                n += len(chunk)
        return n

    def _tables(self, conn: sa.Connection, labels: Labels) -> Iterator[pa.Table]:
        """The export as Arrow tables of one schema, a chunk each: the first chunk's types, every
        column any item has (``columns``). Every file of a folder export shares it."""
        schema: pa.Schema | None = None
        for chunk in self.records(conn, labels, self.columns(conn)):
            if schema is None:
                schema = self._arrow_schema(chunk)
            try:
                table = pa.Table.from_pylist(chunk, schema=schema)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise VeritagError(
                    f"cannot write Parquet: a column changes type across items ({exc})"
                ) from None
            yield table
        if schema is None:
            yield pa.table({c: pa.array([], pa.string()) for c in ("id", "text", *self.resolved)})

    def parquet(self, conn: sa.Connection, out: Path, resolution: Labels) -> int:
        n = 0
        with atomic_write(out, "path") as tmp:
            writer: pq.ParquetWriter | None = None
            try:
                for table in self._tables(conn, resolution):
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table)
                    n += table.num_rows
            finally:
                if writer is not None:
                    writer.close()
        return n

    def _partitions(
        self, conn: sa.Connection, labels: Labels, folder: Path, name: Callable[[int], str]
    ) -> list[tuple[str, int]]:
        """Write the export under ``folder`` as files of at most ``partition_rows`` rows, named
        ``name(i)``, each closed once full; returns each file's path in the folder and rows."""
        files: list[tuple[str, int]] = []
        writer: pq.ParquetWriter | None = None
        try:
            for table in self._tables(conn, labels):
                while True:
                    if writer is None:
                        path = folder / name(len(files))
                        path.parent.mkdir(parents=True, exist_ok=True)
                        writer = pq.ParquetWriter(path, table.schema)
                        files.append((name(len(files)), 0))
                    room = self.partition_rows - files[-1][1]
                    writer.write_table(table.slice(0, room))
                    files[-1] = (files[-1][0], files[-1][1] + min(room, table.num_rows))
                    table = table.slice(room)
                    if files[-1][1] >= self.partition_rows:
                        writer.close()
                        writer = None
                    if not table.num_rows:
                        break
        finally:
            if writer is not None:
                writer.close()
        return files

    def _manifest(self, folder: Path, fmt: str, files: list[tuple[str, int]]) -> int:
        """Write the folder's ``MANIFEST`` (the rows of each file); returns the rows in all."""
        rows = sum(n for _, n in files)
        manifest = {
            "format": fmt,
            "project": self.project.name,
            "rows": rows,
            "files": [{"path": path, "rows": n} for path, n in files],
        }
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        return rows

    def parquet_dataset(self, conn: sa.Connection, out: Path, resolution: Labels) -> int:
        """A folder of ``part-00000.parquet``, ... that ``pyarrow.dataset.dataset(folder)``,
        Spark, DuckDB and ``veritag import`` read as one table."""
        with _atomic_folder(out) as tmp:
            files = self._partitions(conn, resolution, tmp, "part-{:05d}.parquet".format)
            return self._manifest(tmp, "parquet-dataset", files)

    def _arrow_schema(self, chunk: list[dict[str, Any]]) -> pa.Schema:
        inferred = pa.Table.from_pylist(chunk).schema
        fields = []
        for f in inferred:
            if f.name == "label":
                fields.append(pa.field("label", _label_type(self.schema)))
            elif f.name in ("confidence",):
                fields.append(pa.field(f.name, pa.float64()))
            elif f.name in ("n_labels",):
                fields.append(pa.field(f.name, pa.int64()))
            else:
                fields.append(pa.field(f.name, pa.string() if pa.types.is_null(f.type) else f.type))
        return pa.schema(fields)

    def hf(self, conn: sa.Connection, out: Path, resolution: Labels) -> int:
        """A folder in the Hugging Face Hub layout: ``datasets.load_dataset(folder)`` reads it.

        The split's files are named ``train-00000-of-00003.parquet`` as the Hub names shards;
        how many there are is known at the end, so they are renamed then."""
        with _atomic_folder(out) as tmp:
            parts = self._partitions(conn, resolution, tmp, "data/train-{:05d}.parquet".format)
            files = []
            for i, (path, rows) in enumerate(parts):
                final = f"data/train-{i:05d}-of-{len(parts):05d}.parquet"
                os.replace(tmp / path, tmp / final)
                files.append((final, rows))
            n = self._manifest(tmp, "hf", files)
            card = (
                "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n"
                "    path: data/train-*.parquet\n---\n\n"
                f"# {self.project.name}\n\nExported by veritag: {n} items, each with its "
                "resolved `label`, `confidence` (the probability of that label given all claims, "
                "or 1.0 for gold), `n_labels` and `label_source`.\n"
            )
            (tmp / "README.md").write_text(card, encoding="utf-8")
        return n

    def long(self, conn: sa.Connection, out: Path, resolution: Labels | None) -> int:
        """Every human label as ``task,worker,label``: the crowd-kit / crowd data format."""
        n = 0
        stmt = (
            sa.select(Item.external_id, Source.name, sa.cast(Claim.value, sa.Text))
            .join(Item, Item.id == Claim.item_id)
            .join(Source, Source.id == Claim.source_id)
            .where(
                Claim.project_id == self.project.id,
                Claim.value.is_not(None),
                Source.kind == "human",
                standing_claims(),
            )
            .order_by(Claim.id)
        )
        with atomic_write(out) as fh:
            writer = csv.writer(fh)
            writer.writerow(["task", "worker", "label"])
            for part in (
                conn.execution_options(stream_results=True, yield_per=50_000)
                .execute(stmt)
                .partitions()
            ):
                writer.writerows(
                    (
                        _cell(task, self.csv_raw),
                        _cell(worker, self.csv_raw),
                        _cell(json.loads(value), self.csv_raw),
                    )
                    for task, worker, value in part
                )
                n += len(part)
        return n

    def dpo(self, conn: sa.Connection, out: Path, resolution: Labels) -> int:
        """``prompt, chosen, rejected`` per resolved preference; ties and unlabeled pairs are
        dropped."""
        schema = self.schema
        if not isinstance(schema, PairwiseSchema):
            raise InputError(
                f"DPO pairs need a pairwise project; {self.project.name!r} is {schema.type}"
            )
        n = 0
        with atomic_write(out) as fh:
            for chunk in self.records(conn, resolution):
                for r in chunk:
                    if r["label"] not in ("A", "B"):
                        continue
                    prompt = r.get(schema.prompt_field, r.get("text"))
                    a, b = r.get(schema.a_field), r.get(schema.b_field)
                    if prompt is None or a is None or b is None:
                        raise InputError(
                            f"item {r['id']!r} lacks {schema.prompt_field!r}, "
                            f"{schema.a_field!r} or {schema.b_field!r}"
                        )
                    chosen, rejected = (a, b) if r["label"] == "A" else (b, a)
                    fh.write(
                        json.dumps(
                            {
                                "id": r["id"],
                                "prompt": prompt,
                                "chosen": chosen,
                                "rejected": rejected,
                                "confidence": r["confidence"],
                            },
                            ensure_ascii=False,
                        )
                        + "\n"
                    )
                    n += 1
        return n


#: How a text cell starts when a spreadsheet would evaluate it (OWASP's CSV injection list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any, raw: bool = False) -> Any:
    """CSV holds text: lists and objects become JSON, None an empty cell.

    Item text, field values and labels come from users; opened in a spreadsheet, a cell such as
    ``=HYPERLINK(...)`` would run. So unless ``raw``, a text cell that starts like a formula gets
    a leading ``'``, which spreadsheets show as text. Numbers stay numbers: they never execute.
    """
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return ""
    if not raw and isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def export_project(
    store: Store,
    project: Project,
    out: Path,
    fmt: str,
    *,
    method: str | None = None,
    chunk_rows: int = 10_000,
    progress: ProgressFn | None = None,
    csv_raw: bool = False,
    refit: Refit = "stale",
    partition_rows: int = PARTITION_ROWS,
) -> ExportResult:
    """Write ``project`` to ``out`` in ``fmt`` (one of ``EXPORT_FORMATS``).

    Labels come from the newest stored run (of ``method``, if given). With ``refit="stale"`` (a
    command) a run that misses a claim or gold label is replaced first: the project is resolved
    with ``method`` (default ``ds``) and the run is stored. With ``refit="never"`` (a GET) the
    stored run is exported as it is (``claims_since`` says what it misses) and a project never
    resolved is ``NotResolved``. The ``long`` format holds raw claims and resolves nothing.
    ``csv_raw`` writes CSV text cells as stored, formula-like starts included (see ``_cell``).
    ``parquet-dataset`` and ``hf`` write a folder of Parquet files of ``partition_rows`` rows at
    most each.
    """
    if fmt not in EXPORT_FORMATS:
        raise InputError(
            f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}"
        )
    exporter = _Exporter(store, project, chunk_rows, progress, csv_raw, partition_rows)
    result = ExportResult(Path(out), 0)
    labels: Labels | None = None
    if fmt != "long":
        truth = current_truth(store, project, method=method, refit=refit)
        # A run fitted here is at hand already (``load_truth`` hands it back; before the first
        # run it raises ``NotResolved``); a stored one is read a chunk at a time.
        labels = (
            _StoredRun(truth.run)
            if truth.fitted is None and truth.run is not None
            else load_truth(store, truth)
        )
        result.resolved, result.claims_since = truth.refitted, truth.new_claims
        result.run_id, result.method = int(truth.run.id), truth.run.method
        result.items_resolved = int(truth.run.n_items)
    with store.engine.connect() as conn:
        result.rows = getattr(exporter, fmt.replace("-", "_"))(conn, Path(out), labels)
    return result
