"""Where routing stands (``routing_status``) and push: the tutors best placed to label an item.

Both read the same evidence as a lease (``routing.evidence``) plus the project's leases, and
write nothing but what ``resolve.current_truth`` may store when ``refit`` allows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import sqlalchemy as sa

from ..errors import NotFound
from ..resolve.current import Refit
from ..store.engine import Store
from ..store.models import Assignment as AssignmentRow
from ..store.models import Claim, Item, Project, Tutor
from .evidence import read_evidence
from .gain import expected_gain
from .leases import as_utc, running_leases
from .queue import spending
from .settings import ProjectRouting
from .skill import domain_accuracy

__all__ = ["RoutingStatus", "TutorScore", "TutorStatus", "best_tutors", "routing_status"]

#: A lease's states, in the order the status counts them.
_STATES = ("leased", "submitted", "expired", "released")


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
    now = as_utc(now)
    ev = read_evidence(store, project)
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
                    running_leases(project, now), AssignmentRow.item_id == item_id
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

    settings: ProjectRouting
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
    now = as_utc(now)
    ev = read_evidence(store, project, refit)
    with store.engine.connect() as conn:
        spent, reserved = spending(conn, project, now)
        live = sa.case(
            (running_leases(project, now), "leased"),
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
