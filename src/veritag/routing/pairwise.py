"""How a tutor sees and answers a pairwise (or arena) lease: two responses, ``left`` and ``right``.

Which response shows on the left is a fair coin per lease (a hash of its id), so a tutor's
position bias averages out over leases and the same lease always looks the same. The item's
other fields and its external id (either may name the models) are never shown. Tutors answer
``left``/``right`` (or ``tie``, ``both_bad``); the claim stores ``A``/``B``. The HTTP API and the
CLI (``veritag work``) both go through here, so they speak the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..keys import item_keys
from ..schema import PairwiseSchema

__all__ = ["SIDES", "answers", "from_sides", "pair_view", "swapped", "to_sides"]

SIDES = ("left", "right")
#: Salt of the side coin, so it is independent of other per-item draws keyed by ``item_keys``.
_SIDE_SEED = 1


def swapped(project_id: int, lease_id: int) -> bool:
    """Whether the lease shows response B on the left."""
    return bool(item_keys(project_id, np.array([lease_id], np.int64), seed=_SIDE_SEED)[0] < 0.5)


def pair_view(
    schema: PairwiseSchema, project_id: int, lease_id: int, data: dict[str, Any] | None
) -> dict[str, Any]:
    """The prompt and the two responses as the lease shows them (``prompt``, ``left``,
    ``right``)."""
    data = data or {}
    a, b = data.get(schema.a_field), data.get(schema.b_field)
    left, right = (b, a) if swapped(project_id, lease_id) else (a, b)
    return {"prompt": data.get(schema.prompt_field), "left": left, "right": right}


def from_sides(project_id: int, lease_id: int, value: Any) -> Any:
    """An answer given as ``left``/``right`` becomes ``A``/``B`` for this lease; any other value is
    left for the schema to check."""
    side = value.strip().lower() if isinstance(value, str) else None
    if side in SIDES:
        return "AB"[SIDES.index(side) ^ swapped(project_id, lease_id)]
    return value


def to_sides(project_id: int, lease_id: int, value: Any) -> Any:
    """A stored ``A``/``B`` as the side the lease showed it on; any other value as is."""
    if value in ("A", "B"):
        return SIDES["AB".index(value) ^ swapped(project_id, lease_id)]
    return value


def answers(schema: PairwiseSchema) -> list[str]:
    """The answers a tutor may give: the two sides, then the schema's other outcomes (tie, ...)."""
    return [*SIDES, *(o for o in schema.outcomes if o not in ("A", "B"))]
