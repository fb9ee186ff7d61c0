"""Importing items, human labels, gold labels and model probabilities from one file or dataset.

The file is streamed in batches inside one transaction. Every row is checked against the
project's task schema before anything of it is written; if any row is bad, the transaction is
rolled back and ``RowErrors`` names each bad row by file, line and field, unless
``skip_invalid`` asks to keep the good rows and write the bad ones to a report.
Items are keyed by external id, claims by (item, source, value): importing the same rows twice
adds nothing. A Parquet dataset (a folder or glob of Parquet files) is imported as one file, read
a batch at a time; a bad row is named by its part file and its row there.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict

from ..errors import InputError, LabelError, RowError, RowErrors
from ..limits import (
    MAX_EXTERNAL_ID_LENGTH,
    MAX_ITEM_TEXT_LENGTH,
    MAX_SOURCE_NAME_LENGTH,
    json_problem,
    text_problem,
)
from ..schema import BaseSchema, SpanSchema, canonical_json
from ..store.claims import NewClaimRow, add_claims, claim_row
from ..store.engine import Store
from ..store.models import Claim, Gold, ImportRecord, Item, Project
from ..store.queries import dialect_insert, execute_many, insert_ignore, project_schema, source_ids
from .readers import SHOWN_ERRORS, Row, RowReader, open_rows

__all__ = ["ColumnMap", "ImportResult", "import_file"]

#: The ids an items file has given so far, with the row of each, in a temporary table of the
#: import's own transaction: the database keeps them (on disk when large), so checking a file of
#: 10^8 items for repeated ids takes no memory per row.
_SEEN = sa.Table(
    "veritag_import_seen",
    sa.MetaData(),
    sa.Column("external_id", sa.Text, primary_key=True),
    sa.Column("line", sa.BigInteger, nullable=False),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="drop",
)
_SEEN_BEFORE = sa.select(_SEEN.c.external_id, _SEEN.c.line).where(
    _SEEN.c.external_id.in_(sa.bindparam("ids", expanding=True))
)

ProgressFn = Callable[[int, int], None]


class ColumnMap(BaseModel):
    """Which column means what. Unset entries are guessed from the column names (see ``bind``)."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    text: str | None = None
    fields: list[str] | None = None
    meta: list[str] = []
    gold: str | None = None
    label: str | None = None
    worker: str | None = None
    source: str | None = None
    probs: str | None = None
    model: str = "model"

    def bind(self, columns: list[str], file: str) -> _Bound:
        """Resolve guesses against the file's columns and check that every named column exists."""
        present = set(columns)

        def need(column: str | None, flag: str) -> str | None:
            if column is not None and column not in present:
                raise InputError(
                    f"{file}: missing column {column!r} (named by {flag}); columns found: {columns}"
                )
            return column

        id_col = need(self.id, "--id") or next((c for c in ("id", "task") if c in present), None)
        if id_col is None:
            raise InputError(
                f"{file}: missing column 'id' (or 'task'); pass --id COLUMN; columns found: "
                f"{columns}"
            )
        worker = need(self.worker, "--worker") or ("worker" if "worker" in present else None)
        label = need(self.label, "--label")
        gold = need(self.gold, "--gold")
        if label is None and "label" in present and gold != "label":
            if worker is None and self.source is None:
                raise InputError(
                    f"{file}: column 'label' is ambiguous without a 'worker' column: pass "
                    "--gold label (known-correct labels) or --source NAME (one annotator's labels)"
                )
            label = "label"
        if label is not None and worker is None and self.source is None:
            raise InputError(
                f"{file}: labels in column {label!r} need a --worker column or a --source name"
            )
        text = need(self.text, "--text") or ("text" if "text" in present else None)
        probs = need(self.probs, "--probs")
        meta = [need(c, "--meta") or c for c in self.meta]
        taken = {id_col, text, worker, label, gold, probs, *meta}
        if self.fields is not None:
            fields = [need(c, "--field") or c for c in self.fields]
        elif worker is not None:
            fields = []  # a long task,worker,label file describes answers, not items
        else:
            fields = [c for c in columns if c not in taken]
        return _Bound(
            id_col, text, fields, meta, gold, label, worker, self.source, probs, self.model
        )


@dataclass(frozen=True)
class _Bound:
    id: str
    text: str | None
    fields: list[str]
    meta: list[str]
    gold: str | None
    label: str | None
    worker: str | None
    source: str | None
    probs: str | None
    model: str

    @property
    def describes_items(self) -> bool:
        return self.worker is None


@dataclass
class _Parsed:
    line: int
    external_id: str
    text: str | None
    data: dict[str, Any] | None
    meta: dict[str, Any] | None
    label: Any
    gold: Any
    probs: Any
    worker: str | None


@dataclass
class ImportResult:
    path: str
    rows: int = 0
    items_added: int = 0
    items_filled: int = 0
    claims_added: int = 0
    gold_added: int = 0
    rows_skipped: int = 0
    report: Path | None = None
    imported_before: datetime | None = None

    @property
    def added_nothing(self) -> bool:
        return not (self.items_added or self.items_filled or self.claims_added or self.gold_added)


def _json_or_null(value: dict[str, Any] | None) -> str | None:
    """Item fields as JSON text, keys in the file's column order."""
    return None if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _external_id(value: Any) -> str | None:
    if _blank(value):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


class _Importer:
    def __init__(
        self,
        store: Store,
        project: Project,
        path: Path,
        columns: ColumnMap,
        *,
        fmt: str | None,
        encoding: str,
        skip_invalid: bool,
        report: Path | None,
        batch_rows: int,
        progress: ProgressFn | None,
    ) -> None:
        self.store = store
        self.project = project
        self.schema: BaseSchema = project_schema(project)
        self.path = path
        self.file = str(path)
        self.columns = columns
        for flag, name in (("--source", columns.source), ("--model", columns.model)):
            problem = None if name is None else text_problem(name, MAX_SOURCE_NAME_LENGTH)
            if problem:
                raise InputError(f"the source name given by {flag} {problem}")
        self.reader: RowReader = open_rows(
            path, fmt=fmt, encoding=encoding, batch_rows=batch_rows, dataset=True
        )
        self.skip_invalid = skip_invalid
        # A glob's name would put * or ? in the report's file name.
        name = path.name.translate(str.maketrans("*?[]", "____"))
        self.report_path = report or Path.cwd() / f"{name}.errors.csv"
        self.batch_rows = batch_rows
        self.progress = progress
        #: The first bad rows, each with its number in the whole input (the order to show them).
        self.errors: list[tuple[int, RowError]] = []
        self.error_count = 0
        self._report: Any = None
        self._report_writer: Any = None
        self.writing = True
        self.sources: dict[tuple[str, str], int] = {}
        self.seen_table = False  # whether this import's ``_SEEN`` exists yet
        self.bound: _Bound | None = None

    def _fail(self, line: int, field: str | None, message: str) -> None:
        file, local = self.reader.locate(line)
        error = RowError(file, local, field, message, unit=self.reader.unit)
        self.error_count += 1
        if len(self.errors) < SHOWN_ERRORS:
            self.errors.append((line, error))
        if self.skip_invalid:
            if self._report_writer is None:
                try:
                    self._report = self.report_path.open("w", newline="", encoding="utf-8")
                except OSError as exc:
                    raise InputError(
                        f"cannot write the bad-row report {self.report_path}: {exc.strerror}"
                    ) from None
                self._report_writer = csv.writer(self._report)
                self._report_writer.writerow(["file", self.reader.unit, "field", "error"])
            self._report_writer.writerow([file, local, field or "", message])
        else:
            self.writing = False

    def _parse(self, row: Row) -> _Parsed | None:
        if row.error is not None:
            self._fail(row.line, None, row.error)
            return None
        values = row.values
        if self.bound is None:
            self.bound = self.columns.bind(self.reader.columns or list(values), self.file)
        b = self.bound
        if self.reader.columns is None:  # JSONL rows carry their own keys
            for column in (b.id, b.text, b.worker, b.label, *b.fields, *b.meta):
                if column is not None and column not in values:
                    self._fail(row.line, column, f"missing field {column!r}")
                    return None
        external_id = _external_id(values.get(b.id))
        if external_id is None:
            self._fail(row.line, b.id, "the item id is empty")
            return None
        text = values.get(b.text) if b.text else None
        if text is not None and not isinstance(text, str):
            text = str(text)
        label = values.get(b.label) if b.label else None
        worker = None
        if b.label is not None and not _blank(label):
            worker = b.source if b.worker is None else _external_id(values.get(b.worker))
            if worker is None:
                self._fail(row.line, b.worker, "the worker is empty")
                return None
        elif b.worker is not None:
            self._fail(row.line, b.label, "the label is empty")
            return None
        if not self._storable(row, external_id, text, worker):
            return None
        return _Parsed(
            line=row.line,
            external_id=external_id,
            text=text,
            data={c: values.get(c) for c in b.fields} or None,
            meta={c: values.get(c) for c in b.meta} or None,
            label=None if _blank(label) else label,
            gold=None if not b.gold or _blank(values.get(b.gold)) else values.get(b.gold),
            probs=None if not b.probs or _blank(values.get(b.probs)) else values.get(b.probs),
            worker=worker,
        )

    def _storable(self, row: Row, external_id: str, text: str | None, worker: str | None) -> bool:
        """Whether every value of the row can be stored and shown again: no NUL, no lone
        surrogate, nothing over the caps in ``veritag.limits``; else the row fails, naming the
        column."""
        b = self.bound
        assert b is not None
        values = row.values
        checks: list[tuple[str | None, Any, int | None]] = [
            (b.id, external_id, MAX_EXTERNAL_ID_LENGTH),
            (b.text, text, MAX_ITEM_TEXT_LENGTH),
            (b.worker, worker, MAX_SOURCE_NAME_LENGTH),
        ]
        checks += [(c, values.get(c), MAX_ITEM_TEXT_LENGTH) for c in (*b.fields, *b.meta)]
        checks += [(c, values.get(c), None) for c in (b.label, b.gold, b.probs) if c is not None]
        for column, value, cap in checks:
            if value is None:
                continue
            problem = (
                text_problem(value, cap)
                if type(value) is str
                else json_problem(value, cap, finite=False)
            )
            if problem:
                self._fail(row.line, column, f"the value {problem}")
                return False
        return True

    def _normalize(self, rows: list[_Parsed], texts: dict[str, str | None]) -> list[_Parsed]:
        """Check labels against the schema; a row with any bad value is dropped whole."""
        good = []
        for r in rows:
            item_text = r.text if r.text is not None else texts.get(r.external_id)
            field = "label"
            if (
                isinstance(self.schema, SpanSchema)
                and item_text is None
                and (r.label or r.gold) is not None
            ):
                self._fail(
                    r.line,
                    self.bound.label or self.bound.gold,  # type: ignore[union-attr]
                    f"item {r.external_id!r} has no text yet, so its spans cannot be checked; "
                    "import its text first",
                )
                continue
            try:
                if r.label is not None:
                    field = self.bound.label  # type: ignore[union-attr]
                    r.label = self.schema.normalize(r.label, item_text=item_text)
                if r.gold is not None:
                    field = self.bound.gold  # type: ignore[union-attr]
                    r.gold = self.schema.normalize(r.gold, item_text=item_text)
                if r.probs is not None:
                    field = self.bound.probs  # type: ignore[union-attr]
                    r.probs = self.schema.normalize_probs(r.probs)
            except LabelError as exc:
                self._fail(
                    r.line,
                    field,
                    f"{exc.reason} ({exc.field})" if exc.field != "label" else exc.reason,
                )
                continue
            good.append(r)
        return good

    def _item_ids(
        self, conn: sa.Connection, external_ids: list[str], with_text: bool = False
    ) -> dict[str, Any]:
        cols = [Item.external_id, Item.text if with_text else Item.id]
        rows = conn.execute(
            sa.select(*cols).where(
                Item.project_id == self.project.id, Item.external_id.in_(external_ids)
            )
        )
        return {key: value for key, value in rows}

    def _write(self, conn: sa.Connection, rows: list[_Parsed]) -> None:
        b = self.bound
        assert b is not None
        pid = self.project.id
        table = Item.__table__
        if b.describes_items:
            stmt = dialect_insert(conn, table)
            # An item first seen in a labels file is a bare id; its texts may come later.
            excluded = stmt.excluded
            stmt = stmt.on_conflict_do_update(
                index_elements=["project_id", "external_id"],
                set_={"text": excluded.text, "data": excluded.data, "meta": excluded.meta},
                where=sa.and_(
                    table.c.text.is_(None), table.c.data.is_(None), table.c.meta.is_(None)
                ),
            )
            execute_many(
                conn,
                stmt,
                [
                    {
                        "project_id": pid,
                        "external_id": r.external_id,
                        "text": r.text,
                        "data": _json_or_null(r.data),
                        "meta": _json_or_null(r.meta),
                    }
                    for r in rows
                ],
            )
        else:
            unique_ids = list(dict.fromkeys(r.external_id for r in rows))
            execute_many(
                conn,
                insert_ignore(conn, table, ["project_id", "external_id"]),
                [{"project_id": pid, "external_id": e} for e in unique_ids],
            )
        if not any(r.label is not None or r.gold is not None or r.probs is not None for r in rows):
            return
        ids = self._item_ids(conn, list({r.external_id for r in rows}))
        claims: list[NewClaimRow] = []
        humans = {r.worker for r in rows if r.label is not None} - {
            n for k, n in self.sources if k == "human"
        }
        for name, sid in source_ids(conn, project_id=pid, kind="human", names=humans).items():
            self.sources["human", name] = sid
        if any(r.probs is not None for r in rows) and ("model", b.model) not in self.sources:
            self.sources["model", b.model] = source_ids(
                conn, project_id=pid, kind="model", names={b.model}
            )[b.model]
        for r in rows:
            item_id = ids[r.external_id]
            if r.label is not None:
                claims.append(
                    claim_row(
                        pid, item_id, self.sources["human", r.worker], value=canonical_json(r.label)
                    )
                )
            if r.probs is not None:
                claims.append(
                    claim_row(
                        pid, item_id, self.sources["model", b.model], probs=canonical_json(r.probs)
                    )
                )
        add_claims(conn, claims)
        gold: dict[int, _Parsed] = {}
        for r in rows:
            if r.gold is None:
                continue
            earlier = gold.setdefault(ids[r.external_id], r)
            if earlier.gold != r.gold:
                self._fail(
                    r.line,
                    b.gold,
                    f"item {r.external_id!r} has a different gold label on "
                    f"{self.reader.describe(earlier.line)}",
                )
        if gold:
            known = {
                i: v
                for i, v in conn.execute(
                    sa.select(Gold.item_id, Gold.value).where(Gold.item_id.in_(gold))
                )
            }
            fresh = []
            for item_id, r in gold.items():
                if item_id in known and known[item_id] != r.gold:
                    self._fail(
                        r.line,
                        b.gold,
                        f"item {r.external_id!r} already has gold label {known[item_id]!r}",
                    )
                elif item_id not in known:
                    fresh.append(
                        {"project_id": pid, "item_id": item_id, "value": canonical_json(r.gold)}
                    )
            execute_many(conn, insert_ignore(conn, Gold.__table__, ["item_id"]), fresh)

    def _flush(self, conn: sa.Connection, batch: list[_Parsed]) -> None:
        texts: dict[str, str | None] = {}
        if isinstance(self.schema, SpanSchema):
            missing = [r.external_id for r in batch if r.text is None]
            texts = self._item_ids(conn, missing, with_text=True) if missing else {}
        if self.bound is not None and self.bound.describes_items:
            batch = self._without_repeats(conn, batch)
        good = self._normalize(batch, texts)
        if self.writing and good:
            self._write(conn, good)

    def _without_repeats(self, conn: sa.Connection, batch: list[_Parsed]) -> list[_Parsed]:
        """The batch less the rows whose id an earlier row of this items file gave, each of
        those reported with the row that gave it first; the rest are remembered in ``_SEEN``."""
        if not self.seen_table:
            _SEEN.create(conn)
            self.seen_table = True
        first: dict[str, int] = {}
        for r in batch:
            first.setdefault(r.external_id, r.line)
        before = dict(conn.execute(_SEEN_BEFORE, {"ids": list(first)}).all())
        execute_many(
            conn,
            sa.insert(_SEEN),
            [{"external_id": e, "line": n} for e, n in first.items() if e not in before],
        )
        repeats = [
            (r, origin)
            for r in batch
            if (origin := before.get(r.external_id, first[r.external_id])) != r.line
        ]
        if not repeats:
            return batch
        column = self.bound.id if self.bound else "id"
        for r, line in repeats:
            self._fail(r.line, column, f"duplicate id (first seen on {self.reader.describe(line)})")
        dropped = {r.line for r, _ in repeats}
        return [r for r in batch if r.line not in dropped]

    def _forget_seen(self, conn: sa.Connection) -> None:
        """Drop ``_SEEN`` before the import commits (PostgreSQL drops it at commit itself)."""
        if self.seen_table and conn.dialect.name != "postgresql":
            _SEEN.drop(conn)

    def run(self) -> ImportResult:
        result = ImportResult(path=self.file)
        digest = hashlib.sha256()
        for path in getattr(self.reader, "files", [self.path]):
            with path.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
        sha = digest.hexdigest()
        try:
            with (
                self.store.begin_write() as conn
            ):  # claims are written under the store's writer lock
                self._run(conn, result, sha)
        finally:
            self.reader.close()
            if self._report is not None:
                self._report.close()
        return result

    def _run(self, conn: sa.Connection, result: ImportResult, sha: str) -> None:
        """Read, check and write every row in one transaction; raising rolls it all back."""
        pid = self.project.id
        result.imported_before = conn.scalar(
            sa.select(sa.func.min(ImportRecord.created_at)).where(
                ImportRecord.project_id == pid, ImportRecord.sha256 == sha
            )
        )
        before = self._counts(conn)
        batch: list[_Parsed] = []
        for row in self.reader:
            result.rows += 1
            parsed = self._parse(row)
            if parsed is not None:
                batch.append(parsed)
            if len(batch) >= self.batch_rows:
                self._flush(conn, batch)
                batch = []
                if self.progress:
                    self.progress(self.reader.bytes_read, self.reader.total_bytes)
        if batch:
            self._flush(conn, batch)
        self._forget_seen(conn)
        if self.bound is None and result.rows == 0:
            raise InputError(f"{self.file}: no rows to import")
        if self.progress:
            self.progress(self.reader.total_bytes, self.reader.total_bytes)
        if self.error_count and not self.skip_invalid:
            raise RowErrors(
                [e for _, e in sorted(self.errors, key=lambda x: x[0])], self.error_count
            )
        after = self._counts(conn)
        result.items_added, result.claims_added, result.gold_added, described = (
            a - b for a, b in zip(after, before)
        )
        # Items first seen as bare ids in a labels file that this file described.
        new_described = (
            result.items_added if self.bound is not None and self.bound.describes_items else 0
        )
        result.items_filled = max(0, described - new_described)
        result.rows_skipped = self.error_count
        result.report = self.report_path if self.error_count else None
        conn.execute(
            sa.insert(ImportRecord).values(
                project_id=pid,
                path=self.file,
                sha256=sha,
                rows=result.rows,
                items_added=result.items_added,
                claims_added=result.claims_added,
                gold_added=result.gold_added,
                rows_skipped=result.rows_skipped,
            )
        )

    def _counts(self, conn: sa.Connection) -> tuple[int, int, int, int]:
        """Items, claims, gold labels, and items with any text, fields or metadata."""
        pid = self.project.id
        items = Item.__table__
        described = sa.or_(
            items.c.text.is_not(None), items.c.data.is_not(None), items.c.meta.is_not(None)
        )
        return tuple(  # type: ignore[return-value]
            int(
                conn.scalar(
                    sa.select(sa.func.count()).select_from(t).where(t.c.project_id == pid, *cond)
                )
                or 0
            )
            for t, cond in (
                (items, ()),
                (Claim.__table__, ()),
                (Gold.__table__, ()),
                (items, (described,)),
            )
        )


def import_file(
    store: Store,
    project: Project,
    path: Path,
    columns: ColumnMap | None = None,
    *,
    fmt: str | None = None,
    encoding: str = "utf-8",
    skip_invalid: bool = False,
    report: Path | None = None,
    batch_rows: int = 5000,
    progress: ProgressFn | None = None,
) -> ImportResult:
    """Import one file into ``project``; see the module docstring for the guarantees."""
    return _Importer(
        store,
        project,
        Path(path),
        columns or ColumnMap(),
        fmt=fmt,
        encoding=encoding,
        skip_invalid=skip_invalid,
        report=report,
        batch_rows=batch_rows,
        progress=progress,
    ).run()
