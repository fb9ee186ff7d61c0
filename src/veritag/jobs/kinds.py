"""What each kind of job does: a function of (store, project, params) returning JSON-ready data.

A worker runs a job again after a crash or an unexpected error, so every kind must be safe to
run twice. ``autolabel`` is: its model claims carry the dedup key ``autolabel:<version>:<training
digest>`` and the claims' unique index drops a row already stored, so a second run on the same
human labels adds nothing (and one after new labels retrains, as a fresh start would).
``automate`` stores an automation run only when it decides anew; a repeated run adds at most one
more run row with the same decision.

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


def _sleep(store: Store, project: Project, params: dict[str, Any]) -> Any:
    time.sleep(float(params["seconds"]))
    return {"slept": params["seconds"]}


KINDS: dict[str, JobFunction] = {"autolabel": _autolabel, "automate": _automate}
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
