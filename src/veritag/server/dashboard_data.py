"""What the project dashboard shows, gathered from the store as plain data (no HTTP here).

The numbers come from the library, never recomputed here: progress from ``project_counts`` and
``routing.routing_status``; the automation rate and its guarantee from the newest automation run
(``automation.project.run_summary``); tutor scorecards from the current truth run (each source's
reliability and the resolved labels), routing's per-domain skill, Cohen's kappa
(``truth.cohen_kappa``, ``truth.pairwise_cohen_kappa``) and the leases' timings and skips; plots
from ``report`` (quality) and ``report.automation`` (calibration, bias per slice), as SVG.

``gather`` is what ``GET /api/v1/projects/{name}/dashboard`` returns and the page renders.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa

from ..errors import VeritagError
from ..resolve import current_truth, load_truth
from ..routing import service as routing
from ..schema import BaseSchema, canonical_json
from ..store.engine import Store
from ..store.models import (
    Assignment,
    Claim,
    Membership,
    Project,
    Review,
    Source,
    Tutor,
    User,
)
from ..store.queries import (
    project_counts,
    project_schema,
    source_names,
    standing_human_labels,
)
from ..truth import cohen_kappa, pairwise_cohen_kappa

__all__ = [
    "PLOTS",
    "AutomationView",
    "Dashboard",
    "DomainSkill",
    "Member",
    "Progress",
    "Scorecard",
    "SliceGuarantee",
    "automation_view",
    "gather",
    "members",
    "plot_svg",
    "progress",
    "scorecards",
]

#: The plots the dashboard shows: automation (calibration, bias per slice) and quality ones.
PLOTS = ("calibration", "bias", "accuracy", "confidence")


@dataclass(frozen=True)
class Progress:
    """Items in the project and how far labeling got. ``done``/``pending`` are routing's (None
    where routing does not handle the task); ``automated`` is the newest automation run's count."""

    items: int
    labeled: int
    human_claims: int
    reviews: int
    done: int | None
    pending: int | None
    gold_items: int | None
    in_flight: int | None
    labels_spent: int | None
    spent: float | None
    budget_left: float | None
    automated: int
    routing_note: str | None = None


@dataclass(frozen=True)
class SliceGuarantee:
    """One slice of an automation run: its share automated and the accuracy bound behind it."""

    name: str
    items: int
    automated: int
    rate: float
    threshold: float | None
    bound: float | None
    audit_above: int
    meets_target: bool


@dataclass(frozen=True)
class AutomationView:
    """The newest automation run: the model, the target accuracy at confidence ``1 - delta``, the
    share of items it labels alone, and the lower bound on accuracy the audit proved."""

    run: int
    model: str | None
    created_at: str
    target: float
    delta: float
    items: int
    automated: int
    rate: float
    audit: int
    audit_labeled: int
    overall_bound: float | None
    slice_field: str | None
    slices: list[SliceGuarantee]


@dataclass(frozen=True)
class DomainSkill:
    """A tutor's expected accuracy in one domain (routing's blend of prior and measurement)."""

    domain: str
    accuracy: float
    measured: int


@dataclass(frozen=True)
class Scorecard:
    """One human source: how right (vs the engine), how much in line (kappa), how fast, how often
    skipping.

    ``agreement`` is the share of their labels equal to the resolved label; ``kappa_resolved``
    Cohen's kappa against the resolved labels (their own vote is part of that consensus);
    ``kappa_tutors`` the mean of their pairwise kappas with the other humans; ``median_seconds``
    and ``labels_per_hour`` come from the timed, submitted leases, ``skips`` from released leases
    with a reason.
    """

    name: str
    tutor: bool
    active: bool | None
    labels: int
    accuracy: float | None
    agreement: float | None
    kappa_resolved: float | None
    kappa_tutors: float | None
    submitted: int
    timed: int
    median_seconds: float | None
    labels_per_hour: float | None
    skips: int
    domains: list[DomainSkill] = field(default_factory=list)


@dataclass(frozen=True)
class Member:
    username: str
    role: str
    global_role: str


@dataclass(frozen=True)
class Dashboard:
    """Everything on the dashboard; ``members`` is None when the viewer may not see them."""

    project: str
    schema_type: str
    progress: Progress
    automation: AutomationView | None
    tutors: list[Scorecard]
    members: list[Member] | None
    notes: list[str] = field(default_factory=list)


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def progress(
    store: Store,
    project: Project,
    status: routing.RoutingStatus | None = None,
    note: str | None = None,
) -> Progress:
    """Counts of the project with routing's done/pending (pass ``status`` to reuse one)."""
    from ..automation.project import (
        latest_automation_run,  # scikit-learn: loaded on first use, not at start
    )

    with store.session() as session:
        counts = project_counts(session, project_id=project.id)
        reviews = session.scalar(
            sa.select(sa.func.count()).select_from(Review).where(Review.project_id == project.id)
        )
        run = latest_automation_run(session.connection(), project.id)
    s = status
    return Progress(
        items=counts["items"],
        labeled=counts["labeled_items"],
        human_claims=counts["human_claims"],
        reviews=int(reviews or 0),
        done=s.done if s else None,
        pending=s.pending if s else None,
        gold_items=s.gold_items if s else None,
        in_flight=s.in_flight if s else None,
        labels_spent=s.labels_spent if s else None,
        spent=s.spent if s else None,
        budget_left=s.budget_left if s else None,
        automated=int(run.n_auto) if run is not None else 0,
        routing_note=note,
    )


def automation_view(store: Store, project: Project) -> AutomationView | None:
    """The newest automation run with its guarantee per slice, or None before any run."""
    from ..automation.project import latest_automation_run, run_summary

    with store.engine.connect() as conn:
        run = latest_automation_run(conn, project.id)
        if run is None:
            return None
        model = (
            source_names(conn, ids=[run.source_id])[run.source_id][1]
            if run.source_id is not None
            else None
        )
    s = run_summary(run)
    slices = [
        SliceGuarantee(
            name=str(x["name"]),
            items=int(x["n_items"]),
            automated=int(x["n_auto"]),
            rate=x["n_auto"] / x["n_items"] if x["n_items"] else 0.0,
            threshold=x["threshold"],
            bound=x["bound"],
            audit_above=int(x["audit_above"]),
            meets_target=x["bound"] is not None and x["bound"] >= s["target"],
        )
        for x in s["slices"]
    ]
    created = (
        run.created_at.isoformat() if hasattr(run.created_at, "isoformat") else str(run.created_at)
    )
    return AutomationView(
        run=s["run"],
        model=model,
        created_at=created,
        target=s["target"],
        delta=s["delta"],
        items=s["items"],
        automated=s["automated"],
        rate=s["automation_rate"],
        audit=s["audit"],
        audit_labeled=s["audit_labeled"],
        overall_bound=_finite(s["overall_bound"]),
        slice_field=s["slice_field"],
        slices=slices,
    )


def _timings(store: Store, project: Project) -> dict[int, tuple[list[float], int, int]]:
    """Per human source id: seconds of its timed submitted leases, submitted leases, skips."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(Tutor.source_id, Assignment.state, Assignment.seconds, Assignment.skip_reason)
            .join(Tutor, Tutor.id == Assignment.tutor_id)
            .where(Assignment.project_id == project.id)
        ).all()
    out: dict[int, tuple[list[float], int, int]] = {}
    for source, state, seconds, reason in rows:
        timed, submitted, skips = out.setdefault(source, ([], 0, 0))
        if state == "submitted" and seconds is not None and math.isfinite(seconds):
            timed.append(float(seconds))
        out[source] = (timed, submitted + (state == "submitted"), skips + (reason is not None))
    return out


def _class_code(schema: BaseSchema, classes: dict[str, int], value: Any) -> int:
    key = schema.vote_key(value)
    return classes.get(key if isinstance(key, str) else str(key), -1)


def scorecards(
    store: Store, project: Project, status: routing.RoutingStatus | None = None
) -> list[Scorecard]:
    """A scorecard per routing tutor and per other human source with claims (tutors first);
    reviewers' verdicts are not tutors' work and are left out of every number."""
    schema = project_schema(project)
    with store.engine.connect() as conn:
        reviewed = sa.select(Review.claim_id).where(Review.project_id == project.id)
        claims = conn.execute(
            sa.select(Claim.item_id, Claim.source_id, Claim.value)
            .where(standing_human_labels(project.id), Claim.id.not_in(reviewed))
            .order_by(Claim.id)
        ).all()
        humans = dict(
            conn.execute(
                sa.select(Source.id, Source.name).where(
                    Source.project_id == project.id, Source.kind == "human"
                )
            ).all()
        )
    tutors = {t.source_id: t for t in routing.list_tutors(store, project)}
    last: dict[tuple[int, int], Any] = {}
    for item, source, value in claims:  # a source's newest claim on an item is its answer
        last[(item, source)] = value
    resolved: dict[int, Any] = {}
    accuracy: dict[int, float] = {}
    truth = current_truth(store, project)  # the stored run: a dashboard never fits
    if last and truth.run is not None:
        res = load_truth(store, truth, with_sources=True)
        resolved = dict(zip(res.item_ids.tolist(), res.labels.tolist(), strict=True))
        if res.sources is not None:
            accuracy = {
                s: a
                for s, a in zip(
                    res.sources.source_ids.tolist(), res.sources.accuracy.tolist(), strict=True
                )
                if math.isfinite(a)
            }
    order = list(tutors) + sorted(s for s in {s for _, s in last} if s not in tutors)
    pos = {s: j for j, s in enumerate(order)}
    classes = {c: j for j, c in enumerate(schema.classes())} if schema.type != "multilabel" else {}
    k = len(classes)
    per_source: dict[int, list[tuple[int, Any]]] = {s: [] for s in order}
    for (item, source), value in last.items():
        per_source[source].append((item, value))
    pair_kappa = np.full((len(order), len(order)), np.nan)
    if k and len(order) >= 2 and last:
        item_index = {i: j for j, i in enumerate(sorted({i for i, _ in last}))}
        rows = [
            (item_index[i], pos[s], _class_code(schema, classes, v)) for (i, s), v in last.items()
        ]
        rows = [r for r in rows if r[2] >= 0]
        if rows:
            it, so, la = (np.array(c, dtype=np.int64) for c in zip(*rows, strict=True))
            pair_kappa = pairwise_cohen_kappa(
                it, so, la, n_items=len(item_index), n_sources=len(order), n_classes=k
            )
    skill = {t.name: t for t in status.tutors} if status is not None else {}
    timings = _timings(store, project)
    cards = []
    for s in order:
        answers = per_source[s]
        against = [(v, resolved[i]) for i, v in answers if i in resolved]
        agree = [
            canonical_json(schema.vote_key(v)) == canonical_json(schema.vote_key(r))
            for v, r in against
        ]
        kappa = None
        if k and against:
            codes = [
                (_class_code(schema, classes, v), _class_code(schema, classes, r))
                for v, r in against
            ]
            codes = [c for c in codes if c[0] >= 0 and c[1] >= 0]
            if codes:
                a, b = zip(*codes, strict=True)
                kappa = _finite(cohen_kappa(list(a), list(b), n_classes=k))
        row = pair_kappa[pos[s]] if pair_kappa.size else np.zeros(0)
        mean_pair = _finite(float(np.nanmean(row))) if row.size and np.isfinite(row).any() else None
        timed, submitted, skips = timings.get(s, ([], 0, 0))
        name = tutors[s].name if s in tutors else humans.get(s, str(s))
        ts = skill.get(name)
        domains = (
            [
                DomainSkill(d, float(a), int(ts.measured.get(d, 0)))
                for d, a in ts.skill.items()
                if d in ts.domains or ts.measured.get(d, 0)
            ]
            if ts
            else []
        )
        total = sum(timed)
        cards.append(
            Scorecard(
                name=name,
                tutor=s in tutors,
                active=tutors[s].active if s in tutors else None,
                labels=len(answers),
                accuracy=accuracy.get(s),
                agreement=sum(agree) / len(agree) if agree else None,
                kappa_resolved=kappa,
                kappa_tutors=mean_pair,
                submitted=submitted,
                timed=len(timed),
                median_seconds=float(statistics.median(timed)) if timed else None,
                labels_per_hour=3600.0 * len(timed) / total if total > 0 else None,
                skips=skips,
                domains=domains,
            )
        )
    return cards


def members(store: Store, project: Project) -> list[Member]:
    """The project's members with their role here and their global role."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(User.username, Membership.role, User.role)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.project_id == project.id)
            .order_by(User.username)
        ).all()
    return [Member(u, r, g) for u, r, g in rows]


def gather(
    store: Store,
    project: Project,
    *,
    with_members: bool,
    status: routing.RoutingStatus | None = None,
    routing_note: str | None = None,
) -> Dashboard:
    """The whole dashboard; a part the task type does not support is left empty with a note.

    Pass ``status`` (or the ``routing_note`` saying why there is none) when the caller already
    asked routing, so it is not asked twice.
    """
    note = routing_note
    if status is None and note is None:
        try:
            status = routing.routing_status(store, project, refit="never")
        except VeritagError as exc:  # e.g. a task type that routing does not handle
            note = str(exc)
    notes = [f"routing: {note}"] if note else []
    try:
        cards = scorecards(store, project, status)
    except VeritagError as exc:
        cards = []
        notes.append(f"scorecards: {exc}")
    return Dashboard(
        project=project.name,
        schema_type=project_schema(project).type,
        progress=progress(store, project, status, note),
        automation=automation_view(store, project),
        tutors=cards,
        members=members(store, project) if with_members else None,
        notes=notes,
    )


def plot_svg(store: Store, project: Project, name: str) -> str | None:
    """One of ``PLOTS`` as an SVG document, None when there is nothing to draw; raises
    ``VeritagError`` when its data is missing (no automation run, no fixed classes, no stored
    truth run: the quality plots read the newest run and never fit, as any GET)."""
    if name in ("calibration", "bias"):
        from ..report.automation import (
            build_automation_report,
            reliability_diagram,
            slice_error_plot,
        )
        from ..report.project import automation_audit_data

        data, _ = automation_audit_data(store, project)
        report = build_automation_report(data)
        return (
            reliability_diagram(report.calibration)
            if name == "calibration"
            else slice_error_plot(report.bias)
        )
    if name in ("accuracy", "confidence"):
        from ..report.plots import accuracy_scatter, confidence_histogram
        from ..report.project import project_report

        quality, _ = project_report(store, project)
        return accuracy_scatter(quality) if name == "accuracy" else confidence_histogram(quality)
    raise VeritagError(f"no plot named {name!r}; plots: {', '.join(PLOTS)}")
