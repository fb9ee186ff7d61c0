"""The routing queue: each item's place in line, kept up to date on every write, so that handing
out the next item reads a few indexed rows instead of the project.

A row of ``routing_items`` per item holds what a lease decision reads about it: its domain, gold
flag, standing human labels, leases not yet ended, the labels it still needs, whether it takes a
lease now (``open``) and its posterior with the top class probability. The index on
``(project, open, domain, top, item)`` hands out the least certain open items of a domain first
(``candidates``); the lease decision then scores those few exactly (``leases``).

Who keeps it: ``build`` computes rows from scratch (the newest truth run's posterior with the
human labels since folded in, as ``evidence`` does for the whole project) in short write
transactions of a few thousand items each, and stores the sources' per-domain skill against that
run (``routing_skill``), so no server process measures it again. Between builds every write
moves the rows it touches in its own transaction: a lease adds one to ``leased``, a release or an
expiry takes it off, a submit folds the label into the posterior by Bayes' rule with the tutor's
confusion (``gain.posterior_after``), and an undo computes the item again from scratch.

``ensure`` (on every lease request) reads one row of numbers and says what is due: a first build
or one for new settings (done at once, the request needs the queue), new items (their rows are
built at once) or new gold labels (flagged at once), and a refit, when claims came from other
writers than submits (an import, a review), after an undo, or once the labels since the truth run
pass ``resolve.current``'s threshold. A refit fits the truth again and builds the queue from the
new run: in the request (``refit_and_build``) or, given ``on_due``, by whoever that hands it to
(the server queues a job for a worker), while requests go on with the queue as it stands.

Consistency: a build locks the rows of a chunk (``FOR UPDATE`` on PostgreSQL; SQLite's writer
lock) and reads claims and leases after it, so a submit or lease committed before the chunk is
read from the tables and one committed after moves the new row; none is counted twice or lost.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from numpy.typing import NDArray

from ..resolve import current_truth
from ..resolve.current import REFIT_CLAIMS, REFIT_SHARE, refit_lock
from ..schema import BaseSchema
from ..store.engine import Store
from ..store.models import (
    Assignment,
    Claim,
    Gold,
    Item,
    ItemDomain,
    Project,
    RoutingItem,
    RoutingSettings,
    RoutingSkill,
    RoutingState,
    TruthRun,
    Tutor,
)
from ..store.posterior_blocks import BlockReader, probs_of
from ..store.queries import Watermark, claims_watermark, project_schema, standing_human_labels
from .evidence import (
    _declared,
    _empty_view,
    _fold_in,
    _layout,
    _Recent,
    _run_view,
    _RunView,
    _single_label,
    _skill,
    counts_by_item,
    item_domains,
    item_need,
)
from .gain import posterior_after
from .settings import ProjectRouting, TutorProfile, get_settings, tutor_profiles

__all__ = [
    "QueueState",
    "build",
    "candidates",
    "ensure",
    "refit_and_build",
    "skill_view",
    "spending",
]

#: Items per build transaction: short enough that tutors' requests never wait long for it.
BUILD_CHUNK = 1_000
#: Rows read per domain when looking for a tutor's next item.
CANDIDATES = 32

_P = sa.bindparam("project")
_ITEM = sa.bindparam("item")


def settings_key(settings: ProjectRouting, schema: BaseSchema) -> str:
    """What a built queue depends on among the settings and schema: a change rebuilds it."""
    parts = [
        list(settings.domains),
        settings.domain_field,
        settings.target,
        settings.min_labels,
        settings.max_labels,
        schema.classes(),
        _single_label(schema),
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class QueueState:
    """The project's numbers now beside those its queue was built with (one statement)."""

    claims_version: int
    max_item_id: int
    gold_count: int
    tutors_version: int
    built: int | None  # None: no queue yet
    run_id: int | None
    queue_claims: int
    queue_max_item: int
    queue_items: int
    queue_gold: int
    settings_key: str
    stale: bool
    run_claims: int
    run_gold: int
    run_items: int

    def refit_due(self) -> bool:
        """Whether the truth should be fitted again and the queue built from it (see the module
        docstring); ``resolve.current``'s rule for the labels since the run."""
        if self.stale or self.gold_count != self.run_gold:
            return True
        if self.claims_version > self.queue_claims:  # claims the queue never folded
            return True
        # Before the first run the queue folds labels in with the tutors' declared skill, as it
        # does between runs: a first fit waits for as many labels as a refit does (fitting a
        # project of a million items before its first label would only write a uniform run).
        return self.claims_version - self.run_claims > max(
            REFIT_CLAIMS, REFIT_SHARE * max(self.run_items, self.queue_items)
        )


def _count(table: Any, fn: Any) -> Any:
    return sa.select(fn).select_from(table).where(table.project_id == _P).scalar_subquery()


_STATE = (
    sa.select(
        Project.claims_version,
        _count(Item, sa.func.max(Item.id)),
        _count(Gold, sa.func.count()),
        Project.tutors_version,
        RoutingState.built,
        RoutingState.run_id,
        RoutingState.claims_version,
        RoutingState.max_item_id,
        RoutingState.items,
        RoutingState.gold_count,
        RoutingState.settings_key,
        RoutingState.stale,
        TruthRun.claims_version,
        TruthRun.gold_count,
        TruthRun.n_items,
    )
    .select_from(Project)
    .outerjoin(RoutingState, RoutingState.project_id == Project.id)
    .outerjoin(TruthRun, TruthRun.id == RoutingState.run_id)
    .where(Project.id == _P)
)


def read_state(conn: sa.Connection, project: Project) -> QueueState:
    r = conn.execute(_STATE, {"project": project.id}).one()
    return QueueState(
        int(r[0] or 0),
        int(r[1] or 0),
        int(r[2] or 0),
        int(r[3] or 0),
        None if r[4] is None else int(r[4]),
        r[5],
        int(r[6] or 0),
        int(r[7] or 0),
        int(r[8] or 0),
        int(r[9] or 0),
        r[10] or "",
        bool(r[11]),
        int(r[12] or 0),
        int(r[13] or 0),
        int(r[14] or 0),
    )


# --- building ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Basis:
    """What rows are computed from: the truth run (None before the first), the sources' skill
    against it, the settings and schema, and the domain index of the settings."""

    run: Any
    view: _RunView
    settings: ProjectRouting
    schema: BaseSchema
    tutors: list[TutorProfile]
    blocks: BlockReader | None  # the run's stored posteriors

    @property
    def single(self) -> bool:
        return _single_label(self.schema)


def _blocks(run: Any) -> BlockReader | None:
    return None if run is None else BlockReader(run.id)


def _compute(
    conn: sa.Connection, project: Project, basis: _Basis, where: Callable[[Any], Any]
) -> list[dict[str, Any]]:
    """The rows of the items ``where(item id column)`` selects, from the tables as they stand."""
    settings = basis.settings
    items = conn.execute(
        sa.select(Item.id, ItemDomain.domain, Gold.id.is_not(None))
        .outerjoin(ItemDomain, ItemDomain.item_id == Item.id)
        .outerjoin(Gold, Gold.item_id == Item.id)
        .where(Item.project_id == project.id, where(Item.id))
        .order_by(Item.id)
    ).all()
    if not items:
        return []
    ids = np.fromiter((r[0] for r in items), np.int64, len(items))
    names = {d: j for j, d in enumerate(settings.domains)}
    fallback = "general" if "general" in names else settings.domains[-1]
    domain_names = [r[1] if r[1] in names else fallback for r in items]
    domain = np.array([names[d] for d in domain_names], np.int64)
    labels = counts_by_item(
        conn.execute(
            sa.select(Claim.item_id, sa.func.count())
            .where(standing_human_labels(project.id), where(Claim.item_id))
            .group_by(Claim.item_id)
        ).all(),
        ids,
    )
    leased = counts_by_item(
        conn.execute(
            sa.select(Assignment.item_id, sa.func.count())
            .where(
                Assignment.project_id == project.id,
                Assignment.state == "leased",
                where(Assignment.item_id),
            )
            .group_by(Assignment.item_id)
        ).all(),
        ids,
    )
    if basis.single:
        k = len(basis.schema.classes())
        posterior = np.full((ids.size, k), 1.0 / k)
        run = basis.run
        if basis.blocks is not None:
            for table in basis.blocks.tables(conn, int(ids[0]), int(ids[-1])):
                stored, probs = table.column("item_id").to_numpy(), probs_of(table)
                pos = np.minimum(np.searchsorted(ids, stored), ids.size - 1)
                mine = ids[pos] == stored
                if probs is not None:
                    posterior[pos[mine]] = probs[mine]
        new = conn.execute(
            sa.select(Claim.item_id, Claim.source_id, Claim.value)
            .where(
                standing_human_labels(project.id),
                Claim.id > (run.max_claim_id if run is not None else 0),
                where(Claim.item_id),
            )
            .order_by(Claim.id)
        ).all()
        if new:
            posterior = _fold_in(
                posterior,
                ids,
                domain,
                new,
                basis.schema,
                basis.view,
                basis.tutors,
                settings.domains,
            )
    else:
        posterior = np.ones((ids.size, 1))
    gold = np.fromiter((bool(r[2]) for r in items), bool, len(items))
    need = item_need(posterior, labels, settings)
    top = posterior.max(axis=1) if basis.single else np.zeros(ids.size)
    return [
        {
            "item_id": int(ids[i]),
            "project_id": project.id,
            "domain": domain_names[i],
            "is_gold": bool(gold[i]),
            "labels": int(labels[i]),
            "leased": int(leased[i]),
            "need": int(need[i]),
            "open": bool(not gold[i] and need[i] > leased[i]),
            "top": float(top[i]),
            "probs": posterior[i].tolist() if basis.single else None,
        }
        for i in range(ids.size)
    ]


def _write_range(store: Store, project: Project, basis: _Basis, lo: int, hi: int) -> int:
    """Build the rows of the project's items with ids in ``[lo, hi]`` in one write transaction."""

    def where(col: Any) -> Any:
        return col.between(lo, hi)

    with store.begin_write() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(
                sa.select(RoutingItem.item_id)
                .where(RoutingItem.project_id == project.id, where(RoutingItem.item_id))
                .with_for_update()
            )
        else:
            _hold_writer(conn, project)
        rows = _compute(conn, project, basis, where)
        conn.execute(
            sa.delete(RoutingItem).where(
                RoutingItem.project_id == project.id, where(RoutingItem.item_id)
            )
        )
        if rows:
            conn.execute(sa.insert(RoutingItem), rows)
    return len(rows)


def _hold_writer(conn: sa.Connection, project: Project) -> None:
    """SQLite: write first, so the transaction holds the database's writer lock before it reads.
    The driver begins a transaction only at the first write, and a read before it may see rows
    that another process (a ``serve`` or a worker) changes before this one writes."""
    conn.execute(
        sa.update(RoutingState)
        .where(RoutingState.project_id == project.id)
        .values(built=RoutingState.built)
    )


def _store_skill(store: Store, project: Project, view: _RunView) -> None:
    with store.begin_write() as conn:
        conn.execute(sa.delete(RoutingSkill).where(RoutingSkill.project_id == project.id))
        if view.source_ids.size:
            conn.execute(
                sa.insert(RoutingSkill),
                [
                    {
                        "project_id": project.id,
                        "source_id": int(s),
                        "confusion": view.confusion[j].tolist(),
                        "n_claims": view.n_claims[j].tolist(),
                    }
                    for j, s in enumerate(view.source_ids)
                ],
            )


def build(
    store: Store,
    project: Project,
    *,
    first_item: int = 0,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Build the project's queue from the newest truth run, or (``first_item``) only the rows of
    items from that id on, with the skill of the queue as it stands; returns the rows written."""
    schema = project_schema(project)
    settings = get_settings(store, project)
    item_domains(store, project)  # classify items that have no domain yet, outside any lock
    with store.engine.connect() as conn:
        before = read_state(conn, project)
        tutors = tutor_profiles(conn, project)
        ids = np.array(
            conn.execute(
                sa.select(Item.id)
                .where(Item.project_id == project.id, Item.id >= first_item)
                .order_by(Item.id)
            )
            .scalars()
            .all(),
            np.int64,
        )
        k = max(len(schema.classes()), 1)
        if first_item:
            run = (
                None
                if before.run_id is None
                else conn.execute(sa.select(TruthRun).where(TruthRun.id == before.run_id)).first()
            )
            view = skill_view(store, project, before.built, before.run_id, settings, k)
        else:
            truth = current_truth(store, project)
            run = truth.run
            view = (
                _build_view(store, conn, project, run, settings)
                if run is not None and _single_label(schema)
                else _empty_view(len(settings.domains), k)
            )
    if not first_item:
        _store_skill(store, project, view)
    basis = _Basis(run, view, settings, schema, tutors, _blocks(run))
    written = 0
    for start in range(0, ids.size, BUILD_CHUNK):
        chunk = ids[start : start + BUILD_CHUNK]
        written += _write_range(store, project, basis, int(chunk[0]), int(chunk[-1]))
        if progress is not None:
            progress(chunk.size)
    _finish(store, project, before, run, settings, schema, written, full=not first_item)
    return written


def _build_view(
    store: Store, conn: sa.Connection, project: Project, run: Any, settings: ProjectRouting
) -> _RunView:
    """The sources' skill measured against ``run`` (``evidence._run_view``, kept per run)."""
    layout = _layout(store, project, settings)
    mark = claims_watermark(conn, project_id=project.id)
    return _run_view(
        store,
        conn,
        project,
        run,
        Watermark(run.max_claim_id, mark.max_gold_id, run.gold_count),
        layout.item_ids,
        layout.domain,
        len(settings.domains),
        (settings.domains, layout.n_domains),
    )


def spending(
    conn: sa.Connection, project: Project, now: datetime | None = None
) -> tuple[float, float]:
    """(spent, reserved): the cost of submitted leases, and of leases still running at ``now``
    (None: of every lease not yet marked ended, as the queue's counters keep them, an expired
    one reserved until it is marked expired).

    One statement, so one snapshot: read apart, a submit committed between the two reads moves
    its lease from running to submitted unseen by both, and the budget is overspent by it."""
    running = Assignment.state == "leased"
    if now is not None:
        running = sa.and_(running, Assignment.expires_at > now)

    def total(where: sa.ColumnElement[bool]) -> sa.ColumnElement[float]:
        return sa.func.coalesce(sa.func.sum(sa.case((where, Assignment.cost), else_=0.0)), 0.0)

    spent, reserved = conn.execute(
        sa.select(total(Assignment.state == "submitted"), total(running)).where(
            Assignment.project_id == project.id
        )
    ).one()
    return float(spent or 0.0), float(reserved or 0.0)


def _finish(
    store: Store,
    project: Project,
    before: QueueState,
    run: Any,
    settings: ProjectRouting,
    schema: BaseSchema,
    written: int,
    *,
    full: bool,
) -> None:
    """Record what the queue now covers. The claims it accounts for are the project's version
    read before the build plus the labels folded in by submits meanwhile (they moved the state's
    count): claims from other writers meanwhile stay unaccounted, and are due again."""
    with store.begin_write() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(
                sa.select(RoutingState.project_id)
                .where(RoutingState.project_id == project.id)
                .with_for_update()
            )
        else:
            _hold_writer(conn, project)
        now = read_state(conn, project)
        spent, reserved = spending(conn, project)
        folded = now.queue_claims - before.queue_claims if now.built is not None else 0
        values = {
            "run_id": (run.id if run is not None else None) if full else now.run_id,
            "claims_version": (before.claims_version + folded) if full else now.queue_claims,
            "max_item_id": max(before.max_item_id, now.queue_max_item),
            "items": written if full else now.queue_items + written,
            "gold_count": before.gold_count if full else now.queue_gold,
            "settings_key": settings_key(settings, schema) if full else now.settings_key,
            "stale": False if full else now.stale,
            "built": (now.built or 0) + 1,
            "spent": spent,
            "reserved": reserved,
        }
        if now.built is None:
            conn.execute(sa.insert(RoutingState).values(project_id=project.id, **values))
        else:
            conn.execute(
                sa.update(RoutingState)
                .where(RoutingState.project_id == project.id)
                .values(**values)
            )


def refit_and_build(store: Store, project: Project, *, wait: bool = False) -> bool:
    """Fit the truth again if it is due (``resolve.current``'s rule) and build the queue from the
    newest run, one caller at a time per project; False when another caller holds the lock and
    ``wait`` is not set (the queue then stays as it is until they finish)."""
    current_truth(store, project, refit="due")
    with refit_lock(store, project, wait=wait, key="queue") as got:
        if got:
            build(store, project)
        return got


def _mark_gold(store: Store, project: Project, gold_count: int) -> None:
    """Gold labels added since the build close their items at once (the refit that follows
    measures tutors on them)."""
    with store.begin_write() as conn:
        conn.execute(
            sa.update(RoutingItem)
            .where(
                RoutingItem.project_id == project.id,
                RoutingItem.item_id.in_(
                    sa.select(Gold.item_id).where(Gold.project_id == project.id)
                ),
            )
            .values(is_gold=True, open=False)
        )
        conn.execute(
            sa.update(RoutingState)
            .where(RoutingState.project_id == project.id)
            .values(gold_count=gold_count)
        )


def ensure(
    store: Store,
    project: Project,
    settings: ProjectRouting,
    *,
    on_due: Callable[[], None] | None = None,
) -> QueueState:
    """Bring the queue up to what a lease request needs now (see the module docstring) and
    return its state; ``on_due`` hands a due refit to someone else instead of doing it here
    (then a project's first queue is built from the truth as it stands, even none)."""
    with store.engine.connect() as conn:
        state = read_state(conn, project)
    moved = False
    if state.built is None or state.settings_key != settings_key(settings, project_schema(project)):
        with refit_lock(store, project, wait=True, key="queue"):
            with store.engine.connect() as conn:
                again = read_state(conn, project)
            if again.built == state.built:
                if on_due is None:
                    current_truth(store, project, refit="due")
                build(store, project)
        moved = True
    else:
        if state.max_item_id > state.queue_max_item:
            with refit_lock(store, project, wait=True, key="queue"):
                build(store, project, first_item=state.queue_max_item + 1)
            moved = True
        if state.gold_count != state.queue_gold:
            _mark_gold(store, project, state.gold_count)
            moved = True
    if moved:
        with store.engine.connect() as conn:
            state = read_state(conn, project)
    if state.refit_due():
        if on_due is not None:
            on_due()
        elif refit_and_build(store, project):
            with store.engine.connect() as conn:
                state = read_state(conn, project)
    return state


# --- reading -------------------------------------------------------------------------------------

#: Skill views by store, project and build: a build's skill rows never change.
_SKILLS: _Recent[_RunView] = _Recent(8)


def skill_view(
    store: Store,
    project: Project,
    built: int | None,
    run_id: int | None,
    settings: ProjectRouting,
    k: int,
) -> _RunView:
    """The sources' skill stored by the queue's last full build (read once per build)."""
    key = (str(store.engine.url), project.id, built, run_id, settings.domains)
    if (hit := _SKILLS.get(key)) is not None:
        return hit
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(RoutingSkill.source_id, RoutingSkill.confusion, RoutingSkill.n_claims)
            .where(RoutingSkill.project_id == project.id)
            .order_by(RoutingSkill.source_id)
        ).all()
    d = len(settings.domains)
    conf = np.array([r[1] for r in rows], dtype=np.float64)
    # No rows, or rows measured for other domains or classes (settings changed since the build,
    # which builds again): nothing measured yet.
    view = (
        _RunView(
            np.zeros(0, np.int64),
            None,
            np.array([r[0] for r in rows], np.int64),
            conf.reshape(len(rows), d, k, k),
            np.array([r[2] for r in rows], dtype=np.int64).reshape(len(rows), d),
        )
        if rows and conf.size == len(rows) * d * k * k
        else _empty_view(d, k)
    )
    _SKILLS.put(key, view)
    return view


@dataclass(frozen=True)
class Candidates:
    """Open items a tutor has not seen, as the queue holds them (item-id sorted)."""

    item_ids: NDArray[np.int64]
    domain: NDArray[np.int64]
    posterior: NDArray[np.float64]
    labels: NDArray[np.int64]


#: The tutor's rows: an item they labeled or were ever leased is not offered to them again.
_UNSEEN = sa.and_(
    ~sa.exists().where(
        Claim.item_id == RoutingItem.item_id, Claim.source_id == sa.bindparam("source")
    ),
    ~sa.exists().where(
        Assignment.project_id == RoutingItem.project_id,
        Assignment.item_id == RoutingItem.item_id,
        Assignment.tutor_id == sa.bindparam("tutor"),
    ),
)
_COLUMNS = (RoutingItem.item_id, RoutingItem.domain, RoutingItem.probs, RoutingItem.labels)
_GOLD = sa.select(*_COLUMNS).where(RoutingItem.project_id == _P, RoutingItem.is_gold, _UNSEEN)


@functools.cache
def _open_in(domains: int) -> Any:
    """The candidates of ``domains`` domains (``d0``, ``d1``, ... bound per request), built once:
    building a union of subqueries costs more than running it."""
    parts = [
        sa.select(*_COLUMNS)
        .where(
            RoutingItem.project_id == _P,
            RoutingItem.open,
            RoutingItem.domain == sa.bindparam(f"d{j}"),
            _UNSEEN,
        )
        .order_by(RoutingItem.top, RoutingItem.item_id)
        .limit(sa.bindparam("limit"))
        .offset(sa.bindparam("offset"))
        .subquery()
        for j in range(domains)
    ]
    return sa.union_all(*(sa.select(*p.c) for p in parts))


def candidates(
    conn: sa.Connection,
    project: Project,
    tutor: TutorProfile,
    settings: ProjectRouting,
    domains: Sequence[int],
    *,
    gold: bool = False,
    offset: int = 0,
) -> Candidates:
    """Up to ``CANDIDATES`` open items per domain of ``domains`` (indices into the settings'
    domains), least certain first, that ``tutor`` has neither labeled nor leased; ``gold``: the
    project's gold items the tutor has not seen instead (all of them)."""
    params: dict[str, Any] = {"project": project.id, "source": tutor.source_id, "tutor": tutor.id}
    if gold:
        stmt = _GOLD
    elif not domains:
        return _no_candidates()
    else:
        stmt = _open_in(len(domains))
        params |= {f"d{j}": settings.domains[d] for j, d in enumerate(domains)}
        params |= {"limit": CANDIDATES, "offset": offset}
    rows = sorted(conn.execute(stmt, params).all(), key=lambda r: r[0])
    if not rows:
        return _no_candidates()
    index = {d: j for j, d in enumerate(settings.domains)}
    return Candidates(
        np.fromiter((r[0] for r in rows), np.int64, len(rows)),
        np.fromiter((index.get(r[1], 0) for r in rows), np.int64, len(rows)),
        np.array([r[2] if r[2] is not None else [1.0] for r in rows], dtype=np.float64),
        np.fromiter((r[3] for r in rows), np.int64, len(rows)),
    )


def _no_candidates() -> Candidates:
    return Candidates(
        np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 1)), np.zeros(0, np.int64)
    )


@functools.cache
def _takeable(gold: bool, postgresql: bool) -> Any:
    """The first of the ranked ids (``ids``) still open (or gold) and unseen by the tutor. On
    PostgreSQL it is locked, and rows that other transactions lock are skipped: one row, so that
    tutors asking at once, who rank alike, each take the next item instead of all of them locking
    the whole list and finding nothing left."""
    stmt = sa.select(RoutingItem.item_id).where(
        RoutingItem.item_id.in_(sa.bindparam("ids", expanding=True)),
        RoutingItem.is_gold if gold else RoutingItem.open,
        _UNSEEN,
    )
    if not postgresql:
        return stmt
    from sqlalchemy.dialects.postgresql import ARRAY

    rank = sa.func.array_position(
        sa.bindparam("ranked", type_=ARRAY(sa.BigInteger)), RoutingItem.item_id
    )
    return stmt.order_by(rank).limit(1).with_for_update(skip_locked=True, of=RoutingItem)


def take(
    conn: sa.Connection, project: Project, tutor: TutorProfile, item_ids: Sequence[int], gold: bool
) -> int | None:
    """The first of ``item_ids`` (in their order) this transaction can lease now: still open (or
    gold) and unseen by the tutor, read under the row lock (PostgreSQL: rows locked by others are
    skipped); None when none is."""
    postgresql = conn.dialect.name == "postgresql"
    ids = [int(i) for i in item_ids]
    params: dict[str, Any] = {"ids": ids, "source": tutor.source_id, "tutor": tutor.id}
    if postgresql:
        params["ranked"] = ids
    ok = set(conn.execute(_takeable(gold, postgresql), params).scalars().all())
    return next((i for i in ids if i in ok), None)


# --- writes that move the queue ------------------------------------------------------------------


def _leased_by(step: int) -> sa.Update:
    return (
        sa.update(RoutingItem)
        .where(RoutingItem.item_id == _ITEM)
        .values(
            leased=RoutingItem.leased + step,
            open=sa.and_(~RoutingItem.is_gold, RoutingItem.need > RoutingItem.leased + step),
        )
    )


#: Statements of the hot path are built once: building one costs more than running it.
_LEASED = {+1: _leased_by(+1), -1: _leased_by(-1)}


def leased(conn: sa.Connection, item_ids: Sequence[int], step: int) -> None:
    """``step`` (+1 or -1) leases more on each of ``item_ids`` (repeat an id to move it more)."""
    for item in item_ids:
        conn.execute(_LEASED[step], {"item": item})


_SUBMITTED = (
    sa.select(
        RoutingItem.probs,
        RoutingItem.labels,
        RoutingItem.leased,
        RoutingItem.domain,
        RoutingItem.is_gold,
        RoutingState.built,
        RoutingState.run_id,
        Tutor.domains,
        RoutingSettings.domains,
        RoutingSettings.target,
        RoutingSettings.min_labels,
        RoutingSettings.max_labels,
    )
    .select_from(RoutingItem)
    .join(RoutingState, RoutingState.project_id == RoutingItem.project_id)
    .outerjoin(RoutingSettings, RoutingSettings.project_id == RoutingItem.project_id)
    .outerjoin(
        Tutor,
        sa.and_(
            Tutor.project_id == RoutingItem.project_id, Tutor.source_id == sa.bindparam("source")
        ),
    )
    .where(RoutingItem.item_id == _ITEM)
)


#: PostgreSQL: the row is read under its lock, since the UPDATE writes values computed from it
#: (a lease committed between the two would otherwise be lost from ``leased``).
_SUBMITTED_LOCKED = _SUBMITTED.with_for_update(of=RoutingItem)


def submitted(
    store: Store,
    conn: sa.Connection,
    project: Project,
    item_id: int,
    source_id: int,
    label: Any,
    cost: float,
) -> None:
    """A tutor's label on ``item_id`` from a lease: one label more, one lease less, and the label
    folded into the posterior with the tutor's confusion in the item's domain."""
    stmt = _SUBMITTED_LOCKED if conn.dialect.name == "postgresql" else _SUBMITTED
    row = conn.execute(stmt, {"item": item_id, "source": source_id}).first()
    if row is None:
        _count_folded(conn, project, cost)
        return
    settings = (
        ProjectRouting(domains=tuple(row[8]), target=row[9], min_labels=row[10], max_labels=row[11])
        if row[8] is not None
        else ProjectRouting()
    )
    labels = np.array([row[1] + 1])
    probs = row[0]
    if probs is not None and len(probs) > 1:
        schema = project_schema(project)
        classes = schema.classes()
        answer = {c: j for j, c in enumerate(classes)}.get(str(schema.vote_key(label)), -1)
        post = np.array([probs], dtype=np.float64)
        if answer >= 0:
            k = len(classes)
            view = skill_view(store, project, row[5], row[6], settings, k)
            domain = settings.domains.index(row[3]) if row[3] in settings.domains else 0
            declared = _declared([tuple(row[7] or ())], settings.domains)
            conf, _ = _skill(view, np.array([source_id], np.int64), declared, k)
            post = posterior_after(post, conf[:, domain], np.array([answer]))
        probs = post[0].tolist()
    else:
        post = np.ones((1, 1))
    need = int(item_need(np.array([probs or [1.0]]), labels, settings)[0])
    leased_now = max(int(row[2]) - 1, 0)
    conn.execute(
        _FOLD,
        {
            "item": item_id,
            "new_labels": int(labels[0]),
            "new_leased": leased_now,
            "new_need": need,
            "new_open": bool(not row[4] and need > leased_now),
            "new_top": float(max(probs)) if probs is not None and len(probs) > 1 else 0.0,
            "new_probs": probs,
        },
    )
    _count_folded(conn, project, cost)


_FOLD = (
    sa.update(RoutingItem)
    .where(RoutingItem.item_id == _ITEM)
    .values(
        {
            column: sa.bindparam(f"new_{column}", type_=RoutingItem.__table__.c[column].type)
            for column in ("labels", "leased", "need", "open", "top", "probs")
        }
    )
)
_FOLDED = (
    sa.update(RoutingState)
    .where(RoutingState.project_id == _P)
    .values(
        claims_version=RoutingState.claims_version + 1,
        spent=RoutingState.spent + sa.bindparam("cost", type_=sa.Float),
        reserved=RoutingState.reserved - sa.bindparam("cost", type_=sa.Float),
    )
)
_SPEND = (
    sa.update(RoutingState)
    .where(RoutingState.project_id == _P)
    .values(
        spent=RoutingState.spent + sa.bindparam("add_spent", type_=sa.Float),
        reserved=RoutingState.reserved + sa.bindparam("add_reserved", type_=sa.Float),
    )
)
_BUDGET = sa.select(RoutingState.spent, RoutingState.reserved).where(RoutingState.project_id == _P)


def _count_folded(conn: sa.Connection, project: Project, cost: float) -> None:
    """The queue accounts for one claim more (the project's version moved by one with it), and
    the lease's ``cost`` moves from reserved to spent."""
    conn.execute(_FOLDED, {"project": project.id, "cost": cost})


def reserve(conn: sa.Connection, project: Project, cost: float) -> None:
    """``cost`` more reserved (a lease handed out, or taken back by an undo: negative spent
    follows with ``spend``); a negative cost frees it (a release or an expiry)."""
    spend(conn, project, 0.0, cost)


def spend(conn: sa.Connection, project: Project, spent: float, reserved: float) -> None:
    """Move the budget counters by ``spent`` and ``reserved``."""
    if spent or reserved:
        conn.execute(_SPEND, {"project": project.id, "add_spent": spent, "add_reserved": reserved})


def budget_used(conn: sa.Connection, project: Project) -> tuple[float, float] | None:
    """(spent, reserved) from the queue's counters; None for a project without a queue."""
    row = conn.execute(_BUDGET, {"project": project.id}).first()
    return None if row is None else (float(row[0]), float(row[1]))


def recompute(store: Store, conn: sa.Connection, project: Project, item_id: int) -> None:
    """Compute one item's row again from the tables (an undo: a posterior cannot unfold a label)
    and mark the queue due for a refit, since the truth run may hold the label taken back."""
    state = read_state(conn, project)
    if state.built is None:
        return
    settings = get_settings(store, project)
    schema = project_schema(project)
    run = (
        None
        if state.run_id is None
        else conn.execute(sa.select(TruthRun).where(TruthRun.id == state.run_id)).first()
    )
    k = max(len(schema.classes()), 1)
    view = skill_view(store, project, state.built, state.run_id, settings, k)
    basis = _Basis(run, view, settings, schema, tutor_profiles(conn, project), _blocks(run))
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.select(RoutingItem.item_id).where(RoutingItem.item_id == item_id).with_for_update()
        )
    rows = _compute(conn, project, basis, lambda col: col == item_id)
    conn.execute(sa.delete(RoutingItem).where(RoutingItem.item_id == item_id))
    if rows:
        conn.execute(sa.insert(RoutingItem), rows)
    conn.execute(
        sa.update(RoutingState)
        .where(RoutingState.project_id == project.id)
        .values(stale=True, claims_version=RoutingState.claims_version + 1)
    )
