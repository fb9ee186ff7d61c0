"""The audit log for global admins: ``GET /api/v1/audit`` and the ``/audit`` page.

Both read ``store.audit``: newest first, filtered by action (or a family, e.g. ``user``), actor,
project and time, a page at a time by keyset (``before`` the last id seen), so entries written
meanwhile never shift a page. Only global admins may read it; nobody may change it.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import Field

from ..limits import MAX_ID
from ..store import audit
from .auth import Principal
from .common import request_store
from .deps import Admin
from .openapi import Out, errors
from .pages import admin_page, render_page
from .throttle import client_address

__all__ = ["AuditEntryOut", "AuditPage", "PAGE_SIZE", "pages_router", "request_actor", "router"]

router = APIRouter(prefix="/api/v1")
pages_router = APIRouter(include_in_schema=False)
#: Entries per page of the ``/audit`` page.
PAGE_SIZE = 50
#: What the page's action filter offers: each family of actions (``user`` is every ``user.*``).
FAMILIES = tuple(dict.fromkeys(a.split(".")[0] for a in audit.ACTIONS))


def request_actor(request: Request, user: Principal) -> audit.Actor:
    """The audit log's actor of a request: the user and the client's address."""
    return audit.Actor(user.username, user.id, client_address(request))


class AuditEntryOut(Out):
    """One entry of the audit log."""

    id: int
    at: datetime
    action: str = Field(description="e.g. login, user.create, member.role, token.revoke, export")
    actor_id: int | None = Field(
        description="The acting user's id; null for the command line or a failed login"
    )
    actor: str | None = Field(
        description="The acting user, cli:<OS user>, or the name a failed login tried"
    )
    client: str | None = Field(description="The client's address as the server saw it")
    project: str | None
    target: str | None = Field(description="What was acted on: a user name, a token id, a project")
    outcome: str = Field(
        description="ok, refused (a failed login) or locked (a login refused by a lockout)"
    )
    detail: Any = Field(
        description="More about it (a role, a token's name, changed settings); never a secret"
    )


class AuditPage(Out):
    """A page of the audit log, newest first."""

    entries: list[AuditEntryOut]
    next_before: int | None = Field(
        description="Pass as before= for the next, older page; null on the last"
    )


@router.get("/audit", response_model=AuditPage, responses=errors(401, 403, 422))
def read_log(
    request: Request,
    _admin: Admin,
    action: Annotated[
        str | None,
        Query(
            max_length=40,
            description="An action, or a family: user matches user.create and user.unlock",
        ),
    ] = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    project: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[
        datetime | None, Query(description="Only entries at or after this time")
    ] = None,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Only entries older than this id")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=audit.MAX_PAGE)] = 100,
) -> AuditPage:
    """The audit log of security-relevant actions, newest first; global admins only."""
    rows = audit.read(
        request_store(request),
        action=action,
        actor=actor,
        project=project,
        since=since,
        before_id=before,
        limit=limit,
    )
    return AuditPage(
        entries=[AuditEntryOut(**dataclasses.asdict(r)) for r in rows],
        next_before=rows[-1].id if len(rows) == limit else None,
    )


def _shown(entry: audit.Entry) -> dict[str, Any]:
    return dataclasses.asdict(entry) | {
        "at": entry.at.strftime("%Y-%m-%d %H:%M:%S"),
        "detail": ""
        if entry.detail is None
        else json.dumps(entry.detail, ensure_ascii=False, sort_keys=True),
    }


@pages_router.get("/audit", response_model=None)
def audit_page(
    request: Request, action: str = "", actor: str = "", before: int | None = None
) -> Response:
    """The audit log as a table for global admins, filtered by action family and actor, a page at a
    time."""
    entry = admin_page(request)
    if isinstance(entry, Response):
        return entry
    user, csrf = entry
    before = before if before is not None and 1 <= before <= MAX_ID else None
    rows = audit.read(
        request_store(request),
        action=action or None,
        actor=actor or None,
        before_id=before,
        limit=PAGE_SIZE,
    )
    filters = {k: v for k, v in (("action", action), ("actor", actor)) if v}
    older = (
        f"/audit?{urlencode(filters | {'before': rows[-1].id})}" if len(rows) == PAGE_SIZE else None
    )
    return render_page(
        "audit.html",
        user=user,
        csrf=csrf,
        entries=[_shown(r) for r in rows],
        families=FAMILIES,
        action=action,
        actor=actor,
        older=older,
        newest="/audit?" + urlencode(filters) if before else None,
    )
