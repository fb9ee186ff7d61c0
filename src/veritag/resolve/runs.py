"""Stored runs: append a resolution and load one (``current`` decides which run is current).

Storing a run prunes older ones of its method (``store.queries.prune_truth_runs``, the rule in
docs/guide/storage.md): their ``truth_runs`` rows stay, their posteriors go, and loading one
raises ``RunPruned``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa

from ..errors import Conflict, VeritagError
from ..schema import canonical_json
from ..store.engine import Store
from ..store.models import Project, SourceReliability, TruthRun
from ..store.posterior_blocks import BlockReader, labels_of, probs_of, run_table
from ..store.queries import KEEP_RUNS, insert_truth_run, prune_truth_runs
from .core import (
    DEFAULT_METHOD,
    Resolution,
    RunInfo,
    SourceStats,
    _cat,
    _resolution,
)
from .project import resolve_project

if TYPE_CHECKING:
    import pyarrow as pa


class RunPruned(Conflict):
    """The run's posteriors were deleted by the retention rule: read the project's newest run."""

    def __init__(self, run: Any) -> None:
        super().__init__(
            f"truth run {run.id} ({run.method}) was pruned: only the newest {KEEP_RUNS} runs of "
            "a method keep their labels; read the current run instead (resolve again if needed)"
        )


# --- stored runs ------------------------------------------------------------------------------


def save_resolution(conn: sa.Connection, project: Project, resolution: Resolution) -> int:
    """Append ``resolution`` as a new run of ``project``; returns the run id. Never edits a run."""
    run = resolution.run
    if run is None or resolution.basis is None or resolution.n_claims is None:
        raise VeritagError("only a resolution made by resolve_project can be stored")
    label_json: dict[int, str] = {}

    def label_text(value: Any) -> str:
        key = id(value)
        text = label_json.get(key)
        if text is None:
            text = label_json[key] = canonical_json(value)
        return text

    answers = run_table(
        resolution.item_ids,
        [label_text(label) for label in resolution.labels],
        resolution.confidence,
        resolution.n_claims,
        resolution.n_labels,
        resolution.basis,
        resolution.probs,
    )
    sources = []
    stats = resolution.sources
    if stats is not None:
        for i, (sid, acc, n) in enumerate(
            zip(stats.source_ids.tolist(), stats.accuracy.tolist(), stats.n_claims.tolist())
        ):
            confusion = (
                None if stats.confusion is None else canonical_json(stats.confusion[i].tolist())
            )
            sources.append(
                {
                    "source_id": sid,
                    "accuracy": None if math.isnan(acc) else acc,
                    "n_claims": n,
                    "confusion": confusion,
                }
            )
    return insert_truth_run(
        conn,
        run={
            "project_id": project.id,
            "method": run.method,
            "engine_version": run.engine_version,
            "params": run.params,
            "max_claim_id": run.max_claim_id,
            "claims_version": run.claims_version,
            "gold_count": run.gold_count,
            "n_items": int(resolution.item_ids.size),
            "log_likelihood": run.log_likelihood,
            "n_iter": run.n_iter,
            "converged": run.converged,
        },
        posteriors=answers,
        sources=sources,
    )


def _run_info_of(run: Any) -> RunInfo:
    return RunInfo(
        run.method,
        run.engine_version,
        dict(run.params),
        run.log_likelihood,
        run.n_iter,
        run.converged,
        run.max_claim_id,
        run.gold_count,
        run.id,
        run.created_at,
        int(run.claims_version),
    )


def load_resolution(
    conn: sa.Connection, run: Any, *, with_probs: bool = False, with_sources: bool = False
) -> Resolution:
    """A stored run (a ``truth_runs`` row, see ``latest_truth_run``) as a ``Resolution``.

    Streamed; the class probabilities and the per-source statistics only on request.
    ``RunPruned`` for a run the retention rule emptied, also one pruned while it was read.
    """
    if run.pruned:
        raise RunPruned(run)
    answers = _answers(BlockReader(run.id).tables(conn), _run_info_of(run), with_probs)
    if (
        not answers.item_ids.size
        and run.n_items
        and conn.scalar(sa.select(TruthRun.pruned).where(TruthRun.id == run.id))
    ):
        raise RunPruned(run)
    sources = None
    if with_sources:
        rows = conn.execute(
            sa.select(
                SourceReliability.source_id,
                SourceReliability.accuracy,
                SourceReliability.n_claims,
                sa.cast(SourceReliability.confusion, sa.Text),
            )
            .where(SourceReliability.run_id == run.id)
            .order_by(SourceReliability.source_id)
        ).all()
        confusion = None
        if rows and all(r[3] is not None for r in rows):
            confusion = np.array([json.loads(r[3]) for r in rows], dtype=np.float64)
        sources = SourceStats(
            np.fromiter((r[0] for r in rows), np.int64, len(rows)),
            np.array([np.nan if r[1] is None else r[1] for r in rows], dtype=np.float64),
            np.fromiter((r[2] for r in rows), np.int64, len(rows)),
            confusion,
        )
    return replace(answers, sources=sources)


def load_range(
    conn: sa.Connection, run: Any, blocks: BlockReader, first: int, last: int
) -> Resolution:
    """The run's answers for the items with ids ``first`` to ``last``, read through ``blocks``
    (``BlockReader(run.id)``, which keeps the block it decoded last): how an export reads a run
    chunk by chunk without holding all of it."""
    return _answers(blocks.tables(conn, first, last), _run_info_of(run))


def _answers(tables: Iterable[pa.Table], info: RunInfo, with_probs: bool = False) -> Resolution:
    """A ``Resolution`` of a run's blocks (in item order), each turned into arrays as it comes."""
    ids, labels, conf, n_labels, n_claims, basis, probs = [], [], [], [], [], [], []
    for table in tables:
        ids.append(table.column("item_id").to_numpy())
        labels.append(labels_of(table))
        conf.append(table.column("confidence").to_numpy())
        n_labels.append(table.column("n_labels").to_numpy().astype(np.int64))
        n_claims.append(table.column("n_claims").to_numpy().astype(np.int64))
        basis.append(table.column("basis").to_numpy())
        if with_probs:
            probs.append(probs_of(table))
    return _resolution(
        _cat(ids),
        np.concatenate(labels) if labels else np.empty(0, object),
        _cat(conf, np.float64),
        _cat(n_labels),
        _cat(n_claims),
        _cat(basis, np.int8),
        info,
        probs=np.concatenate(probs) if probs and all(p is not None for p in probs) else None,
    )


def resolve_and_store(store: Store, project: Project, method: str = DEFAULT_METHOD) -> Resolution:
    """Resolve ``project`` now and append the result as a new run; the result carries its run id.
    Older runs of the method are pruned in the same transaction (see the module docstring)."""
    with store.engine.connect() as conn:
        resolution = resolve_project(conn, project, method)
    run = resolution.run
    assert run is not None
    with store.engine.begin() as conn:
        run_id = save_resolution(conn, project, resolution)
        created = conn.scalar(sa.select(TruthRun.created_at).where(TruthRun.id == run_id))
        prune_truth_runs(conn, project_id=project.id, method=run.method)
    return replace(resolution, run=replace(run, run_id=run_id, created_at=created))
