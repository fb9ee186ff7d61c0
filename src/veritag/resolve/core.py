"""Results, constants and the numeric core shared by project and file resolution."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import VeritagError
from ..schema import BaseSchema, MultiLabelSchema
from ..truth import METHODS
from .defaults import DEFAULT_METHOD, OPEN_METHOD  # noqa: F401 (re-exported: resolve.core.DEFAULT_METHOD)

#: Engine settings every run uses; stored with the run. ``tol=None``: each method's own
#: (crowd-kit's 1e-5 on its lower bound for ``ds``/``onecoin``, see
#: ``veritag.truth.engine.DEFAULT_TOL``).
ENGINE_PARAMS: dict[str, Any] = {"max_iter": 100, "tol": None, "shrinkage": 0.5, "bins": 5}
BASES = ("claims", "model", "gold")  # Resolution.basis codes 0, 1, 2
_CLAIMS, _MODEL, _GOLD = 0, 1, 2
_CHUNK = 100_000


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
    #: The project's claims version the run read (``Project.claims_version``): what staleness
    #: compares.
    claims_version: int = 0

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
        found = (
            self.item_ids[pos] == item_ids if self.item_ids.size else np.zeros(item_ids.size, bool)
        )
        return pos, found


def _resolution(
    item_ids: NDArray[np.int64],
    labels: NDArray[np.object_],
    confidence: NDArray[np.float64],
    n_labels: NDArray[np.int64],
    n_claims: NDArray[np.int64],
    basis: NDArray[np.int8],
    run: RunInfo,
    **extra: Any,
) -> Resolution:
    names = _objects([run.label_source, "model", "gold"])
    return Resolution(
        item_ids,
        labels,
        confidence,
        n_labels,
        names[basis],
        basis=basis,
        n_claims=n_claims,
        run=run,
        **extra,
    )


# --- small helpers ----------------------------------------------------------------------------


def _objects(values: list[Any]) -> NDArray[np.object_]:
    """An object array that keeps lists and dicts as single elements."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _cat(parts: list[NDArray[Any]], dtype: Any = np.int64) -> NDArray[Any]:
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def effective_method(schema: BaseSchema, method: str) -> str:
    """The method a run over ``schema`` really uses: open-ended schemas always vote."""
    if method not in METHODS:
        raise VeritagError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return method if schema.classes() or isinstance(schema, MultiLabelSchema) else OPEN_METHOD
