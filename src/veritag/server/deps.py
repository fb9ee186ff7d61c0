"""The server's dependencies, declared once: the caller, role sets and project access.

Routers import ``Me``/``Admin`` (FastAPI ``Annotated`` dependencies), the role tuples and
``project_for``/``project_and_role`` from here rather than declaring their own copies.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ..store.engine import Store
from ..store.models import Project
from .auth import ROLES, Principal, current_user, project_access, require_role

__all__ = ["READERS", "Admin", "Me", "project_and_role", "project_for"]

#: The signed-in caller (401 without a valid session or token).
Me = Annotated[Principal, Depends(current_user)]
#: The caller, who must be a site admin (403 otherwise).
Admin = Annotated[Principal, Depends(require_role("admin"))]

#: The project roles that may read a project's reports and review queue.
READERS = ("reviewer", "admin")


def project_and_role(
    store: Store, name: str, user: Principal, roles: tuple[str, ...] = ROLES
) -> tuple[Project, str]:
    """The project ``name`` and ``user``'s role in it, if that role is one of ``roles`` (404/403
    otherwise)."""
    with store.session() as session:
        return project_access(session, name, user, roles)


def project_for(
    store: Store, name: str, user: Principal, roles: tuple[str, ...] = ROLES
) -> Project:
    """The project ``name``, if ``user`` holds one of ``roles`` in it (404/403 otherwise)."""
    return project_and_role(store, name, user, roles)[0]
