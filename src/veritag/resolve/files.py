"""File mode: resolve a long task,worker,label file with no project and no database."""

from __future__ import annotations

import csv
import math
import os
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ..errors import InputError, RowError, VeritagError
from ..truth import ENGINE_VERSION, METHODS
from .core import DEFAULT_METHOD, SHOWN_ERRORS, Resolution, RunInfo
from .fit import fit_categorical

if TYPE_CHECKING:
    import pyarrow as pa

    from ..io.columnar import CodedColumn
    from ..io.readers import RowReader

# --- file mode: no project, no database -------------------------------------------------------


@dataclass
class FileResolution:
    """What ``resolve_files`` found: one label per task, and per worker (or model) statistics.

    ``task_names`` and ``label_codes`` (into ``classes``) hold the answer without a Python object
    per task; ``tasks``, ``labels`` and ``label_source`` are the same as lists, made on first use.
    """

    task_names: Names
    label_codes: NDArray[np.int64]
    confidence: NDArray[np.float64]
    classes: list[str]
    sources: list[tuple[str, str]]  # (name, kind) with kind "human" or "model"
    accuracy: NDArray[np.float64]
    n_claims: NDArray[np.int64]
    method: str
    n_iter: int
    converged: bool
    n_labels: int = 0
    n_model_rows: int = 0
    n_gold: int = 0
    basis: NDArray[np.int8] | None = None
    label_source_names: tuple[str, ...] = ()

    @property
    def n_tasks(self) -> int:
        return len(self.task_names)

    @cached_property
    def tasks(self) -> list[str]:
        return list(self.task_names)

    @cached_property
    def labels(self) -> list[str]:
        return [self.classes[i] for i in self.label_codes.tolist()]

    @cached_property
    def label_source(self) -> list[str]:
        """Per task what decided it: the method and engine, ``model`` or ``gold``."""
        return (
            [] if self.basis is None else [self.label_source_names[b] for b in self.basis.tolist()]
        )

    def source_rows(self) -> list[SourceRow]:
        """(name, kind, claims, accuracy) per worker and model, best first (see ``rank_sources``)."""
        return rank_sources(
            [
                (name, kind, int(n), float(acc))
                for (name, kind), n, acc in zip(
                    self.sources, self.n_claims.tolist(), self.accuracy.tolist()
                )
            ]
        )


SourceRow = tuple[str, str, int, float]


def rank_sources(rows: list[SourceRow]) -> list[SourceRow]:
    """Sources by estimated accuracy, best first; then by claims; unmeasured (NaN) ones last."""
    return sorted(
        rows,
        key=lambda r: (math.isnan(r[3]), -(0.0 if math.isnan(r[3]) else r[3]), -r[2], r[0], r[1]),
    )


def project_source_rows(
    resolution: Resolution, names: dict[int, tuple[str, str]]
) -> list[SourceRow]:
    """``rank_sources`` rows of a project resolution; ``names`` is ``{source id: (kind, name)}``."""
    stats = resolution.sources
    if stats is None:
        return []
    return rank_sources(
        [
            (names.get(sid, ("", str(sid)))[1], names.get(sid, ("", ""))[0], int(n), float(acc))
            for sid, acc, n in zip(
                stats.source_ids.tolist(), stats.accuracy.tolist(), stats.n_claims.tolist()
            )
        ]
    )


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
        from ..io.readers import open_rows  # not at module level: veritag.io imports this package

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
        """The required columns as codes, read whole by pyarrow, when the columnar reader can vouch
        for the file (see ``veritag.io.columnar``); else None, and ``rows()`` reads it row by row."""
        from ..io.columnar import read_coded

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


def _class_order(names: list[str]) -> list[str]:
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
        from ..io.columnar import strings

        if self._known is None:
            return strings(self._added)
        if not self._added:
            return self._known
        import pyarrow as pa

        return pa.concat_arrays([self._known.cast(pa.large_string()), strings(self._added)])


@dataclass
class LongLabels:
    """A long ``task,worker,label`` file as codes: ``tasks``/``workers``/``classes`` map each name to
    its code in first-seen order; ``item_codes``, ``worker_codes`` and ``label_codes`` hold one
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


def resolve_files(
    labels: Path,
    *,
    method: str = DEFAULT_METHOD,
    gold: Path | None = None,
    model_probs: Path | None = None,
    encoding: str = "utf-8",
) -> FileResolution:
    """Resolve a long ``task,worker,label`` file, with optional gold labels and model probabilities.

    Classes are the distinct labels of ``labels``, kept as the text they were written as. Gold
    is ``task,label``; model probabilities are ``task,<one column per class>`` (one model) or
    ``task,model,<classes>`` (several), each row normalised to sum to 1. A gold label or a
    probability column that is not one of the classes is an error, as is a class without a
    probability column. Every bad row is named by file and line, and nothing is resolved.
    """
    if method not in METHODS:
        raise VeritagError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    errors: list[RowError] = []
    bad = [0]
    long = read_long_labels(labels, encoding, errors, bad)
    tasks, classes = long.tasks, long.classes
    h_item, h_src, h_label = long.item_codes, long.worker_codes, long.label_codes
    sources: dict[tuple[str, str], int] = {(w, "human"): i for w, i in long.workers.items()}
    if not h_item.size and not bad[0]:
        raise InputError(f"{labels}: no labels to resolve")
    order = _class_order(list(classes))
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
                        f"{model_probs}: column(s) {extra} are not among the labels in {labels}: {order}"
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

    def ints(values: array[int]) -> NDArray[np.int64]:
        return np.frombuffer(values, dtype=np.int64) if len(values) else np.zeros(0, np.int64)

    fit = fit_categorical(
        (h_item.astype(np.int64, copy=False), h_src.astype(np.int64, copy=False), remap[h_label]),
        (
            ints(m_item),
            ints(m_src),
            np.frombuffer(m_rows, dtype=np.float64).reshape(-1, k)
            if len(m_rows)
            else np.zeros((0, k)),
        ),
        (ints(g_item), ints(g_label)),
        n_items=len(tasks),
        n_sources=len(sources),
        n_classes=k,
        method=method,
    )
    best = fit.posterior.argmax(axis=1)
    run = RunInfo(method, ENGINE_VERSION, {}, None, 0, True)
    return FileResolution(
        task_names=tasks,
        label_codes=best,
        confidence=fit.posterior.max(axis=1),
        classes=order,
        sources=list(sources),
        accuracy=fit.accuracy,
        n_claims=fit.n_claims,
        method=method if fit.chosen is None else f"{method} (chose {fit.chosen})",
        n_iter=fit.n_iter,
        converged=fit.converged,
        n_labels=h_item.size,
        n_model_rows=len(m_item),
        n_gold=len(g_item),
        basis=fit.basis,
        label_source_names=(run.label_source, "model", "gold"),
    )


def _write_atomic(path: Path, header: list[str], rows: Iterator[list[Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_labels(result: FileResolution, out: Path) -> None:
    """``task,label,confidence`` per task, in the order tasks first appear in the inputs.

    Written by whole columns (``veritag.io.columnar.write_csv``), byte for byte what ``csv.writer``
    wrote row by row: the confidence rounded to 6 places as Python writes a float.
    """
    from ..io.columnar import csv_rounded, csv_text, int_array, strings, write_csv

    labels = csv_text(strings(result.classes)).take(int_array(result.label_codes))
    write_csv(
        out,
        ["task", "label", "confidence"],
        [csv_text(result.task_names.to_arrow()), labels, csv_rounded(result.confidence)],
    )


def write_sources(rows: list[SourceRow], out: Path) -> None:
    """``worker,kind,n_claims,accuracy`` per source (accuracy empty where unmeasured)."""
    _write_atomic(
        out,
        ["worker", "kind", "n_claims", "accuracy"],
        ([name, kind, n, "" if math.isnan(acc) else round(acc, 6)] for name, kind, n, acc in rows),
    )
