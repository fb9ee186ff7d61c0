"""Login throttling: failed logins are counted per account and per client address, in the database.

The counters live in the ``login_failures`` table (migration 0009), so every process of a server
run with ``--workers N`` sees the same counts, on SQLite and PostgreSQL alike. A key (an account's
name or a client address) whose failures reach its limit, each no more than ``WINDOW`` after the
one before (or after the end of the last lockout), is locked for ``BASE_LOCKOUT``; each further
failure after a lockout ends doubles it, up to ``MAX_LOCKOUT``. While a key is locked every login
attempt on it, right password or not, is refused with 429 and a ``Retry-After`` header before
the password is checked, and does not count as a failure. A successful login deletes the
account's counter (never the address's, so one valid account cannot wipe an address's
failures); an admin's unlock (``POST /api/v1/users/{name}/unlock``) deletes it too. Names that
belong to no user are counted like any other, so lockouts do not tell which names exist.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from fastapi import HTTPException, Request
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from ..store import audit
from ..store.engine import Store
from ..store.models import LoginFailure

__all__ = [
    "ACCOUNT_LIMIT",
    "ADDRESS_LIMIT",
    "BASE_LOCKOUT",
    "MAX_LOCKOUT",
    "WINDOW",
    "Throttled",
    "check",
    "client_address",
    "failed",
    "forget_quiet",
    "locked_out",
    "record_failure",
    "record_success",
    "unlock_account",
]

#: Failures of one account (any address) that lock it.
ACCOUNT_LIMIT = 5
#: Failures from one client address (any account) that lock that address.
ADDRESS_LIMIT = 20
#: How far apart failures may be and still add up (measured from the failure before, or the
#: lockout's end).
WINDOW = timedelta(minutes=15)
#: The first lockout; each further failure doubles it.
BASE_LOCKOUT = timedelta(seconds=30)
#: The longest lockout.
MAX_LOCKOUT = timedelta(minutes=15)


class Throttled(Exception):
    """A login refused because its account or address is locked for ``retry_after`` more seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"locked for {retry_after} s")
        self.retry_after = retry_after

    def http(self) -> HTTPException:
        return HTTPException(
            status_code=429,
            detail=f"too many failed logins: try again in {self.retry_after} s",
            headers={"Retry-After": str(self.retry_after)},
        )


def client_address(request: Request) -> str:
    """The address the request came from (the proxy's, unless uvicorn trusts its forwarded
    headers)."""
    return request.client.host if request.client is not None else ""


def _key(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}:{value}".encode("utf-8", "backslashreplace")).hexdigest()


def _keys(username: str, address: str) -> tuple[tuple[str, int], tuple[str, int]]:
    return (_key("user", username), ACCOUNT_LIMIT), (_key("addr", address), ADDRESS_LIMIT)


def _aware(when: datetime | None) -> datetime | None:
    """SQLite gives back naive datetimes; they were written in UTC."""
    return when if when is None or when.tzinfo else when.replace(tzinfo=UTC)


def check(session: Session, username: str, address: str, now: datetime | None = None) -> None:
    """Raise ``Throttled`` if the account or the address is locked now."""
    now = now or datetime.now(UTC)
    keys = [key for key, _ in _keys(username, address)]
    until = [
        _aware(u)
        for u in session.scalars(
            sa.select(LoginFailure.locked_until).where(LoginFailure.key.in_(keys))
        )
    ]
    latest = max((u for u in until if u is not None and u > now), default=None)
    if latest is not None:
        raise Throttled(max(1, math.ceil((latest - now).total_seconds())))


def _lockout(failures: int, limit: int) -> timedelta:
    excess = failures - limit
    if excess >= 20:  # far past the cap; keep 2**excess small
        return MAX_LOCKOUT
    return min(BASE_LOCKOUT * (2**excess), MAX_LOCKOUT)


def _row(session: Session, key: str, now: datetime) -> LoginFailure:
    """The key's row, locked for update (PostgreSQL), made if missing (a race with another process
    making it is settled by the primary key)."""
    row = session.scalar(sa.select(LoginFailure).where(LoginFailure.key == key).with_for_update())
    if row is not None:
        return row
    try:
        with session.begin_nested():
            session.add(LoginFailure(key=key, failures=0, last_failed_at=now, locked_until=None))
    except IntegrityError:
        pass
    return session.scalars(
        sa.select(LoginFailure)
        .where(LoginFailure.key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def record_failure(
    session: Session, username: str, address: str, now: datetime | None = None
) -> None:
    """Count a failed login against the account and the address, locking either at its limit."""
    now = now or datetime.now(UTC)
    cutoff = now - WINDOW
    for key, limit in _keys(username, address):
        row = _row(session, key, now)
        last, until = _aware(row.last_failed_at), _aware(row.locked_until)
        since = (
            max(last, until) if last is not None and until is not None else (last or until or now)
        )
        if since < cutoff:
            row.failures = 0
        row.failures += 1
        row.last_failed_at = now
        if row.failures >= limit:
            row.locked_until = now + _lockout(row.failures, limit)
    session.flush()


def forget_quiet(session: Session, now: datetime | None = None) -> None:
    """Delete counters quiet for a whole window (they would start again from nothing anyway)."""
    cutoff = (now or datetime.now(UTC)) - WINDOW
    session.execute(
        sa.delete(LoginFailure).where(
            LoginFailure.last_failed_at < cutoff,
            sa.or_(LoginFailure.locked_until.is_(None), LoginFailure.locked_until < cutoff),
        ),
        execution_options={"synchronize_session": False},
    )


def failed(store: Store, username: str, address: str) -> None:
    """Record a failed login, counted and in the audit log (with the name tried, never the
    password), in its own transaction (the request's is rolled back), then tidy the table in
    another: a clash of two processes tidying at once costs nothing but the tidying."""
    with store.session() as session:
        record_failure(session, username, address)
        audit.record(
            session, "login", actor=audit.Actor(username, client=address), outcome="refused"
        )
    try:
        with store.session() as session:
            forget_quiet(session)
    except DBAPIError:
        pass


def locked_out(store: Store, username: str, address: str, exc: Throttled) -> None:
    """Put a login refused for a lockout in the audit log, in a transaction of its own (the
    request's is rolled back): whoever keeps knocking on a locked account shows there."""
    audit.record(
        store,
        "login",
        actor=audit.Actor(username, client=address),
        outcome="locked",
        detail={"retry_after": exc.retry_after},
    )


def record_success(session: Session, username: str) -> None:
    """A successful login: the account's counter starts again from nothing."""
    session.execute(sa.delete(LoginFailure).where(LoginFailure.key == _key("user", username)))


def unlock_account(session: Session, username: str, actor: audit.Actor | None = None) -> bool:
    """Clear an account's failures and lockout; True if it had any. Recorded in the audit log."""
    result = session.execute(
        sa.delete(LoginFailure).where(LoginFailure.key == _key("user", username))
    )
    cleared = bool(result.rowcount)  # type: ignore[attr-defined]
    audit.record(session, "user.unlock", actor=actor, target=username, detail={"cleared": cleared})
    return cleared
