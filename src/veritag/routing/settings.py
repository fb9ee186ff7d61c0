"""A project's routing settings and its tutors: what the other routing modules read first.

``ProjectRouting`` is the stored settings row as a value (``store.models.RoutingSettings`` is
the table); its stopping rule and label cap are ``policy.RoutingConfig``'s knobs, with the same
defaults, so the replay simulator and a live project stop items by one rule. A ``TutorProfile``
is a human source who takes leases: the domains they declared, their cost per label and whether
they are available.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import sqlalchemy as sa

from ..checks import level
from ..errors import AlreadyExists, InputError, NotFound, VeritagError
from ..limits import MAX_SOURCE_NAME_LENGTH, check_domains, check_username, refuse, text_problem
from ..store import audit
from ..store.engine import Store
from ..store.models import ItemDomain, Project, RoutingSettings, Source, Tutor
from ..store.queries import source_ids
from .domains import DEFAULT_DOMAINS
from .policy import RoutingConfig

__all__ = [
    "ProjectRouting",
    "TutorProfile",
    "add_tutor",
    "configure",
    "get_settings",
    "list_tutors",
    "set_tutor_active",
]

#: The policy defaults a project starts from (declared once, on ``RoutingConfig``).
_POLICY = RoutingConfig()


@dataclass(frozen=True)
class ProjectRouting:
    """A project's routing settings (see docs/guide/routing.md for each one).

    ``target``, ``max_labels``, ``min_labels`` and ``budget`` are ``RoutingConfig``'s, defaults
    included (``config()``). ``gold_rate`` is the share of each tutor's leases that are gold
    checks, a live-routing knob the simulator does not have (its ``gold_share`` is the share of
    items whose truth is known up front).
    """

    domains: tuple[str, ...] = DEFAULT_DOMAINS
    domain_field: str = "domain"
    target: float = _POLICY.target
    max_labels: int = _POLICY.max_labels
    min_labels: int = _POLICY.min_labels
    gold_rate: float = 0.1
    budget: float | None = _POLICY.budget
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
            level("gold_rate", self.gold_rate, zero=True)
            self.config()
        except ValueError as exc:
            raise VeritagError(str(exc)) from None

    def config(self) -> RoutingConfig:
        """The stopping rule and label cap as the pure policy functions take them."""
        return RoutingConfig(
            target=self.target,
            max_labels=self.max_labels,
            budget=self.budget,
            min_labels=self.min_labels,
        )

    @property
    def gold_period(self) -> int:
        """Every how many leases of a tutor one is gold (0: never)."""
        return max(1, round(1.0 / self.gold_rate)) if self.gold_rate > 0 else 0


_SETTING_NAMES = tuple(f.name for f in fields(ProjectRouting))


def _settings_of(row: Any) -> ProjectRouting:
    """A stored settings row as a value (the row keeps ``domains`` as a JSON list)."""
    return ProjectRouting(
        **{name: getattr(row, name) for name in _SETTING_NAMES} | {"domains": tuple(row.domains)}
    )


def get_settings(store: Store, project: Project) -> ProjectRouting:
    """The project's stored routing settings, or the defaults before ``configure``."""
    with store.engine.connect() as conn:
        row = conn.execute(_SETTINGS, {"project": project.id}).first()
    return _settings_of(row) if row is not None else ProjectRouting()


_SETTINGS = sa.select(*RoutingSettings.__table__.c).where(
    RoutingSettings.project_id == sa.bindparam("project")
)


def configure(
    store: Store, project: Project, *, actor: audit.Actor | None = None, **settings: Any
) -> ProjectRouting:
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


def tutor_profiles(conn: sa.Connection, project: Project) -> list[TutorProfile]:
    """The project's tutors in ``Tutor.id`` order (the order every per-tutor array follows)."""
    rows = conn.execute(
        sa.select(Tutor.id, Source.name, Tutor.source_id, Tutor.domains, Tutor.cost, Tutor.active)
        .join(Source, Source.id == Tutor.source_id)
        .where(Tutor.project_id == project.id)
        .order_by(Tutor.id)
    ).all()
    return [TutorProfile(r[0], r[1], r[2], tuple(r[3]), float(r[4]), bool(r[5])) for r in rows]


def list_tutors(store: Store, project: Project) -> list[TutorProfile]:
    """The project's tutors, oldest first."""
    with store.engine.connect() as conn:
        return tutor_profiles(conn, project)


def find_tutor(tutors: Sequence[TutorProfile], project: Project, name: str) -> TutorProfile:
    """The tutor called ``name``; ``NotFound`` says how to add one."""
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
        _tutors_changed(conn, project)
        audit.record(
            conn,
            "tutor.add",
            actor=actor,
            project=project.name,
            target=name,
            detail={"domains": list(declared), "cost": float(cost), "active": active},
        )
    return TutorProfile(int(tid), name, sid, declared, float(cost), active)


def _tutors_changed(conn: sa.Connection, project: Project) -> None:
    """Move the project's tutors version (see ``Project.tutors_version``)."""
    conn.execute(
        sa.update(Project)
        .where(Project.id == project.id)
        .values(tutors_version=Project.tutors_version + 1)
    )


def set_tutor_active(
    store: Store, project: Project, name: str, active: bool, actor: audit.Actor | None = None
) -> TutorProfile:
    """Make a tutor available or not; an inactive tutor gets no work and is never suggested.
    Recorded in the audit log as done by ``actor``."""
    tutor = find_tutor(list_tutors(store, project), project, name)
    with store.engine.begin() as conn:
        conn.execute(sa.update(Tutor).where(Tutor.id == tutor.id).values(active=active))
        _tutors_changed(conn, project)
        audit.record(
            conn,
            "tutor.active",
            actor=actor,
            project=project.name,
            target=name,
            detail={"active": active, "was": tutor.active},
        )
    return replace(tutor, active=active)
