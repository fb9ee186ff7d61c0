"""A project's reports from the store: the quality report (claims through the engine) and the
audit of an automation run (its evidence replayed on the current claims)."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ..automation.policy import Decision
from ..automation.project import audit_keys, load_evidence
from ..errors import NotFound, VeritagError
from ..resolve import ENGINE_PARAMS, load_project_claims
from ..store.engine import Store
from ..store.models import AutomationRun, Item, Project
from ..store.queries import claims_watermark, project_schema, source_names
from ..truth import ConvergenceWarning, fit_truth
from .automation import AutomationData
from .build import Report, build_report

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


def project_report(
    store: Store, project: Project, *, method: str = "ds", domain: str | None = None, top: int = 20
) -> tuple[Report, list[str]]:
    """The quality report of ``project`` and any warnings the fit raised."""
    schema = project_schema(project)
    with store.engine.connect() as conn:
        pc = load_project_claims(conn, project)
        names = source_names(conn, ids=pc.source_ids.tolist())
        external, meta = _items(conn, project.id, pc.item_ids, domain)
    claims = pc.claims()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        result = fit_truth(
            claims,
            method,
            gold_items=pc.gold[0],
            gold_labels=pc.gold[1],  # type: ignore[arg-type]
            **ENGINE_PARAMS,
        )
    groups = group_names = None
    if domain is not None:
        codes, uniques = pd.factorize(
            pd.Series(meta, dtype=object).map(lambda v: None if v is None else str(v))
        )
        groups, group_names = codes.astype(np.int64), [str(u) for u in uniques]
    report = build_report(
        claims,
        result,
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
    return report, [str(w.message) for w in caught]


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
        mark = claims_watermark(conn, project_id=project.id)
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
    return data, (mark.max_claim_id, mark.gold_count) == (run.max_claim_id, run.gold_count)
