"""Who is asking: bearer API tokens for programs, a session cookie for browsers.

* ``Authorization: Bearer vt_...``: a token a user made for themselves (``POST /api/v1/tokens``
  or ``veritag token``). Only its SHA-256 is stored; the secret is shown once.
* ``POST /api/v1/login`` checks the password (argon2) and sets an HttpOnly, SameSite=Lax cookie
  holding a random secret; the ``sessions`` table keeps its SHA-256 and a CSRF token, which the
  login answer returns. A request authenticated by the cookie that changes state (anything but
  GET, HEAD, OPTIONS) must carry that token in ``X-CSRF-Token``; bearer requests need none, as a
  browser never adds the header on its own.

Roles: a user's global role (``users.role``) of ``admin`` sees and manages every project; anyone
else sees only the projects they are a member of, with the role their membership gives
(``reviewer``, ``tutor`` or ``admin`` of that project).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

import sqlalchemy as sa
from argon2 import PasswordHasher
from fastapi import Depends, HTTPException, Request, Response
from sqlalchemy.orm import Session

from ..errors import Forbidden, NotFound
from ..limits import text_problem
from ..store import audit
from ..store.models import ApiToken, LoginSession, Membership, Project, User
from ..store.queries import ROLES, verify_password
from .common import request_store

__all__ = [
    "COOKIE",
    "CSRF_HEADER",
    "SESSION_TTL",
    "TOKEN_PREFIX",
    "Principal",
    "authenticate",
    "current_user",
    "end_login",
    "hash_secret",
    "list_tokens",
    "new_token",
    "project_access",
    "require_role",
    "revoke_token",
    "set_session_cookie",
    "start_login",
]

TOKEN_PREFIX = "vt_"
COOKIE = "veritag_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_TTL = timedelta(hours=12)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: ``last_used_at`` of a token is written at most this often, so reads do not all become writes.
_TOUCH_EVERY = timedelta(minutes=1)


@functools.cache
def _dummy_user() -> User:
    """A user to verify against when the name is unknown, so a wrong name costs what a wrong
    password does."""
    return User(
        username="", password_hash=PasswordHasher().hash(secrets.token_hex(16)), role="tutor"
    )


def hash_secret(secret: str) -> str:
    """The SHA-256 (hex) kept in the database in place of a token or cookie secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """The authenticated user of a request and how they proved it (``token`` or ``session``)."""

    id: int
    username: str
    role: str
    via: str


def _unauthorized(
    detail: str = "authentication required: log in or send 'Authorization: Bearer vt_...'",
) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def new_token(
    session: Session, user: User, name: str, actor: audit.Actor | None = None
) -> tuple[ApiToken, str]:
    """Make an API token for ``user``; returns the row and the secret (shown once, never stored,
    not even in the audit log, which names the token by id and name)."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id, name=name or "token", token_hash=hash_secret(secret), revoked=False
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        "token.create",
        actor=actor,
        target=row.id,
        detail={"name": row.name, "user": user.username},
    )
    return row, secret


def list_tokens(session: Session, user_id: int) -> list[ApiToken]:
    """A user's tokens, newest first (their secrets are not stored, so not shown)."""
    return list(
        session.scalars(
            sa.select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id.desc())
        )
    )


def revoke_token(
    session: Session, token_id: int, user_id: int | None = None, actor: audit.Actor | None = None
) -> ApiToken:
    """Revoke a token for good (of ``user_id`` only, when given); the row stays as a record."""
    row = session.get(ApiToken, token_id)
    if row is None or (user_id is not None and row.user_id != user_id):
        raise NotFound(f"no API token {token_id}" + ("" if user_id is None else " of yours"))
    row.revoked = True
    owner = session.scalar(sa.select(User.username).where(User.id == row.user_id))
    audit.record(
        session,
        "token.revoke",
        actor=actor,
        target=row.id,
        detail={"name": row.name, "user": owner},
    )
    return row


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The user if the password is theirs, else None (in about the same time either way)."""
    user = session.scalar(sa.select(User).where(User.username == username))
    ok = verify_password(user if user is not None else _dummy_user(), password)
    return user if ok and user is not None else None


def start_login(
    session: Session, user: User, now: datetime | None = None, client: str | None = None
) -> tuple[str, str, datetime]:
    """Open a browser session: returns the cookie secret, the CSRF token and the expiry. The
    login is recorded in the audit log with the client's address."""
    now = now or datetime.now(UTC)
    audit.record(session, "login", actor=audit.Actor(user.username, user.id, client))
    secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires = now + SESSION_TTL
    session.execute(
        sa.delete(LoginSession).where(
            LoginSession.user_id == user.id, LoginSession.expires_at <= now
        )
    )
    session.add(
        LoginSession(id=hash_secret(secret), user_id=user.id, csrf_token=csrf, expires_at=expires)
    )
    return secret, csrf, expires


def set_session_cookie(
    response: Response, request: Request, secret: str, expires: datetime
) -> None:
    """Hand the browser its session: HttpOnly (no script reads it), SameSite=Lax, Secure over
    HTTPS, for the whole site until the session expires (``POST /api/v1/login`` and the login
    form both set it so)."""
    response.set_cookie(
        COOKIE,
        secret,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        expires=expires,
        path="/",
    )


def end_login(session: Session, cookie: str | None, actor: audit.Actor | None = None) -> None:
    """End the cookie's session (if any) and record the logout in the audit log."""
    ended = False
    if cookie:
        result = session.execute(
            sa.delete(LoginSession).where(LoginSession.id == hash_secret(cookie))
        )
        ended = bool(result.rowcount)  # type: ignore[attr-defined]
    audit.record(session, "logout", actor=actor, detail={"session_ended": ended})


#: Every API call reads its token: the statements are built once (building costs more than
#: running them).
_TOKEN = (
    sa.select(
        ApiToken.id,
        ApiToken.token_hash,
        ApiToken.revoked,
        ApiToken.last_used_at,
        User.id,
        User.username,
        User.role,
    )
    .join(User, User.id == ApiToken.user_id)
    .where(ApiToken.token_hash == sa.bindparam("digest"))
)
_TOUCH = (
    sa.update(ApiToken)
    .where(ApiToken.id == sa.bindparam("key"))
    .values(last_used_at=sa.bindparam("when"))
)
_PROJECT_ROLE = (
    sa.select(Project, Membership.role)
    .outerjoin(
        Membership,
        sa.and_(Membership.project_id == Project.id, Membership.user_id == sa.bindparam("user")),
    )
    .where(Project.name == sa.bindparam("name"))
)


def _bearer(conn: sa.Connection, header: str, now: datetime) -> Principal:
    scheme, _, secret = header.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret.startswith(TOKEN_PREFIX):
        raise _unauthorized("the Authorization header must be 'Bearer vt_...'")
    digest = hash_secret(secret)
    row = conn.execute(_TOKEN, {"digest": digest}).first()
    if row is None or not hmac.compare_digest(row[1], digest) or row[2]:
        raise _unauthorized("invalid or revoked API token")
    last = row[3]
    if last is None or (last if last.tzinfo else last.replace(tzinfo=UTC)) < now - _TOUCH_EVERY:
        conn.execute(_TOUCH, {"key": row[0], "when": now})
        conn.commit()
    return Principal(row[4], row[5], row[6], "token")


def _cookie(session: Session, request: Request, secret: str, now: datetime) -> Principal:
    digest = hash_secret(secret)
    row = session.execute(
        sa.select(LoginSession, User)
        .join(User, User.id == LoginSession.user_id)
        .where(LoginSession.id == digest, LoginSession.expires_at > now)
    ).first()
    if row is None or not hmac.compare_digest(row[0].id, digest):
        raise _unauthorized("session expired or unknown: log in again")
    login, user = row
    if request.method not in _SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode("utf-8"), login.csrf_token.encode("utf-8")):
            raise HTTPException(
                status_code=403, detail=f"missing or wrong {CSRF_HEADER} header (CSRF check)"
            )
    return Principal(user.id, user.username, user.role, "session")


def current_user(request: Request) -> Principal:
    """The request's user, from a bearer token or the session cookie; 401 without either."""
    now = datetime.now(UTC)
    header = request.headers.get("Authorization")
    cookie = request.cookies.get(COOKIE)
    store = request_store(request)
    if header:
        with store.engine.connect() as conn:
            return _bearer(conn, header, now)
    if cookie:
        with store.session() as session:
            return _cookie(session, request, cookie, now)
    raise _unauthorized()


def require_role(*roles: str) -> Callable[[Principal], Principal]:
    """A dependency that lets through only users whose global role is one of ``roles``."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown role(s) {sorted(unknown)}")

    def check(user: Annotated[Principal, Depends(current_user)]) -> Principal:
        if user.role not in roles:
            raise Forbidden(f"this needs the role {' or '.join(roles)}")
        return user

    return check


def project_access(
    session: Session, name: str, user: Principal, roles: tuple[str, ...] = ROLES
) -> tuple[Project, str]:
    """The project and the user's role in it, if that role is one of ``roles``.

    A global admin is admin of every project. Anyone else must be a member; a project they are
    not a member of is refused with 403 whether it exists or not, so names do not leak. A name no
    project can have (a NUL, a lone surrogate) is not looked up: PostgreSQL would refuse the query.
    """
    found = (
        None
        if text_problem(name)
        else session.execute(_PROJECT_ROLE, {"name": name, "user": user.id}).first()
    )
    project, role = found if found is not None else (None, None)
    if user.role == "admin":
        if project is None:
            raise NotFound(f"no project named {name!r}")
        role = "admin"
    else:
        if project is None or role is None:
            raise Forbidden(f"you are not a member of project {name!r}")
    if role not in roles:
        raise Forbidden(
            f"this needs the role {' or '.join(roles)} in project {name!r}; yours is {role}"
        )
    return project, role
