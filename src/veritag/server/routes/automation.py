"""Labeling by model: ``POST .../autolabel`` and ``POST .../automate`` (jobs, 202) and
``GET .../queue``, the items an automation run leaves to humans."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from ...errors import InputError, NotFound
from ...labelers.registry import LABELER_NAMES
from ...limits import SafeText, Seed
from .. import jobs
from ..auth import Principal
from ..common import OptionalId, request_store
from ..deps import READERS, Me, project_for
from ..openapi import errors
from ..responses import JobStartedOut, QueueOut

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")

#: The OpenAPI of a 202 that started a job.
_STARTED_DOC = {
    "description": "Started; poll the job at Location",
    "headers": {"Location": {"description": "The job's status URL", "schema": {"type": "string"}}},
}


def _start(
    request: Request, response: Response, name: str, user: Principal, kind: str, body: BaseModel
) -> dict[str, Any]:
    """Queue a ``kind`` job on project ``name`` (its admins only) with the request's options as
    its params; the 202 answer pointing at the job."""
    proj = project_for(request_store(request), name, user, ("admin",))
    job = jobs.enqueue(
        request.app,
        kind=kind,
        project=proj.name,
        owner=user.id,
        params=body.model_dump(mode="json"),
    )
    url = f"/api/v1/jobs/{job.id}"
    response.headers["Location"] = url
    return {"job": job.id, "kind": job.kind, "state": job.state, "status_url": url}


class AutolabelBody(BaseModel):
    labeler: str = Field(default="minilm", description=f"One of {', '.join(LABELER_NAMES)}")
    fields: list[SafeText] = Field(
        default=[], description="Item fields appended to the text, e.g. a hypothesis"
    )
    folds: int = Field(
        default=5, ge=2, le=50, description="Folds for the out-of-fold probabilities"
    )
    seed: Seed = 0


@router.post(
    "/projects/{name}/autolabel",
    status_code=202,
    response_model=JobStartedOut,
    responses={202: _STARTED_DOC, **errors(400, 401, 403, 404, 422)},
)
def autolabel(
    name: str, body: AutolabelBody, user: Me, request: Request, response: Response
) -> dict[str, Any]:
    """Train a labeler on the human labels and store its probabilities for every item (a job)."""
    if body.labeler not in LABELER_NAMES:
        raise InputError(
            f"unknown labeler {body.labeler!r}; choose one of {', '.join(LABELER_NAMES)}"
        )
    return _start(request, response, name, user, "autolabel", body)


class AutomateBody(BaseModel):
    target: float = Field(
        default=0.98, gt=0, lt=1, description="Accuracy the auto-accepted labels must reach"
    )
    delta: float = Field(
        default=0.05, gt=0, lt=1, description="Allowed probability that they do not"
    )
    model: SafeText | None = Field(
        default=None, description="Model source whose labels to accept [default: the newest]"
    )
    slice: SafeText | None = Field(
        default=None, description="Item metadata field: one threshold per value"
    )
    audit_rate: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Share of items in the human audit "
        "[default: the project's last rate, else 10% and at least 200 items]",
    )
    min_audit: int = Field(default=0, ge=0, description="Fewest audited items above a threshold")
    simultaneous: bool = Field(default=False, description="Split delta over the slices")
    seed: Seed = 0


@router.post(
    "/projects/{name}/automate",
    status_code=202,
    response_model=JobStartedOut,
    responses={202: _STARTED_DOC, **errors(400, 401, 403, 404, 422)},
)
def automate(
    name: str, body: AutomateBody, user: Me, request: Request, response: Response
) -> dict[str, Any]:
    """Decide which model labels to accept on audit evidence and store the run (a job; result as
    ``veritag automate --json``)."""
    return _start(request, response, name, user, "automate", body)


@router.get(
    "/projects/{name}/queue", response_model=QueueOut, responses=errors(400, 401, 403, 404, 422)
)
def queue(
    name: str,
    user: Me,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100_000, description="Most items to list")] = 1000,
    run: OptionalId = None,
) -> dict[str, Any]:
    """The items that still need a human after an automation run, audit first (``--queue-out``)."""
    from ...automation.project import latest_automation_run, queue_rows

    store = request_store(request)
    proj = project_for(store, name, user, READERS)
    if run is None:
        with store.engine.connect() as conn:
            latest = latest_automation_run(conn, proj.id)
        if latest is None:
            raise NotFound(
                f"project {name!r} has no automation run yet; "
                f"POST /api/v1/projects/{name}/automate first"
            )
        run = int(latest.id)
    rows = queue_rows(store, proj, run)
    return {
        "run": run,
        "total": len(rows),
        "items": [
            {"id": i, "reason": reason, "model_confidence": conf, "slice": s}
            for i, reason, conf, s in rows[:limit]
        ],
    }
