"""Leasing: a tutor pulls an item, answers it, takes the answer back, or gives the item back.

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

Besides the evidence (``routing.evidence``), a request reads the project's running leases and a
few indexed rows per candidate item inside its write transaction.

Concurrency: choosing and leasing happen in one short write transaction. On PostgreSQL the
candidate items are locked with ``SELECT ... FOR UPDATE SKIP LOCKED`` (two tutors asking at once
get different items) and, under a budget, the project's settings row is locked so reservations
are serialised; on SQLite the write transaction serialises everything. Submit, release and undo
each run in one write transaction whose conditional UPDATE of the lease decides, so a lease can
be submitted at most once on either backend.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from numpy.typing import NDArray

from ..errors import NotFound, VeritagError
from ..schema import ArenaSchema, PairwiseSchema
from ..store.claims import add_claim
from ..store.engine import Store
from ..store.models import Assignment as AssignmentRow
from ..store.models import Claim, Item, ItemDomain, Project, RoutingSettings, Source, Tutor
from ..store.queries import project_schema, standing_human_labels
from . import pairwise, queue
from .evidence import (
    Evidence,
    _declared,
    _Recent,
    _single_label,
    _skill,
    counts_by_item,
    read_evidence,
)
from .gain import expected_gain
from .settings import ProjectRouting, TutorProfile, find_tutor, get_settings, tutor_profiles

__all__ = [
    "Lease",
    "NotYourLease",
    "release",
    "release_orphaned_leases",
    "request_work",
    "submit",
    "undo",
]

#: Candidate items locked per round trip while leasing.
_LOCK_BATCH = 32
#: Pages of queue candidates read before waiting for locked ones (each ``queue.CANDIDATES`` a
#: domain), and how often and how long to wait.
_MAX_PAGES = 8
_BUSY_TRIES = 40
_BUSY_WAIT_SECONDS = 0.05
#: A tutor whose answer cannot move even an undecided item (gain below this) is not asked in a
#: domain.
_MIN_GAIN = 1e-9


def as_utc(now: datetime | None) -> datetime:
    """``now`` in UTC (a naive value is taken as UTC); the clock when None."""
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


@dataclass(frozen=True)
class Lease:
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


#: Statements of the hot path (a lease and a submit) are built once, with bound parameters:
#: building a statement costs several times more than running it.
_P, _NOW, _ID = sa.bindparam("project"), sa.bindparam("now"), sa.bindparam("key")


def _running(project: Any, now: Any) -> Any:
    """Leases of ``project`` still running at ``now`` (values, or bound parameters)."""
    return sa.and_(
        AssignmentRow.project_id == project,
        AssignmentRow.state == "leased",
        AssignmentRow.expires_at > now,
    )


_RUNNING = _running(_P, _NOW)


def running_leases(project: Project, now: datetime) -> Any:
    """The WHERE clause of the project's leases still running at ``now``."""
    return _running(project.id, now)


_EXPIRE = (
    sa.update(AssignmentRow)
    .where(
        AssignmentRow.project_id == _P,
        AssignmentRow.state == "leased",
        AssignmentRow.expires_at <= _NOW,
    )
    .values(state="expired")
    .returning(AssignmentRow.item_id, AssignmentRow.cost)
)
_TUTOR_NAMED = (
    sa.select(Tutor.id)
    .join(Source, Source.id == Tutor.source_id)
    .where(Tutor.project_id == _P, Source.name == sa.bindparam("name"))
)
_HELD = {
    by: sa.select(AssignmentRow.id)
    .where(
        _RUNNING, AssignmentRow.tutor_id.in_(_TUTOR_NAMED) if by else AssignmentRow.tutor_id == _ID
    )
    .order_by(AssignmentRow.id)
    .limit(1)
    for by in (False, True)
}
_RENEW = (
    sa.update(AssignmentRow)
    .where(AssignmentRow.id == _ID)
    .values(expires_at=sa.bindparam("expires"), served_by=sa.bindparam("server"))
)
_TUTOR_LEASES = sa.select(Tutor.leases).where(Tutor.id == _ID)
_COUNT_LEASE = sa.update(Tutor).where(Tutor.id == _ID).values(leases=Tutor.leases + 1)
_NEW_LEASE = sa.insert(AssignmentRow).returning(AssignmentRow.id)
_ITEM_SHOWN = sa.select(Item.external_id, Item.text, Item.data).where(Item.id == _ID)
_LEASE_ROW = (
    sa.select(
        AssignmentRow.id,
        AssignmentRow.item_id,
        AssignmentRow.state,
        AssignmentRow.expires_at,
        AssignmentRow.project_id,
        AssignmentRow.tutor_id,
        AssignmentRow.claim_id,
        AssignmentRow.cost,
        Tutor.source_id,
        Source.name,
        Item.text,
    )
    .join(Tutor, Tutor.id == AssignmentRow.tutor_id)
    .join(Source, Source.id == Tutor.source_id)
    .join(Item, Item.id == AssignmentRow.item_id)
    .where(AssignmentRow.id == _ID)
)
_SET_CLAIM = (
    sa.update(AssignmentRow).where(AssignmentRow.id == _ID).values(claim_id=sa.bindparam("claim"))
)


@functools.cache
def _closing(columns: frozenset[str]) -> sa.Update:
    """``_close``'s conditional UPDATE setting ``columns`` (one statement per set of them)."""
    table = AssignmentRow.__table__
    return (
        sa.update(AssignmentRow)
        .where(AssignmentRow.id == _ID, _RUNNING)
        .values({c: sa.bindparam(f"new_{c}", type_=table.c[c].type) for c in sorted(columns)})
    )


def _expire(conn: sa.Connection, project: Project, now: datetime) -> None:
    """Stale leases become ``expired``: their items go back to the pool and their cost is freed."""
    ended = conn.execute(_EXPIRE, {"project": project.id, "now": now}).all()
    queue.leased(conn, [r[0] for r in ended], -1)
    queue.reserve(conn, project, -sum(float(r[1]) for r in ended))


@dataclass(frozen=True)
class _Fresh:
    """Per item, read inside the leasing transaction: human labels, live leases, seen by the
    tutor."""

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

    def per_item(stmt: sa.Select[Any]) -> NDArray[np.int64]:
        return counts_by_item(conn.execute(stmt).all(), ids)

    # Leases before labels: a submit that commits between the two reads is then counted twice
    # (as a running lease and as a label), never missed, so an item never gets one lease too many.
    in_flight = per_item(
        sa.select(AssignmentRow.item_id, sa.func.count())
        .where(running_leases(project, now), where(AssignmentRow.item_id))
        .group_by(AssignmentRow.item_id)
    )
    if labels is None:
        labels = per_item(
            sa.select(Claim.item_id, sa.func.count())
            .where(standing_human_labels(project.id), where(Claim.item_id))
            .group_by(Claim.item_id)
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


def _pull_scores(ev: Evidence, me: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
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
    tutor: int | str,
    now: datetime,
    lease_seconds: int,
    served_by: str | None,
) -> Lease | None:
    """Inside a write transaction: the oldest running lease of ``tutor`` (a ``Tutor.id``, or the
    name of their source) in the project, renewed for ``lease_seconds``; None if they hold
    none."""
    held = _held(conn, project, tutor, now)
    if held is None:
        return None
    expires = now + timedelta(seconds=lease_seconds)
    conn.execute(_RENEW, {"key": held, "expires": expires, "server": served_by})
    return _stored_lease(conn, held, resumed=True)


def _held(conn: sa.Connection, project: Project, tutor: int | str, now: datetime) -> int | None:
    """The oldest running lease of ``tutor`` (an id, or a source name) in the project."""
    by_name = isinstance(tutor, str)
    key = "name" if by_name else "key"
    return conn.scalar(_HELD[by_name], {"project": project.id, "now": now, key: tutor})


def _resume(
    store: Store, project: Project, tutor_name: str, now: datetime, served_by: str | None
) -> Lease | None:
    """The fast path of ``request_work`` for a tutor who holds a running lease: no evidence read."""
    with store.engine.connect() as conn:
        if _held(conn, project, tutor_name, now) is None:
            return None
    lease_seconds = get_settings(store, project).lease_seconds
    with store.begin_write() as conn:
        return _renew_held(conn, project, tutor_name, now, lease_seconds, served_by)


def request_work(
    store: Store,
    project: Project,
    tutor_name: str,
    now: datetime | None = None,
    *,
    resume: bool = True,
    served_by: str | None = None,
    on_due: Callable[[], None] | None = None,
) -> Lease | None:
    """Lease the tutor the item where their next label is worth most; None when nothing is left
    for them or the budget cannot pay for one more label at their cost (see the module docstring).

    A tutor who already holds a running lease in the project gets it back (``resumed``, renewed)
    instead of a second one: a client whose answer to the last request was lost with a crashed
    server or a dropped connection picks up where it was, and no item stays leased to someone who
    is not looking at it. ``resume=False`` leases another item anyway (a client that works on
    several at once). ``served_by`` names the server process handing the lease out, so a process
    that starts after it died can release it early (``release_orphaned_leases``). ``on_due`` is
    called instead of fitting the truth again here when a refit is due (``routing.queue``).

    The candidates come from the routing queue (``routing.queue``): the least certain open items
    of each domain the tutor is useful in, scored exactly here. An arena project is scored over
    all its battles (``evidence``), since a battle's worth is its model pair's."""
    now = as_utc(now)
    if resume and (held := _resume(store, project, tutor_name, now, served_by)) is not None:
        return held
    if isinstance(project_schema(project), ArenaSchema):
        ev = read_evidence(store, project)
        picker = _scan_picker(project, ev, now)
        return _lease(
            store, project, ev.settings, ev.tutors, tutor_name, now, resume, served_by, picker
        )
    settings = get_settings(store, project)
    state = queue.ensure(store, project, settings, on_due=on_due)
    panel = _panel(store, project, settings, state)
    return _lease(
        store,
        project,
        settings,
        panel.tutors,
        tutor_name,
        now,
        resume,
        served_by,
        _queue_picker(project, settings, panel),
    )


#: What a picker returns: the chosen item, whether it is a gold check, the gain, its domain.
_Pick = tuple[int, bool, float, str]
_Picker = Callable[[sa.Connection, TutorProfile, int, int], _Pick | None]


def _lease(
    store: Store,
    project: Project,
    settings: ProjectRouting,
    tutors: list[TutorProfile],
    tutor_name: str,
    now: datetime,
    resume: bool,
    served_by: str | None,
    pick: _Picker,
) -> Lease | None:
    """The write transaction of ``request_work``: expire, hand back a held lease, check the
    budget, let ``pick`` choose (with the tutor, their index and whether it is their gold turn),
    and lease the choice."""
    me = tutors.index(find_tutor(tutors, project, tutor_name))
    tutor = tutors[me]
    if not tutor.active:
        raise VeritagError(
            f"tutor {tutor_name!r} is not active; switch them on with "
            f"'veritag tutor {project.name} {tutor_name} --active' first"
        )
    with store.begin_write() as conn:
        _expire(conn, project, now)  # the first statement writes: SQLite's lock is now held
        if resume:  # two requests of one tutor at once: the second waits and gets the first's lease
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(Tutor.id).where(Tutor.id == tutor.id).with_for_update())
            held = _renew_held(conn, project, tutor.id, now, settings.lease_seconds, served_by)
            if held is not None:
                return held
        if settings.budget is not None:
            if conn.dialect.name == "postgresql":
                conn.execute(
                    sa.select(RoutingSettings.project_id)
                    .where(RoutingSettings.project_id == project.id)
                    .with_for_update()
                )
            used = queue.budget_used(conn, project)
            spent, reserved = used if used is not None else queue.spending(conn, project, now)
            if spent + reserved + tutor.cost > settings.budget + 1e-9:
                return None
        gold_turn = (
            settings.gold_period > 0
            and conn.scalar(_TUTOR_LEASES, {"key": tutor.id}) % settings.gold_period == 0
        )
        chosen = pick(conn, tutor, me, gold_turn)
        if chosen is None:
            return None
        item_id, is_gold, gain, domain = chosen
        expires = now + timedelta(seconds=settings.lease_seconds)
        lease_id = conn.scalar(
            _NEW_LEASE,
            {
                "project_id": project.id,
                "item_id": item_id,
                "tutor_id": tutor.id,
                "is_gold": is_gold,
                "cost": tutor.cost,
                "leased_at": now,
                "expires_at": expires,
                "state": "leased",
                "served_by": served_by,
            },
        )
        queue.leased(conn, [item_id], +1)
        queue.reserve(conn, project, tutor.cost)
        conn.execute(_COUNT_LEASE, {"key": tutor.id})
        item = conn.execute(_ITEM_SHOWN, {"key": item_id}).one()
    return Lease(
        int(lease_id),
        item_id,
        item[0],
        item[1],
        item[2],
        domain,
        tutor.name,
        is_gold,
        tutor.cost,
        0.0 if is_gold else gain,
        now,
        expires,
    )


def _rank(ev: Evidence, me: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Positions of ``ev``'s items the tutor may take, best first (score, then the least certain,
    then the oldest), and the tutor's gain per item."""
    gain, score = _pull_scores(ev, me)
    pool = np.flatnonzero(np.isfinite(score))
    ranked = pool[np.lexsort((ev.item_ids[pool], ev.posterior[pool].max(axis=1), -score[pool]))]
    return ranked, gain


@dataclass(frozen=True)
class _Panel:
    """The tutors as a lease decision scores them: profiles, declared domains, confusion per
    domain (blended with the declared prior) and measured claims, and per domain the tutors most
    worth asking at the prior (``_SHARE_PANEL`` of them): a tutor's share of the best is taken
    against those, so a request costs the same with 16 tutors or 500."""

    tutors: list[TutorProfile]
    declared: NDArray[np.bool_]
    confusion: NDArray[np.float64]
    measured: NDArray[np.int64]
    best: tuple[int, ...]
    classes: list[str]
    single: bool


#: Tutors per domain against whom a tutor's share of the best gain is measured.
_SHARE_PANEL = 8
#: Panels by store, project, tutors version, queue build and settings: all of it read from the
#: database, so a panel is never used past a change of the tutors or of their measured skill.
_PANELS: _Recent[_Panel] = _Recent(8)


def _panel(
    store: Store, project: Project, settings: ProjectRouting, state: queue.QueueState
) -> _Panel:
    key = (
        str(store.engine.url),
        project.id,
        state.tutors_version,
        state.built,
        state.run_id,
        state.settings_key,
    )
    if (hit := _PANELS.get(key)) is not None:
        return hit
    schema = project_schema(project)
    single = _single_label(schema)
    classes = schema.classes() if single else []
    k = len(classes) if single else 1
    with store.engine.connect() as conn:
        tutors = tutor_profiles(conn, project)
    declared = _declared([t.domains for t in tutors], settings.domains)
    n, d = len(tutors), len(settings.domains)
    best: tuple[int, ...] = ()
    if single:
        view = queue.skill_view(store, project, state.built, state.run_id, settings, k)
        confusion, measured = _skill(
            view, np.array([t.source_id for t in tutors], np.int64), declared, k
        )
        active = np.array([t.active for t in tutors], dtype=bool)
        if n:
            cost = np.array([t.cost for t in tutors])
            prior = np.full((1, k), 1.0 / k)
            eff = np.stack([expected_gain(prior, confusion[:, j])[0] for j in range(d)], axis=1)
            eff = np.where(active[:, None], eff / cost[:, None], -np.inf)  # (tutors, domains)
            top = np.argsort(-eff, axis=0, kind="stable")[:_SHARE_PANEL]
            best = tuple(sorted({int(t) for t in top.ravel() if active[t]}))
    else:
        confusion = np.ones((n, d, 1, 1))
        measured = np.zeros((n, d), np.int64)
    panel = _Panel(tutors, declared, confusion, measured, best, classes, single)
    _PANELS.put(key, panel)
    return panel


def _queue_picker(project: Project, settings: ProjectRouting, panel: _Panel) -> _Picker:
    """Choose among the queue's candidates (``routing.queue``), scoring only them, each tutor
    against the panel of the best (``_Panel``)."""
    single, classes, measured = panel.single, panel.classes, panel.measured
    k = len(classes) if single else 1

    def evidence(c: queue.Candidates, me: int) -> tuple[Evidence, int]:
        sub = sorted({*panel.best, me})
        return (
            Evidence(
                settings,
                classes,
                c.item_ids,
                c.domain,
                c.posterior,
                np.zeros(c.item_ids.size, bool),
                c.labels,
                [panel.tutors[i] for i in sub],
                panel.confusion[sub],
                measured[sub],
                panel.declared[sub],
                single=single,
            ),
            sub.index(me),
        )

    def pick(conn: sa.Connection, tutor: TutorProfile, me: int, gold_turn: bool) -> _Pick | None:
        if gold_turn:
            golds = queue.candidates(conn, project, tutor, settings, [], gold=True)
            order = np.lexsort((golds.item_ids, measured[me, golds.domain]))
            for start in range(0, order.size, _LOCK_BATCH):
                batch = order[start : start + _LOCK_BATCH]
                got = queue.take(conn, project, tutor, golds.item_ids[batch].tolist(), gold=True)
                if got is not None:
                    p = int(np.searchsorted(golds.item_ids, got))
                    return got, True, 0.0, settings.domains[golds.domain[p]]
        if single:
            useful = expected_gain(np.full((1, k), 1.0 / k), panel.confusion[me])[0] > _MIN_GAIN
            domains = np.flatnonzero(useful).tolist()
        else:
            domains = list(range(len(settings.domains)))
        for _ in range(_BUSY_TRIES):
            for page in range(_MAX_PAGES):
                found = queue.candidates(
                    conn, project, tutor, settings, domains, offset=page * queue.CANDIDATES
                )
                if not found.item_ids.size:
                    return None
                ev, mine = evidence(found, me)
                ranked, gain = _rank(ev, mine)
                got = queue.take(conn, project, tutor, found.item_ids[ranked].tolist(), gold=False)
                if got is not None:
                    p = int(np.searchsorted(found.item_ids, got))
                    return got, False, float(gain[p]), settings.domains[found.domain[p]]
            # Open items, all locked by others (PostgreSQL: leases being handed out, or a queue
            # build writing their chunk): they are free again in milliseconds, so wait rather
            # than tell the tutor there is no work.
            time.sleep(_BUSY_WAIT_SECONDS)
        return None

    return pick


def _scan_picker(project: Project, ev: Evidence, now: datetime) -> _Picker:
    """Choose over every item of the project (``ev``: the whole project's evidence), reading the
    leases and labels of all of them in the transaction."""

    def pick(conn: sa.Connection, tutor: TutorProfile, me: int, gold_turn: bool) -> _Pick | None:
        fresh = _fresh(conn, project, tutor, ev.item_ids, now, labels=ev.labels)
        pos = np.arange(ev.item_ids.size)
        open_ = ~ev.is_gold & ~fresh.seen & (fresh.in_flight < ev.need(fresh.labels, pos))
        ranked, gain = _rank(ev, me)
        if not open_[ranked].any():
            return None
        if gold_turn:
            golds = pos[ev.is_gold & ~fresh.seen]
            golds = golds[np.lexsort((ev.item_ids[golds], ev.measured[me, ev.domain[golds]]))]
            chosen = _first_lockable(
                conn, ev.item_ids, golds, lambda ids, f: ~f.seen, project, tutor, now
            )
            if chosen is not None:
                return int(ev.item_ids[chosen]), True, 0.0, ev.settings.domains[ev.domain[chosen]]
        chosen = _first_lockable(
            conn,
            ev.item_ids,
            ranked[open_[ranked]],
            lambda ids, f: (
                ~f.seen & (f.in_flight < ev.need(f.labels, np.searchsorted(ev.item_ids, ids)))
            ),
            project,
            tutor,
            now,
        )
        if chosen is None:
            return None
        return (
            int(ev.item_ids[chosen]),
            False,
            float(gain[chosen]),
            ev.settings.domains[ev.domain[chosen]],
        )

    return pick


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
    row = conn.execute(_LEASE_ROW, {"key": assignment_id}).first()
    if row is None or row.project_id != project.id:
        raise NotFound(f"project {project.name!r} has no assignment {assignment_id}")
    if tutor is not None and row.name != tutor:
        raise NotYourLease(f"assignment {row.id} is leased to {row.name!r}, not {tutor!r}")
    return row


def _refuse(row: Any, now: datetime) -> None:
    """Say why a lease is not running, if it is not (its owner is checked by ``_lease_row``)."""
    if row.state != "leased":
        raise VeritagError(f"assignment {row.id} is {row.state}; request new work")
    expires = as_utc(row.expires_at)
    if expires <= now:
        raise VeritagError(
            f"assignment {row.id} expired at {expires.isoformat()}; request new work"
        )


def _close(
    conn: sa.Connection,
    project: Project,
    assignment_id: int,
    now: datetime,
    tutor: str | None,
    **values: Any,
) -> Any:
    """Inside a write transaction: end a running lease (``values``: its new state and what is kept
    with it) and return the lease as ``_lease_row`` reads it, for the caller to finish with.

    The conditional UPDATE comes first, so a lease is ended at most once, and from then on the
    transaction holds SQLite's writer lock or, on PostgreSQL, the lease row: the one read after
    it sees the lease as it stands. A lease of someone else, or one that was not running
    (``_refuse`` says why), raises, which rolls the UPDATE back.
    """
    taken = conn.execute(
        _closing(frozenset(values)),
        {"key": assignment_id, "project": project.id, "now": now}
        | {f"new_{c}": v for c, v in values.items()},
    )
    row = _lease_row(conn, project, assignment_id, tutor)
    if taken.rowcount != 1:
        _refuse(row, now)
        raise VeritagError(f"assignment {assignment_id} is no longer running; request new work")
    return row


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

    An expired, released or already submitted lease is refused, and so is another tutor's when
    ``tutor`` names who is submitting. The value is then checked against the project's schema
    (a bad one leaves the lease as it was); a pairwise answer may name the side the lease showed
    (``left``/``right``, see ``routing.pairwise``). ``seconds`` is the time the tutor spent on
    the item, kept with the lease for speed scorecards. The lease is read once, in the write
    transaction that submits it (``_close``).
    """
    now = as_utc(now)
    if seconds is not None and not (math.isfinite(seconds) and seconds >= 0):
        raise VeritagError(f"seconds must be a non-negative number; got {seconds}")
    schema = project_schema(project)
    if isinstance(schema, PairwiseSchema):
        value = pairwise.from_sides(project.id, assignment_id, value)
    with store.begin_write() as conn:
        row = _close(conn, project, assignment_id, now, tutor, state="submitted", seconds=seconds)
        label = schema.normalize(value, item_text=row.text)
        claim_id = add_claim(conn, project.id, row.item_id, row.source_id, value=label)
        queue.submitted(store, conn, project, row.item_id, row.source_id, label, float(row.cost))
        conn.execute(_SET_CLAIM, {"key": assignment_id, "claim": claim_id})
    return claim_id


def undo(
    store: Store,
    project: Project,
    assignment_id: int,
    now: datetime | None = None,
    *,
    tutor: str | None = None,
) -> tuple[Lease, Any]:
    """Take back the claim of a submitted lease while the lease still holds; returns the lease,
    running again, and the value taken back.

    Nothing is deleted: a *retraction* (a claim by the same source with no value, ``retracts``
    naming the claim) is added, and every reader of labels skips both (``standing_claims``).
    Only the tutor's newest submitted lease in the project can be undone, once per submission,
    so undo steps back over the last answer and no further.
    """
    now = as_utc(now)
    with store.begin_write() as conn:
        row = _lease_row(conn, project, assignment_id, tutor)
        if row.state != "submitted":
            raise VeritagError(
                f"assignment {row.id} is {row.state}: only a submitted answer can be undone"
            )
        if as_utc(row.expires_at) <= now:
            raise VeritagError(
                f"assignment {row.id}'s lease ended at {as_utc(row.expires_at).isoformat()}; "
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
        queue.recompute(store, conn, project, row.item_id)
        queue.spend(conn, project, -float(row.cost), float(row.cost))
        return _stored_lease(conn, row.id), value


def _stored_lease(conn: sa.Connection, assignment_id: int, *, resumed: bool = False) -> Lease:
    """A lease as stored, for handing it out again (undo, resume); its gain is not re-estimated
    (0)."""
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
    return Lease(
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
        as_utc(lease.leased_at),
        as_utc(lease.expires_at),
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
    now = as_utc(now)
    with store.begin_write() as conn:
        row = _close(
            conn,
            project,
            assignment_id,
            now,
            tutor,
            state="released",
            skip_reason=(reason or "").strip() or None,
        )
        queue.leased(conn, [row.item_id], -1)
        queue.reserve(conn, project, -float(row.cost))


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
    were cut short. Leases of other hosts are left alone: whether their process runs is unknown
    here."""
    now = as_utc(now)
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
