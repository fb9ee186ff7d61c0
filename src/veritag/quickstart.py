"""The main job on bundled data: a real crowdsourced dataset from import to resolved export."""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import sqlalchemy as sa

from .io import ColumnMap, ExportResult, ImportResult, export_project, import_file
from .resolve import Resolution, current_resolution, resolve_project
from .store import Item, Project, open_store
from .store.queries import create_project

__all__ = ["SAMPLE", "QuickstartResult", "run_quickstart", "sample_dir"]

SAMPLE = "snow_rte"
PROJECT = "snow_rte"
SCHEMA = {
    "type": "classification",
    "labels": ["0", "1"],
    "instructions": "Does the hypothesis follow from the text? 1 = yes (entailment), 0 = no.",
}


def sample_dir() -> Path:
    """The bundled RTE sample (Snow et al. 2008): 800 items, 8000 real MTurk labels, ground truth."""
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
    #: Accuracy of a plain majority vote on the same items, for comparison.
    majority_accuracy: float = 0.0


def run_quickstart(folder: Path, *, progress: Callable[[str], Callable[[int, int], None] | None] | None = None) -> QuickstartResult:
    """Create (or reuse) the sample project in ``folder``, import it, resolve and export it."""
    folder.mkdir(parents=True, exist_ok=True)
    database = folder / "veritag.db"
    store = open_store(f"sqlite:///{database.resolve()}")
    result = QuickstartResult(database=database)
    try:
        with store.session() as session:
            project = session.scalar(sa.select(Project).where(Project.name == PROJECT))
            if project is None:
                project = create_project(session, name=PROJECT, schema=SCHEMA,
                                         description="Recognizing textual entailment, Snow et al. 2008 (MTurk)")
        data = sample_dir()
        steps = [(data / "texts.csv", ColumnMap(meta=["rte_subtask"])), (data / "labels.csv", ColumnMap())]
        for path, columns in steps:
            cb = progress(f"import {path.name}") if progress else None
            result.imports.append(import_file(store, project, path, columns, progress=cb))
        for name, fmt in (("snow_rte.jsonl", "jsonl"), ("snow_rte.parquet", "parquet")):
            cb = progress(f"export {name}") if progress else None
            result.exports.append(export_project(store, project, folder / name, fmt, progress=cb))
        with data.joinpath("gt.csv").open(encoding="utf-8") as fh:
            truth = {row["task"]: row["label"] for row in csv.DictReader(fh)}
        resolution, _ = current_resolution(store, project)  # the run the exports used
        with store.engine.connect() as conn:
            majority = resolve_project(conn, project, "mv")
            external = dict(conn.execute(
                sa.select(Item.id, Item.external_id).where(Item.project_id == project.id)
            ).all())
        result.accuracy, result.items_scored = _accuracy(resolution, truth, external)
        result.majority_accuracy, _ = _accuracy(majority, truth, external)
        if resolution.run is not None:
            result.method, result.run_id = resolution.run.method, resolution.run.run_id
    finally:
        store.close()
    return result


def _accuracy(resolution: Resolution, truth: dict[str, str], external: dict[int, str]) -> tuple[float, int]:
    scored = [resolution.labels[i] == truth[external[int(item)]]
              for i, item in enumerate(resolution.item_ids) if external[int(item)] in truth]
    return (sum(scored) / len(scored) if scored else 0.0), len(scored)
