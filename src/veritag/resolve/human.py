"""What the humans say, models left out: the reference that model labels are checked against.

Automation and the auto-labeler must not grade a model against a truth the model helped to
make, so here a categorical project's human claims and gold labels alone go through the engine
(model claims are dropped before the fit). Only items with a human claim or a gold label get a
label. ``one_correct`` measures a single human answer the way a routed item would get one: an
item's first human claim against its gold label, or else against the vote of the *other* humans
on it; unknown (NaN) where neither exists or the others tie.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa
from numpy.typing import NDArray

from ..store.models import Project
from .core import DEFAULT_METHOD
from .fit import fit_categorical
from .project import ProjectClaims, load_project_claims

__all__ = ["HumanLabels", "human_labels", "one_claim_correct"]


@dataclass(frozen=True)
class HumanLabels:
    """Per item with a human claim or gold (``item_ids`` sorted): class code, its posterior and
    whether one human claim was right (1/0, NaN unknown). ``classes``/``values`` as in the
    schema."""

    item_ids: NDArray[np.int64]
    label: NDArray[np.int64]
    confidence: NDArray[np.float64]
    one_correct: NDArray[np.float64]
    classes: list[str]
    values: list[Any]

    def lookup(self, item_ids: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """``(label, one_correct)`` for ``item_ids``: -1 and NaN where humans said nothing."""
        ids = np.asarray(item_ids, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.item_ids, ids), max(self.item_ids.size - 1, 0))
        found = self.item_ids[pos] == ids if self.item_ids.size else np.zeros(ids.size, bool)
        label = np.where(found, self.label[pos] if self.item_ids.size else -1, -1)
        correct = np.where(found, self.one_correct[pos] if self.item_ids.size else np.nan, np.nan)
        return label.astype(np.int64), correct.astype(np.float64)


def one_claim_correct(
    item: NDArray[np.int64],
    label: NDArray[np.int64],
    gold_item: NDArray[np.int64],
    gold_label: NDArray[np.int64],
    *,
    n_items: int,
    n_classes: int,
) -> NDArray[np.float64]:
    """Per item: is its first claim (lowest position) right? Against gold, else the others' vote.

    1.0 or 0.0, NaN where the item has no claim, or no gold and no unique plurality among the
    other claims.
    """
    out = np.full(n_items, np.nan)
    if not item.size:
        return out
    order = np.lexsort((np.arange(item.size), item))
    head = np.ones(order.size, dtype=bool)
    head[1:] = item[order][1:] != item[order][:-1]
    first = order[head]
    it, lab = item[first], label[first]
    counts = np.bincount(item * n_classes + label, minlength=n_items * n_classes).reshape(
        n_items, n_classes
    )
    others = counts[it].copy()
    others[np.arange(it.size), lab] -= 1
    top = others.max(axis=1)
    unique = (others == top[:, None]).sum(axis=1) == 1
    ref = np.where((top > 0) & unique, others.argmax(axis=1), -1)
    gold_ref = np.full(n_items, -1)
    gold_ref[gold_item] = gold_label
    ref = np.where(gold_ref[it] >= 0, gold_ref[it], ref)
    known = ref >= 0
    out[it[known]] = (lab[known] == ref[known]).astype(float)
    return out


def human_labels(
    conn: sa.Connection,
    project: Project,
    *,
    method: str = DEFAULT_METHOD,
    claims: ProjectClaims | None = None,
) -> HumanLabels:
    """Resolve a categorical project from its human claims and gold only (see the module
    docstring)."""
    pc = claims if claims is not None else load_project_claims(conn, project)
    (hi, hs, hc), (g_pos, g_codes) = pc.hard, pc.gold
    n, k = pc.item_ids.size, len(pc.classes)
    keep = np.zeros(n, dtype=bool)
    keep[hi] = True
    keep[g_pos] = True
    fit = fit_categorical(
        (hi, hs, hc),
        (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, k))),
        (g_pos, g_codes),
        n_items=n,
        n_sources=pc.source_ids.size,
        n_classes=k,
        method=method,
    )
    correct = one_claim_correct(hi, hc, g_pos, g_codes, n_items=n, n_classes=k)
    post = fit.posterior[keep]
    return HumanLabels(
        pc.item_ids[keep],
        post.argmax(axis=1).astype(np.int64),
        post.max(axis=1),
        correct[keep],
        pc.classes,
        pc.values,
    )
