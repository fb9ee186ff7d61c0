"""Label files for file mode: read a long ``task,worker,label`` file (and gold labels and model
probabilities) into codes, and write the resolved labels and the per-source table back out.

Reading is here, with the other readers, so that ``veritag.resolve`` resolves codes and never
reaches up into ``veritag.io``: ``read_label_files`` hands ``resolve.files.resolve_files`` a
``FileClaims``. Every bad row of every file is collected (``RowTable``) and named by file and line
in one error (``raise_bad_rows``) before anything is resolved. ``read_long_labels`` and
``RowTable`` also read the files of the routing and automation simulators.
"""

from __future__ import annotations

import csv
import math
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ..errors import InputError, RowError
from ..resolve.files import FileClaims, FileResolution, RankedSource
from .atomic import atomic_write
from .readers import SHOWN_ERRORS, RowReader, open_rows

if TYPE_CHECKING:
    import pyarrow as pa

    from .columnar import CodedColumn

__all__ = [
    "LongLabels",
    "Names",
    "RowTable",
    "class_order",
    "raise_bad_rows",
    "read_label_files",
    "read_long_labels",
    "write_labels",
    "write_sources",
]


class RowTable:
    """Streams one input file's rows, checks the named columns, collects bad rows.

    ``errors`` and ``counts`` may be shared by several tables, so one report covers every file
    of a run (see ``raise_bad_rows``).
    """

    def __init__(
        self,
        path: Path,
        encoding: str,
        required: tuple[str, ...],
        errors: list[RowError],
        counts: list[int],
    ) -> None:
        self.reader: RowReader = open_rows(path, encoding=encoding)
        self.file = str(path)
        self.required = required
        self.errors = errors
        self.counts = counts
        if self.reader.columns is not None:
            self.check_columns(self.reader.columns)

    def check_columns(self, columns: list[str]) -> None:
        missing = [c for c in self.required if c not in columns]
        if missing:
            self.reader.close()
            raise InputError(f"{self.file}: missing column(s) {missing}; columns found: {columns}")

    def fail(self, line: int, column: str | None, message: str) -> None:
        self.counts[0] += 1
        if len(self.errors) < SHOWN_ERRORS:
            self.errors.append(RowError(self.file, line, column, message, unit=self.reader.unit))

    def coded(self) -> dict[str, CodedColumn] | None:
        """The required columns as codes, read whole by pyarrow, when the columnar reader can
        vouch for the file (see ``veritag.io.columnar``); else None, and ``rows()`` reads it row
        by row."""
        from .columnar import read_coded

        coded = read_coded(self.reader, self.required)
        if coded is not None:
            self.reader.close()
        return coded

    def rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        try:
            for row in self.reader:
                if row.error is not None:
                    self.fail(row.line, None, row.error)
                    continue
                absent = [c for c in self.required if c not in row.values]
                if absent:
                    self.fail(row.line, absent[0], f"missing field {absent[0]!r}")
                    continue
                yield row.line, row.values
        finally:
            self.reader.close()

    def text(self, line: int, values: dict[str, Any], column: str) -> str | None:
        """A cell as the text it was written as; None (and a row error) if empty or not a scalar."""
        value = values.get(column)
        if isinstance(value, bool):
            value = str(value).lower()
        elif isinstance(value, (int, float)):
            value = str(value)
        if not isinstance(value, str):
            self.fail(
                line,
                column,
                "the value is empty" if value is None else f"expected one value, got {value!r}",
            )
            return None
        value = value.strip()
        if not value:
            self.fail(line, column, "the value is empty")
            return None
        return value


def raise_bad_rows(errors: list[RowError], counts: list[int], outcome: str) -> None:
    """One error naming the first bad rows (file and line) and how many there were in all."""
    if counts[0]:
        shown = "\n".join(str(e) for e in errors)
        more = (
            f"\n... and {counts[0] - len(errors)} more bad row(s)"
            if counts[0] > len(errors)
            else ""
        )
        raise InputError(f"{counts[0]} bad row(s); {outcome}:\n{shown}{more}")


def class_order(names: list[str]) -> list[str]:
    """Numbers in numeric order when every class is a number, else text order."""
    try:
        return sorted(names, key=lambda s: (float(s), s))
    except ValueError:
        return sorted(names)


class Names(Mapping[str, int]):
    """Distinct names, each coded by its place in first-seen order; ``setdefault`` adds one.

    The columnar reader hands over a million task ids as one pyarrow array; the dict that looks a
    name up is built only when something asks (gold labels, model rows), so plain file mode makes
    no Python object per task.
    """

    def __init__(self, known: pa.Array | None = None) -> None:
        self._known = known
        self._n_known = 0 if known is None else len(known)
        self._index: dict[str, int] | None = {} if known is None else None
        self._added: list[str] = []

    def _lookup(self) -> dict[str, int]:
        if self._index is None:
            assert self._known is not None
            self._index = {name: i for i, name in enumerate(self._known.to_pylist())}
        return self._index

    def __getitem__(self, name: str) -> int:
        return self._lookup()[name]

    def __contains__(self, name: object) -> bool:
        return name in self._lookup()

    def __len__(self) -> int:
        return self._n_known + len(self._added)

    def __iter__(self) -> Iterator[str]:
        if self._known is not None:
            yield from self._known.to_pylist()
        yield from self._added

    def setdefault(self, name: str, default: int | None = None) -> int:  # type: ignore[override]
        """The code of ``name``, adding it (as the next code; ``default`` is ignored) if new."""
        index = self._lookup()
        code = index.get(name)
        if code is None:
            code = index[name] = len(self)
            self._added.append(name)
        return code

    def to_arrow(self) -> pa.Array:
        """All names, in code order, as one pyarrow array."""
        from .columnar import strings

        if self._known is None:
            return strings(self._added)
        if not self._added:
            return self._known
        import pyarrow as pa

        return pa.concat_arrays([self._known.cast(pa.large_string()), strings(self._added)])


@dataclass
class LongLabels:
    """A long ``task,worker,label`` file as codes: ``tasks``/``workers``/``classes`` map each name
    to its code in first-seen order; ``item_codes``, ``worker_codes`` and ``label_codes`` hold one
    code per row (``item``, ``worker``, ``label``: the same as 8-byte ``array``s)."""

    tasks: Names
    workers: Names
    classes: Names
    item_codes: NDArray[np.integer]
    worker_codes: NDArray[np.integer]
    label_codes: NDArray[np.integer]

    @property
    def item(self) -> array:
        return _array(self.item_codes)

    @property
    def worker(self) -> array:
        return _array(self.worker_codes)

    @property
    def label(self) -> array:
        return _array(self.label_codes)


def _array(codes: NDArray[np.integer]) -> array:
    out = array("q")
    out.frombytes(memoryview(np.ascontiguousarray(codes, dtype=np.int64)).cast("B"))
    return out


_LONG = ("task", "worker", "label")


def read_long_labels(
    path: Path, encoding: str, errors: list[RowError], bad: list[int]
) -> LongLabels:
    """Read ``task,worker,label`` rows; bad rows are collected in ``errors`` (see ``RowTable``).

    Whole columns through pyarrow when it can vouch for the file (``RowTable.coded``): int32 codes,
    and the names as pyarrow arrays. Else row by row, which names every bad row, with codes in
    8-byte arrays, not lists of Python ints.
    """
    table = RowTable(path, encoding, _LONG, errors, bad)
    coded = table.coded()
    if coded is not None:
        return LongLabels(
            *(Names(coded[c].values) for c in _LONG), *(coded[c].codes for c in _LONG)
        )
    tasks, workers, classes = Names(), Names(), Names()
    item, worker, label = array("q"), array("q"), array("q")
    for line, values in table.rows():
        t, w, c = (table.text(line, values, name) for name in _LONG)
        if t is None or w is None or c is None:
            continue
        item.append(tasks.setdefault(t))
        worker.append(workers.setdefault(w))
        label.append(classes.setdefault(c))
    return LongLabels(
        tasks, workers, classes, *(np.frombuffer(a, dtype=np.int64) for a in (item, worker, label))
    )


def read_label_files(
    labels: Path,
    *,
    gold: Path | None = None,
    model_probs: Path | None = None,
    encoding: str = "utf-8",
) -> FileClaims:
    """A long ``task,worker,label`` file, with optional gold labels and model probabilities, as
    the codes ``resolve.files.resolve_files`` resolves.

    Classes are the distinct labels of ``labels``, kept as the text they were written as. Gold
    is ``task,label``; model probabilities are ``task,<one column per class>`` (one model) or
    ``task,model,<classes>`` (several), each row normalised to sum to 1. A gold label or a
    probability column that is not one of the classes is an error, as is a class without a
    probability column. Every bad row is named by file and line, and nothing is returned.
    """
    errors: list[RowError] = []
    bad = [0]
    long = read_long_labels(labels, encoding, errors, bad)
    tasks, classes = long.tasks, long.classes
    h_item, h_src, h_label = long.item_codes, long.worker_codes, long.label_codes
    sources: dict[tuple[str, str], int] = {(w, "human"): i for w, i in long.workers.items()}
    if not h_item.size and not bad[0]:
        raise InputError(f"{labels}: no labels to resolve")
    order = class_order(list(classes))
    remap = np.array([order.index(c) for c in classes], dtype=np.int64)
    class_index = {c: i for i, c in enumerate(order)}
    k = max(len(order), 1)

    m_item, m_src, m_rows = array("q"), array("q"), array("d")
    if model_probs is not None:
        table = RowTable(model_probs, encoding, ("task",), errors, bad)
        columns: list[str] | None = None
        for line, values in table.rows():
            if columns is None:
                columns = [
                    c for c in (table.reader.columns or list(values)) if c not in ("task", "model")
                ]
                extra = [c for c in columns if c not in class_index]
                if extra:
                    table.reader.close()
                    raise InputError(
                        f"{model_probs}: column(s) {extra} are not among the labels in {labels}: "
                        f"{order}"
                    )
                absent = [c for c in order if c not in columns]
                if absent:
                    table.reader.close()
                    raise InputError(
                        f"{model_probs}: no probability column for class(es) {absent}; "
                        f"expected task[,model],{','.join(order)}"
                    )
            task = table.text(line, values, "task")
            model = table.text(line, values, "model") if "model" in values else "model"
            if task is None or model is None:
                continue
            row = []
            for c in order:
                try:
                    p = float(values.get(c))  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    table.fail(line, c, f"{values.get(c)!r} is not a number")
                    break
                if not math.isfinite(p) or p < 0:
                    table.fail(line, c, f"{p!r} is not a probability (finite and >= 0)")
                    break
                row.append(p)
            else:
                if sum(row) <= 0:
                    table.fail(line, None, "the probabilities sum to 0")
                    continue
                m_item.append(tasks.setdefault(task, len(tasks)))
                m_src.append(sources.setdefault((model, "model"), len(sources)))
                m_rows.extend(row)

    g_item, g_label, g_line = array("q"), array("q"), {}
    if gold is not None:
        table = RowTable(gold, encoding, ("task", "label"), errors, bad)
        for line, values in table.rows():
            task, label = table.text(line, values, "task"), table.text(line, values, "label")
            if task is None or label is None:
                continue
            if label not in class_index:
                table.fail(line, "label", f"{label!r} is not among the labels in {labels}: {order}")
                continue
            if task in g_line:
                first_line, first_label = g_line[task]
                if first_label != label:
                    table.fail(
                        line,
                        "label",
                        f"task {task!r} has gold label {first_label!r} on line {first_line}",
                    )
                continue
            g_line[task] = (line, label)
            g_item.append(tasks.setdefault(task, len(tasks)))
            g_label.append(class_index[label])
    raise_bad_rows(errors, bad, "nothing was resolved")

    return FileClaims(
        tasks=tasks,
        classes=order,
        sources=list(sources),
        human=(
            h_item.astype(np.int64, copy=False),
            h_src.astype(np.int64, copy=False),
            remap[h_label],
        ),
        model=(
            _ints(m_item),
            _ints(m_src),
            np.frombuffer(m_rows, dtype=np.float64).reshape(-1, k)
            if len(m_rows)
            else np.zeros((0, k)),
        ),
        gold=(_ints(g_item), _ints(g_label)),
    )


def _ints(values: array[int]) -> NDArray[np.int64]:
    return np.frombuffer(values, dtype=np.int64) if len(values) else np.zeros(0, np.int64)


def _write_csv(path: Path, header: list[str], rows: Iterator[list[Any]]) -> None:
    with atomic_write(path) as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def write_labels(result: FileResolution, out: Path) -> None:
    """``task,label,confidence`` per task, in the order tasks first appear in the inputs.

    Written by whole columns (``veritag.io.columnar.write_csv``), byte for byte what ``csv.writer``
    wrote row by row: the confidence rounded to 6 places as Python writes a float.
    """
    from .columnar import csv_rounded, csv_text, int_array, strings, write_csv

    names = result.task_names
    tasks = names.to_arrow() if isinstance(names, Names) else strings(list(names))
    labels = csv_text(strings(result.classes)).take(int_array(result.label_codes))
    write_csv(
        out,
        ["task", "label", "confidence"],
        [csv_text(tasks), labels, csv_rounded(result.confidence)],
    )


def write_sources(rows: list[RankedSource], out: Path) -> None:
    """``worker,kind,n_claims,accuracy`` per source (accuracy empty where unmeasured)."""
    _write_csv(
        out,
        ["worker", "kind", "n_claims", "accuracy"],
        ([name, kind, n, "" if math.isnan(acc) else round(acc, 6)] for name, kind, n, acc in rows),
    )
