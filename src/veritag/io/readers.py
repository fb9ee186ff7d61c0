"""Streaming row readers for CSV/TSV, JSONL and Parquet, with the line of every row.

Each reader yields ``Row`` objects one at a time, so memory stays flat whatever the file size.
A row that cannot be parsed comes back with ``error`` set, so the importer can name file and
line; a file that cannot be read at all (wrong encoding, not a CSV) raises ``InputError``.
A Parquet dataset (a folder or glob of Parquet files, as ``veritag export --format
parquet-dataset`` writes) is read file after file, a batch at a time; ``locate`` turns a row's
number in the whole dataset back into its file and its row in that file.
"""

from __future__ import annotations

import bisect
import csv
import glob
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from .formats import FORMATS

__all__ = [
    "FORMATS",
    "SHOWN_ERRORS",
    "Row",
    "RowReader",
    "dataset_files",
    "detect_format",
    "open_rows",
]

#: Bad rows named in one error (the rest are counted): every reader of a file reports this many.
SHOWN_ERRORS = 20

_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass
class Row:
    line: int
    values: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def detect_format(path: Path, fmt: str | None = None) -> str:
    if fmt:
        if fmt not in FORMATS:
            raise InputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        return fmt
    try:
        return _SUFFIXES[path.suffix.lower()]
    except KeyError:
        raise InputError(
            f"{path}: cannot tell the format from the suffix {path.suffix!r}; pass --format "
            f"({', '.join(FORMATS)})"
        ) from None


class RowReader:
    """Base: ``columns`` (None when rows carry their own keys, as in JSONL), iteration, progress.

    ``format`` is one of ``FORMATS``: the columnar fast path (``veritag.io.columnar``) reads the
    same file again by it.
    """

    unit = "line"
    format = ""

    def __init__(self, path: Path, encoding: str) -> None:
        self.path = path
        self.encoding = encoding
        self.total_bytes = path.stat().st_size
        self.columns: list[str] | None = None

    @property
    def bytes_read(self) -> int:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Row]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def locate(self, line: int) -> tuple[str, int]:
        """The file a row (its ``line`` as the reader numbered it) is in, and its line there."""
        return str(self.path), line

    def describe(self, line: int) -> str:
        """A row's place for a message that names another row: ``line 7``, ``row 3 of part.pq``."""
        file, local = self.locate(line)
        return (
            f"{self.unit} {local}" if file == str(self.path) else f"{self.unit} {local} of {file}"
        )

    def _decode_error(self, line: int, exc: UnicodeDecodeError) -> InputError:
        hint = (
            " (try --encoding latin-1)" if self.encoding.replace("-", "").lower() == "utf8" else ""
        )
        return InputError(
            f"{self.path}:{line}: not valid {self.encoding} text: byte "
            f"0x{exc.object[exc.start]:02x} cannot be decoded{hint}; nothing was written"
        )


class _CsvReader(RowReader):
    def __init__(self, path: Path, encoding: str, delimiter: str) -> None:
        super().__init__(path, encoding)
        self.format = "csv" if delimiter == "," else "tsv"
        self.delimiter = delimiter
        self._raw = path.open("rb")
        self._lines_read = 0
        # Decode line by line (not through a read-ahead buffer) so a bad byte is blamed on its line.
        self._reader = csv.reader(self._decoded(), delimiter=delimiter)
        try:
            header = next(self._reader, None)
        except UnicodeDecodeError as exc:
            self.close()
            raise self._decode_error(1, exc) from None
        if not header or not any(h.strip() for h in header):
            self.close()
            raise InputError(f"{path}: empty file or missing header row")
        header = [h.strip().lstrip("\ufeff") for h in header]
        dupes = sorted({h for h in header if header.count(h) > 1})
        if dupes:
            self.close()
            raise InputError(f"{path}:1: duplicate column name(s) {dupes}")
        self.columns = header
        #: Physical lines the header took (more than one when a quoted name holds a line break).
        self.header_lines = self._lines_read

    def _decoded(self) -> Iterator[str]:
        for raw in self._raw:
            self._lines_read += 1
            yield raw.decode(self.encoding)

    @property
    def bytes_read(self) -> int:
        return self._raw.tell()

    def __iter__(self) -> Iterator[Row]:
        assert self.columns is not None
        width = len(self.columns)
        reader = self._reader
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except UnicodeDecodeError as exc:
                raise self._decode_error(self._lines_read, exc) from None
            except csv.Error as exc:
                raise InputError(f"{self.path}:{reader.line_num}: malformed CSV: {exc}") from None
            if not cells:
                continue
            if len(cells) != width:
                yield Row(reader.line_num, error=f"expected {width} columns, found {len(cells)}")
                continue
            yield Row(reader.line_num, dict(zip(self.columns, cells)))

    def close(self) -> None:
        self._raw.close()


class _JsonlReader(RowReader):
    format = "jsonl"

    def __init__(self, path: Path, encoding: str) -> None:
        super().__init__(path, encoding)
        self._raw = path.open("rb")

    @property
    def bytes_read(self) -> int:
        return self._raw.tell()

    def __iter__(self) -> Iterator[Row]:
        for line_no, raw in enumerate(self._raw, start=1):
            try:
                text = raw.decode(self.encoding)
            except UnicodeDecodeError as exc:
                raise self._decode_error(line_no, exc) from None
            if line_no == 1:
                text = text.lstrip("\ufeff")
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                cut = " (the line looks truncated)" if not raw.endswith(b"\n") else ""
                yield Row(line_no, error=f"not valid JSON: {exc.msg} at column {exc.colno}{cut}")
                continue
            if not isinstance(value, dict):
                yield Row(line_no, error=f"expected a JSON object, found {type(value).__name__}")
                continue
            yield Row(line_no, value)

    def close(self) -> None:
        self._raw.close()


class _ParquetReader(RowReader):
    unit = "row"
    format = "parquet"

    def __init__(self, path: Path, encoding: str, batch_rows: int) -> None:
        import pyarrow as pa  # not at module level: reading CSV never needs it
        import pyarrow.parquet as pq

        super().__init__(path, encoding)
        try:
            self._file = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"{path}: not a readable Parquet file: {exc}") from None
        self.columns = list(self._file.schema_arrow.names)
        self._batch_rows = batch_rows
        self._rows_done = 0
        self._rows_total = max(1, self._file.metadata.num_rows)

    @property
    def bytes_read(self) -> int:
        return int(self.total_bytes * self._rows_done / self._rows_total)

    def __iter__(self) -> Iterator[Row]:
        line = 0
        for batch in self._file.iter_batches(batch_size=self._batch_rows):
            for values in batch.to_pylist():
                line += 1
                yield Row(line, values)
            self._rows_done = line

    def close(self) -> None:
        self._file.close()


class _ParquetDatasetReader(RowReader):
    """Parquet files read one after the other as one table, rows numbered across all of them.

    The columns are those of every file, in first-seen order (a cell a file lacks reads as
    absent); only the file being read is open, and a batch of it in memory.
    """

    unit = "row"
    format = "parquet-dataset"

    def __init__(self, path: Path, files: list[Path], encoding: str, batch_rows: int) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.path = path
        self.encoding = encoding
        self.files = files
        self._batch_rows = batch_rows
        self._rows: list[int] = []
        self._sizes = [f.stat().st_size for f in files]
        self.total_bytes = sum(self._sizes)
        names: dict[str, None] = {}
        for f in files:
            try:
                meta = pq.read_metadata(f)
            except (pa.ArrowInvalid, OSError) as exc:
                raise InputError(f"{f}: not a readable Parquet file: {exc}") from None
            names.update(dict.fromkeys(meta.schema.to_arrow_schema().names))
            self._rows.append(meta.num_rows)
        self.columns = list(names)
        #: The dataset's row number of each file's first row, less one.
        self._starts = [sum(self._rows[:i]) for i in range(len(files))]
        self._done_bytes = 0
        self._current: _ParquetReader | None = None

    @property
    def bytes_read(self) -> int:
        current = self._current.bytes_read if self._current is not None else 0
        return self._done_bytes + current

    def __iter__(self) -> Iterator[Row]:
        for f, start, size in zip(self.files, self._starts, self._sizes):
            self._current = _ParquetReader(f, self.encoding, self._batch_rows)
            try:
                for row in self._current:
                    row.line += start
                    yield row
            finally:
                self._current.close()
                self._current = None
            self._done_bytes += size

    def locate(self, line: int) -> tuple[str, int]:
        i = max(0, bisect.bisect_left(self._starts, line) - 1)
        return str(self.files[i]), line - self._starts[i]

    def close(self) -> None:
        if self._current is not None:
            self._current.close()


def _magic(text: str) -> bool:
    """Whether ``text`` is a glob pattern."""
    return any(c in text for c in "*?[")


def dataset_files(path: Path) -> list[Path] | None:
    """The Parquet files of a dataset at ``path`` (a folder, searched recursively, or a glob), in
    name order; None when ``path`` is one file. Names starting with ``.`` or ``_`` are skipped,
    as pyarrow skips them: an export's temporary folder, its ``_manifest.json``."""
    if path.is_file():
        return None
    if path.is_dir():
        found = [
            p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (".parquet", ".pq")
        ]
        base = path
    elif _magic(str(path)):
        found = [Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file()]
        lead = path.parts[:-1]
        cut = next((i for i, part in enumerate(lead) if _magic(part)), len(lead))
        base = Path(*lead[:cut]) if cut else Path()
    else:
        raise InputError(f"{path}: no such file")
    files = sorted(
        p
        for p in found
        if not any(part.startswith((".", "_")) for part in p.relative_to(base).parts)
    )
    if not files:
        raise InputError(f"{path}: no Parquet files found")
    wrong = [p for p in files if _SUFFIXES.get(p.suffix.lower()) != "parquet"]
    if wrong:
        raise InputError(f"{wrong[0]}: a dataset holds Parquet files only")
    return files


def open_rows(
    path: Path,
    *,
    fmt: str | None = None,
    encoding: str = "utf-8",
    batch_rows: int = 5000,
    dataset: bool = False,
) -> RowReader:
    """Open ``path`` for streaming; the format comes from ``fmt`` or the file suffix. With
    ``dataset``, ``path`` may also be a folder or glob of Parquet files (``dataset_files``)."""
    files = dataset_files(path) if dataset else None
    if files is not None:
        if fmt not in (None, "parquet"):
            raise InputError(f"{path}: a dataset holds Parquet files only, not {fmt}")
        return _ParquetDatasetReader(path, files, encoding, batch_rows)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    kind = detect_format(path, fmt)
    try:
        "".encode(encoding)
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r}") from None
    if kind in ("csv", "tsv"):
        return _CsvReader(path, encoding, "," if kind == "csv" else "\t")
    if kind == "jsonl":
        return _JsonlReader(path, encoding)
    return _ParquetReader(path, encoding, batch_rows)
