"""Demo accounts over the quickstart project, so a new user can log in and label at once.

``setup_demo`` makes three users (a global admin, a reviewer and a tutor of the project), turns
on routing for uncertain items and makes the tutor a routing tutor. Passwords are random, made
on the first run and kept in ``demo-accounts.txt`` (readable by its owner only) beside the
database, so a second run prints the same ones; nothing secret is in the repository.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from .routing import service as routing
from .store import Project, Store
from .store.models import Membership, User
from .store.queries import create_user

__all__ = ["DEMO_ROUTING", "DemoAccount", "setup_demo"]

#: Routing for the demo: ask for another label where the crowd's answer is below 99% sure.
DEMO_ROUTING = {"target": 0.99, "max_labels": 12, "min_labels": 1, "gold_rate": 0.0}
_ACCOUNTS = (
    ("admin", "admin", None),
    ("reviewer", "reviewer", "reviewer"),
    ("tutor", "tutor", "tutor"),
)


@dataclass(frozen=True)
class DemoAccount:
    username: str
    password: str
    role: str


def _passwords(path: Path) -> dict[str, str]:
    """The saved passwords, adding any missing; the file is written owner-only before use."""
    saved: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            name, _, password = line.partition(" ")
            if name and password:
                saved[name] = password
    missing = [name for name, _, _ in _ACCOUNTS if name not in saved]
    if missing:
        saved |= {name: secrets.token_urlsafe(9) for name in missing}
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.writelines(f"{name} {password}\n" for name, password in saved.items())
        tmp.replace(path)
    return saved


def setup_demo(store: Store, project: Project, folder: Path) -> list[DemoAccount]:
    """Make (or keep) the demo users, their memberships and routing; returns the accounts."""
    passwords = _passwords(folder / "demo-accounts.txt")
    with store.session() as session:
        for name, role, member in _ACCOUNTS:
            user = session.scalar(sa.select(User).where(User.username == name))
            if user is None:
                user = create_user(session, username=name, password=passwords[name], role=role)
            if member is not None and session.get(Membership, (project.id, user.id)) is None:
                session.add(Membership(project_id=project.id, user_id=user.id, role=member))
    routing.configure(store, project, **DEMO_ROUTING)
    if "tutor" not in {t.name for t in routing.list_tutors(store, project)}:
        routing.add_tutor(store, project, "tutor")
    return [DemoAccount(name, passwords[name], role) for name, role, _ in _ACCOUNTS]
