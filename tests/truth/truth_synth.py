"""Synthetic crowds for the truth-engine tests: seeded, so every test sees the same data."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from veritag.truth import Claims


@dataclass(frozen=True)
class Crowd:
    truth: NDArray[np.int64]
    claims: Claims
    accuracy: NDArray[np.float64]  # each human source's planted accuracy


def wrong_label(rng: np.random.Generator, truth: NDArray[np.int64], k: int) -> NDArray[np.int64]:
    """A uniformly drawn label different from ``truth`` (k >= 2)."""
    return (truth + rng.integers(1, k, truth.size)) % k


def crowd(
    seed: int,
    *,
    n_items: int = 300,
    n_sources: int = 10,
    k: int = 3,
    per_item: int = 3,
    acc: tuple[float, float] = (0.6, 0.9),
) -> Crowd:
    """``per_item`` distinct sources label each item; source s is right with its own accuracy,
    otherwise it picks a wrong class uniformly."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n_items)
    accuracy = rng.uniform(acc[0], acc[1], n_sources)
    item = np.repeat(np.arange(n_items), per_item)
    source = np.argsort(rng.random((n_items, n_sources)), axis=1)[:, :per_item].ravel()
    right = rng.random(item.size) < accuracy[source]
    label = np.where(right, truth[item], wrong_label(rng, truth[item], k))
    claims = Claims.from_arrays(
        item, source, label, n_items=n_items, n_sources=n_sources, n_classes=k
    )
    return Crowd(truth, claims, accuracy)


def add_model(
    claims: Claims, probs: NDArray[np.float64], items: NDArray[np.int64] | None = None
) -> Claims:
    """``claims`` plus one model source (index ``claims.n_sources``) with one row per item."""
    items = np.arange(claims.n_items) if items is None else items
    return Claims.from_arrays(
        claims.item,
        claims.source,
        claims.label,
        n_items=claims.n_items,
        n_sources=claims.n_sources + 1,
        n_classes=claims.n_classes,
        prob_item=items,
        prob_source=np.full(items.size, claims.n_sources),
        probs=probs,
    )


def relabel(claims: Claims, item_perm: NDArray[np.int64], source_perm: NDArray[np.int64]) -> Claims:
    """The same claims with item i renamed ``item_perm[i]`` and source s ``source_perm[s]``.

    Built without ``from_arrays`` on purpose: it renormalises the probability rows, and a
    last-bit change in a confidence can move a model claim to another confidence bin.
    """
    return replace(
        claims,
        item=item_perm[claims.item],
        source=source_perm[claims.source],
        prob_item=item_perm[claims.prob_item],
        prob_source=source_perm[claims.prob_source],
    )


#: A toy crowd (task, worker, label) that crowd-kit's GLAD and MACE were run on to print the
#: numbers test_glad / test_mace pin; worker 1 and label 1 come first, so first appearance is not
#: index order (which is where crowd-kit's MACE strategy update goes astray).
TOY = np.array(
    [
        (0, 1, 1),
        (0, 2, 0),
        (0, 0, 0),
        (1, 0, 1),
        (1, 2, 1),
        (1, 3, 1),
        (2, 1, 2),
        (2, 3, 2),
        (2, 0, 0),
        (3, 3, 0),
        (3, 2, 0),
        (3, 1, 2),
        (4, 0, 2),
        (4, 1, 2),
        (4, 2, 1),
        (4, 3, 2),
        (5, 2, 1),
        (5, 3, 0),
    ]
)


def toy() -> Claims:
    return Claims.from_arrays(TOY[:, 0], TOY[:, 1], TOY[:, 2])
