"""Routing tutors and where routing stands: ``POST /projects/{name}/tutors``,
``GET /projects/{name}/routing``."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from ...errors import InputError
from ...limits import MAX_DOMAINS, Domain, Username
from ...routing import service as routing
from ...store.models import Membership, User
from ..audit import request_actor
from ..common import json_ready, request_store
from ..deps import Me, project_for
from ..openapi import errors
from ..responses import RoutingOut, TutorOut

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")


class TutorBody(BaseModel):
    username: Username
    domains: list[Domain] = Field(default=[], max_length=MAX_DOMAINS)
    cost: float = Field(default=1.0, allow_inf_nan=False)


@router.post(
    "/projects/{name}/tutors",
    status_code=201,
    response_model=TutorOut,
    responses=errors(400, 401, 403, 404, 409, 422),
)
def add_tutor(name: str, body: TutorBody, user: Me, request: Request) -> dict[str, Any]:
    """Make a tutor member a routing tutor (declared domains, cost per label); they label under
    their username."""
    store = request_store(request)
    proj = project_for(store, name, user, ("admin",))
    with store.session() as session:
        role = session.scalar(
            sa.select(Membership.role)
            .join(User, User.id == Membership.user_id)
            .where(Membership.project_id == proj.id, User.username == body.username)
        )
    if role != "tutor":
        raise InputError(
            f"{body.username!r} is not a tutor member of project {name!r}; "
            "add them with POST /projects/{name}/members first"
        )
    profile = routing.add_tutor(
        store,
        proj,
        body.username,
        domains=body.domains,
        cost=body.cost,
        actor=request_actor(request, user),
    )
    return {
        "username": profile.name,
        "domains": list(profile.domains),
        "cost": profile.cost,
        "active": profile.active,
    }


@router.get(
    "/projects/{name}/routing", response_model=RoutingOut, responses=errors(400, 401, 403, 404)
)
def routing_status(name: str, user: Me, request: Request) -> dict[str, Any]:
    """Where routing stands: items done and pending, leases, budget, each tutor's skill per
    domain."""
    store = request_store(request)
    proj = project_for(store, name, user, ("reviewer", "admin"))
    status = routing.routing_status(store, proj, refit="never")
    return json_ready(status)  # type: ignore[no-any-return]
