"""File mode: resolve label files with no project and no database.

The files are read into codes (a ``FileClaims``) by ``read_label_files``, in the labels module
of the io package, which also writes the ``FileResolution`` that ``resolve_files`` returns back
out. This module reads and writes no file itself, so resolve never reaches up into the io
package.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from ..errors import VeritagError
from ..truth import ENGINE_VERSION, METHODS
from .core import DEFAULT_METHOD, Resolution, RunInfo
from .fit import fit_categorical

__all__ = [
    "FileClaims",
    "FileResolution",
    "RankedSource",
    "project_source_rows",
    "rank_sources",
    "resolve_files",
]

#: One source as ``rank_sources`` orders them: (name, kind, claims, estimated accuracy), kind
#: "human" or "model", accuracy NaN where nothing measured it.
RankedSource = tuple[str, str, int, float]


@dataclass(frozen=True)
class FileClaims:
    """Label files read as codes, ready to resolve (made by ``read_label_files``).

    ``tasks`` maps each task name to its item code: first-seen order in the labels file, then the
    tasks only the model or gold file names. ``classes`` are the class names in code order and
    ``sources`` the (name, kind) of each source code, kind "human" (a worker) or "model". Per
    claim: ``human`` holds (item, source, class) codes, ``model`` (item, source, probability
    row), ``gold`` (item, class).
    """

    tasks: Mapping[str, int]
    classes: list[str]
    sources: list[tuple[str, str]]
    human: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]
    model: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]
    gold: tuple[NDArray[np.int64], NDArray[np.int64]]


@dataclass
class FileResolution:
    """What ``resolve_files`` found: one label per task, and per worker (or model) statistics.

    ``task_names`` and ``label_codes`` (into ``classes``) hold the answer without a Python object
    per task; ``tasks``, ``labels`` and ``label_source`` are the same as lists, made on first use.
    """

    task_names: Mapping[str, int]
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

    def source_rows(self) -> list[RankedSource]:
        """(name, kind, claims, accuracy) per worker and model, best first (``rank_sources``)."""
        return rank_sources(
            [
                (name, kind, int(n), float(acc))
                for (name, kind), n, acc in zip(
                    self.sources, self.n_claims.tolist(), self.accuracy.tolist()
                )
            ]
        )


def rank_sources(rows: list[RankedSource]) -> list[RankedSource]:
    """Sources by estimated accuracy, best first; then by claims; unmeasured (NaN) ones last."""
    return sorted(
        rows,
        key=lambda r: (math.isnan(r[3]), -(0.0 if math.isnan(r[3]) else r[3]), -r[2], r[0], r[1]),
    )


def project_source_rows(
    resolution: Resolution, names: dict[int, tuple[str, str]]
) -> list[RankedSource]:
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


def resolve_files(claims: FileClaims, *, method: str = DEFAULT_METHOD) -> FileResolution:
    """Resolve label files read as codes (by ``read_label_files``): one label per task from the
    workers' labels, the models' probability rows and the gold labels."""
    if method not in METHODS:
        raise VeritagError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    fit = fit_categorical(
        claims.human,
        claims.model,
        claims.gold,
        n_items=len(claims.tasks),
        n_sources=len(claims.sources),
        n_classes=max(len(claims.classes), 1),
        method=method,
    )
    best = fit.posterior.argmax(axis=1)
    run = RunInfo(method, ENGINE_VERSION, {}, None, 0, True)
    return FileResolution(
        task_names=claims.tasks,
        label_codes=best,
        confidence=fit.posterior.max(axis=1),
        classes=claims.classes,
        sources=claims.sources,
        accuracy=fit.accuracy,
        n_claims=fit.n_claims,
        method=method if fit.chosen is None else f"{method} (chose {fit.chosen})",
        n_iter=fit.n_iter,
        converged=fit.converged,
        n_labels=claims.human[0].size,
        n_model_rows=claims.model[0].size,
        n_gold=claims.gold[0].size,
        basis=fit.basis,
        label_source_names=(run.label_source, "model", "gold"),
    )
