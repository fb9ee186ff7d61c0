"""Automation on a project: which items the model labels alone, which go to humans, and why.

The audit is a uniform random sample fixed by a hash: an item is audited when
``audit_key(item) < audit_rate``. The key depends only on the item's id and the project, never
on the model, so audited items above any threshold are a random sample of all items above it,
the audit grows with the project at the same rate as items arrive, and raising the rate only
adds items. The rate of a project's first run is kept by later runs unless a new one is given.

Humans label audited items whatever the model's confidence; they are graded against the
humans-only resolution (``resolve.human_labels``), never a truth the model helped to make. A
slice is automated only when *every* audited item in it has a human or gold label: a partly
labeled audit is a sample of whatever humans chose to label first, not of the slice, and no
bound computed from it would mean anything. Then ``policy.automate`` picks each slice's
threshold, and every item gets a decision: ``auto`` (the model's label is accepted), ``audit``
or ``human`` (below the threshold, unaudited slice, or no model claim). Each run is stored
(``automation_runs``, ``automation_items``), append-only; routing reads the newest.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa
from numpy.typing import NDArray

from ..checks import level
from ..errors import InputError, NotFound, VeritagError
from ..keys import item_keys
from ..resolve import HumanLabels, ProjectClaims, human_labels, load_project_claims
from ..schema import MultiLabelSchema, canonical_json
from ..store.engine import Store
from ..store.models import AutomationItem, AutomationRun, Claim, Gold, Item, Project, Source
from ..store.queries import (
    Watermark,
    claims_watermark,
    execute_many,
    project_schema,
    run_is_current,
    standing_claims,
)
from .policy import Decision, automate

__all__ = [
    "AUDIT_FLOOR",
    "AUDIT_SHARE",
    "AutomationResult",
    "ProjectEvidence",
    "SliceResult",
    "audit_keys",
    "automate_project",
    "automation_run_is_current",
    "latest_automation_run",
    "load_evidence",
    "queue_rows",
    "run_summary",
]

#: Default audit: this share of the items, but at least ``AUDIT_FLOOR`` of them.
AUDIT_SHARE = 0.10
AUDIT_FLOOR = 200
#: Name of the slice of items whose slice field is missing, and of the one slice without a field.
MISSING_SLICE = "(missing)"
ALL_SLICE = "all"
DECISIONS = ("auto", "audit", "human")
_BATCH = 10_000


def audit_keys(project_id: int, item_ids: NDArray[np.int64], seed: int = 0) -> NDArray[np.float64]:
    """The key per item that decides the audit sample (``keys.item_keys``): below the audit rate
    is audited."""
    return item_keys(project_id, item_ids, seed)


@dataclass(frozen=True)
class SliceResult:
    """One slice of a run: its items, how many are automated, and the evidence behind it.

    ``threshold``/``bound`` are None when the slice is not automated; ``audit_waiting`` counts
    audited items still without a human label (a slice with any is not automated).
    """

    name: str
    n_items: int
    n_auto: int
    audit_drawn: int
    audit_waiting: int
    threshold: float | None
    bound: float | None
    audit_above: int
    tested: int


@dataclass(frozen=True)
class AutomationResult:
    """What ``automate_project`` decided, and the stored run's id.

    ``human_todo`` counts the items ``queue_rows`` hands to humans: unlabeled audited items, and
    unlabeled items the model may not label where that decision is final. ``overall_bound`` is
    descriptive (see ``policy.Plan``).
    """

    run_id: int
    source: str | None
    target: float
    delta: float
    audit_rate: float
    slice_field: str | None
    n_items: int
    n_auto: int
    n_audit: int
    n_audit_labeled: int
    n_human: int
    human_todo: int
    overall_bound: float | None
    slices: tuple[SliceResult, ...]

    @property
    def automation_rate(self) -> float:
        return self.n_auto / self.n_items if self.n_items else 0.0


@dataclass(frozen=True)
class ProjectEvidence:
    """A project's items with everything automation needs, item-aligned (``item_ids`` sorted).

    ``probs`` is the chosen model's newest probability row per item (zeros where it has no
    claim, ``has_model`` False); ``human_label`` the humans-only class code (-1 unknown) and
    ``human_correct`` whether one human claim was right (NaN unknown); ``slices`` codes into
    ``slice_names`` (-1: no model claim, never automated). ``source`` is None before any model
    has claimed: then nothing is automated and the run only draws the audit.
    """

    item_ids: NDArray[np.int64]
    external_ids: list[str]
    probs: NDArray[np.float64]
    has_model: NDArray[np.bool_]
    human_label: NDArray[np.int64]
    human_correct: NDArray[np.float64]
    slices: NDArray[np.int64]
    slice_names: tuple[str, ...]
    classes: list[str]
    values: list[Any]
    source_id: int | None
    source: str | None
    watermark: Watermark


def _model_source(
    conn: sa.Connection, project: Project, name: str | None
) -> tuple[int | None, str | None]:
    """The model source to automate: by name, or the one whose claim is newest; None before any."""
    stmt = sa.select(Source.id, Source.name, Source.version).where(
        Source.project_id == project.id, Source.kind == "model"
    )
    rows = conn.execute(stmt).all()
    if name is not None:
        rows = [r for r in rows if r.name == name]
        if not rows:
            raise VeritagError(f"project {project.name!r} has no model source named {name!r}")
    if not rows:
        return None, None
    newest = conn.execute(
        sa.select(Claim.source_id)
        .where(Claim.source_id.in_([r.id for r in rows]))
        .order_by(Claim.id.desc())
        .limit(1)
    ).scalar()
    chosen = next((r for r in rows if r.id == newest), rows[0])
    return int(chosen.id), f"{chosen.name}@{chosen.version}" if chosen.version else chosen.name


def _slice_value(meta: Any, field: str) -> str:
    value = (meta or {}).get(field) if isinstance(meta, dict) else None
    return MISSING_SLICE if value is None or value == "" else str(value)


def load_evidence(
    store: Store,
    project: Project,
    *,
    model: str | None = None,
    slice_field: str | None = None,
    method: str = "ds",
) -> ProjectEvidence:
    """Read a categorical project's items, its model's probabilities and its humans' labels."""
    schema = project_schema(project)
    if not schema.classes() or isinstance(schema, MultiLabelSchema):
        raise VeritagError(
            f"project {project.name!r} is a {schema.type} task; automation needs a single-label "
            "categorical task (classification, rating, pairwise, fact_check)"
        )
    with store.engine.connect() as conn:
        mark = claims_watermark(conn, project_id=project.id)
        source_id, source = _model_source(conn, project, model)
        pc: ProjectClaims = load_project_claims(conn, project, mark)
        humans: HumanLabels = human_labels(conn, project, claims=pc, method=method)
        rows = conn.execute(
            sa.select(Item.id, Item.external_id, Item.meta)
            .where(Item.project_id == project.id)
            .order_by(Item.id)
        ).all()
    item_ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    k = len(pc.classes)
    (mi, ms, mprobs) = pc.soft
    mine = pc.source_ids[ms] == source_id if ms.size else np.zeros(0, bool)
    where = np.searchsorted(item_ids, pc.item_ids[mi[mine]])
    probs = np.zeros((item_ids.size, k))
    probs[where] = mprobs[mine]
    has_model = np.zeros(item_ids.size, dtype=bool)
    has_model[where] = True
    label, correct = humans.lookup(item_ids)
    if slice_field is None:
        names: tuple[str, ...] = (ALL_SLICE,)
        codes = np.zeros(item_ids.size, dtype=np.int64)
    else:
        values = np.array([_slice_value(r[2], slice_field) for r in rows], dtype=object)
        if values.size and (values == MISSING_SLICE).all():
            raise InputError(
                f"no item of project {project.name!r} has the metadata field {slice_field!r} to "
                "slice by; import it as metadata (veritag import --meta) or leave --slice out"
            )
        uniq, codes = (
            np.unique(values, return_inverse=True)
            if values.size
            else (np.zeros(0, object), np.zeros(0, np.int64))
        )
        names = tuple(str(v) for v in uniq)
        codes = codes.astype(np.int64)
    codes = np.where(has_model, codes, -1)
    return ProjectEvidence(
        item_ids,
        [r[1] for r in rows],
        probs,
        has_model,
        label,
        correct,
        codes,
        names,
        pc.classes,
        pc.values,
        source_id,
        source,
        mark,
    )


def latest_automation_run(conn: sa.Connection, project_id: int) -> Any:
    """The newest automation run of a project (a row with the table's columns), or None."""
    return conn.execute(
        sa.select(*AutomationRun.__table__.c)
        .where(AutomationRun.project_id == project_id)
        .order_by(AutomationRun.id.desc())
        .limit(1)
    ).first()


def automation_run_is_current(conn: sa.Connection, run: Any) -> bool:
    """Whether automation ``run`` (see ``latest_automation_run``) saw every claim and gold label
    the project has: its claims version is compared, as a truth run's is, so a claim committed
    after the run read the claims stales it even when its id is lower than the run's newest."""
    return run_is_current(conn, run)


def _default_rate(store: Store, project: Project, n: int) -> float:
    with store.engine.connect() as conn:
        previous = latest_automation_run(conn, project.id)
    if previous is not None:
        return float(previous.audit_rate)
    return max(AUDIT_SHARE, min(1.0, AUDIT_FLOOR / n)) if n else AUDIT_SHARE


def _slice_rows(
    ev: ProjectEvidence,
    auto: NDArray[np.bool_],
    audit: NDArray[np.bool_],
    waiting: NDArray[np.bool_],
    decisions: dict[int, Decision],
) -> tuple[SliceResult, ...]:
    s = len(ev.slice_names)
    member = ev.slices >= 0
    codes = ev.slices[member]

    def count(mask: NDArray[np.bool_]) -> NDArray[np.int64]:
        return np.bincount(codes, weights=mask[member].astype(float), minlength=s).astype(np.int64)

    n, n_auto, drawn, wait = (
        count(np.ones(ev.slices.size, bool)),
        count(auto),
        count(audit),
        count(waiting),
    )
    out = []
    for j, name in enumerate(ev.slice_names):
        d = decisions.get(j)
        ok = d is not None and d.automated
        out.append(
            SliceResult(
                name,
                int(n[j]),
                int(n_auto[j]),
                int(drawn[j]),
                int(wait[j]),
                d.threshold if ok else None,
                d.bound if ok else None,  # type: ignore[union-attr]
                d.audit_size if ok else 0,
                d.tested if d is not None else 0,
            )
        )  # type: ignore[union-attr]
    return tuple(out)


def _option(name: str, value: float, *, one: bool = False) -> None:
    """``checks.level`` for a command-line option: the same words, as the command's error."""
    try:
        level(name, value, one=one)
    except ValueError as exc:
        raise VeritagError(str(exc)) from None


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def automate_project(
    store: Store,
    project: Project,
    *,
    target: float,
    delta: float,
    model: str | None = None,
    slice_field: str | None = None,
    audit_rate: float | None = None,
    min_audit: int = 0,
    simultaneous: bool = False,
    seed: int = 0,
) -> AutomationResult:
    """Decide, store and return which items the model labels alone (see the module docstring).

    ``model`` names the model source (default: the one with the newest claim); ``slice_field`` is
    an item metadata field with one threshold per value; ``audit_rate`` the share of items in the
    audit (default: the project's previous rate, else 10% and at least 200 items).
    """
    _option("--target", target)
    _option("--delta", delta)
    ev = load_evidence(store, project, model=model, slice_field=slice_field)
    n = ev.item_ids.size
    rate = _default_rate(store, project, n) if audit_rate is None else float(audit_rate)
    _option("--audit-rate", rate, one=True)
    audit = audit_keys(project.id, ev.item_ids, seed) < rate
    labeled = ev.human_label >= 0
    waiting = audit & ~labeled
    # A slice with an audited item still unlabeled is not automated (see the module docstring).
    blocked = np.zeros(len(ev.slice_names), dtype=bool)
    member = ev.slices >= 0
    blocked[np.unique(ev.slices[member & waiting])] = True
    codes = np.where(member & ~blocked[np.maximum(ev.slices, 0)], ev.slices, -1)
    confidence = ev.probs.max(axis=1) if ev.probs.size else np.zeros(n)
    model_label = ev.probs.argmax(axis=1) if ev.probs.size else np.zeros(n, np.int64)
    evidence = audit & labeled & (codes >= 0)
    plan = automate(
        confidence,
        evidence,
        model_label == ev.human_label,
        target=target,
        delta=delta,
        slices=codes,
        min_audit=min_audit,
        simultaneous=simultaneous,
    )
    auto = plan.auto & ~audit
    decision = np.where(auto, 0, np.where(audit, 1, 2))
    slices = _slice_rows(ev, auto, audit, waiting, plan.decisions)
    final = (
        (ev.slices < 0) | ~blocked[np.maximum(ev.slices, 0)] if blocked.size else np.ones(n, bool)
    )
    human_todo = int((~labeled & (audit | ((ev.source_id is not None) & ~auto & final))).sum())
    run = {
        "project_id": project.id,
        "source_id": ev.source_id,
        "target": target,
        "delta": delta,
        "audit_rate": rate,
        "slice_field": slice_field,
        "params": {
            "min_audit": min_audit,
            "simultaneous": simultaneous,
            "seed": seed,
            "model": ev.source,
        },
        "slices": [
            {
                "name": s.name,
                "n_items": s.n_items,
                "n_auto": s.n_auto,
                "audit_drawn": s.audit_drawn,
                "audit_waiting": s.audit_waiting,
                "threshold": s.threshold,
                "bound": s.bound,
                "audit_above": s.audit_above,
                "tested": s.tested,
            }
            for s in slices
        ],
        "n_items": n,
        "n_auto": int(auto.sum()),
        "n_audit": int(audit.sum()),
        "n_audit_labeled": int((audit & labeled).sum()),
        "overall_bound": _finite(plan.overall_bound),
        "max_claim_id": ev.watermark.max_claim_id,
        "claims_version": ev.watermark.claims_version,
        "gold_count": ev.watermark.gold_count,
    }
    values = np.array([canonical_json(v) for v in ev.values], dtype=object)
    names = np.array(ev.slice_names + (None,), dtype=object)

    def item_rows() -> Iterator[list[dict[str, Any]]]:
        for start in range(0, n, _BATCH):
            part = slice(start, start + _BATCH)
            yield [
                {
                    "run_id": run_id,
                    "item_id": int(i),
                    "decision": DECISIONS[d],
                    "label": values[m] if has else None,
                    "confidence": float(c),
                    "slice": s,
                }
                for i, d, m, has, c, s in zip(
                    ev.item_ids[part].tolist(),
                    decision[part].tolist(),
                    model_label[part].tolist(),
                    ev.has_model[part].tolist(),
                    confidence[part].tolist(),
                    names[ev.slices[part]].tolist(),
                )
            ]

    with store.engine.begin() as conn:
        run_id = int(conn.execute(sa.insert(AutomationRun).values(**run)).inserted_primary_key[0])
        for batch in item_rows():
            execute_many(conn, sa.insert(AutomationItem.__table__), batch)
    return AutomationResult(
        run_id=run_id,
        source=ev.source,
        target=target,
        delta=delta,
        audit_rate=rate,
        slice_field=slice_field,
        n_items=n,
        n_auto=run["n_auto"],
        n_audit=run["n_audit"],
        n_audit_labeled=run["n_audit_labeled"],
        n_human=int((decision == 2).sum()),
        human_todo=human_todo,
        overall_bound=run["overall_bound"],
        slices=slices,
    )


def queue_rows(
    store: Store, project: Project, run_id: int
) -> list[tuple[str, str, float, str | None]]:
    """What humans should label next after run ``run_id``: ``(external id, reason, model confidence,
    slice)``, audited items first, then the rest least confident first; items labeled since are
    left out.

    Below-threshold items are queued only where the decision is final: the run had a model and
    the item's slice audit was complete. Before that only the audit is queued, because labeling
    everything else by hand would spend what automation is meant to save.
    """
    with store.engine.connect() as conn:
        run = conn.execute(
            sa.select(AutomationRun.source_id, AutomationRun.slices).where(
                AutomationRun.id == run_id, AutomationRun.project_id == project.id
            )
        ).first()
        if run is None:
            raise NotFound(f"project {project.name!r} has no automation run {run_id}")
        rows = conn.execute(
            sa.select(
                Item.external_id,
                AutomationItem.decision,
                AutomationItem.confidence,
                AutomationItem.slice,
                AutomationItem.item_id,
            )
            .join(Item, Item.id == AutomationItem.item_id)
            .where(AutomationItem.run_id == run_id, AutomationItem.decision != "auto")
        ).all()
    slices = run.slices if isinstance(run.slices, list) else json.loads(run.slices)
    final = {s["name"] for s in slices if not s["audit_waiting"]} | {None}
    labeled = _labeled_ids(store, project)
    todo = [
        r
        for r in rows
        if r.item_id not in labeled
        and (r.decision == "audit" or (run.source_id is not None and r.slice in final))
    ]
    todo.sort(key=lambda r: (r.decision != "audit", r.confidence))
    return [(r.external_id, r.decision, r.confidence, r.slice) for r in todo]


def _labeled_ids(store: Store, project: Project) -> set[int]:
    """Items with a human label or a gold label: the ones ``human_labels`` resolves, found by a
    query instead of a fit, since only their ids are needed here."""
    human = (
        sa.select(Claim.item_id)
        .join(Source, Source.id == Claim.source_id)
        .where(
            Claim.project_id == project.id,
            Source.kind == "human",
            Claim.value.is_not(None),
            standing_claims(),
        )
    )
    gold = sa.select(Gold.item_id).where(Gold.project_id == project.id)
    with store.engine.connect() as conn:
        return set(conn.scalars(sa.union(human, gold)))


def run_summary(run: Any) -> dict[str, Any]:
    """A stored run as plain JSON-able data (for ``status`` and ``--json``)."""
    slices = run.slices if isinstance(run.slices, list) else json.loads(run.slices)
    return {
        "run": run.id,
        "target": run.target,
        "delta": run.delta,
        "audit_rate": run.audit_rate,
        "slice_field": run.slice_field,
        "items": run.n_items,
        "automated": run.n_auto,
        "automation_rate": run.n_auto / run.n_items if run.n_items else 0.0,
        "audit": run.n_audit,
        "audit_labeled": run.n_audit_labeled,
        "overall_bound": run.overall_bound,
        "slices": slices,
    }
