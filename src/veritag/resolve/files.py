"""File mode: resolve a long task,worker,label file with no project and no database."""

from __future__ import annotations

import csv
import math
import os
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ..errors import InputError, RowError, VeritagError
from ..truth import ENGINE_VERSION, METHODS
from .core import DEFAULT_METHOD, SHOWN_ERRORS, Resolution, RunInfo, _fit_categorical

if TYPE_CHECKING:
    from ..io.readers import RowReader

# --- file mode: no project, no database -------------------------------------------------------


@dataclass
class FileResolution:
    """What ``resolve_files`` found: one label per task, and per worker (or model) statistics."""

    tasks: list[str]
    labels: list[str]
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
    label_source: list[str] = field(default_factory=list)

    def source_rows(self) -> list[SourceRow]:
        """(name, kind, claims, accuracy) per worker and model, best first (see ``rank_sources``)."""
        return rank_sources([(name, kind, int(n), float(acc)) for (name, kind), n, acc
                             in zip(self.sources, self.n_claims.tolist(), self.accuracy.tolist())])


SourceRow = tuple[str, str, int, float]


def rank_sources(rows: list[SourceRow]) -> list[SourceRow]:
    """Sources by estimated accuracy, best first; then by claims; unmeasured (NaN) ones last."""
    return sorted(rows, key=lambda r: (math.isnan(r[3]), -(0.0 if math.isnan(r[3]) else r[3]), -r[2], r[0], r[1]))


def project_source_rows(resolution: Resolution, names: dict[int, tuple[str, str]]) -> list[SourceRow]:
    """``rank_sources`` rows of a project resolution; ``names`` is ``{source id: (kind, name)}``."""
    stats = resolution.sources
    if stats is None:
        return []
    return rank_sources([
        (names.get(sid, ("", str(sid)))[1], names.get(sid, ("", ""))[0], int(n), float(acc))
        for sid, acc, n in zip(stats.source_ids.tolist(), stats.accuracy.tolist(), stats.n_claims.tolist())
    ])


class RowTable:
    """Streams one input file's rows, checks the named columns, collects bad rows.

    ``errors`` and ``counts`` may be shared by several tables, so one report covers every file
    of a run (see ``raise_bad_rows``).
    """

    def __init__(self, path: Path, encoding: str, required: tuple[str, ...], errors: list[RowError],
                 counts: list[int]) -> None:
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
            self.fail(line, column, "the value is empty" if value is None else f"expected one value, got {value!r}")
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
        more = f"\n... and {counts[0] - len(errors)} more bad row(s)" if counts[0] > len(errors) else ""
        raise InputError(f"{counts[0]} bad row(s); {outcome}:\n{shown}{more}")


def _class_order(names: list[str]) -> list[str]:
    """Numbers in numeric order when every class is a number, else text order."""
    try:
        return sorted(names, key=lambda s: (float(s), s))
    except ValueError:
        return sorted(names)


@dataclass
class LongLabels:
    """A long ``task,worker,label`` file as codes: ``tasks``/``workers``/``classes`` map each name to
    its code in first-seen order; ``item``, ``worker`` and ``label`` hold one code per row."""

    tasks: dict[str, int]
    workers: dict[str, int]
    classes: dict[str, int]
    item: array
    worker: array
    label: array


def read_long_labels(path: Path, encoding: str, errors: list[RowError], bad: list[int]) -> LongLabels:
    """Read ``task,worker,label`` rows; bad rows are collected in ``errors`` (see ``RowTable``).

    Codes go into 8-byte arrays, not lists of Python ints: a file of millions of rows stays small.
    """
    out = LongLabels({}, {}, {}, array("q"), array("q"), array("q"))
    table = RowTable(path, encoding, ("task", "worker", "label"), errors, bad)
    for line, values in table.rows():
        task, worker, label = (table.text(line, values, c) for c in ("task", "worker", "label"))
        if task is None or worker is None or label is None:
            continue
        out.item.append(out.tasks.setdefault(task, len(out.tasks)))
        out.worker.append(out.workers.setdefault(worker, len(out.workers)))
        out.label.append(out.classes.setdefault(label, len(out.classes)))
    return out


def resolve_files(labels: Path, *, method: str = DEFAULT_METHOD, gold: Path | None = None,
                  model_probs: Path | None = None, encoding: str = "utf-8") -> FileResolution:
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
    tasks, classes, h_item, h_src, h_label = long.tasks, long.classes, long.item, long.worker, long.label
    sources: dict[tuple[str, str], int] = {(w, "human"): i for w, i in long.workers.items()}
    if not h_item and not bad[0]:
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
                columns = [c for c in (table.reader.columns or list(values)) if c not in ("task", "model")]
                extra = [c for c in columns if c not in class_index]
                if extra:
                    table.reader.close()
                    raise InputError(f"{model_probs}: column(s) {extra} are not among the labels in {labels}: {order}")
                absent = [c for c in order if c not in columns]
                if absent:
                    table.reader.close()
                    raise InputError(f"{model_probs}: no probability column for class(es) {absent}; "
                                     f"expected task[,model],{','.join(order)}")
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
                    table.fail(line, "label", f"task {task!r} has gold label {first_label!r} on line {first_line}")
                continue
            g_line[task] = (line, label)
            g_item.append(tasks.setdefault(task, len(tasks)))
            g_label.append(class_index[label])
    raise_bad_rows(errors, bad, "nothing was resolved")

    def ints(values: array[int]) -> NDArray[np.int64]:
        return np.frombuffer(values, dtype=np.int64) if len(values) else np.zeros(0, np.int64)

    fit = _fit_categorical(
        (ints(h_item), ints(h_src), remap[ints(h_label)] if len(h_label) else np.zeros(0, np.int64)),
        (ints(m_item), ints(m_src),
         np.frombuffer(m_rows, dtype=np.float64).reshape(-1, k) if len(m_rows) else np.zeros((0, k))),
        (ints(g_item), ints(g_label)),
        n_items=len(tasks), n_sources=len(sources), n_classes=k, method=method,
    )
    best = fit.posterior.argmax(axis=1)
    run = RunInfo(method, ENGINE_VERSION, {}, None, 0, True)
    source_names = [run.label_source, "model", "gold"]
    return FileResolution(
        tasks=list(tasks), labels=[order[i] for i in best.tolist()], confidence=fit.posterior.max(axis=1),
        classes=order, sources=list(sources), accuracy=fit.accuracy, n_claims=fit.n_claims, method=method,
        n_iter=fit.n_iter, converged=fit.converged, n_labels=len(h_item), n_model_rows=len(m_item),
        n_gold=len(g_item), label_source=[source_names[b] for b in fit.basis.tolist()],
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
    """``task,label,confidence`` per task, in the order tasks first appear in the inputs."""
    _write_atomic(out, ["task", "label", "confidence"],
                  ([t, label, round(c, 6)] for t, label, c in zip(result.tasks, result.labels, result.confidence.tolist())))


def write_sources(rows: list[SourceRow], out: Path) -> None:
    """``worker,kind,n_claims,accuracy`` per source (accuracy empty where unmeasured)."""
    _write_atomic(out, ["worker", "kind", "n_claims", "accuracy"], (
        [name, kind, n, "" if math.isnan(acc) else round(acc, 6)] for name, kind, n, acc in rows
    ))
