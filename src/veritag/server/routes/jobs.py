"""Where a background job stands: ``GET /jobs/{job_id}``. This router also carries the jobs'
lifespan (``server.jobs``), so the app starts and stops its embedded worker."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ...errors import NotFound
from .. import jobs
from ..deps import Me
from ..openapi import errors
from ..responses import JobOut

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", lifespan=jobs.lifespan)


@router.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    response_model_exclude_unset=True,
    responses=errors(401, 404),
)
def job(job_id: str, user: Me, request: Request) -> dict[str, Any]:
    """Where a job stands; only its starter (or a global admin) may see it, others get 404."""
    found = jobs.get(request.app, job_id)
    if found is None or (found.owner != user.id and user.role != "admin"):
        raise NotFound(
            f"no job {job_id!r} of yours: the id is unknown or the job was started by another user"
        )
    return found.to_json()
