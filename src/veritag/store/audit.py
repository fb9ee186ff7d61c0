"""The audit log: who did which security-relevant thing, when, from where, and if it was allowed.

The function that makes a change records it in the same transaction (``record(session, ...)``),
so a change and its entry commit together or not at all; a refused login changes nothing but its
failure counter, and is recorded in that counter's transaction. Entries never hold a secret: no
password (a failed login keeps only the name tried) and no token value (a token is named by its id
and name). The table is append-only: triggers of migration 0010 refuse UPDATE and DELETE on it.

Actions: ``login`` and ``logout`` (``ok``; a failed login ``refused``; a login refused while its
account or address is locked ``locked``), ``user.create``, ``user.unlock``, ``project.create``,
``member.add``, ``member.role``, ``tutor.add``, ``tutor.active``, ``routing.configure``,
``token.create``, ``token.revoke`` and ``export``.
"""

from __future__ import annotations

import getpass
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..limits import text_problem
from .engine import Store
from .models import AuditEntry

__all__ = ["ACTIONS", "AUDIT_OUTCOMES", "MAX_PAGE", "Actor", "Entry", "read", "record"]

#: Every action recorded (see the module's docstring).
ACTIONS = (
    "login",
    "logout",
    "user.create",
    "user.unlock",
    "project.create",
    "member.add",
    "member.role",
    "tutor.add",
    "tutor.active",
    "routing.configure",
    "token.create",
    "token.revoke",
    "export",
)
AUDIT_OUTCOMES = ("ok", "refused", "locked")
#: The most entries one ``read`` returns.
MAX_PAGE = 1000
_TABLE = AuditEntry.__table__
_WIDTH = {
    name: _TABLE.c[name].type.length for name in ("action", "actor", "client", "project", "target")
}


@dataclass(frozen=True)
class Actor:
    """Who acts: a user (name and id) of the server and the client's address, or a program
    such as the command line (``cli:<OS user>``), which has no user id."""

    name: str | None
    id: int | None = None
    client: str | None = None

    @classmethod
    def cli(cls) -> Actor:
        """The command line's actor: the OS user who ran it (whoever can open the database)."""
        try:
            who = getpass.getuser()
        except (KeyError, OSError):  # no login name and no passwd entry, as in some containers
            who = "?"
        return cls(f"cli:{who}")


@dataclass(frozen=True)
class Entry:
    """One entry as read back (``at`` always in UTC)."""

    id: int
    at: datetime
    action: str
    actor_id: int | None
    actor: str | None
    client: str | None
    project: str | None
    target: str | None
    outcome: str
    detail: Any


def _text(value: object, width: int | None) -> str | None:
    """Text a column can hold on every backend: lone surrogates and NULs escaped (neither UTF-8 nor
    PostgreSQL takes them), cut to the column's width, so odd input never loses an entry."""
    if value is None:
        return None
    text = str(value).encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
    return text[:width] if width else text


def _json(value: Any) -> Any:
    """``detail`` as JSON both backends store: text cleaned by ``_text``, NaN and inf as text."""
    if isinstance(value, dict):
        return {_text(k, None): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return _text(value, None)


def record(
    where: Session | sa.Connection | Store,
    action: str,
    *,
    actor: Actor | None = None,
    project: str | None = None,
    target: object = None,
    outcome: str = "ok",
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one entry in ``where``'s transaction (a ``Store``: in a transaction of its own).

    ``actor`` None means no one known (a library call, the demo). Never pass a secret in ``detail``.
    """
    if outcome not in AUDIT_OUTCOMES:
        raise ValueError(f"audit outcome {outcome!r} is not one of {AUDIT_OUTCOMES}")
    if isinstance(where, Store):
        with where.session() as session:
            record(
                session,
                action,
                actor=actor,
                project=project,
                target=target,
                outcome=outcome,
                detail=detail,
            )
        return
    who = actor or Actor(None)
    where.execute(
        sa.insert(_TABLE).values(
            at=datetime.now(UTC),
            action=_text(action, _WIDTH["action"]),
            actor_id=who.id,
            actor=_text(who.name, _WIDTH["actor"]),
            client=_text(who.client, _WIDTH["client"]),
            project=_text(project, _WIDTH["project"]),
            target=_text(target, _WIDTH["target"]),
            outcome=outcome,
            detail=None if detail is None else _json(detail),
        )
    )


def _utc(when: datetime) -> datetime:
    """SQLite gives back naive datetimes; they were written in UTC."""
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def read(
    where: Session | sa.Connection | Store,
    *,
    action: str | None = None,
    actor: str | None = None,
    project: str | None = None,
    since: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[Entry]:
    """Entries newest first, at most ``limit`` (1 to ``MAX_PAGE``); the next page starts
    ``before_id`` the last one's id (keyset paging: entries added meanwhile do not shift it).

    ``action`` matches the action or a family of them (``user`` matches ``user.create`` and
    ``user.unlock``); ``actor`` and ``project`` match exactly; ``since`` keeps entries at or after
    it. A filter no entry can match (a NUL, a lone surrogate: stored entries have them escaped)
    finds nothing, without asking PostgreSQL, which refuses such text.
    """
    if isinstance(where, Store):
        with where.engine.connect() as conn:
            return read(
                conn,
                action=action,
                actor=actor,
                project=project,
                since=since,
                before_id=before_id,
                limit=limit,
            )
    if any(text_problem(f) for f in (action, actor, project) if f):
        return []
    stmt = (
        sa.select(*_TABLE.c).order_by(_TABLE.c.id.desc()).limit(max(1, min(int(limit), MAX_PAGE)))
    )
    if action:
        stmt = stmt.where(
            sa.or_(
                _TABLE.c.action == action,
                _TABLE.c.action.startswith(action.rstrip(".") + ".", autoescape=True),
            )
        )
    if actor is not None:
        stmt = stmt.where(_TABLE.c.actor == actor)
    if project is not None:
        stmt = stmt.where(_TABLE.c.project == project)
    if since is not None:
        stmt = stmt.where(
            _TABLE.c.at >= (since.astimezone(UTC) if since.tzinfo else since.replace(tzinfo=UTC))
        )
    if before_id is not None:
        stmt = stmt.where(_TABLE.c.id < before_id)
    return [
        Entry(
            r.id,
            _utc(r.at),
            r.action,
            r.actor_id,
            r.actor,
            r.client,
            r.project,
            r.target,
            r.outcome,
            r.detail,
        )
        for r in where.execute(stmt)
    ]
