"""Results, constants and the numeric core shared by project and file resolution."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import VeritagError
from ..schema import BaseSchema, MultiLabelSchema, canonical_json
from ..truth import METHODS, Claims, ConvergenceWarning, fit_truth
from .defaults import DEFAULT_METHOD, OPEN_METHOD  # noqa: F401 (re-exported: resolve.core.DEFAULT_METHOD)

#: Engine settings every run uses; stored with the run. ``tol=None``: each method's own (crowd-kit's 1e-5
#: on its lower bound for ``ds``/``onecoin``, see ``veritag.truth.engine.DEFAULT_TOL``).
ENGINE_PARAMS: dict[str, Any] = {"max_iter": 100, "tol": None, "shrinkage": 0.5, "bins": 5}
BASES = ("claims", "model", "gold")  # Resolution.basis codes 0, 1, 2
_CLAIMS, _MODEL, _GOLD = 0, 1, 2
_CHUNK = 100_000
_WRITE_BATCH = 20_000
SHOWN_ERRORS = 20


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunInfo:
    """How a resolution was made and what it covered (one ``truth_runs`` row once stored)."""

    method: str
    engine_version: str
    params: dict[str, Any]
    log_likelihood: float | None
    n_iter: int
    converged: bool
    max_claim_id: int = 0
    gold_count: int = 0
    run_id: int | None = None
    created_at: datetime | None = None

    @property
    def label_source(self) -> str:
        """What exports write as ``label_source`` for an item resolved from its claims."""
        return OPEN_METHOD if self.method == OPEN_METHOD else f"{self.method}@{self.engine_version}"


@dataclass(frozen=True)
class SourceStats:
    """Per source of a project: store id, expected accuracy, claim count, confusion matrix.

    ``accuracy`` is NaN where nothing measured the source; ``confusion[s, k, l]`` is
    P(source answers l | true class k), None for open-ended tasks.
    """

    source_ids: NDArray[np.int64]
    accuracy: NDArray[np.float64]
    n_claims: NDArray[np.int64]
    confusion: NDArray[np.float64] | None


@dataclass(frozen=True)
class Resolution:
    """Resolved labels for the items that have any evidence, sorted by item id.

    ``method`` holds each item's label source as exports write it: ``gold``, ``model`` (only
    model claims), or the run's method and engine (``ds@veritag-truth/1``; ``majority_vote``
    for open-ended tasks). ``basis`` is the same as codes into ``BASES``. ``probs`` is the
    posterior per class (per label for multi-label; None for open-ended tasks or when loaded
    without it); ``n_labels`` counts human claims and ``n_claims`` all claims.
    """

    item_ids: NDArray[np.int64]
    labels: NDArray[np.object_]
    confidence: NDArray[np.float64]
    n_labels: NDArray[np.int64]
    method: NDArray[np.object_]
    basis: NDArray[np.int8] | None = None
    n_claims: NDArray[np.int64] | None = None
    probs: NDArray[np.float64] | None = None
    classes: tuple[str, ...] = ()
    sources: SourceStats | None = None
    run: RunInfo | None = None

    def source_ids(self) -> list[int]:
        """The ids of the sources this resolution measured (none for open-ended tasks)."""
        return self.sources.source_ids.tolist() if self.sources is not None else []

    def basis_counts(self) -> dict[str, int]:
        """How many items each basis (``BASES``) decided; empty when the basis is unknown."""
        if self.basis is None:
            return {}
        return {b: int((self.basis == i).sum()) for i, b in enumerate(BASES)}

    def lookup(self, item_ids: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """Positions of ``item_ids`` in this resolution, and which of them are present."""
        pos = np.searchsorted(self.item_ids, item_ids)
        pos = np.minimum(pos, max(self.item_ids.size - 1, 0))
        found = self.item_ids[pos] == item_ids if self.item_ids.size else np.zeros(item_ids.size, bool)
        return pos, found


def _resolution(item_ids: NDArray[np.int64], labels: NDArray[np.object_], confidence: NDArray[np.float64],
                n_labels: NDArray[np.int64], n_claims: NDArray[np.int64], basis: NDArray[np.int8],
                run: RunInfo, **extra: Any) -> Resolution:
    names = _objects([run.label_source, "model", "gold"])
    return Resolution(item_ids, labels, confidence, n_labels, names[basis], basis=basis, n_claims=n_claims,
                      run=run, **extra)


# --- small helpers ----------------------------------------------------------------------------


class _Codes:
    """Maps stored JSON text to a small int per distinct value, decoding each text only once."""

    def __init__(self, schema: BaseSchema) -> None:
        self.schema = schema
        self.classes = schema.classes()
        self.values: list[Any] = [schema.class_value(c) for c in self.classes]
        self._index = {canonical_json(c): i for i, c in enumerate(self.classes)}
        self._by_text: dict[str, int] = {}

    def code(self, text: str) -> int:
        code = self._by_text.get(text)
        if code is None:
            value = self.schema.vote_key(json.loads(text))
            key = canonical_json(str(value) if self.classes else value)
            code = self._index.get(key)
            if code is None:
                if self.classes:
                    raise VeritagError(f"a stored label {text} is not one of the schema's classes {self.classes}")
                code = self._index[key] = len(self.values)
                self.values.append(value)
            self._by_text[text] = code
        return code


def _objects(values: list[Any]) -> NDArray[np.object_]:
    """An object array that keeps lists and dicts as single elements."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _cat(parts: list[NDArray[Any]], dtype: Any = np.int64) -> NDArray[Any]:
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def _quiet_fit(claims: Claims, method: str, gold_items: NDArray[np.int64], gold_labels: NDArray[np.int64]) -> Any:
    """``fit_truth`` with the run's settings; non-convergence is reported by ``converged``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit_truth(claims, method, gold_items=gold_items, gold_labels=gold_labels,  # type: ignore[arg-type]
                         **ENGINE_PARAMS)


def effective_method(schema: BaseSchema, method: str) -> str:
    """The method a run over ``schema`` really uses: open-ended schemas always vote."""
    if method not in METHODS:
        raise VeritagError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return method if schema.classes() or isinstance(schema, MultiLabelSchema) else OPEN_METHOD


# --- the numeric core shared by projects and files --------------------------------------------


@dataclass(frozen=True)
class _Fit:
    posterior: NDArray[np.float64]  # (items, classes), gold pinned
    basis: NDArray[np.int8]
    accuracy: NDArray[np.float64]
    n_claims: NDArray[np.int64]
    confusion: NDArray[np.float64]
    log_likelihood: float | None
    n_iter: int
    converged: bool
    chosen: str | None = None  # for ``auto``: the method its held-out likelihood picked


def _fit_categorical(
    hard: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]],
    soft: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]],
    gold: tuple[NDArray[np.int64], NDArray[np.int64]],
    *, n_items: int, n_sources: int, n_classes: int, method: str,
) -> _Fit:
    """Posteriors and source reliabilities from dense COO claims; see the module docstring."""
    h_item, h_src, h_label = hard
    s_item, s_src, s_probs = soft
    g_item, g_label = gold
    n, k = n_items, n_classes
    n_claims = np.bincount(np.concatenate([h_src, s_src]), minlength=n_sources).astype(np.int64)
    if h_item.size or s_item.size:
        claims = Claims.from_arrays(h_item, h_src, h_label, n_items=n, n_sources=n_sources, n_classes=k,
                                    prob_item=s_item, prob_source=s_src, probs=s_probs)
        result = _quiet_fit(claims, method, g_item, g_label)
        posterior = np.asarray(result.posterior, dtype=np.float64)  # ours to edit: no copy of (items x K)
        confusion, accuracy = np.asarray(result.confusion), np.array(result.accuracy, dtype=np.float64)
        accuracy[result.unchecked] = np.nan  # stored as "not measured"
        ll = float(result.log_likelihood)
        fit_info = (None if math.isnan(ll) else ll, int(result.n_iter), bool(result.converged),
                    result.method if method == "auto" else None)
    else:  # gold labels only
        posterior = np.full((n, k), 1.0 / k)
        confusion, accuracy = np.zeros((0, k, k)), np.zeros(0)
        fit_info = (None, 0, True, None)
    posterior[g_item] = 0.0
    posterior[g_item, g_label] = 1.0
    basis = np.full(n, _CLAIMS, dtype=np.int8)
    basis[np.bincount(h_item, minlength=n) == 0] = _MODEL
    basis[g_item] = _GOLD
    return _Fit(posterior, basis, accuracy, n_claims, confusion, *fit_info)


