"""A project's reports from the store: the quality report (the stored truth run and the claims it
was fitted on) and the audit of an automation run (its evidence replayed on the current claims)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from numpy.typing import NDArray

from ..automation.policy import Decision
from ..automation.project import audit_keys, automation_run_is_current, load_evidence
from ..errors import NotFound, VeritagError
from ..resolve import (
    NotResolved,
    ProjectClaims,
    Resolution,
    current_truth,
    load_project_claims,
    load_truth,
)
from ..resolve.current import Refit
from ..store.engine import Store
from ..store.models import AutomationRun, Gold, Item, Project
from ..store.queries import Watermark, project_schema, source_names
from ..truth import Claims, TruthResult
from .automation import AutomationData
from .build import Report, build_report, stale_note

__all__ = ["automation_audit_data", "project_report"]


def _items(
    conn: sa.Connection, project_id: int, item_ids: np.ndarray, field: str | None
) -> tuple[list[str], list]:
    """External ids (and one metadata field) of ``item_ids``, in their order."""
    rows = conn.execute(
        sa.select(Item.id, Item.external_id, Item.meta)
        .where(Item.project_id == project_id)
        .order_by(Item.id)
    ).all()
    ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    pos = np.searchsorted(ids, item_ids)
    external = [rows[p][1] for p in pos]
    meta = [None if field is None else (rows[p][2] or {}).get(field) for p in pos]
    return external, meta


def _run_mark(conn: sa.Connection, project_id: int, run: Any) -> Watermark:
    """What ``run`` (a ``truth_runs`` row) was fitted on: its claims, and its ``gold_count``
    first gold labels (gold is only ever added, so those are the ones it saw)."""
    gold = 0
    if run.gold_count:
        gold = conn.scalar(
            sa.select(Gold.id)
            .where(Gold.project_id == project_id)
            .order_by(Gold.id)
            .offset(run.gold_count - 1)
            .limit(1)
        )
    return Watermark(int(run.max_claim_id), int(gold or 0), int(run.gold_count))


def _stored_result(res: Resolution, pc: ProjectClaims, claims: Claims) -> TruthResult:
    """The stored run ``res`` laid over the claims it was fitted on, as the engine's result.

    The run keeps each item's posterior and each source's accuracy and confusion, not the class
    prior: the prior here is the mean posterior of the items with claims, what EM's last M-step
    sets it to (before smoothing). A model no human or gold label checked has no accuracy
    (NaN: the run stores it as not measured).
    """
    n, s, k = pc.item_ids.size, pc.source_ids.size, len(pc.classes)
    posterior = np.full((n, k), 1.0 / k if k else 0.0)
    if res.probs is not None and res.item_ids.size:
        pos, found = res.lookup(pc.item_ids)
        posterior[found] = res.probs[pos[found]]
    confusion = np.full((s, k, k), 1.0 / k if k else 0.0)
    accuracy = np.full(s, np.nan)
    stats = res.sources
    if stats is not None and stats.source_ids.size:
        at = np.minimum(np.searchsorted(stats.source_ids, pc.source_ids), stats.source_ids.size - 1)
        found = stats.source_ids[at] == pc.source_ids
        accuracy[found] = stats.accuracy[at[found]]
        if stats.confusion is not None:
            confusion[found] = stats.confusion[at[found]]
    has = claims.claims_per_item() > 0
    prior = posterior[has].mean(axis=0) if has.any() else np.full(k, 1.0 / k if k else 0.0)
    info = res.run
    assert info is not None  # a stored run always carries its RunInfo
    return TruthResult(
        posterior=posterior,
        confusion=confusion,
        prior=prior,
        accuracy=accuracy,
        n_claims=np.bincount(np.concatenate([pc.hard[1], pc.soft[1]]), minlength=s),
        log_likelihood=math.nan if info.log_likelihood is None else float(info.log_likelihood),
        n_iter=int(info.n_iter),
        converged=bool(info.converged),
        method=str(info.params.get("chosen") or info.method),
    )


def _groups(meta: list[Any]) -> tuple[NDArray[np.int64], list[str]]:
    """Item groups from one metadata field: a code per item (-1: no value) and the names."""
    codes, uniques = pd.factorize(
        pd.Series(meta, dtype=object).map(lambda v: None if v is None else str(v))
    )
    return codes.astype(np.int64), [str(u) for u in uniques]


def project_report(
    store: Store,
    project: Project,
    *,
    method: str | None = None,
    refit: Refit = "never",
    domain: str | None = None,
    top: int = 20,
) -> tuple[Report, list[str]]:
    """The quality report of ``project`` and its warnings (what the run it reads misses).

    The labels come from the project's current stored truth run, of ``method`` if given (else
    the newest run), as ``resolve.current_truth`` gives it under ``refit``: ``never`` (a GET)
    reads the run, stale or not, and is ``NotResolved`` before there is one; ``stale`` (a
    command) fits again first when a claim or gold label came since. The report is built on
    the claims the run was fitted on, so its numbers agree with each other, and ``Report.truth``
    says how stale the run is.
    """
    schema = project_schema(project)
    if not schema.classes():
        raise VeritagError(
            f"project {project.name!r} has no fixed classes ({schema.type}); the quality report "
            "covers categorical task types only"
        )
    truth = current_truth(store, project, method=method, refit=refit)
    if truth.run is None and method is not None:
        raise NotResolved(
            f"project {project.name!r} has no stored {method} run: resolve it with that method "
            "first (`veritag resolve --method`, or POST /api/v1/projects/{name}/resolve)"
        )
    res = load_truth(store, truth, with_probs=True, with_sources=True)
    with store.engine.connect() as conn:
        pc = load_project_claims(conn, project, _run_mark(conn, project.id, truth.run))
        names = source_names(conn, ids=pc.source_ids.tolist())
        external, meta = _items(conn, project.id, pc.item_ids, domain)
    claims = pc.claims()
    groups, group_names = _groups(meta) if domain is not None else (None, None)
    report = build_report(
        claims,
        _stored_result(res, pc, claims),
        source_names=[names[int(s)][1] for s in pc.source_ids],
        source_kinds=[names[int(s)][0] for s in pc.source_ids],
        class_names=[str(v) for v in pc.values[: len(pc.classes)]],
        item_ids=external,
        groups=groups,
        group_names=group_names,
        group_field=domain,
        ordinal=schema.type == "rating",
        top=top,
    )
    report = replace(report, truth=truth.to_json())
    note = stale_note(report.truth)
    return report, [] if note is None else [note]


def automation_audit_data(
    store: Store, project: Project, *, run_id: int | None = None
) -> tuple[AutomationData, bool]:
    """The evidence behind automation run ``run_id`` (default: the newest), and whether it is
    current (no claim or gold label added since).

    The run's thresholds and audit are replayed on the project's current claims, so labels
    added to the audit since the run show up as evidence.
    """
    with store.engine.connect() as conn:
        stmt = sa.select(*AutomationRun.__table__.c).where(AutomationRun.project_id == project.id)
        stmt = (
            stmt.where(AutomationRun.id == run_id)
            if run_id is not None
            else stmt.order_by(AutomationRun.id.desc()).limit(1)
        )
        run = conn.execute(stmt).first()
        if run is None:
            raise NotFound(
                f"project {project.name!r} has no automation run"
                + (f" {run_id}" if run_id is not None else "; run `veritag automate` first")
            )
        if run.source_id is None:
            raise VeritagError(
                f"automation run {run.id} of {project.name!r} only drew the audit (no model had "
                "labeled the project); run `veritag autolabel` and `veritag automate` first"
            )
        model = source_names(conn, ids=[run.source_id])[run.source_id][1]
        current = automation_run_is_current(conn, run)
    params = run.params if isinstance(run.params, dict) else json.loads(run.params)
    ev = load_evidence(store, project, model=model, slice_field=run.slice_field)
    audit = audit_keys(project.id, ev.item_ids, int(params.get("seed", 0))) < run.audit_rate
    slices = run.slices if isinstance(run.slices, list) else json.loads(run.slices)
    stored = {s["name"]: s for s in slices}
    thresholds = np.full(len(ev.slice_names), np.inf)
    decisions: dict[int, Decision] = {}
    for code, name in enumerate(ev.slice_names):
        s = stored.get(name)
        if s is None:
            continue
        if s["threshold"] is not None:
            thresholds[code] = s["threshold"]
        decisions[code] = Decision(
            threshold=thresholds[code],
            bound=math.nan if s["bound"] is None else s["bound"],
            audit_size=int(s["audit_above"]),
            accepted_share_of_audit=math.nan,
            tested=int(s.get("tested", 0)),
            target=run.target,
            delta=run.delta,
        )
    keep = ev.has_model
    data = AutomationData(
        project=project.name,
        labeler=ev.source or model,
        classes=tuple(str(v) for v in ev.values[: len(ev.classes)]),
        target=run.target,
        delta=run.delta,
        slice_field=run.slice_field,
        slice_names=ev.slice_names,
        probs=ev.probs[keep],
        slices=ev.slices[keep],
        audit=audit[keep],
        human_label=ev.human_label[keep],
        human_correct=ev.human_correct[keep],
        thresholds=thresholds,
        decisions=decisions,
        created_at=run.created_at.isoformat()
        if hasattr(run.created_at, "isoformat")
        else str(run.created_at),
    )
    return data, current
