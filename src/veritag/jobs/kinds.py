"""What each kind of job does: a function of (store, project, params) returning JSON-ready data.

A worker runs a job again after a crash or an unexpected error, so every kind must be safe to
run twice. ``autolabel`` is: its model claims carry the dedup key ``autolabel:<version>:<training
digest>`` and the claims' unique index drops a row already stored, so a second run on the same
human labels adds nothing (and one after new labels retrains, as a fresh start would).
``automate`` stores an automation run only when it decides anew; a repeated run adds at most one
more run row with the same decision. ``resolve`` appends a truth run each time: a repeat adds one
more run of the same claims, which the retention rule prunes like any other.

``VERITAG_TEST_JOB_KINDS=1`` adds ``sleep`` (waits ``params["seconds"]``, then returns them),
used by the tests to kill a real ``veritag worker`` in the middle of a job.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from ..errors import InputError
from ..schema import json_ready
from ..store.engine import Store
from ..store.models import Project
from ..store.queries import get_project

__all__ = ["KINDS", "JobFunction", "run_kind"]

#: A job kind: reads ``params`` (what the request asked for), does the work on ``project``.
JobFunction = Callable[[Store, Project, dict[str, Any]], Any]


def _autolabel(store: Store, project: Project, params: dict[str, Any]) -> Any:
    from ..automation.autolabel import autolabel_project

    return autolabel_project(
        store,
        project,
        labeler=params["labeler"],
        fields=params.get("fields", []),
        folds=params["folds"],
        seed=params["seed"],
    )


def _automate(store: Store, project: Project, params: dict[str, Any]) -> Any:
    import dataclasses

    from ..automation.project import automate_project

    result = automate_project(
        store,
        project,
        target=params["target"],
        delta=params["delta"],
        model=params.get("model"),
        slice_field=params.get("slice"),
        audit_rate=params.get("audit_rate"),
        min_audit=params["min_audit"],
        simultaneous=params["simultaneous"],
        seed=params["seed"],
    )
    return {**dataclasses.asdict(result), "automation_rate": result.automation_rate}


def _resolve(store: Store, project: Project, params: dict[str, Any]) -> Any:
    """Fit the project's truth with ``params["method"]`` and store the run (what ``POST
    .../resolve`` answered before it became a job): its id, counts and each source's accuracy."""
    from ..resolve import OPEN_METHOD, project_source_rows, resolve_and_store
    from ..store.queries import source_names

    method = params["method"]
    resolution = resolve_and_store(store, project, method)
    with store.engine.connect() as conn:
        rows = project_source_rows(resolution, source_names(conn, ids=resolution.source_ids()))
    run = resolution.run
    assert run is not None
    return {
        "run": run.run_id,
        "method": run.method,
        "requested_method": method,
        "engine_version": run.engine_version,
        "open_ended": run.method == OPEN_METHOD,
        "iterations": run.n_iter,
        "converged": run.converged,
        "items": int(resolution.item_ids.size),
        "from": resolution.basis_counts(),
        "sources": [
            {"source": n, "kind": kind, "claims": claims, "accuracy": acc}
            for n, kind, claims, acc in rows
        ],
    }


def _refit(store: Store, project: Project, params: dict[str, Any]) -> Any:
    """Bring the routing queue up to date (``routing.queue``): fit the truth again if it is due
    and build the queue from the newest run; nothing when a build since made it current."""
    from ..routing.queue import ensure, read_state, refit_and_build
    from ..routing.settings import get_settings

    with store.engine.connect() as conn:
        state = read_state(conn, project)
    if state.built is not None and not state.refit_due():
        return {"built": state.built, "refitted": False}
    refit_and_build(store, project, wait=True)
    settings = get_settings(store, project)
    return {"built": ensure(store, project, settings, on_due=lambda: None).built, "refitted": True}


def _sleep(store: Store, project: Project, params: dict[str, Any]) -> Any:
    time.sleep(float(params["seconds"]))
    return {"slept": params["seconds"]}


KINDS: dict[str, JobFunction] = {
    "autolabel": _autolabel,
    "automate": _automate,
    "resolve": _resolve,
    "refit": _refit,
}
if os.environ.get("VERITAG_TEST_JOB_KINDS") == "1":
    KINDS["sleep"] = _sleep


def run_kind(store: Store, kind: str, project: str, params: dict[str, Any]) -> Any:
    """Run one job's work; its JSON-ready result. A project deleted since is ``NotFound``."""
    function = KINDS.get(kind)
    if function is None:
        raise InputError(f"unknown job kind {kind!r}; this worker runs {', '.join(sorted(KINDS))}")
    with store.session() as session:
        found = get_project(session, name=project)
    return json_ready(function(store, found, params))
