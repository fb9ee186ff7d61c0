"""The main job on bundled data: a real crowdsourced dataset from import to resolved export, then
the bundled model labels it and automation decides what it may label alone."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from .automation.autolabel import AutolabelResult, autolabel_project
from .automation.project import (
    AutomationResult,
    automate_project,
    automation_run_is_current,
    latest_automation_run,
)
from .io import ColumnMap, ExportResult, ImportResult, export_project, import_file
from .resolve import current_resolution, human_labels
from .store import Item, Project, Store, open_store
from .store.models import AutomationItem
from .store.queries import create_project

__all__ = ["SAMPLE", "QuickstartResult", "run_quickstart", "sample_dir"]

SAMPLE = "snow_rte"
PROJECT = "snow_rte"
SCHEMA = {
    "type": "classification",
    "labels": ["0", "1"],
    "instructions": "Does the hypothesis follow from the text? 1 = yes (entailment), 0 = no.",
}
#: The model reads the text and its hypothesis; automation aims at the README's example target.
LABELER_FIELDS = ("hypothesis",)
TARGET, DELTA = 0.98, 0.05


def sample_dir() -> Path:
    """The bundled RTE sample (Snow et al. 2008): 800 items, 8000 real MTurk labels, their truth."""
    return Path(str(files("veritag") / "data" / SAMPLE))


@dataclass
class QuickstartResult:
    database: Path
    imports: list[ImportResult] = field(default_factory=list)
    exports: list[ExportResult] = field(default_factory=list)
    accuracy: float = 0.0
    items_scored: int = 0
    method: str = ""
    run_id: int | None = None
    #: Accuracy of a plain majority vote of the crowd (humans only) on the same items, to compare.
    majority_accuracy: float = 0.0
    autolabel: AutolabelResult | None = None
    #: None when the newest automation run already covered every claim (nothing was decided anew).
    automation: AutomationResult | None = None
    automation_run: int | None = None
    #: Accuracy of the auto-accepted labels against ground truth (None: nothing automated).
    automated_accuracy: float | None = None
    audit_page: Path | None = None


def run_quickstart(
    folder: Path, *, progress: Callable[[str], Callable[[int, int], None] | None] | None = None
) -> QuickstartResult:
    """Create (or reuse) the sample project in ``folder``, import it, auto-label and automate it,
    then resolve (the model is one more source) and export it."""
    folder.mkdir(parents=True, exist_ok=True)
    database = folder / "veritag.db"
    store = open_store(f"sqlite:///{database.resolve()}")
    result = QuickstartResult(database=database)
    try:
        with store.session() as session:
            project = session.scalar(sa.select(Project).where(Project.name == PROJECT))
            if project is None:
                project = create_project(
                    session,
                    name=PROJECT,
                    schema=SCHEMA,
                    description="Recognizing textual entailment, Snow et al. 2008 (MTurk)",
                )
        data = sample_dir()
        steps = [
            (data / "texts.csv", ColumnMap(meta=["rte_subtask"])),
            (data / "labels.csv", ColumnMap()),
        ]
        for path, columns in steps:
            cb = progress(f"import {path.name}") if progress else None
            result.imports.append(import_file(store, project, path, columns, progress=cb))
        with data.joinpath("gt.csv").open(encoding="utf-8") as fh:
            truth = {row["task"]: row["label"] for row in csv.DictReader(fh)}
        with store.engine.connect() as conn:
            external = dict(
                conn.execute(
                    sa.select(Item.id, Item.external_id).where(Item.project_id == project.id)
                ).all()
            )
        _automate(store, project, folder, truth, external, result)
        for name, fmt in (("snow_rte.jsonl", "jsonl"), ("snow_rte.parquet", "parquet")):
            cb = progress(f"export {name}") if progress else None
            result.exports.append(export_project(store, project, folder / name, fmt, progress=cb))
        resolution, _ = current_resolution(store, project)  # the run the exports used
        with store.engine.connect() as conn:
            crowd = human_labels(conn, project, method="mv")
        result.accuracy, result.items_scored = _accuracy(
            resolution.item_ids, resolution.labels, truth, external
        )
        crowd_labels = [crowd.values[c] for c in crowd.label]
        result.majority_accuracy, _ = _accuracy(crowd.item_ids, crowd_labels, truth, external)
        if resolution.run is not None:
            result.method, result.run_id = resolution.run.method, resolution.run.run_id
    finally:
        store.close()
    return result


def _automate(
    store: Store,
    project: Project,
    folder: Path,
    truth: dict[str, str],
    external: dict[int, str],
    result: QuickstartResult,
) -> None:
    """Auto-label with the bundled model, automate at TARGET/DELTA unless the newest run is still
    current, score the auto-accepted labels against ground truth and write the audit page."""
    from .report.automation import build_automation_report, render_automation_html
    from .report.project import automation_audit_data

    result.autolabel = autolabel_project(store, project, labeler="minilm", fields=LABELER_FIELDS)
    with store.engine.connect() as conn:
        last = latest_automation_run(conn, project.id)
        current = last is not None and automation_run_is_current(conn, last)
    if not current:
        result.automation = automate_project(store, project, target=TARGET, delta=DELTA)
        result.automation_run = result.automation.run_id
    else:
        result.automation_run = last.id
    with store.engine.connect() as conn:
        auto = conn.execute(
            sa.select(AutomationItem.item_id, AutomationItem.label).where(
                AutomationItem.run_id == result.automation_run, AutomationItem.decision == "auto"
            )
        ).all()
    if auto:
        result.automated_accuracy = sum(
            str(label) == truth[external[i]] for i, label in auto
        ) / len(auto)
    data, _ = automation_audit_data(store, project, run_id=result.automation_run)
    page = render_automation_html(
        build_automation_report(data), title="veritag automation audit: snow_rte"
    )
    result.audit_page = folder / "automation_audit.html"
    tmp = result.audit_page.with_name(f".{result.audit_page.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(result.audit_page)


def _accuracy(
    item_ids: Iterable[int], labels: Sequence[Any], truth: dict[str, str], external: dict[int, str]
) -> tuple[float, int]:
    scored = [
        labels[i] == truth[external[int(item)]]
        for i, item in enumerate(item_ids)
        if external[int(item)] in truth
    ]
    return (sum(scored) / len(scored) if scored else 0.0), len(scored)
