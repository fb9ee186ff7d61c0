"""An arena project's leaderboard: its standing human votes, weighted by how reliable each tutor is.

The rating maths lives in ``veritag.truth.arena`` (arrays in, a ``Leaderboard`` out); this module
reads the votes from the store and decides each vote's weight.

Tutor weights
-------------
The truth engine (Dawid-Skene over the arena outcomes: the project's stored ``ds`` run) estimates
each human source's confusion matrix ``C_s[k, l] = P(answers l | true outcome k)`` and the share
``pi`` of each outcome. For every vote on a battle with two or more votes, the outcome *as the
other votes see it* is ``pi x prod_{t != s} C_t[:, answer_t]`` (normalised): the source's own vote
is left out, so nobody is credited for agreeing with themselves. A source's weight is its
chance-corrected agreement with that reference (Cohen's kappa in expectation)::

    acc    = mean over its votes of P_others(outcome = its answer)
    chance = sum_l (share of its answers that are l) x mean P_others(outcome = l)
    weight = clip((acc - chance) / (1 - chance), 0, 1)

A tutor who answers at random (or always "A") agrees only as often as chance and gets about 0, a
careful one gets most of 1 (less when the others are noisy too), one worse than chance 0. A
source that no battle with a second vote measured gets the mean weight of the measured ones, and
every vote counts 1 while fewer than two human sources are measured: a lone source (a whole
imported crowd under one name, say) has no peers to be checked against. Every vote counts 1 too
when no measured source agrees beyond chance: weights that are all 0 tell the votes apart no more
than equal ones do, and would take every model off the board. A source exactly at chance gets
exactly 0 (not a rounding error of either sign, which once decided whether its votes counted).
Weights are measured on all of the project's battles, also for a per-domain board.
``weighted=False`` counts every vote 1.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa
from numpy.typing import NDArray

from ..errors import InputError
from ..resolve import current_truth, load_truth
from ..resolve.current import Refit
from ..schema import ArenaSchema
from ..store.engine import Store
from ..store.models import Claim, Item, Project, Source
from ..store.queries import claims_watermark, standing_claims
from ..truth import arena as arena_math
from .importer import arena_schema

__all__ = ["Battles", "load_battles", "project_domains", "project_leaderboard", "tutor_weights"]

_CACHE_SIZE = 32
_cache: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class Battles:
    """A project's standing human votes, one per row: the item's two models, the outcome
    relative to them, who voted and the prompt's domain (None when it has none)."""

    item_ids: NDArray[np.int64]
    source_ids: NDArray[np.int64]
    model_a: NDArray[np.object_]
    model_b: NDArray[np.object_]
    outcome: NDArray[np.object_]
    domain: NDArray[np.object_]

    def __len__(self) -> int:
        return len(self.item_ids)

    def where(self, mask: NDArray[np.bool_]) -> Battles:
        return Battles(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))


def _objects(values: list[Any]) -> NDArray[np.object_]:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def load_battles(
    conn: sa.Connection, project: Project, schema: ArenaSchema | None = None
) -> Battles:
    """Every standing human vote of an arena project on an item that names its two models."""
    schema = schema or arena_schema(project)
    model_a = Item.data[schema.model_a_field].as_string()
    model_b = Item.data[schema.model_b_field].as_string()
    domain = Item.meta[schema.domain_field].as_string()
    stmt = (
        sa.select(Claim.item_id, Claim.source_id, Claim.value, model_a, model_b, domain)
        .join(Item, Item.id == Claim.item_id)
        .join(Source, Source.id == Claim.source_id)
        .where(
            Claim.project_id == project.id,
            Source.kind == "human",
            Claim.value.is_not(None),
            standing_claims(),
        )
        .order_by(Claim.id)
    )
    rows = [r for r in conn.execute(stmt) if r[3] and r[4] and r[2] in schema.outcomes]
    return Battles(
        np.fromiter((r[0] for r in rows), np.int64, len(rows)),
        np.fromiter((r[1] for r in rows), np.int64, len(rows)),
        _objects([r[3] for r in rows]),
        _objects([r[4] for r in rows]),
        _objects([r[2] for r in rows]),
        _objects([r[5] or None for r in rows]),
    )


def project_domains(store: Store, project: Project) -> list[str]:
    """The domains of the project's battle items (from their metadata), sorted."""
    schema = arena_schema(project)
    domain = Item.meta[schema.domain_field].as_string()
    with store.engine.connect() as conn:
        found = conn.scalars(sa.select(domain).where(Item.project_id == project.id).distinct())
        return sorted(d for d in found if d)


def _loo_kappa(
    battles: Battles,
    source_ids: NDArray[np.int64],
    confusion: NDArray[np.float64],
    prior: NDArray[np.float64],
    classes: list[str],
) -> dict[int, float]:
    """Each source's chance-corrected agreement with what the *other* votes on the same battles say.

    The posterior of a battle's outcome is ``prior x prod_s C_s[:, answer_s]`` (the engine's
    model); leaving a source's own factor out gives the truth as the others see it, so a source
    is never credited for agreeing with itself. Only battles with two or more votes count.
    """
    row = {int(s): i for i, s in enumerate(source_ids)}
    code = {c: k for k, c in enumerate(classes)}
    keep = np.array([int(s) in row for s in battles.source_ids], dtype=bool)
    if not keep.any():
        return {}
    sub = battles.where(keep)
    src = np.fromiter((row[int(s)] for s in sub.source_ids), np.int64, len(sub))
    ans = np.fromiter((code[o] for o in sub.outcome), np.int64, len(sub))
    _, item = np.unique(sub.item_ids, return_inverse=True)
    multi = np.bincount(item)[item] >= 2
    log_c = np.log(np.clip(confusion, 1e-6, None))[src, :, ans]  # (claims, k): log C_s[k, answer]
    total = np.zeros((item.max() + 1, len(classes)))
    np.add.at(total, item, log_c)
    loo = np.log(np.clip(prior, 1e-12, None)) + total[item] - log_c
    loo = np.exp(loo - loo.max(axis=1, keepdims=True))
    loo /= loo.sum(axis=1, keepdims=True)
    out: dict[int, float] = {}
    for r, sid in enumerate(source_ids):
        mine = (src == r) & multi
        if not mine.any():
            continue
        p = loo[mine]
        acc = float(p[np.arange(len(p)), ans[mine]].mean())
        rates = np.bincount(ans[mine], minlength=len(classes)) / mine.sum()
        chance = float(rates @ p.mean(axis=0))
        # acc and chance are two sums of the same numbers in different orders when a source is
        # exactly at chance (one that always answers "tie", say): their difference is rounding,
        # whose sign depends on the CPU's BLAS kernel, and must not decide anything.
        beyond = 0.0 if math.isclose(acc, chance, rel_tol=1e-9, abs_tol=1e-12) else acc - chance
        out[int(sid)] = float(np.clip(beyond / (1.0 - chance), 0.0, 1.0)) if chance < 1 else 0.0
    return out


def _measured_kappa(
    store: Store, project: Project, battles: Battles | None = None, refit: Refit = "stale"
) -> tuple[list[int], dict[int, float]]:
    """The project's human source ids, and the chance-corrected agreement of those that battles
    with a second vote measured (``_loo_kappa`` under the ``ds`` run ``current_truth`` gives with
    ``refit``); none without a run."""
    schema = arena_schema(project)
    truth = current_truth(store, project, method="ds", refit=refit)
    resolution = load_truth(store, truth, with_sources=True) if truth.run is not None else None
    stats = resolution.sources if resolution is not None else None
    with store.engine.connect() as conn:
        humans = list(
            conn.scalars(
                sa.select(Source.id).where(Source.project_id == project.id, Source.kind == "human")
            )
        )
        if battles is None:
            battles = load_battles(conn, project, schema)
    if resolution is None or stats is None or stats.confusion is None or not humans:
        return humans, {}
    classes = list(schema.classes())
    counts = np.array([np.sum(resolution.labels == c) for c in classes], dtype=np.float64)
    prior = counts / counts.sum() if counts.sum() > 0 else np.full(len(classes), 1.0 / len(classes))
    usable = np.isin(stats.source_ids, humans) & np.isfinite(stats.accuracy)
    return humans, _loo_kappa(
        battles, stats.source_ids[usable], stats.confusion[usable], prior, classes
    )


def tutor_weights(
    store: Store, project: Project, battles: Battles | None = None, refit: Refit = "stale"
) -> dict[int, float]:
    """A weight in [0, 1] per human source id of the project (see the module docstring); ``refit``
    as for ``resolve.current_truth`` (a GET reads the stored run and never fits)."""
    humans, measured = _measured_kappa(store, project, battles, refit)
    if len(measured) < 2 or max(measured.values()) == 0.0:
        return {sid: 1.0 for sid in humans}
    fallback = float(np.mean(list(measured.values())))
    return {sid: measured.get(sid, fallback) for sid in humans}


def project_leaderboard(
    store: Store,
    project: Project,
    *,
    domain: str | None = None,
    ties: str = "half",
    interval: str = "bootstrap",
    rounds: int = 100,
    weighted: bool = True,
    both_bad: str = "tie",
    seed: int = 0,
    refit: Refit = "stale",
) -> arena_math.Leaderboard:
    """The leaderboard of an arena project's models from its standing human votes.

    Parameters
    ----------
    domain : str, optional
        Only battles on prompts of this domain (the item metadata's ``domain_field``).
    ties, interval, rounds, both_bad, seed
        Passed to ``veritag.truth.arena.leaderboard``.
    weighted : bool
        Weigh each vote by its tutor's chance-corrected accuracy (``tutor_weights``); False counts
        every vote 1.

    Boards are cached per project, claims watermark and arguments, so a page view after no new
    vote costs nothing.
    """
    schema = arena_schema(project)
    with store.engine.connect() as conn:
        mark = claims_watermark(conn, project_id=project.id)
    key = (
        str(store.engine.url),
        project.id,
        mark,
        domain,
        ties,
        interval,
        rounds,
        weighted,
        both_bad,
        seed,
        refit,
    )
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]  # type: ignore[no-any-return]
    with store.engine.connect() as conn:
        every = battles = load_battles(conn, project, schema)
    if domain is not None:
        battles = battles.where(battles.domain == domain)
    if len(battles) == 0:
        where = f" in domain {domain!r}" if domain is not None else ""
        raise InputError(f"project {project.name!r} has no votes{where} yet to rank models by")
    weights = None
    if weighted:
        by_source = tutor_weights(
            store, project, every, refit
        )  # reliability is measured on every battle
        weights = np.array(
            [by_source.get(int(s), 1.0) for s in battles.source_ids], dtype=np.float64
        )
    try:
        board = arena_math.leaderboard(
            battles.model_a,
            battles.model_b,
            battles.outcome,
            weights=weights,
            ties=ties,
            both_bad=both_bad,
            interval=interval,
            rounds=rounds,
            seed=seed,
        )
    except ValueError as exc:  # bad options, or battles that leave models unlinked
        where = f" (domain {domain!r})" if domain is not None else ""
        raise InputError(
            f"cannot rank the models of project {project.name!r}{where}: {exc}"
        ) from None
    with _cache_lock:
        _cache[key] = board
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return board
