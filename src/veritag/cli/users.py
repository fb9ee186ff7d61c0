"""The server's users and their API tokens: ``veritag user add|unlock`` and
``veritag token add|list|revoke``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import VeritagError
from ._common import Db, app, cli_actor, console, err, open_db

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from ..store.models import User

user_app = typer.Typer(help="Manage the server's users.", no_args_is_help=True)


app.add_typer(user_app, name="user")


@user_app.command("add")
def user_add(
    username: Annotated[str, typer.Argument(help="Login name (a tutor labels under this name)")],
    role: Annotated[str, typer.Option(help="admin, reviewer or tutor")] = "tutor",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input")
    ] = False,
    db: Db = None,
) -> None:
    """Add a user with a role; the password is prompted for (twice) unless --password-stdin."""
    from ..store.queries import create_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with open_db(db) as store, store.session() as session:
        user = create_user(
            session, username=username, password=password, role=role, actor=cli_actor()
        )
    console.print(f"User {escape(user.username)} added with role {user.role}.")


@user_app.command("unlock")
def user_unlock(
    username: Annotated[
        str, typer.Argument(help="The user whose failed logins and lockout to clear")
    ],
    db: Db = None,
) -> None:
    """Clear a user's failed logins and login lockout (as POST /api/v1/users/{name}/unlock does)."""
    import sqlalchemy as sa

    from ..errors import NotFound
    from ..server.throttle import unlock_account
    from ..store.models import User

    with open_db(db) as store, store.session() as session:
        if session.scalar(sa.select(User.id).where(User.username == username)) is None:
            raise NotFound(f"no user named {username!r}")
        cleared = unlock_account(session, username, cli_actor())
    console.print(
        f"User {escape(username)} unlocked."
        if cleared
        else f"User {escape(username)} was not locked."
    )


token_app = typer.Typer(
    help="API tokens: make one for a user, list a user's tokens, or revoke one.",
    no_args_is_help=True,
)
app.add_typer(token_app, name="token")

Username = Annotated[str, typer.Argument(help="The user the token acts as")]


def _user(session: Session, username: str) -> User:
    import sqlalchemy as sa

    from ..store.models import User

    user = session.scalar(sa.select(User).where(User.username == username))
    if user is None:
        raise VeritagError(f"no user named {username!r}; add one with 'veritag user add'")
    return user


@token_app.command("add")
def token_add(
    username: Username,
    name: Annotated[str, typer.Option(help="What the token is for, to tell tokens apart")] = "cli",
    db: Db = None,
) -> None:
    """Make an API token for a user and print it once (send it as 'Authorization: Bearer ...')."""
    from ..server.auth import new_token

    with open_db(db) as store, store.session() as session:
        _, secret = new_token(session, _user(session, username), name, cli_actor())
    err.print(
        f"API token {escape(name)!r} for {escape(username)} (shown once; only its hash is stored):"
    )
    print(secret)


@token_app.command("list")
def token_list(username: Username, db: Db = None) -> None:
    """List a user's tokens: id, name, when made and last used, and whether revoked."""
    from ..server.auth import list_tokens

    table = Table(
        "id", "name", "created", "last used", "revoked", title=f"API tokens of {escape(username)}"
    )
    with open_db(db) as store, store.session() as session:
        for t in list_tokens(session, _user(session, username).id):
            table.add_row(
                str(t.id),
                escape(t.name),
                f"{t.created_at:%Y-%m-%d %H:%M}",
                "-" if t.last_used_at is None else f"{t.last_used_at:%Y-%m-%d %H:%M}",
                "yes" if t.revoked else "no",
            )
    console.print(table)


@token_app.command("revoke")
def token_revoke(
    username: Username,
    token_id: Annotated[
        int, typer.Argument(metavar="ID", help="The token's id ('veritag token list' shows it)")
    ],
    db: Db = None,
) -> None:
    """Revoke one of a user's tokens; it stops working at once."""
    from ..server.auth import revoke_token

    with open_db(db) as store, store.session() as session:
        revoke_token(session, token_id, _user(session, username).id, cli_actor())
    err.print(f"revoked token {token_id} of {escape(username)}")
