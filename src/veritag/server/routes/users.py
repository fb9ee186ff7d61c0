"""User accounts, for global admins: ``POST /users`` and ``POST /users/{name}/unlock``."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Request
from pydantic import BaseModel

from ...errors import NotFound
from ...limits import SafeText, Username, text_problem
from ...store.models import User
from ...store.queries import create_user
from .. import throttle
from ..audit import request_actor
from ..common import request_store
from ..deps import Admin
from ..openapi import errors
from ..responses import UnlockOut, UserOut

__all__ = ["Role", "router"]

router = APIRouter(prefix="/api/v1")

#: A role, global (``users.role``) or in a project (``memberships.role``).
Role = Literal["admin", "reviewer", "tutor"]


class UserBody(BaseModel):
    username: Username
    password: SafeText
    role: Role = "tutor"


@router.post(
    "/users", status_code=201, response_model=UserOut, responses=errors(400, 401, 403, 409, 422)
)
def add_user(body: UserBody, admin: Admin, request: Request) -> dict[str, Any]:
    with request_store(request).session() as session:
        user = create_user(
            session,
            username=body.username,
            password=body.password,
            role=body.role,
            actor=request_actor(request, admin),
        )
        return {"id": user.id, "username": user.username, "role": user.role}


@router.post("/users/{name}/unlock", response_model=UnlockOut, responses=errors(401, 403, 404))
def unlock_user(name: str, admin: Admin, request: Request) -> dict[str, Any]:
    """Clear an account's failed logins and lockout (see ``throttle``); global admin only."""
    with request_store(request).session() as session:
        user = (
            None
            if text_problem(name)
            else session.scalar(sa.select(User).where(User.username == name))
        )
        if user is None:
            raise NotFound(f"no user named {name!r}")
        cleared = throttle.unlock_account(session, name, request_actor(request, admin))
    return {"username": name, "cleared": cleared}
