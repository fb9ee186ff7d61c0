"""A project's report: read its claims from the store, fit the engine, build the report."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ..resolve import ENGINE_PARAMS, load_project_claims
from ..store.engine import Store
from ..store.models import Item, Project
from ..store.queries import project_schema, source_names
from ..truth import ConvergenceWarning, fit_truth
from .build import Report, build_report

__all__ = ["project_report"]


def _items(conn: sa.Connection, project_id: int, item_ids: np.ndarray, field: str | None) -> tuple[list[str], list]:
    """External ids (and one metadata field) of ``item_ids``, in their order."""
    rows = conn.execute(
        sa.select(Item.id, Item.external_id, Item.meta).where(Item.project_id == project_id).order_by(Item.id)
    ).all()
    ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    pos = np.searchsorted(ids, item_ids)
    external = [rows[p][1] for p in pos]
    meta = [None if field is None else (rows[p][2] or {}).get(field) for p in pos]
    return external, meta


def project_report(store: Store, project: Project, *, method: str = "ds", domain: str | None = None,
                   top: int = 20) -> tuple[Report, list[str]]:
    """The quality report of ``project`` and any warnings the fit raised."""
    schema = project_schema(project)
    with store.engine.connect() as conn:
        pc = load_project_claims(conn, project)
        names = source_names(conn, ids=pc.source_ids.tolist())
        external, meta = _items(conn, project.id, pc.item_ids, domain)
    claims = pc.claims()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        result = fit_truth(claims, method, gold_items=pc.gold[0], gold_labels=pc.gold[1],  # type: ignore[arg-type]
                           **ENGINE_PARAMS)
    groups = group_names = None
    if domain is not None:
        codes, uniques = pd.factorize(pd.Series(meta, dtype=object).map(lambda v: None if v is None else str(v)))
        groups, group_names = codes.astype(np.int64), [str(u) for u in uniques]
    report = build_report(
        claims, result,
        source_names=[names[int(s)][1] for s in pc.source_ids],
        source_kinds=[names[int(s)][0] for s in pc.source_ids],
        class_names=[str(v) for v in pc.values[: len(pc.classes)]],
        item_ids=external, groups=groups, group_names=group_names, group_field=domain,
        ordinal=schema.type == "rating", top=top,
    )
    return report, [str(w.message) for w in caught]
