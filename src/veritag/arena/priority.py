"""Active battle selection: which battle items are worth a vote next.

``item_priority`` scores each battle item by ``veritag.truth.arena.pair_priority`` of its two
models: how much one more battle between them is expected to reduce the uncertainty of the
ranking, given the current board and the battles so far. The router multiplies its own score of
an arena item by this priority, so tutors are sent the pairs whose order is least settled.

Scores are in (0, 1], the best pair scoring 1. Until the project has about two votes per model
(``MIN_VOTES_PER_MODEL``) every item scores 1: there is no board to be uncertain about yet. A pair
with a model that has no vote yet scores 1 as well.

The board behind the scores is cheap to keep: it is fitted without weights or intervals
(``pair_priority`` works out the uncertainty from the battle counts itself), cached per project,
and fitted again only once the project has ``max(REFIT_MIN, REFIT_SHARE x votes)`` new claims, so
a request costs two small queries.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa
from numpy.typing import NDArray

from ..store.engine import Store
from ..store.models import Item, Project
from ..store.queries import claims_watermark
from ..truth import arena as arena_math
from .board import load_battles
from .importer import arena_schema

__all__ = ["MIN_VOTES_PER_MODEL", "REFIT_MIN", "REFIT_SHARE", "item_priority", "pair_table"]

MIN_VOTES_PER_MODEL = 2.0
REFIT_MIN = 20
REFIT_SHARE = 0.05

_lock = threading.Lock()
_tables: dict[tuple[str, int], _Table] = {}


@dataclass(frozen=True)
class _Table:
    """The priority of every pair of models, as of one claims version (the project's count of
    committed claims: ids are shared by every project and a late commit can take a lower one)."""

    version: int
    votes: int
    index: dict[str, int]
    priority: NDArray[np.float64] | None  # None: uniform (too few votes)


def _fit(store: Store, project: Project, version: int) -> _Table:
    schema = arena_schema(project)
    with store.engine.connect() as conn:
        battles = load_battles(conn, project, schema)
    models = sorted(set(battles.model_a) | set(battles.model_b))
    if not models or len(battles) < MIN_VOTES_PER_MODEL * len(models) or len(models) < 2:
        return _Table(version, len(battles), {}, None)
    try:
        board = arena_math.leaderboard(
            battles.model_a, battles.model_b, battles.outcome, ties="half", interval="none"
        )
    except ValueError:  # e.g. models not linked by any chain of battles yet: no board to refine
        return _Table(version, len(battles), {}, None)
    index = {m: i for i, m in enumerate(board.models)}
    counts = np.zeros((len(board.models), len(board.models)), dtype=np.int64)
    ia = np.fromiter((index[m] for m in battles.model_a), np.int64, len(battles))
    ib = np.fromiter((index[m] for m in battles.model_b), np.int64, len(battles))
    np.add.at(counts, (ia, ib), 1)  # one-sided: pair_priority adds the transpose
    value = np.asarray(arena_math.pair_priority(board, counts), dtype=np.float64)
    value = np.where(np.isfinite(value), np.maximum(value, 0.0), 0.0)
    top = value[~np.eye(len(value), dtype=bool)].max() if len(value) > 1 else 0.0
    priority = value / top if top > 0 else np.ones_like(value)
    return _Table(version, len(battles), index, np.clip(priority, 1e-6, 1.0))


def pair_table(store: Store, project: Project) -> tuple[dict[str, int], NDArray[np.float64] | None]:
    """The models' index and the (n, n) priority of each pair in that order (None: uniform)."""
    with store.engine.connect() as conn:
        version = claims_watermark(conn, project_id=project.id).claims_version
    key = (str(store.engine.url), project.id)
    with _lock:
        table = _tables.get(key)
    if (
        table is None
        or version < table.version
        or (version - table.version >= max(REFIT_MIN, REFIT_SHARE * table.votes))
        or (table.priority is None and version != table.version)
    ):
        table = _fit(store, project, version)
        with _lock:
            _tables[key] = table
    return table.index, table.priority


def item_priority(
    store: Store, project: Project, item_ids: NDArray[np.int64]
) -> NDArray[np.float64]:
    """The priority in (0, 1] of each battle item of ``item_ids`` (in that order; see the module
    docstring). Items that name no two models score 1."""
    item_ids = np.asarray(item_ids, dtype=np.int64)
    out = np.ones(len(item_ids), dtype=np.float64)
    index, priority = pair_table(store, project)
    if priority is None or len(item_ids) == 0:
        return out
    schema = arena_schema(project)
    model_a = Item.data[schema.model_a_field].as_string()
    model_b = Item.data[schema.model_b_field].as_string()
    pairs: dict[int, tuple[Any, Any]] = {}
    with store.engine.connect() as conn:
        for start in range(0, len(item_ids), 5000):
            chunk = item_ids[start : start + 5000].tolist()
            pairs.update(
                {
                    i: (a, b)
                    for i, a, b in conn.execute(
                        sa.select(Item.id, model_a, model_b).where(
                            Item.project_id == project.id, Item.id.in_(chunk)
                        )
                    )
                }
            )
    for pos, item_id in enumerate(item_ids.tolist()):
        a, b = pairs.get(item_id, (None, None))
        if a in index and b in index:
            out[pos] = priority[index[a], index[b]]
    return out
