"""Routing on a project: tutors pull work, each item goes where one more label is worth most.

A tutor asks for work (``request_work``) and gets a *lease* on one item: the item, among those
not done, where the tutor's expected gain in P(correct) (``gain.expected_gain``, with the
tutor's confusion matrix in the item's domain) per unit of the tutor's cost is highest,
discounted by how far the tutor falls short of the best active tutor for that item, so a
generalist leaves a specialist's items to the specialist while other work is left. Every
``round(1 / gold_rate)``-th lease of a tutor (the first included, so a new tutor is measured at
once) is a gold item the tutor has not seen, in the domain where the tutor is least measured.

An item is *done* when its posterior reaches ``target`` after ``min_labels`` human labels, or
it has ``max_labels``; leases in flight count as labels on the way, so an item below the target
is never leased to more tutors at once than it still needs (``max(min_labels - labels, 1)``,
within the cap). No tutor is shown an item twice (labeled, or leased in any state). A lease
reserves its tutor's cost from the budget until it is submitted (spent), released or expires:
``spent + reserved + cost <= budget`` holds at every lease. Stale leases are expired first,
which returns their items to the pool. A tutor holds one running lease per project: asking again
hands the same lease back, renewed, so a crash or a lost answer never strands an item; a server
process that starts after another on its host died cuts the dead one's leases short
(``release_orphaned_leases``).

Skill (``routing.skill``) is each tutor's per-domain confusion from ``truth.source_reliability``
against the stored truth run's posterior, with the item domains as groups, shrunk into a prior
that favours the tutor's declared domains.

Cost of a request: the posterior comes from the project's newest stored truth run
(``resolve.current_truth`` with ``refit="due"``). Human claims made since that run are folded in
by Bayes' rule with the claiming source's confusion (``gain.posterior_after``), so a request
after each label does not refit the engine; once more than ``max(REFIT_CLAIMS, REFIT_SHARE x
items)`` claims (or any gold label, or any undo) arrived since, the request resolves again (one
EM fit over all claims) and stores a new run; requests that find the run stale meanwhile go on
with it and fold the new claims in, instead of starting their own fit (one refit at a time per
project, kept by ``resolve.current``). The run's
posteriors and the skills measured against it (one pass over the claims) are read once per run
and kept in memory (a few runs), and so are the item ids, gold flags and item domains while a
one-row version (counts and newest ids) holds; between refreshes a request reads that version,
the human claim counts, the claims since the run, the project's running leases and a few
indexed rows per candidate item, and computes the gain of every item for every active tutor
(vectorised, each distinct posterior once per domain).

Concurrency: choosing and leasing happen in one short write transaction. On PostgreSQL the
candidate items are locked with ``SELECT ... FOR UPDATE SKIP LOCKED`` (two tutors asking at once
get different items) and, under a budget, the project's settings row is locked so reservations
are serialised; on SQLite the write transaction serialises everything. Submitting flips the
lease with one conditional UPDATE, so a lease can be submitted at most once on either backend.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from numpy.typing import NDArray

from ..errors import AlreadyExists, InputError, NotFound, VeritagError
from ..labelers.base import Labeler
from ..limits import MAX_SOURCE_NAME_LENGTH, check_domains, check_username, refuse, text_problem
from ..resolve import current_truth, load_project_claims, load_resolution
from ..resolve.current import Refit
from ..schema import ArenaSchema, BaseSchema, MultiLabelSchema, PairwiseSchema
from ..store import audit
from ..store.claims import add_claim
from ..store.engine import Store
from ..store.models import Assignment as AssignmentRow
from ..store.models import (
    Claim,
    Gold,
    Item,
    ItemDomain,
    Project,
    RoutingSettings,
    Source,
    TruthRun,
    Tutor,
)
from ..store.queries import (
    Watermark,
    insert_ignore,
    project_schema,
    source_ids,
    standing_claims,
)
from ..truth.reliability import source_reliability
from . import pairwise
from .domains import DEFAULT_DOMAINS, classify_domains
from .gain import expected_gain, posterior_after
from .policy import RoutingConfig, item_done
from .skill import blend_skill, domain_accuracy, prior_confusion

__all__ = [
    "Assignment",
    "NotYourLease",
    "RoutingStatus",
    "Settings",
    "TutorProfile",
    "TutorScore",
    "TutorStatus",
    "add_tutor",
    "best_tutors",
    "configure",
    "get_settings",
    "item_domains",
    "list_tutors",
    "release",
    "release_orphaned_leases",
    "request_work",
    "routing_status",
    "set_tutor_active",
    "submit",
    "undo",
]

#: Candidate items locked per round trip while leasing.
_LOCK_BATCH = 32
#: A tutor whose answer cannot move even an undecided item (gain below this) is not asked in a domain.
_MIN_GAIN = 1e-9
_STATES = ("leased", "submitted", "expired", "released")


# --- settings and tutors -----------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """A project's routing settings (see README "Routing" for each one)."""

    domains: tuple[str, ...] = DEFAULT_DOMAINS
    domain_field: str = "domain"
    target: float = 0.95
    max_labels: int = 5
    min_labels: int = 1
    gold_rate: float = 0.1
    budget: float | None = None
    lease_seconds: int = 1800

    def __post_init__(self) -> None:
        refuse(check_domains, list(self.domains))
        if not self.domains or len(set(self.domains)) != len(self.domains) or not all(self.domains):
            raise VeritagError(
                f"domains must be distinct, non-empty names; got {list(self.domains)}"
            )
        if problem := text_problem(self.domain_field, MAX_SOURCE_NAME_LENGTH):
            raise InputError(f"domain_field: the field name {problem}")
        if self.lease_seconds <= 0:
            raise VeritagError(f"lease_seconds must be positive; got {self.lease_seconds}")
        try:
            self.config()
        except ValueError as exc:
            raise VeritagError(str(exc)) from None

    def config(self) -> RoutingConfig:
        """The same knobs for the pure policy functions."""
        return RoutingConfig(
            target=self.target,
            max_labels=self.max_labels,
            budget=self.budget,
            min_labels=self.min_labels,
            gold_rate=self.gold_rate,
        )

    @property
    def gold_period(self) -> int:
        """Every how many leases of a tutor one is gold (0: never)."""
        return max(1, round(1.0 / self.gold_rate)) if self.gold_rate > 0 else 0


_SETTING_NAMES = tuple(f.name for f in fields(Settings))


def _single_label(schema: BaseSchema) -> bool:
    """Whether items are routed by the gain on a posterior: answers are one class of a fixed list
    and the item has one true answer. An arena battle has none (each vote is a sample of
    preference, pooled per model pair), so it is routed like free text, by ``_arena_priority``."""
    return bool(schema.classes()) and not isinstance(schema, MultiLabelSchema | ArenaSchema)


def _settings_of(row: Any) -> Settings:
    return Settings(
        tuple(row.domains),
        row.domain_field,
        row.target,
        row.max_labels,
        row.min_labels,
        row.gold_rate,
        row.budget,
        row.lease_seconds,
    )


def get_settings(store: Store, project: Project) -> Settings:
    """The project's stored routing settings, or the defaults before ``configure``."""
    with store.engine.connect() as conn:
        row = conn.execute(
            sa.select(*RoutingSettings.__table__.c).where(RoutingSettings.project_id == project.id)
        ).first()
    return _settings_of(row) if row is not None else Settings()


def configure(
    store: Store, project: Project, *, actor: audit.Actor | None = None, **settings: Any
) -> Settings:
    """Change some routing settings (the rest keep their value); returns them all.

    Changing ``domains`` or ``domain_field`` forgets the stored item domains, which are then
    classified again. The change is recorded in the audit log as done by ``actor``.
    """
    unknown = sorted(set(settings) - set(_SETTING_NAMES))
    if unknown:
        raise VeritagError(
            f"unknown routing setting(s) {unknown}; known: {', '.join(_SETTING_NAMES)}"
        )
    old = get_settings(store, project)
    if "domains" in settings:
        settings["domains"] = tuple(settings["domains"])
    new = replace(old, **settings)
    row = {name: getattr(new, name) for name in _SETTING_NAMES} | {"domains": list(new.domains)}
    with store.engine.begin() as conn:
        done = conn.execute(
            sa.update(RoutingSettings).where(RoutingSettings.project_id == project.id).values(**row)
        )
        if not done.rowcount:
            conn.execute(sa.insert(RoutingSettings).values(project_id=project.id, **row))
        if (new.domains, new.domain_field) != (old.domains, old.domain_field):
            conn.execute(sa.delete(ItemDomain).where(ItemDomain.project_id == project.id))
        audit.record(
            conn,
            "routing.configure",
            actor=actor,
            project=project.name,
            detail={n: {"from": getattr(old, n), "to": getattr(new, n)} for n in sorted(settings)},
        )
    return new


@dataclass(frozen=True)
class TutorProfile:
    """A tutor: the human source they claim as, declared domains, cost per label, availability."""

    id: int
    name: str
    source_id: int
    domains: tuple[str, ...]
    cost: float
    active: bool


def _profiles(conn: sa.Connection, project: Project) -> list[TutorProfile]:
    rows = conn.execute(
        sa.select(Tutor.id, Source.name, Tutor.source_id, Tutor.domains, Tutor.cost, Tutor.active)
        .join(Source, Source.id == Tutor.source_id)
        .where(Tutor.project_id == project.id)
        .order_by(Tutor.id)
    ).all()
    return [TutorProfile(r[0], r[1], r[2], tuple(r[3]), float(r[4]), bool(r[5])) for r in rows]


def list_tutors(store: Store, project: Project) -> list[TutorProfile]:
    with store.engine.connect() as conn:
        return _profiles(conn, project)


def _tutor(tutors: Sequence[TutorProfile], project: Project, name: str) -> TutorProfile:
    for t in tutors:
        if t.name == name:
            return t
    raise NotFound(
        f"project {project.name!r} has no tutor named {name!r}; add one with "
        f"'veritag tutor {project.name} NAME' or POST /api/v1/projects/{project.name}/tutors"
    )


def add_tutor(
    store: Store,
    project: Project,
    name: str,
    *,
    domains: Iterable[str] = (),
    cost: float = 1.0,
    active: bool = True,
    actor: audit.Actor | None = None,
) -> TutorProfile:
    """Make ``name`` a tutor of the project (creating the human source if needed); recorded in
    the audit log as done by ``actor``."""
    declared = tuple(dict.fromkeys(domains))
    allowed = get_settings(store, project).domains
    unknown = [d for d in declared if d not in allowed]
    if unknown:
        raise VeritagError(
            f"unknown domain(s) {unknown}; the project's domains are {list(allowed)}"
        )
    if not (math.isfinite(cost) and cost > 0):
        raise VeritagError(f"a tutor's cost per label must be a positive number; got {cost}")
    if not name.strip():
        raise VeritagError("a tutor needs a name")
    refuse(check_username, name)  # a tutor labels under their username: the same caps
    with store.engine.begin() as conn:
        sid = source_ids(conn, project_id=project.id, kind="human", names={name})[name]
        if conn.scalar(
            sa.select(Tutor.id).where(Tutor.project_id == project.id, Tutor.source_id == sid)
        ):
            raise AlreadyExists(f"{name!r} is already a tutor of project {project.name!r}")
        tid = conn.execute(
            sa.insert(Tutor).values(
                project_id=project.id,
                source_id=sid,
                domains=list(declared),
                cost=float(cost),
                active=active,
            )
        ).inserted_primary_key[0]
        audit.record(
            conn,
            "tutor.add",
            actor=actor,
            project=project.name,
            target=name,
            detail={"domains": list(declared), "cost": float(cost), "active": active},
        )
    return TutorProfile(int(tid), name, sid, declared, float(cost), active)


def set_tutor_active(
    store: Store, project: Project, name: str, active: bool, actor: audit.Actor | None = None
) -> TutorProfile:
    """Make a tutor available or not; an inactive tutor gets no work and is never suggested.
    Recorded in the audit log as done by ``actor``."""
    tutor = _tutor(list_tutors(store, project), project, name)
    with store.engine.begin() as conn:
        conn.execute(sa.update(Tutor).where(Tutor.id == tutor.id).values(active=active))
        audit.record(
            conn,
            "tutor.active",
            actor=actor,
            project=project.name,
            target=name,
            detail={"active": active, "was": tutor.active},
        )
    return replace(tutor, active=active)


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


@dataclass
class _Evidence:
    """A project's routing picture, item-aligned (``item_ids`` sorted): domain index, posterior,
    gold flag, human labels so far; tutors with their confusion per domain and measured claims.

    A task without one answer from a fixed list (free text, spans, multi-label) has no posterior
    to gain on: it is given one certain pseudo-class, so an item is done at ``min_labels``
    answers, and tutors are matched on their declared domains (see ``_pull_scores``)."""

    settings: Settings
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
    #: False for free text, spans, multi-label and arena: no posterior, so each item takes ``min_labels``.
    single: bool = True
    #: Per item, how much its answer is worth beside others (arena: the model pair's priority).
    priority: NDArray[np.float64] | None = None

    def position(self, item_id: int) -> int:
        pos = int(np.searchsorted(self.item_ids, item_id))
        if pos >= self.item_ids.size or self.item_ids[pos] != item_id:
            raise NotFound(f"item {item_id} is not in this project")
        return pos

    def need(self, labels: NDArray[np.int64], pos: NDArray[np.int64]) -> NDArray[np.int64]:
        """How many more labels the items at ``pos`` still take, given ``labels`` (with those in flight)."""
        s = self.settings
        done = item_done(self.posterior[pos], labels, s.config())
        want = np.maximum(s.min_labels - labels, 1)
        return np.where(done, 0, np.clip(np.minimum(want, s.max_labels - labels), 0, None)).astype(
            np.int64
        )


@dataclass(frozen=True)
class _RunView:
    """What a request takes from one stored truth run: its posterior (rows of ``item_ids``) and
    every source's per-domain confusion measured against it."""

    item_ids: NDArray[np.int64]
    probs: NDArray[np.float64] | None
    source_ids: NDArray[np.int64]
    confusion: NDArray[np.float64]  # (sources, domains, k, k), source_reliability's shrunk matrices
    n_claims: NDArray[np.int64]  # (sources, domains)


#: Run views by store, project, run and item domains: a run is immutable, so a view only goes
#: out of date when a newer run or new item domains replace its key.
_RUN_CACHE: OrderedDict[tuple[Any, ...], _RunView] = OrderedDict()
_RUN_CACHE_SIZE = 4
_RUN_CACHE_LOCK = threading.Lock()


def _run_row(conn: sa.Connection, run_id: int) -> Any:
    return conn.execute(sa.select(*TruthRun.__table__.c).where(TruthRun.id == run_id)).one()


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
    """The run's posterior and the skills measured against it, read once per run (see ``_RUN_CACHE``)."""
    full = (str(store.engine.url), project.id, run.id, run.created_at, run.max_claim_id, *key)
    with _RUN_CACHE_LOCK:
        hit = _RUN_CACHE.get(full)
        if hit is not None:
            _RUN_CACHE.move_to_end(full)
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
    with _RUN_CACHE_LOCK:
        _RUN_CACHE[full] = view
        while len(_RUN_CACHE) > _RUN_CACHE_SIZE:
            _RUN_CACHE.popitem(last=False)
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
_LAYOUT_CACHE: OrderedDict[tuple[Any, ...], _Layout] = OrderedDict()
_LAYOUT_CACHE_SIZE = 8
_LAYOUT_LOCK = threading.Lock()


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
    with _LAYOUT_LOCK:
        for key in [k for k in _LAYOUT_CACHE if k[1] == project.id]:
            del _LAYOUT_CACHE[key]


def _layout(store: Store, project: Project, settings: Settings) -> _Layout:
    """The project's layout, from the cache while its version holds; items without a stored
    domain are classified first (``item_domains``)."""
    with store.engine.connect() as conn:
        version = _layout_version(conn, project)
    if version[4] < version[0]:
        item_domains(store, project)
        with store.engine.connect() as conn:
            version = _layout_version(conn, project)
    key = (str(store.engine.url), project.id, *version, settings.domains, settings.domain_field)
    with _LAYOUT_LOCK:
        hit = _LAYOUT_CACHE.get(key)
        if hit is not None:
            _LAYOUT_CACHE.move_to_end(key)
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
    with _LAYOUT_LOCK:
        _LAYOUT_CACHE[key] = layout
        while len(_LAYOUT_CACHE) > _LAYOUT_CACHE_SIZE:
            _LAYOUT_CACHE.popitem(last=False)
    return layout


def _label_counts(
    conn: sa.Connection, project: Project, item_ids: NDArray[np.int64]
) -> NDArray[np.int64]:
    """Each item's standing human labels."""
    human = sa.select(Source.id).where(Source.project_id == project.id, Source.kind == "human")
    counts = conn.execute(
        sa.select(Claim.item_id, sa.func.count())
        .where(
            Claim.project_id == project.id,
            Claim.source_id.in_(human),
            Claim.value.is_not(None),
            standing_claims(),
        )
        .group_by(Claim.item_id)
    ).all()
    labels = np.zeros(item_ids.size, np.int64)
    if counts:
        ids = np.fromiter((c[0] for c in counts), np.int64, len(counts))
        labels[np.searchsorted(item_ids, ids)] = np.fromiter(
            (c[1] for c in counts), np.int64, len(counts)
        )
    return labels


def _current_run(
    store: Store, project: Project, n_items: int, refit: Refit
) -> tuple[Any, Watermark]:
    """The stored truth run a request reads: fitted again once due (``resolve.current_truth``),
    else the claims since are folded in by the request; None before the first run with
    ``refit="never"``."""
    truth = current_truth(store, project, refit=refit, n_items=n_items)
    return truth.run, truth.mark


def _evidence(store: Store, project: Project, refit: Refit = "due") -> _Evidence:
    """Read everything a routing decision needs (see the module docstring for the cost); a reader
    that may not fit (``refit="never"``, a GET) folds every claim into a uniform posterior
    before the first run."""
    schema = project_schema(project)
    settings = get_settings(store, project)
    layout = _layout(store, project, settings)
    item_ids, is_gold, domain = layout.item_ids, layout.is_gold, layout.domain
    if not _single_label(schema):
        with store.engine.connect() as conn:
            tutors = _profiles(conn, project)
            labels = _label_counts(conn, project, item_ids)
        n_dom = len(settings.domains)
        return _Evidence(
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
    run, mark = _current_run(store, project, int(item_ids.size), refit)
    with store.engine.connect() as conn:
        tutors = _profiles(conn, project)
        labels = _label_counts(conn, project, item_ids)
        human = sa.select(Source.id).where(Source.project_id == project.id, Source.kind == "human")
        new = conn.execute(
            sa.select(Claim.item_id, Claim.source_id, Claim.value)
            .where(
                Claim.project_id == project.id,
                Claim.id > (run.max_claim_id if run is not None else 0),
                Claim.source_id.in_(human),
                Claim.value.is_not(None),
                standing_claims(),
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
            else _RunView(
                np.zeros(0, np.int64),
                None,
                np.zeros(0, np.int64),
                np.zeros((0, n_dom, k, k)),
                np.zeros((0, n_dom), np.int64),
            )
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
    return _Evidence(
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
    """The posterior after the human claims since the run, by Bayes' rule, one claim per item per round."""
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


# --- leases --------------------------------------------------------------------------------------


def _utc(now: datetime | None) -> datetime:
    """``now`` in UTC (a naive value is taken as UTC); the clock when None."""
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


@dataclass(frozen=True)
class Assignment:
    """A lease handed to a tutor: the item to label, until ``expires_at``.

    ``gain`` is the expected gain in P(correct) this label brings (0 for gold items, which
    measure the tutor instead); ``cost`` is reserved from the budget while the lease runs.
    """

    id: int
    item_id: int
    external_id: str
    text: str | None
    data: dict[str, Any] | None
    domain: str
    tutor: str
    is_gold: bool
    cost: float
    gain: float
    leased_at: datetime
    expires_at: datetime
    #: Whether this is the tutor's running lease handed back to them (see ``request_work``).
    resumed: bool = False


def _live(project: Project, now: datetime) -> Any:
    return sa.and_(
        AssignmentRow.project_id == project.id,
        AssignmentRow.state == "leased",
        AssignmentRow.expires_at > now,
    )


def _expire(conn: sa.Connection, project: Project, now: datetime) -> None:
    """Stale leases become ``expired``: their items go back to the pool and their cost is freed."""
    conn.execute(
        sa.update(AssignmentRow)
        .where(
            AssignmentRow.project_id == project.id,
            AssignmentRow.state == "leased",
            AssignmentRow.expires_at <= now,
        )
        .values(state="expired")
    )


def _spending(conn: sa.Connection, project: Project, now: datetime) -> tuple[float, float]:
    """(spent, reserved): the cost of submitted leases, and of leases still running."""
    spent = conn.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(AssignmentRow.cost), 0.0)).where(
            AssignmentRow.project_id == project.id, AssignmentRow.state == "submitted"
        )
    )
    reserved = conn.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(AssignmentRow.cost), 0.0)).where(_live(project, now))
    )
    return float(spent or 0.0), float(reserved or 0.0)


@dataclass(frozen=True)
class _Fresh:
    """Per item, read inside the leasing transaction: human labels, live leases, seen by the tutor."""

    labels: NDArray[np.int64]
    in_flight: NDArray[np.int64]
    seen: NDArray[np.bool_]


def _fresh(
    conn: sa.Connection,
    project: Project,
    tutor: TutorProfile,
    ids: NDArray[np.int64],
    now: datetime,
    *,
    labels: NDArray[np.int64] | None = None,
) -> _Fresh:
    """Read the counts for ``ids``. With ``labels`` (counts read before the transaction), ``ids``
    are all the project's items and only leases are read: the first, coarse filter uses that,
    since counts only grow and an old one lets more items through, never fewer."""
    where = (lambda col: sa.true()) if labels is not None else (lambda col: col.in_(ids.tolist()))
    human = sa.select(Source.id).where(Source.project_id == project.id, Source.kind == "human")

    def per_item(stmt: sa.Select[Any]) -> NDArray[np.int64]:
        out = np.zeros(ids.size, np.int64)
        rows = conn.execute(stmt).all()
        if rows:
            got = np.array([r[0] for r in rows], dtype=np.int64)
            pos = np.searchsorted(ids, got)
            ok = pos < ids.size
            ok[ok] = ids[pos[ok]] == got[ok]
            out[pos[ok]] = np.array([r[1] for r in rows], dtype=np.int64)[ok]
        return out

    if labels is None:
        labels = per_item(
            sa.select(Claim.item_id, sa.func.count())
            .where(
                Claim.project_id == project.id,
                Claim.source_id.in_(human),
                Claim.value.is_not(None),
                standing_claims(),
                where(Claim.item_id),
            )
            .group_by(Claim.item_id)
        )
    in_flight = per_item(
        sa.select(AssignmentRow.item_id, sa.func.count())
        .where(_live(project, now), where(AssignmentRow.item_id))
        .group_by(AssignmentRow.item_id)
    )
    mine = (
        conn.execute(
            sa.union(
                sa.select(Claim.item_id).where(
                    Claim.project_id == project.id,
                    Claim.source_id == tutor.source_id,
                    where(Claim.item_id),
                ),
                sa.select(AssignmentRow.item_id).where(
                    AssignmentRow.project_id == project.id,
                    AssignmentRow.tutor_id == tutor.id,
                    where(AssignmentRow.item_id),
                ),
            )
        )
        .scalars()
        .all()
    )
    return _Fresh(labels, in_flight, np.isin(ids, np.array(mine, dtype=np.int64)))


def _pull_scores(ev: _Evidence, me: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per item: the tutor's gain, and its score (gain per cost, times its share of the best active
    tutor's gain per cost); -inf score where the tutor is useless in the item's domain. Without a
    posterior (``ev.single`` false) the gain is 0 and a tutor prefers items in their declared
    domains, cheaper tutors first, weighted by the item's priority where there is one (arena)."""
    if not ev.single:
        mine = (
            ev.declared[me][ev.domain] if ev.declared[me].any() else np.ones(ev.domain.size, bool)
        )
        score = np.where(mine, 2.0, 1.0) / ev.tutors[me].cost
        return np.zeros(ev.domain.size), score if ev.priority is None else score * ev.priority
    active = np.array([t.active for t in ev.tutors], dtype=bool)
    cost = np.array([t.cost for t in ev.tutors])
    gain = expected_gain(ev.posterior, ev.confusion[active], ev.domain)
    eff = gain / cost[active]
    mine = eff[:, int(active[:me].sum())]
    best = eff.max(axis=1)
    share = np.where(best > 0, mine / np.where(best > 0, best, 1.0), 1.0)
    k = len(ev.classes)
    useful = expected_gain(np.full((1, k), 1.0 / k), ev.confusion[me])[0] > _MIN_GAIN  # per domain
    return gain[:, int(active[:me].sum())], np.where(useful[ev.domain], mine * share, -np.inf)


def _lock(conn: sa.Connection, ids: NDArray[np.int64]) -> NDArray[np.int64]:
    """The ``ids`` whose item rows this transaction could lock (PostgreSQL: others' are skipped)."""
    if conn.dialect.name != "postgresql":
        return ids
    got = (
        conn.execute(
            sa.select(Item.id)
            .where(Item.id.in_(ids.tolist()))
            .order_by(Item.id)
            .with_for_update(skip_locked=True)
        )
        .scalars()
        .all()
    )
    return ids[np.isin(ids, np.array(got, dtype=np.int64))]


def _renew_held(
    conn: sa.Connection,
    project: Project,
    tutor: Any,
    now: datetime,
    lease_seconds: int,
    served_by: str | None,
) -> Assignment | None:
    """Inside a write transaction: the oldest running lease of ``tutor`` (a ``Tutor.id`` or a
    subquery of it) in the project, renewed for ``lease_seconds``; None if they hold none."""
    mine = sa.and_(
        _live(project, now),
        AssignmentRow.tutor_id.in_(tutor)
        if isinstance(tutor, sa.Select)
        else AssignmentRow.tutor_id == tutor,
    )
    held = conn.scalar(sa.select(AssignmentRow.id).where(mine).order_by(AssignmentRow.id).limit(1))
    if held is None:
        return None
    conn.execute(
        sa.update(AssignmentRow)
        .where(AssignmentRow.id == held)
        .values(expires_at=now + timedelta(seconds=lease_seconds), served_by=served_by)
    )
    return _stored_lease(conn, held, resumed=True)


def _resume(
    store: Store, project: Project, tutor_name: str, now: datetime, served_by: str | None
) -> Assignment | None:
    """The fast path of ``request_work`` for a tutor who holds a running lease: no evidence read."""
    tutor = (
        sa.select(Tutor.id)
        .join(Source, Source.id == Tutor.source_id)
        .where(Tutor.project_id == project.id, Source.name == tutor_name)
    )
    with store.engine.connect() as conn:
        if (
            conn.scalar(
                sa.select(AssignmentRow.id)
                .where(_live(project, now), AssignmentRow.tutor_id.in_(tutor))
                .limit(1)
            )
            is None
        ):
            return None
    lease_seconds = get_settings(store, project).lease_seconds
    with store.begin_write() as conn:
        return _renew_held(conn, project, tutor, now, lease_seconds, served_by)


def request_work(
    store: Store,
    project: Project,
    tutor_name: str,
    now: datetime | None = None,
    *,
    resume: bool = True,
    served_by: str | None = None,
) -> Assignment | None:
    """Lease the tutor the item where their next label is worth most; None when nothing is left
    for them or the budget cannot pay for one more label at their cost (see the module docstring).

    A tutor who already holds a running lease in the project gets it back (``resumed``, renewed)
    instead of a second one: a client whose answer to the last request was lost with a crashed
    server or a dropped connection picks up where it was, and no item stays leased to someone who
    is not looking at it. ``resume=False`` leases another item anyway (a client that works on
    several at once). ``served_by`` names the server process handing the lease out, so a process
    that starts after it died can release it early (``release_orphaned_leases``)."""
    now = _utc(now)
    if resume and (held := _resume(store, project, tutor_name, now, served_by)) is not None:
        return held
    ev = _evidence(store, project)
    me = ev.tutors.index(_tutor(ev.tutors, project, tutor_name))
    tutor = ev.tutors[me]
    if not tutor.active:
        raise VeritagError(
            f"tutor {tutor_name!r} is not active; switch them on with "
            f"'veritag tutor {project.name} {tutor_name} --active' first"
        )
    gain, score = _pull_scores(ev, me)
    settings = ev.settings
    with store.begin_write() as conn:
        _expire(
            conn, project, now
        )  # first statement writes: on SQLite the transaction now holds the lock
        if (
            resume
        ):  # two requests of one tutor at once: the second waits here and gets the first's lease
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(Tutor.id).where(Tutor.id == tutor.id).with_for_update())
            if (
                held := _renew_held(conn, project, tutor.id, now, settings.lease_seconds, served_by)
            ) is not None:
                return held
        if settings.budget is not None:
            if conn.dialect.name == "postgresql":
                conn.execute(
                    sa.select(RoutingSettings.project_id)
                    .where(RoutingSettings.project_id == project.id)
                    .with_for_update()
                )
            spent, reserved = _spending(conn, project, now)
            if spent + reserved + tutor.cost > settings.budget + 1e-9:
                return None
        now_all = _fresh(conn, project, tutor, ev.item_ids, now, labels=ev.labels)
        pos = np.arange(ev.item_ids.size)
        open_ = ~ev.is_gold & ~now_all.seen & (now_all.in_flight < ev.need(now_all.labels, pos))
        pool = pos[open_ & np.isfinite(score)]
        if not pool.size:
            return None
        gold_turn = (
            settings.gold_period > 0
            and conn.scalar(
                sa.select(sa.func.count())
                .select_from(AssignmentRow)
                .where(AssignmentRow.project_id == project.id, AssignmentRow.tutor_id == tutor.id)
            )
            % settings.gold_period
            == 0
        )
        chosen: int | None = None
        if gold_turn:
            golds = pos[ev.is_gold & ~now_all.seen]
            golds = golds[np.lexsort((ev.item_ids[golds], ev.measured[me, ev.domain[golds]]))]
            chosen = _first_lockable(
                conn, ev.item_ids, golds, lambda ids, f: ~f.seen, project, tutor, now
            )
        is_gold = chosen is not None
        if chosen is None:
            ranked = pool[
                np.lexsort((ev.item_ids[pool], ev.posterior[pool].max(axis=1), -score[pool]))
            ]
            chosen = _first_lockable(
                conn,
                ev.item_ids,
                ranked,
                lambda ids, f: (
                    ~f.seen & (f.in_flight < ev.need(f.labels, np.searchsorted(ev.item_ids, ids)))
                ),
                project,
                tutor,
                now,
            )
        if chosen is None:
            return None
        expires = now + timedelta(seconds=settings.lease_seconds)
        lease_id = conn.execute(
            sa.insert(AssignmentRow).values(
                project_id=project.id,
                item_id=int(ev.item_ids[chosen]),
                tutor_id=tutor.id,
                is_gold=is_gold,
                cost=tutor.cost,
                leased_at=now,
                expires_at=expires,
                state="leased",
                served_by=served_by,
            )
        ).inserted_primary_key[0]
        item = conn.execute(
            sa.select(Item.external_id, Item.text, Item.data).where(
                Item.id == int(ev.item_ids[chosen])
            )
        ).one()
    return Assignment(
        int(lease_id),
        int(ev.item_ids[chosen]),
        item[0],
        item[1],
        item[2],
        settings.domains[ev.domain[chosen]],
        tutor.name,
        is_gold,
        tutor.cost,
        0.0 if is_gold else float(gain[chosen]),
        now,
        expires,
    )


def _first_lockable(
    conn: sa.Connection,
    item_ids: NDArray[np.int64],
    ranked: NDArray[np.int64],
    still_ok: Callable[[NDArray[np.int64], _Fresh], NDArray[np.bool_]],
    project: Project,
    tutor: TutorProfile,
    now: datetime,
) -> int | None:
    """The first of ``ranked`` (positions) whose item this transaction locks and that, read again
    under the lock, ``still_ok`` accepts; None when none does."""
    for start in range(0, ranked.size, _LOCK_BATCH):
        batch = ranked[start : start + _LOCK_BATCH]
        locked = _lock(conn, item_ids[batch])
        if not locked.size:
            continue
        ids = np.sort(locked)
        ok = still_ok(ids, _fresh(conn, project, tutor, ids, now))
        good = set(ids[ok].tolist())
        for p in batch.tolist():
            if int(item_ids[p]) in good:
                return int(p)
    return None


class NotYourLease(VeritagError):
    """A tutor named a lease leased to someone else (the API answers it as it answers no lease)."""


def _lease_row(
    conn: sa.Connection, project: Project, assignment_id: int, tutor: str | None = None
) -> Any:
    """The lease with its tutor's source and the item's text, read once per call.

    The one ownership check of submit, undo and release: ``NotFound`` outside ``project``,
    ``NotYourLease`` when ``tutor`` is given and holds someone else's lease (in any state).
    """
    row = conn.execute(
        sa.select(
            AssignmentRow.id,
            AssignmentRow.item_id,
            AssignmentRow.state,
            AssignmentRow.expires_at,
            AssignmentRow.project_id,
            AssignmentRow.tutor_id,
            AssignmentRow.claim_id,
            Tutor.source_id,
            Source.name,
            Item.text,
        )
        .join(Tutor, Tutor.id == AssignmentRow.tutor_id)
        .join(Source, Source.id == Tutor.source_id)
        .join(Item, Item.id == AssignmentRow.item_id)
        .where(AssignmentRow.id == assignment_id)
    ).first()
    if row is None or row.project_id != project.id:
        raise NotFound(f"project {project.name!r} has no assignment {assignment_id}")
    if tutor is not None and row.name != tutor:
        raise NotYourLease(f"assignment {row.id} is leased to {row.name!r}, not {tutor!r}")
    return row


def _refuse(row: Any, now: datetime) -> None:
    """Say why a running lease cannot be used, if it cannot (its owner is checked by ``_lease_row``)."""
    if row.state != "leased":
        raise VeritagError(f"assignment {row.id} is {row.state}; request new work")
    expires = _utc(row.expires_at)
    if expires <= now:
        raise VeritagError(
            f"assignment {row.id} expired at {expires.isoformat()}; request new work"
        )


def submit(
    store: Store,
    project: Project,
    assignment_id: int,
    value: Any,
    now: datetime | None = None,
    *,
    tutor: str | None = None,
    seconds: float | None = None,
) -> int:
    """Write the tutor's label for a running lease as a claim; returns the claim id.

    The value is checked against the project's schema first (a bad one leaves the lease as it
    was); a pairwise answer may name the side the lease showed (``left``/``right``, see
    ``routing.pairwise``). An expired, released or already submitted lease is refused, and so
    is another tutor's when ``tutor`` names who is submitting. ``seconds`` is the time the
    tutor spent on the item, kept with the lease for speed scorecards.
    """
    now = _utc(now)
    if seconds is not None and not (math.isfinite(seconds) and seconds >= 0):
        raise VeritagError(f"seconds must be a non-negative number; got {seconds}")
    schema = project_schema(project)
    with (
        store.engine.connect() as conn
    ):  # read outside the writer lock, which the update below rechecks
        row = _lease_row(conn, project, assignment_id, tutor)
    _refuse(row, now)
    if isinstance(schema, PairwiseSchema):
        value = pairwise.from_sides(project.id, assignment_id, value)
    label = schema.normalize(value, item_text=row.text)
    with store.begin_write() as conn:
        taken = conn.execute(
            sa.update(AssignmentRow)
            .where(
                AssignmentRow.id == assignment_id,
                AssignmentRow.state == "leased",
                AssignmentRow.expires_at > now,
            )
            .values(state="submitted")
        )
        if taken.rowcount != 1:  # another call got there first: say what it did
            _refuse(_lease_row(conn, project, assignment_id), now)
            raise VeritagError(f"assignment {assignment_id} cannot be submitted")
        claim_id = add_claim(conn, project.id, row.item_id, row.source_id, value=label)
        conn.execute(
            sa.update(AssignmentRow)
            .where(AssignmentRow.id == assignment_id)
            .values(claim_id=claim_id, seconds=seconds)
        )
    return claim_id


def undo(
    store: Store,
    project: Project,
    assignment_id: int,
    now: datetime | None = None,
    *,
    tutor: str | None = None,
) -> tuple[Assignment, Any]:
    """Take back the claim of a submitted lease while the lease still holds; returns the lease,
    running again, and the value taken back.

    Nothing is deleted: a *retraction* (a claim by the same source with no value, ``retracts``
    naming the claim) is added, and every reader of labels skips both (``standing_claims``).
    Only the tutor's newest submitted lease in the project can be undone, once per submission,
    so undo steps back over the last answer and no further.
    """
    now = _utc(now)
    with store.begin_write() as conn:
        row = _lease_row(conn, project, assignment_id, tutor)
        if row.state != "submitted":
            raise VeritagError(
                f"assignment {row.id} is {row.state}: only a submitted answer can be undone"
            )
        if _utc(row.expires_at) <= now:
            raise VeritagError(
                f"assignment {row.id}'s lease ended at {_utc(row.expires_at).isoformat()}; "
                "its answer stands"
            )
        newest = conn.scalar(
            sa.select(sa.func.max(AssignmentRow.id)).where(
                AssignmentRow.project_id == project.id,
                AssignmentRow.tutor_id == row.tutor_id,
                AssignmentRow.state == "submitted",
            )
        )
        if newest != row.id:
            raise VeritagError(
                f"assignment {row.id} is not your last answer; only the last one can be undone"
            )
        taken = conn.execute(
            sa.update(AssignmentRow)
            .where(AssignmentRow.id == row.id, AssignmentRow.state == "submitted")
            .values(state="leased", claim_id=None, seconds=None)
        )
        if taken.rowcount != 1:
            raise VeritagError(f"assignment {row.id} changed meanwhile; try again")
        value = conn.scalar(sa.select(Claim.value).where(Claim.id == row.claim_id))
        add_claim(conn, project.id, row.item_id, row.source_id, retracts=row.claim_id)
        return _stored_lease(conn, row.id), value


def _stored_lease(conn: sa.Connection, assignment_id: int, *, resumed: bool = False) -> Assignment:
    """A lease as stored, for handing it out again (undo, resume); its gain is not re-estimated (0)."""
    lease = conn.execute(
        sa.select(
            AssignmentRow.id,
            AssignmentRow.item_id,
            AssignmentRow.is_gold,
            AssignmentRow.cost,
            AssignmentRow.leased_at,
            AssignmentRow.expires_at,
            Item.external_id,
            Item.text,
            Item.data,
            ItemDomain.domain,
            Source.name,
        )
        .join(Item, Item.id == AssignmentRow.item_id)
        .join(Tutor, Tutor.id == AssignmentRow.tutor_id)
        .join(Source, Source.id == Tutor.source_id)
        .outerjoin(ItemDomain, ItemDomain.item_id == AssignmentRow.item_id)
        .where(AssignmentRow.id == assignment_id)
    ).one()
    return Assignment(
        lease.id,
        lease.item_id,
        lease.external_id,
        lease.text,
        lease.data,
        lease.domain or "general",
        lease.name,
        bool(lease.is_gold),
        float(lease.cost),
        0.0,
        _utc(lease.leased_at),
        _utc(lease.expires_at),
        resumed,
    )


def release(
    store: Store,
    project: Project,
    assignment_id: int,
    now: datetime | None = None,
    *,
    tutor: str | None = None,
    reason: str | None = None,
) -> None:
    """Give a running lease back unlabeled: the item returns to the pool (not to this tutor) and
    its cost to the budget. ``reason`` (why the tutor skipped it) is kept with the lease."""
    now = _utc(now)
    with store.begin_write() as conn:
        done = conn.execute(
            sa.update(AssignmentRow)
            .where(
                AssignmentRow.id == assignment_id,
                AssignmentRow.project_id == project.id,
                AssignmentRow.state == "leased",
                AssignmentRow.expires_at > now,
                *(
                    [
                        AssignmentRow.tutor_id.in_(
                            sa.select(Tutor.id)
                            .join(Source, Source.id == Tutor.source_id)
                            .where(Tutor.project_id == project.id, Source.name == tutor)
                        )
                    ]
                    if tutor is not None
                    else []
                ),
            )
            .values(state="released", skip_reason=(reason or "").strip() or None)
        )
        if done.rowcount != 1:
            _refuse(_lease_row(conn, project, assignment_id, tutor), now)


def release_orphaned_leases(
    store: Store,
    host: str,
    alive: Callable[[int], bool],
    grace_seconds: float,
    now: datetime | None = None,
) -> int:
    """Cut short the running leases last handed out by server processes of ``host`` that are gone
    (``served_by`` is ``host:pid:tag``; ``alive(pid)`` says whether a pid runs): they now expire
    within ``grace_seconds``, not ``lease_seconds`` after they were handed out. A tutor who is
    still working asks again within the grace and gets the lease back renewed (``request_work``);
    the items of requests that died with the process go back to the pool. Returns how many leases
    were cut short. Leases of other hosts are left alone: whether their process runs is unknown here."""
    now = _utc(now)
    prefix = f"{host}:"
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(AssignmentRow.id, AssignmentRow.served_by).where(
                AssignmentRow.state == "leased",
                AssignmentRow.expires_at > now,
                AssignmentRow.served_by.startswith(prefix, autoescape=True),
            )
        ).all()
    pids = {r.served_by: r.served_by[len(prefix) :].split(":")[0] for r in rows}
    dead = [
        r.id for r in rows if not (pids[r.served_by].isdigit() and alive(int(pids[r.served_by])))
    ]
    if not dead:
        return 0
    until = now + timedelta(seconds=max(grace_seconds, 0.0))
    with store.begin_write() as conn:
        for start in range(0, len(dead), 500):
            conn.execute(
                sa.update(AssignmentRow)
                .where(
                    AssignmentRow.id.in_(dead[start : start + 500]),
                    AssignmentRow.state == "leased",
                    AssignmentRow.expires_at > until,
                )
                .values(expires_at=until)
            )
    return len(dead)


# --- push and status -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TutorScore:
    """How much one label by ``tutor`` is worth on an item: expected gain, cost, gain per cost."""

    tutor: str
    gain: float
    cost: float
    score: float


def best_tutors(
    store: Store, project: Project, item: str, now: datetime | None = None, k: int = 3
) -> list[TutorScore]:
    """Push: the ``k`` active tutors whose label on ``item`` (an external id) is worth most per unit
    cost, best first (ties by tutor order); tutors who labeled the item or hold a running lease on
    it are left out."""
    now = _utc(now)
    ev = _evidence(store, project)
    with store.engine.connect() as conn:
        item_id = conn.scalar(
            sa.select(Item.id).where(Item.project_id == project.id, Item.external_id == item)
        )
        if item_id is None:
            raise NotFound(f"project {project.name!r} has no item {item!r}")
        busy = set(
            conn.execute(
                sa.select(Tutor.id)
                .join(Claim, Claim.source_id == Tutor.source_id)
                .where(Tutor.project_id == project.id, Claim.item_id == item_id)
            ).scalars()
        )
        busy |= set(
            conn.execute(
                sa.select(AssignmentRow.tutor_id).where(
                    _live(project, now), AssignmentRow.item_id == item_id
                )
            ).scalars()
        )
    pos = ev.position(item_id)
    ok = np.array([t.active and t.id not in busy for t in ev.tutors], dtype=bool)
    if not ok.any():
        return []
    gain = expected_gain(ev.posterior[pos : pos + 1], ev.confusion[ok], ev.domain[pos : pos + 1])[0]
    chosen = [t for t, keep in zip(ev.tutors, ok, strict=True) if keep]
    cost = np.array([t.cost for t in chosen])
    score = (
        gain / cost if ev.single else np.where(ev.declared[ok][:, ev.domain[pos]], 2.0, 1.0) / cost
    )
    order = np.argsort(-score, kind="stable")[: max(k, 0)]
    return [
        TutorScore(chosen[j].name, float(gain[j]), float(cost[j]), float(score[j])) for j in order
    ]


@dataclass(frozen=True)
class TutorStatus:
    """One tutor's leases by state, what they cost, and their skill (expected accuracy with
    classes equally likely) and measured labels per domain."""

    name: str
    active: bool
    cost: float
    domains: tuple[str, ...]
    leases: dict[str, int]
    gold: int
    spent: float
    skill: dict[str, float]
    measured: dict[str, int]


@dataclass(frozen=True)
class RoutingStatus:
    """Where routing stands: items done and pending (gold items apart), labels and cost spent,
    cost reserved by running leases, budget left (None: unlimited), and per tutor."""

    settings: Settings
    items: int
    done: int
    pending: int
    gold_items: int
    in_flight: int
    labels_spent: int
    spent: float
    reserved: float
    budget_left: float | None
    tutors: list[TutorStatus] = field(default_factory=list)


def routing_status(
    store: Store, project: Project, now: datetime | None = None, *, refit: Refit = "due"
) -> RoutingStatus:
    """Items done and pending, labels spent, budget left, and each tutor's counts and skill
    (``refit`` as for ``resolve.current_truth``: a GET passes ``never``)."""
    now = _utc(now)
    ev = _evidence(store, project, refit)
    with store.engine.connect() as conn:
        spent, reserved = _spending(conn, project, now)
        live = sa.case(
            (_live(project, now), "leased"),
            (AssignmentRow.state == "leased", "expired"),
            else_=AssignmentRow.state,
        )
        rows = conn.execute(
            sa.select(
                AssignmentRow.tutor_id,
                live,
                AssignmentRow.is_gold,
                sa.func.count(),
                sa.func.sum(AssignmentRow.cost),
            )
            .where(AssignmentRow.project_id == project.id)
            .group_by(AssignmentRow.tutor_id, live, AssignmentRow.is_gold)
        ).all()
    leases = {t.id: dict.fromkeys(_STATES, 0) for t in ev.tutors}
    gold = dict.fromkeys(leases, 0)
    paid = dict.fromkeys(leases, 0.0)
    for tutor_id, state, is_gold, n, cost in rows:
        leases[tutor_id][state] += n
        gold[tutor_id] += n if is_gold else 0
        paid[tutor_id] += float(cost or 0.0) if state == "submitted" else 0.0
    pending = ~ev.is_gold & (ev.need(ev.labels, np.arange(ev.item_ids.size)) > 0)
    accuracy = domain_accuracy(ev.confusion) if ev.single else np.full(ev.measured.shape, np.nan)
    names = ev.settings.domains
    tutors = [
        TutorStatus(
            t.name,
            t.active,
            t.cost,
            t.domains,
            leases[t.id],
            gold[t.id],
            paid[t.id],
            dict(zip(names, accuracy[j].tolist(), strict=True)),
            dict(zip(names, ev.measured[j].tolist(), strict=True)),
        )
        for j, t in enumerate(ev.tutors)
    ]
    budget = ev.settings.budget
    return RoutingStatus(
        ev.settings,
        int(ev.item_ids.size),
        int((~ev.is_gold & ~pending).sum()),
        int(pending.sum()),
        int(ev.is_gold.sum()),
        sum(v["leased"] for v in leases.values()),
        sum(v["submitted"] for v in leases.values()),
        spent,
        reserved,
        None if budget is None else budget - spent - reserved,
        tutors,
    )
