"""Where a project stands: its counts, import history, newest resolution and automation run.

One reading for both faces of ``status``: ``veritag status`` prints it and
``GET /api/v1/projects/{name}/status`` sends it; times stay ``datetime`` here, so each face
formats them its own way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .automation.project import latest_automation_run, run_summary
from .store import ImportRecord, Project
from .store.queries import latest_truth_run, project_counts, project_schema, run_is_current

__all__ = ["ProjectStatus", "project_row", "project_status"]


@dataclass(frozen=True)
class ProjectStatus:
    """``row``: name, task and counts; ``imports``: one dict per import, oldest first; the newest
    ``resolution`` (with ``stale``) and ``automation`` run summary, None when there is none."""

    row: dict[str, Any]
    imports: list[dict[str, Any]]
    resolution: dict[str, Any] | None
    automation: dict[str, Any] | None


def project_row(session: Session, project: Project) -> dict[str, Any]:
    """The project's name, task type and counts (items, claims, sources, gold, imports)."""
    return {
        "project": project.name,
        "task": project_schema(project).type,
        **project_counts(session, project_id=project.id),
    }


def project_status(session: Session, project: Project) -> ProjectStatus:
    auto_run = latest_automation_run(session.connection(), project.id)
    run = latest_truth_run(session, project_id=project.id)
    resolution = (
        None
        if run is None
        else {
            "run": run.id,
            "method": run.method,
            "engine_version": run.engine_version,
            "items": run.n_items,
            "at": run.created_at,
            "stale": not run_is_current(session, run),
        }
    )
    imports = [
        {
            "file": r.path,
            "rows": r.rows,
            "items": r.items_added,
            "claims": r.claims_added,
            "gold": r.gold_added,
            "skipped": r.rows_skipped,
            "at": r.created_at,
        }
        for r in session.scalars(
            sa.select(ImportRecord)
            .where(ImportRecord.project_id == project.id)
            .order_by(ImportRecord.id)
        )
    ]
    return ProjectStatus(
        project_row(session, project),
        imports,
        resolution,
        None if auto_run is None else run_summary(auto_run),
    )
