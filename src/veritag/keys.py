"""Stable pseudo-random keys per item: the same item, project and seed always draw the same number.

An audit sample, a pairwise page's left/right coin and any other per-item draw must not change
when the server restarts or another process answers, and must be reproducible from the ids alone;
a counter-based hash (splitmix64) gives that without storing a draw.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["item_keys"]

_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


def item_keys(project_id: int, item_ids: NDArray[np.int64], seed: int = 0) -> NDArray[np.float64]:
    """A uniform [0, 1) key per item (splitmix64 of the item id, salted by project and seed)."""
    with np.errstate(over="ignore"):
        z = (
            np.asarray(item_ids, dtype=np.uint64)
            + np.uint64((project_id << 20) + seed) * _MIX[0]
            + _MIX[0]
        )
        z = (z ^ (z >> np.uint64(30))) * _MIX[1]
        z = (z ^ (z >> np.uint64(27))) * _MIX[2]
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)
