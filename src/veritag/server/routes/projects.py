"""Projects and their members: ``GET``/``POST /projects``, ``GET /projects/{name}``,
``POST /projects/{name}/members``."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from ...errors import NotFound
from ...limits import Description, ProjectName, Username
from ...store import audit
from ...store.models import Membership, Project, User
from ...store.queries import create_project, list_projects, project_counts
from ..audit import request_actor
from ..common import request_store
from ..deps import Admin, Me, project_and_role, project_for
from ..openapi import TaskSchemaJson, errors
from ..responses import MemberOut, ProjectDetailOut, ProjectOut
from .users import Role

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")


def _project_json(
    project: Project, role: str, counts: dict[str, int] | None = None
) -> dict[str, Any]:
    out = {
        "name": project.name,
        "description": project.description,
        "schema": project.task_schema,
        "role": role,
    }
    if counts is not None:
        out["counts"] = counts
    return out


@router.get("/projects", response_model=list[ProjectOut], responses=errors(401))
def projects(user: Me, request: Request) -> list[dict[str, Any]]:
    with request_store(request).session() as session:
        if user.role == "admin":
            return [_project_json(p, "admin") for p in list_projects(session)]
        rows = session.execute(
            sa.select(Project, Membership.role)
            .join(Membership, Membership.project_id == Project.id)
            .where(Membership.user_id == user.id)
            .order_by(Project.id)
        ).all()
        return [_project_json(p, role) for p, role in rows]


class ProjectBody(BaseModel):
    name: ProjectName
    schema_: Annotated[dict[str, Any], TaskSchemaJson] = Field(alias="schema")
    description: Description = ""


@router.post(
    "/projects",
    status_code=201,
    response_model=ProjectOut,
    responses=errors(400, 401, 403, 409, 422),
)
def add_project(body: ProjectBody, admin: Admin, request: Request) -> dict[str, Any]:
    with request_store(request).session() as session:
        project = create_project(
            session,
            name=body.name,
            schema=body.schema_,
            description=body.description,
            actor=request_actor(request, admin),
        )
        return _project_json(project, "admin")


@router.get("/projects/{name}", response_model=ProjectDetailOut, responses=errors(401, 403, 404))
def project(name: str, user: Me, request: Request) -> dict[str, Any]:
    store = request_store(request)
    proj, role = project_and_role(store, name, user)
    with store.session() as session:
        return _project_json(proj, role, project_counts(session, project_id=proj.id))


class MemberBody(BaseModel):
    username: Username
    role: Role


@router.post(
    "/projects/{name}/members",
    response_model=MemberOut,
    responses={
        201: {"model": MemberOut, "description": "Added"},
        **errors(400, 401, 403, 404, 422),
    },
)
def add_member(
    name: str, body: MemberBody, user: Me, request: Request, response: Response
) -> dict[str, Any]:
    """Make a user a member of the project with a role (or change their role)."""
    store = request_store(request)
    proj = project_for(store, name, user, ("admin",))
    with store.session() as session:
        member = session.scalar(sa.select(User).where(User.username == body.username))
        if member is None:
            raise NotFound(f"no user named {body.username!r}")
        row = session.get(Membership, (proj.id, member.id))
        was = None if row is None else row.role
        if row is None:
            session.add(Membership(project_id=proj.id, user_id=member.id, role=body.role))
            response.status_code = 201
        else:
            row.role = body.role
        audit.record(
            session,
            "member.add" if was is None else "member.role",
            actor=request_actor(request, user),
            project=proj.name,
            target=body.username,
            detail={"role": body.role, "was": was},
        )
    return {"project": name, "username": body.username, "role": body.role}
