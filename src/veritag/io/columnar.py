"""Whole columns at C speed: the fast path of file mode, for reading labels and writing results.

The row readers (``readers``) name every bad row by file and line, but make Python objects for
every row: five million labels took 20 s. ``read_coded`` reads the columns a caller needs with
pyarrow instead and hands back each one as codes: its distinct values in first-seen order, and
one integer per row. It returns None whenever it cannot vouch that the row reader would read the
same values and find no bad row: a parse error, a row of another width, a cell that is empty once
stripped, a line break inside a quoted cell (the row reader would count lines differently), a
lone carriage return, an encoding other than UTF-8, a Parquet column that holds neither text nor
integers, a null. The caller then reads the file again with the row reader, which names the bad
rows exactly as before. JSONL always takes the row reader.

``write_csv`` writes columns the way Python's ``csv.writer`` does (minimal quoting, CRLF line
ends), and ``csv_rounded`` writes floats as ``repr(round(x, 6))``, so the output is byte for byte
what the row-by-row writer wrote.

pyarrow imports pandas (0.7 s) the first time it converts a Python object (``pa.array``,
``pa.scalar``, a Python value passed to a compute function); nothing here does.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from numpy.typing import NDArray

from .readers import RowReader

__all__ = [
    "CodedColumn",
    "csv_rounded",
    "csv_text",
    "int_array",
    "read_coded",
    "strings",
    "write_csv",
]

#: What ``str.strip()`` strips: every character whose ``str.isspace()`` is true.
PY_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_TEXT = (pa.string(), pa.large_string())
#: Bytes per block pyarrow parses on a thread (its default); tests make it small to get many.
BLOCK_SIZE = 1 << 20


@dataclass(frozen=True)
class CodedColumn:
    """One column as ``values`` (distinct, stripped, first-seen order) and ``codes`` (one per
    row)."""

    values: pa.Array
    codes: NDArray[np.int32]


def read_coded(reader: RowReader, names: Sequence[str]) -> dict[str, CodedColumn] | None:
    """The columns ``names`` of the file ``reader`` opened (its header already checked), as codes.

    Cells are stripped as ``RowTable.text`` strips them. None when the row reader must read the
    file instead (see the module docstring); ``reader`` itself is left where it was.
    """
    fmt = getattr(reader, "format", None)
    try:
        if fmt in ("csv", "tsv"):
            columns = _csv_columns(reader, names)
        elif fmt == "parquet":
            columns = _parquet_columns(reader, names)
        else:
            return None
    except (pa.ArrowException, OSError, ValueError):
        return None
    if columns is None:
        return None
    out = {}
    for name, column in zip(names, columns):
        coded = _coded(column, first_seen=fmt != "parquet")
        if coded is None:
            return None
        out[name] = coded
    del columns
    pa.default_memory_pool().release_unused()  # the parsed blocks: hand them back to the system
    return out


def _csv_columns(reader: RowReader, names: Sequence[str]) -> list[pa.ChunkedArray] | None:
    """The named columns of a CSV/TSV file as dictionary arrays, or None if pyarrow might read
    it otherwise than the row reader (the encoding, a header spanning lines, lone CRs)."""
    if codecs.lookup(reader.encoding).name != "utf-8" or getattr(reader, "header_lines", None) != 1:
        return None
    assert reader.columns is not None
    lone_cr, quoted = _scan(reader.path)
    if lone_cr:
        return None  # pyarrow ends a line at a lone CR; the row reader does not
    width = len(reader.columns)
    wanted = {reader.columns.index(n) for n in names}
    # Every column is converted, so pyarrow checks the UTF-8 of every cell, as the row reader does.
    types = {
        f"f{i}": pa.dictionary(pa.int32(), pa.string()) if i in wanted else pa.string()
        for i in range(width)
    }
    table = pcsv.read_csv(
        reader.path,
        read_options=pcsv.ReadOptions(
            use_threads=True, block_size=BLOCK_SIZE, skip_rows=1, autogenerate_column_names=True
        ),
        # Without quotes no cell can hold a line break, and pyarrow may split blocks at any newline.
        parse_options=pcsv.ParseOptions(
            delimiter=getattr(reader, "delimiter", ","), newlines_in_values=quoted
        ),
        convert_options=pcsv.ConvertOptions(
            column_types=types, strings_can_be_null=False, quoted_strings_can_be_null=False
        ),
    )
    if table.num_columns != width:  # every row has the same width as the first; is it the header's?
        return None
    return [table.column(reader.columns.index(n)) for n in names]


def _scan(path: Path, block: int = 1 << 24) -> tuple[bool, bool]:
    """Whether the file has a carriage return outside a CRLF, and whether it has a quote."""
    lone_cr = quoted = False
    tail = b""
    with path.open("rb") as fh:
        while chunk := fh.read(block):
            data = tail + chunk if tail else chunk
            quoted = quoted or b'"' in data
            # A CR at the very end may be the first half of a CRLF split between reads.
            body, tail = (data[:-1], data[-1:]) if data.endswith(b"\r") else (data, b"")
            if b"\r" in body and body.count(b"\r") != body.count(b"\r\n"):
                lone_cr = True
                break
    return lone_cr or tail == b"\r", quoted


def _parquet_columns(reader: RowReader, names: Sequence[str]) -> list[pa.ChunkedArray] | None:
    """The named columns of a Parquet file: text (read straight into dictionaries) or integers,
    which ``_coded`` writes as ``str(int)`` does, as the row reader does. Other types: None."""
    schema = pq.read_schema(reader.path)
    types = [schema.field(n).type for n in names]
    text = [n for n, t in zip(names, types) if t in _TEXT]
    if not all(
        t in _TEXT
        or pa.types.is_integer(t)
        or (pa.types.is_dictionary(t) and t.value_type in _TEXT)
        for t in types
    ):
        return None
    table = pq.read_table(reader.path, columns=list(names), read_dictionary=text, use_threads=True)
    return [table.column(n) for n in names]


def _coded(column: pa.ChunkedArray, first_seen: bool) -> CodedColumn | None:
    """Codes of one column: one dictionary for all chunks, values stripped, first-seen order.

    ``first_seen``: the dictionaries are in first-seen order already (pyarrow's CSV reader builds
    each block's dictionary in row order, and unifying appends each block's new values in block
    order); a Parquet file's dictionaries are in whatever order its writer chose.
    """
    if column.null_count or not len(column):
        return None
    if pa.types.is_dictionary(column.type):
        combined = (
            column.combine_chunks()
        )  # one dictionary for all chunks, new values appended in chunk order
    else:  # integers: codes for the numbers, and only the distinct ones written as text
        combined = column.combine_chunks().dictionary_encode()
    values = combined.dictionary
    codes = _ints(combined.indices)
    if values.type != pa.string():
        values = values.cast(pa.string())
    stripped = pc.utf8_trim(values, characters=PY_WHITESPACE)
    if pc.sum(pc.binary_length(stripped)).as_py() != pc.sum(pc.binary_length(values)).as_py():
        # Stripping can make two values one (" a" and "a"): code the stripped values again. Their
        # order stays first-seen: each takes the place of its first variant.
        merged = stripped.dictionary_encode()
        codes = _ints(merged.indices)[codes]
        values = merged.dictionary
    if pc.min(pc.binary_length(values)).as_py() == 0:
        return None  # an empty cell: a bad row, which the row reader names
    if pc.any(pc.match_substring_regex(values, pattern="[\r\n]")).as_py():
        return None  # a line break inside a quoted cell: line numbers are the row reader's to count
    return CodedColumn(values, codes) if first_seen else _first_seen(values, codes)


def _first_seen(values: pa.Array, codes: NDArray[np.int32]) -> CodedColumn:
    """Renumber the values in the order of their first row, if they are not in it already."""
    first = np.full(len(values), codes.size, dtype=np.int64)
    np.minimum.at(first, codes, np.arange(codes.size, dtype=np.int64))
    if first.size < 2 or bool(np.all(first[1:] > first[:-1])):
        return CodedColumn(values, codes)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return CodedColumn(values.take(int_array(order)), rank.astype(np.int32)[codes])


def _ints(array: pa.Array) -> NDArray[np.int32]:
    """An int32 array's values as numpy, without ``to_numpy`` (which imports pandas)."""
    return np.frombuffer(
        array.buffers()[1], dtype=np.int32, count=len(array), offset=array.offset * 4
    )


def int_array(values: NDArray[np.integer]) -> pa.Array:
    """An int64 pyarrow array sharing numpy's buffer, without ``pa.array`` (which imports
    pandas)."""
    data = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), data.size, [None, pa.py_buffer(data)])


def strings(values: Sequence[str | bytes]) -> pa.Array:
    """A large_string array of Python strings, built without ``pa.array`` (which imports pandas)."""
    encoded = [v.encode("utf-8") if isinstance(v, str) else v for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(np.fromiter((len(b) for b in encoded), np.int64, len(encoded)), out=offsets[1:])
    return pa.Array.from_buffers(
        pa.large_string(),
        len(encoded),
        [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))],
    )


def _from_matrix(cells: NDArray[np.uint8], lengths: NDArray[np.int64]) -> pa.Array:
    """Strings from a (rows, width) byte matrix: row i is its first ``lengths[i]`` bytes."""
    data = cells[np.arange(cells.shape[1]) < lengths[:, None]]
    offsets = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return pa.Array.from_buffers(
        pa.large_string(), lengths.size, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def csv_rounded(x: NDArray[np.float64]) -> pa.Array:
    """``repr(round(v, 6))`` of every value, as the csv writer wrote them: ``0.5``, ``1.0``,
    ``0.123457``.

    Vectorised for values in [0.0001, 1]; a value within a hair of a rounding tie, below 0.0001
    (written like ``5e-05``), above 1 or not finite is formatted by Python itself.
    """
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        scaled = x * 1e6
        micro = np.rint(scaled)
        odd = (
            ~np.isfinite(x)
            | (np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6)
            | (micro < 100)
            | (micro > 10**6)
        )
    m = np.where(odd, 0, micro).astype(np.int32)
    cells = np.empty((x.size, 8), dtype=np.uint8)
    cells[:, 0] = ord("0") + m // 10**6
    cells[:, 1] = ord(".")
    frac = m % 10**6
    for j in range(6):
        cells[:, 2 + j] = ord("0") + frac // 10 ** (5 - j) % 10
    digit = cells[:, 2:] != ord(
        "0"
    )  # the last one that is not 0 ends the text; "0.0"/"1.0" if none is
    lengths = np.where(digit.any(axis=1), 8 - np.argmax(digit[:, ::-1], axis=1), 3).astype(np.int64)
    where = np.flatnonzero(odd)
    if where.size:
        texts = [repr(round(v, 6)).encode() for v in x[where].tolist()]
        width = max(8, *(len(t) for t in texts))
        if width > 8:
            cells = np.pad(cells, ((0, 0), (0, width - 8)))
        for i, t in zip(where.tolist(), texts):
            cells[i, : len(t)] = np.frombuffer(t, dtype=np.uint8)
            lengths[i] = len(t)
    return _from_matrix(cells, lengths)


def csv_text(values: pa.Array) -> pa.Array:
    """Text cells as ``csv.writer`` writes them: quoted, inner quotes doubled, only where a comma,
    a quote or a line break needs it."""
    values = values.cast(pa.large_string())
    needs = pc.match_substring_regex(values, pattern='[,"\r\n]')
    if not pc.any(needs).as_py():
        return values
    quote, empty = strings(['"', ""])
    quoted = pc.binary_join_element_wise(
        quote, pc.replace_substring(values, pattern='"', replacement='""'), quote, empty
    )
    return pc.if_else(needs, quoted, values)


def write_csv(
    path: Path, header: Sequence[str], columns: Sequence[pa.Array], *, chunk_rows: int = 1 << 20
) -> None:
    """Write ``columns`` (cells already as CSV text: see ``csv_text`` and ``csv_rounded``) under
    ``header`` as ``csv.writer`` would, CRLF line ends included; atomically (a temporary file
    replaces ``path`` only once complete)."""
    head = io.StringIO()
    csv.writer(head).writerow(header)
    comma, crlf, empty = strings([",", "\r\n", ""])
    rows = len(columns[0]) if columns else 0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("wb") as fh:
            fh.write(head.getvalue().encode("utf-8"))
            for lo in range(0, rows, chunk_rows):
                cells = [c.slice(lo, chunk_rows).cast(pa.large_string()) for c in columns]
                lines = pc.binary_join_element_wise(
                    pc.binary_join_element_wise(*cells, comma), empty, crlf
                )
                offsets = np.frombuffer(
                    lines.buffers()[1],
                    dtype=np.int64,
                    count=len(lines) + 1,
                    offset=lines.offset * 8,
                )
                fh.write(memoryview(lines.buffers()[2])[offsets[0] : offsets[-1]])
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
