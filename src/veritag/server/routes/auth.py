"""Signing in and out, and who the caller is: ``POST /login``, ``POST /logout``, ``GET /me``."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel

from ...limits import SafeText
from ...store.models import Membership, Project
from .. import throttle
from ..audit import request_actor
from ..auth import COOKIE, authenticate, end_login, set_session_cookie, start_login
from ..common import request_store
from ..deps import Me
from ..openapi import errors
from ..responses import LoginOut, MeOut

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")


class LoginBody(BaseModel):
    username: SafeText
    password: SafeText


@router.post("/login", response_model=LoginOut, responses=errors(400, 401, 422, 429))
def login(body: LoginBody, request: Request, response: Response) -> dict[str, Any]:
    """Check the password; set the session cookie and return the CSRF token for ``X-CSRF-Token``."""
    store, address = request_store(request), throttle.client_address(request)
    with store.session() as session:
        try:
            throttle.check(session, body.username, address)
        except throttle.Throttled as exc:
            throttle.locked_out(store, body.username, address, exc)
            raise exc.http() from None
        user = authenticate(session, body.username, body.password)
        if user is not None:
            throttle.record_success(session, body.username)
            secret, csrf, expires = start_login(session, user, client=address)
    if user is None:
        throttle.failed(store, body.username, address)
        raise HTTPException(status_code=401, detail="wrong username or password")
    set_session_cookie(response, request, secret, expires)
    return {
        "username": user.username,
        "role": user.role,
        "csrf_token": csrf,
        "expires_at": expires.isoformat(),
    }


@router.post("/logout", status_code=204, responses=errors(401, 403))
def logout(user: Me, request: Request, response: Response) -> Response:
    """End the cookie's session (a bearer token stays valid; revoke tokens separately)."""
    with request_store(request).session() as session:
        end_login(session, request.cookies.get(COOKIE), request_actor(request, user))
    out = Response(status_code=204)
    out.delete_cookie(COOKIE, path="/")
    return out


@router.get("/me", response_model=MeOut, responses=errors(401))
def me(user: Me, request: Request) -> dict[str, Any]:
    with request_store(request).session() as session:
        rows = session.execute(
            sa.select(Project.name, Membership.role)
            .join(Membership, Membership.project_id == Project.id)
            .where(Membership.user_id == user.id)
            .order_by(Project.name)
        ).all()
    return {
        "id": user.id,
        "username": user.username,
        "role": user.role,
        "auth": user.via,
        "memberships": [{"project": name, "role": role} for name, role in rows],
    }
