"""What a routing decision reads: item domains, the truth run's posterior and the tutors' skill.

Cost of a request: the posterior comes from the project's newest stored truth run
(``resolve.current_truth`` with ``refit="due"``). Human claims made since that run are folded in
by Bayes' rule with the claiming source's confusion (``gain.posterior_after``), so a request
after each label does not refit the engine; once more than ``max(REFIT_CLAIMS, REFIT_SHARE x
items)`` claims (or any gold label, or any undo) arrived since, the request resolves again (one
EM fit over all claims) and stores a new run; requests that find the run stale meanwhile go on
with it and fold the new claims in, instead of starting their own fit (one refit at a time per
project, kept by ``resolve.current``). The run's posteriors and the skills measured against it
(one pass over the claims) are read once per run and kept in memory (a few runs), and so are the
item ids, gold flags and item domains while a one-row version (counts and newest ids) holds;
between refreshes a request reads that version, the human claim counts, the claims since the
run and the tutors.

Skill (``routing.skill``) is each tutor's per-domain confusion from ``truth.source_reliability``
against the stored truth run's posterior, with the item domains as groups, shrunk into a prior
that favours the tutor's declared domains.

The two in-memory caches (run views and layouts) and their locks are the only process-local
state of routing; they live here, and only here, so that they can move to the database later.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
import sqlalchemy as sa
from numpy.typing import NDArray

from ..errors import NotFound, VeritagError
from ..labelers.base import Labeler
from ..resolve import current_truth, load_project_claims, load_resolution
from ..resolve.current import Refit
from ..schema import ArenaSchema, BaseSchema, MultiLabelSchema
from ..store.engine import Store
from ..store.models import Claim, Gold, Item, ItemDomain, Project
from ..store.queries import (
    Watermark,
    insert_ignore,
    project_schema,
    standing_human_labels,
)
from ..truth.reliability import source_reliability
from .domains import classify_domains
from .gain import posterior_after
from .policy import item_done
from .settings import ProjectRouting, TutorProfile, get_settings, tutor_profiles
from .skill import blend_skill, prior_confusion

__all__ = ["item_domains"]

V = TypeVar("V")


# --- item domains --------------------------------------------------------------------------------


def _meta_domain(meta: Any, field_name: str) -> str | None:
    value = meta.get(field_name) if isinstance(meta, dict) else None
    return None if value is None or value == "" else str(value)


def item_domains(
    store: Store,
    project: Project,
    *,
    labeler: Callable[[], Labeler] | str | None = "minilm",
    keywords: dict[str, Sequence[str]] | None = None,
    refresh: bool = False,
) -> dict[int, str]:
    """``{item id: domain}`` for every item, classifying (and storing) the items not done before.

    See ``routing.domains`` for the rules. ``labeler`` makes the model that learns from items
    whose metadata names their domain (a registry name, a factory, or None for no model); it is
    built only when some item needs it, and a registry model that is not installed is skipped.
    ``refresh`` classifies every item again. The model runs outside any write transaction.
    """
    settings = get_settings(store, project)
    stored = ItemDomain.__table__
    with store.engine.connect() as conn:
        fresh = sa.true() if refresh else stored.c.item_id.is_(None)
        missing = (
            refresh
            or conn.scalar(
                sa.select(Item.id)
                .outerjoin(stored, stored.c.item_id == Item.id)
                .where(Item.project_id == project.id, fresh)
                .limit(1)
            )
            is not None
        )
        rows = (
            []
            if not missing
            else conn.execute(
                sa.select(Item.id, Item.text, Item.meta, fresh)
                .outerjoin(stored, stored.c.item_id == Item.id)
                .where(Item.project_id == project.id)
                .order_by(Item.id)
            ).all()
        )
    todo = [i for i, r in enumerate(rows) if r[3]]
    if todo:
        known = [_meta_domain(r[2], settings.domain_field) for r in rows]
        examples = [
            (rows[i][1] or "", known[i])
            for i in range(len(rows))
            if not rows[i][3] and known[i] in settings.domains
        ]
        guess = classify_domains(
            [rows[i][1] or "" for i in todo],
            domains=settings.domains,
            known=[known[i] for i in todo],
            keywords=keywords,
            examples=examples,
            labeler=_labeler_maker(store, labeler),
        )
        with store.engine.begin() as conn:
            if refresh:
                conn.execute(sa.delete(ItemDomain).where(ItemDomain.project_id == project.id))
            conn.execute(
                insert_ignore(conn, stored, ["item_id"]),
                [
                    {"item_id": rows[i][0], "project_id": project.id, "domain": d, "origin": o}
                    for i, d, o in zip(todo, guess.domains, guess.origins, strict=True)
                ],
            )
        _forget_layouts(project)
    with store.engine.connect() as conn:
        return dict(
            conn.execute(
                sa.select(ItemDomain.item_id, ItemDomain.domain).where(
                    ItemDomain.project_id == project.id
                )
            ).all()
        )


def _labeler_maker(
    store: Store, spec: Callable[[], Labeler] | str | None
) -> Callable[[], Labeler | None] | None:
    """A registry name becomes a factory whose embeddings are cached in the store; a model that is
    not installed gives None, so its items fall back rather than fail the request."""
    if not isinstance(spec, str):
        return spec

    def make() -> Labeler | None:
        from ..labelers.registry import labeler_factory
        from ..store.embeddings import StoreEmbeddingCache

        try:
            return labeler_factory(spec, cache=StoreEmbeddingCache(store))()
        except VeritagError:
            return None

    return make


# --- what a routing decision reads -------------------------------------------------------------


def _single_label(schema: BaseSchema) -> bool:
    """Whether items are routed by the gain on a posterior: answers are one class of a fixed list
    and the item has one true answer. An arena battle has none (each vote is a sample of
    preference, pooled per model pair), so it is routed like free text, by ``_arena_priority``."""
    return bool(schema.classes()) and not isinstance(schema, MultiLabelSchema | ArenaSchema)


@dataclass
class Evidence:
    """A project's routing picture, item-aligned (``item_ids`` sorted): domain index, posterior,
    gold flag, human labels so far; tutors with their confusion per domain and measured claims.

    A task without one answer from a fixed list (free text, spans, multi-label) has no posterior
    to gain on: it is given one certain pseudo-class, so an item is done at ``min_labels``
    answers, and tutors are matched on their declared domains (see ``_pull_scores``)."""

    settings: ProjectRouting
    classes: list[str]
    item_ids: NDArray[np.int64]
    domain: NDArray[np.int64]
    posterior: NDArray[np.float64]
    is_gold: NDArray[np.bool_]
    labels: NDArray[np.int64]
    tutors: list[TutorProfile]
    confusion: NDArray[np.float64]
    measured: NDArray[np.int64]
    #: (tutors, domains): which domains each tutor declared.
    declared: NDArray[np.bool_]
    #: False for free text, spans, multi-label and arena: no posterior, so each item takes
    #: ``min_labels``.
    single: bool = True
    #: Per item, how much its answer is worth beside others (arena: the model pair's priority).
    priority: NDArray[np.float64] | None = None

    def position(self, item_id: int) -> int:
        pos = int(np.searchsorted(self.item_ids, item_id))
        if pos >= self.item_ids.size or self.item_ids[pos] != item_id:
            raise NotFound(f"item {item_id} is not in this project")
        return pos

    def need(self, labels: NDArray[np.int64], pos: NDArray[np.int64]) -> NDArray[np.int64]:
        """How many more labels the items at ``pos`` still take, given ``labels`` (with those
        in flight)."""
        return item_need(self.posterior[pos], labels, self.settings)


def item_need(
    posterior: NDArray[np.float64], labels: NDArray[np.int64], settings: ProjectRouting
) -> NDArray[np.int64]:
    """How many more labels items with ``posterior`` and ``labels`` (those in flight included)
    take: none once done, else up to ``min_labels`` at once (at least one), within the cap."""
    done = item_done(posterior, labels, settings.config())
    want = np.maximum(settings.min_labels - labels, 1)
    return np.where(
        done, 0, np.clip(np.minimum(want, settings.max_labels - labels), 0, None)
    ).astype(np.int64)


@dataclass(frozen=True)
class _RunView:
    """What a request takes from one stored truth run: its posterior (rows of ``item_ids``) and
    every source's per-domain confusion measured against it."""

    item_ids: NDArray[np.int64]
    probs: NDArray[np.float64] | None
    source_ids: NDArray[np.int64]
    confusion: NDArray[np.float64]  # (sources, domains, k, k), source_reliability's shrunk matrices
    n_claims: NDArray[np.int64]  # (sources, domains)


def _empty_view(n_domains: int, k: int) -> _RunView:
    """The view before any truth run: no source measured."""
    return _RunView(
        np.zeros(0, np.int64),
        None,
        np.zeros(0, np.int64),
        np.zeros((0, n_domains, k, k)),
        np.zeros((0, n_domains), np.int64),
    )


class _Recent(Generic[V]):
    """The ``size`` values last stored or read, by key, shared by the threads of this process."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._values: OrderedDict[tuple[Any, ...], V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> V | None:
        with self._lock:
            hit = self._values.get(key)
            if hit is not None:
                self._values.move_to_end(key)
            return hit

    def put(self, key: tuple[Any, ...], value: V) -> None:
        with self._lock:
            self._values[key] = value
            while len(self._values) > self._size:
                self._values.popitem(last=False)

    def drop(self, stale: Callable[[tuple[Any, ...]], bool]) -> None:
        """Forget the values whose key is ``stale``."""
        with self._lock:
            for key in [k for k in self._values if stale(k)]:
                del self._values[key]


#: Run views by store, project, run (with the claims version it read) and item domains: a run is
#: immutable, so a view only goes out of date when a newer run or new item domains replace its
#: key. Staleness is the run's business (``resolve.current`` compares claims versions, which a
#: late commit cannot fool); a view is never served for a run it was not read from.
_RUN_VIEWS: _Recent[_RunView] = _Recent(4)


def _run_view(
    store: Store,
    conn: sa.Connection,
    project: Project,
    run: Any,
    mark: Watermark,
    item_ids: NDArray[np.int64],
    domain: NDArray[np.int64],
    n_domains: int,
    key: tuple[Any, ...],
) -> _RunView:
    """The run's posterior and the skills measured against it, read once per run (see
    ``_RUN_VIEWS``)."""
    full = (str(store.engine.url), project.id, run.id, run.created_at, run.claims_version, *key)
    if (hit := _RUN_VIEWS.get(full)) is not None:
        return hit
    res = load_resolution(conn, run, with_probs=True)
    pc = load_project_claims(
        conn, project, Watermark(run.max_claim_id, mark.max_gold_id, run.gold_count)
    )
    k = len(pc.classes)
    post = np.full((pc.item_ids.size, k), 1.0 / k)
    if res.probs is not None and res.item_ids.size:
        pos, found = res.lookup(pc.item_ids)
        post[found] = res.probs[pos[found]]
    rel = source_reliability(
        pc.claims(), post, groups=domain[np.searchsorted(item_ids, pc.item_ids)], n_groups=n_domains
    )
    view = _RunView(res.item_ids, res.probs, pc.source_ids, rel.confusion, rel.n_claims)
    _RUN_VIEWS.put(full, view)
    return view


def _skill(
    view: _RunView, sources: NDArray[np.int64], declared: NDArray[np.bool_], k: int
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """(sources, domains, k, k) confusion and (sources, domains) measured claims for ``sources``."""
    d = declared.shape[1]
    pos = np.minimum(np.searchsorted(view.source_ids, sources), max(view.source_ids.size - 1, 0))
    found = (
        view.source_ids[pos] == sources if view.source_ids.size else np.zeros(sources.size, bool)
    )
    conf = np.zeros((sources.size, d, k, k))
    n = np.zeros((sources.size, d), np.int64)
    if found.any():
        conf[found], n[found] = view.confusion[pos[found]], view.n_claims[pos[found]]
    return blend_skill(conf, n, prior_confusion(declared, k)), n


@dataclass(frozen=True)
class _Layout:
    """What changes only when items, gold labels or item domains are added: the sorted item ids,
    which are gold, and each item's domain index."""

    item_ids: NDArray[np.int64]
    is_gold: NDArray[np.bool_]
    domain: NDArray[np.int64]
    n_domains: int


#: Layouts by store, project and a version read per request (item count and newest id, gold
#: count and newest id, stored domains, domain settings): a request then reads one row instead
#: of every item and domain. ``item_domains`` drops a project's layouts when it stores domains.
_LAYOUTS: _Recent[_Layout] = _Recent(8)


def _layout_version(conn: sa.Connection, project: Project) -> tuple[int, ...]:
    def scalar(fn: Any, table: Any, col: Any) -> Any:
        return (
            sa.select(fn(col))
            .select_from(table)
            .where(table.project_id == project.id)
            .scalar_subquery()
        )

    row = conn.execute(
        sa.select(
            scalar(sa.func.count, Item, Item.id),
            scalar(sa.func.max, Item, Item.id),
            scalar(sa.func.count, Gold, Gold.id),
            scalar(sa.func.max, Gold, Gold.id),
            scalar(sa.func.count, ItemDomain, ItemDomain.item_id),
        )
    ).one()
    return tuple(int(v or 0) for v in row)


def _forget_layouts(project: Project) -> None:
    _LAYOUTS.drop(lambda key: key[1] == project.id)


def _layout(store: Store, project: Project, settings: ProjectRouting) -> _Layout:
    """The project's layout, from the cache while its version holds; items without a stored
    domain are classified first (``item_domains``)."""
    with store.engine.connect() as conn:
        version = _layout_version(conn, project)
    if version[4] < version[0]:
        item_domains(store, project)
        with store.engine.connect() as conn:
            version = _layout_version(conn, project)
    key = (str(store.engine.url), project.id, *version, settings.domains, settings.domain_field)
    if (hit := _LAYOUTS.get(key)) is not None:
        return hit
    with store.engine.connect() as conn:
        item_ids = np.array(
            conn.execute(sa.select(Item.id).where(Item.project_id == project.id).order_by(Item.id))
            .scalars()
            .all(),
            dtype=np.int64,
        )
        gold_ids = np.array(
            conn.execute(sa.select(Gold.item_id).where(Gold.project_id == project.id))
            .scalars()
            .all(),
            dtype=np.int64,
        )
        domains = dict(
            conn.execute(
                sa.select(ItemDomain.item_id, ItemDomain.domain).where(
                    ItemDomain.project_id == project.id
                )
            ).all()
        )
    index = {d: j for j, d in enumerate(settings.domains)}
    layout = _Layout(
        item_ids,
        np.isin(item_ids, gold_ids),
        _domain_codes(item_ids, domains, index, index.get("general", len(settings.domains) - 1)),
        len(domains),
    )
    _LAYOUTS.put(key, layout)
    return layout


def counts_by_item(rows: Sequence[Any], ids: NDArray[np.int64]) -> NDArray[np.int64]:
    """``(item id, count)`` rows as counts aligned with the sorted ``ids`` (0 where no row; a row
    of an item not in ``ids``, added since they were read, is left out)."""
    out = np.zeros(ids.size, np.int64)
    if rows:
        got = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        pos = np.searchsorted(ids, got)
        ok = pos < ids.size
        ok[ok] = ids[pos[ok]] == got[ok]
        out[pos[ok]] = np.fromiter((r[1] for r in rows), np.int64, len(rows))[ok]
    return out


def _label_counts(
    conn: sa.Connection, project: Project, item_ids: NDArray[np.int64]
) -> NDArray[np.int64]:
    """Each item's standing human labels."""
    return counts_by_item(
        conn.execute(
            sa.select(Claim.item_id, sa.func.count())
            .where(standing_human_labels(project.id))
            .group_by(Claim.item_id)
        ).all(),
        item_ids,
    )


def read_evidence(store: Store, project: Project, refit: Refit = "due") -> Evidence:
    """Read everything a routing decision needs (see the module docstring for the cost); a reader
    that may not fit (``refit="never"``, a GET) folds every claim into a uniform posterior
    before the first run."""
    schema = project_schema(project)
    settings = get_settings(store, project)
    layout = _layout(store, project, settings)
    item_ids, is_gold, domain = layout.item_ids, layout.is_gold, layout.domain
    if not _single_label(schema):
        with store.engine.connect() as conn:
            tutors = tutor_profiles(conn, project)
            labels = _label_counts(conn, project, item_ids)
        n_dom = len(settings.domains)
        return Evidence(
            settings,
            [],
            item_ids,
            domain,
            np.ones((item_ids.size, 1)),
            is_gold,
            labels,
            tutors,
            np.ones((len(tutors), n_dom, 1, 1)),
            np.zeros((len(tutors), n_dom), np.int64),
            _declared([t.domains for t in tutors], settings.domains),
            single=False,
            priority=_arena_priority(store, project, schema, item_ids),
        )
    truth = current_truth(store, project, refit=refit, n_items=int(item_ids.size))
    run, mark = truth.run, truth.mark
    with store.engine.connect() as conn:
        tutors = tutor_profiles(conn, project)
        labels = _label_counts(conn, project, item_ids)
        new = conn.execute(
            sa.select(Claim.item_id, Claim.source_id, Claim.value)
            .where(
                standing_human_labels(project.id),
                Claim.id > (run.max_claim_id if run is not None else 0),
            )
            .order_by(Claim.id)
        ).all()
        classes = schema.classes()
        k, n_dom = len(classes), len(settings.domains)
        view = (
            _run_view(
                store,
                conn,
                project,
                run,
                mark,
                item_ids,
                domain,
                n_dom,
                (settings.domains, layout.n_domains),
            )
            if run is not None
            else _empty_view(n_dom, k)
        )
    posterior = np.full((item_ids.size, k), 1.0 / k)
    if view.probs is not None and view.item_ids.size:
        pos = np.minimum(np.searchsorted(view.item_ids, item_ids), view.item_ids.size - 1)
        found = view.item_ids[pos] == item_ids
        posterior[found] = view.probs[pos[found]]
    if new:
        posterior = _fold_in(
            posterior, item_ids, domain, new, schema, view, tutors, settings.domains
        )
    declared = _declared([t.domains for t in tutors], settings.domains)
    confusion, n_measured = _skill(
        view, np.array([t.source_id for t in tutors], np.int64), declared, k
    )
    return Evidence(
        settings,
        classes,
        item_ids,
        domain,
        posterior,
        is_gold,
        labels,
        tutors,
        confusion,
        n_measured,
        declared,
    )


def _arena_priority(
    store: Store, project: Project, schema: BaseSchema, item_ids: NDArray[np.int64]
) -> NDArray[np.float64] | None:
    """Active battle selection: for an arena project, each battle's worth is how much one more
    vote on its model pair would reduce the leaderboard's ranking uncertainty."""
    if not isinstance(schema, ArenaSchema):
        return None
    from ..arena.priority import item_priority

    return item_priority(store, project, item_ids)


def _domain_codes(
    item_ids: NDArray[np.int64], domains: dict[int, str], index: dict[str, int], fallback: int
) -> NDArray[np.int64]:
    """Each item's domain index; items without a stored domain (added meanwhile) fall back."""
    out = np.full(item_ids.size, fallback, np.int64)
    if domains:
        ids = np.fromiter(domains.keys(), np.int64, len(domains))
        names, inverse = np.unique(
            np.array(list(domains.values()), dtype=object), return_inverse=True
        )
        codes = np.array([index.get(n, fallback) for n in names], dtype=np.int64)[inverse.ravel()]
        pos = np.minimum(np.searchsorted(item_ids, ids), max(item_ids.size - 1, 0))
        ok = item_ids[pos] == ids if item_ids.size else np.zeros(ids.size, bool)
        out[pos[ok]] = codes[ok]
    return out


def _declared(declared: Sequence[tuple[str, ...]], names: Sequence[str]) -> NDArray[np.bool_]:
    """(sources, domains): which of ``names`` each source declares."""
    return np.array([[d in mine for d in names] for mine in declared], dtype=bool).reshape(
        -1, len(names)
    )


def _fold_in(
    posterior: NDArray[np.float64],
    item_ids: NDArray[np.int64],
    domain: NDArray[np.int64],
    new: Sequence[Any],
    schema: BaseSchema,
    measured: _RunView,
    tutors: list[TutorProfile],
    names: Sequence[str],
) -> NDArray[np.float64]:
    """The posterior after the human claims since the run, by Bayes' rule, one claim per item
    per round."""
    classes = schema.classes()
    index = {c: j for j, c in enumerate(classes)}
    items = np.searchsorted(item_ids, np.array([r[0] for r in new], dtype=np.int64))
    answers = np.array([index.get(str(schema.vote_key(r[2])), -1) for r in new], dtype=np.int64)
    sources, src = np.unique(np.array([r[1] for r in new], dtype=np.int64), return_inverse=True)
    by_source = {t.source_id: t.domains for t in tutors}
    declared = _declared([by_source.get(s, ()) for s in sources.tolist()], names)
    conf, _ = _skill(measured, sources, declared, len(classes))
    keep = answers >= 0
    items, answers, src = items[keep], answers[keep], src[keep]
    order = np.argsort(items, kind="stable")
    first = np.r_[True, items[order][1:] != items[order][:-1]] if order.size else np.zeros(0, bool)
    start = (
        np.maximum.accumulate(np.where(first, np.arange(order.size), 0)) if order.size else order
    )
    rank = np.empty(order.size, np.int64)
    rank[order] = np.arange(order.size) - start
    out = posterior.copy()
    for r in range(int(rank.max()) + 1 if rank.size else 0):
        sel = rank == r
        pos = items[sel]
        out[pos] = posterior_after(out[pos], conf[src[sel], domain[pos]], answers[sel])
    return out
