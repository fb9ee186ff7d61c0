"""The ``veritag`` command: thin typer commands over the package's functions.

A ``VeritagError`` becomes one red line and exit code 1; anything else is a bug and keeps its
traceback.

One module per command group registers its commands on the one ``app`` (``_common``):
``projects`` (init, status), ``data`` (import, export, backup, restore), ``truth`` (resolve,
report), ``automation`` (autolabel, automate, audit), ``route`` (tutor, route, simulate),
``work``, ``serve`` (quickstart, serve), ``worker``, ``users`` (user, token) and ``arena``. A
command that does several different things is a group of sub-commands (``veritag work
next|submit|release``), never one command switched by flags.

Each command imports what it needs inside its function: the store (SQLAlchemy, alembic), the
engine (scipy), pandas and scikit-learn cost seconds to import, and ``veritag --help`` or
``veritag resolve labels.csv`` should not pay for what they never use.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape

from .. import __version__
from ..errors import VeritagError

# Each group module registers its commands on ``app`` when imported; this order is the order of
# ``veritag --help``.
from . import (  # noqa: F401
    projects,
    data,
    truth,
    automation,
    route,
    work,
    serve,
    worker,
    users,
    arena,
)
from ._common import app, console, err, fill_choices

__all__ = ["app", "fill_choices", "main"]


def _version(value: bool) -> None:
    if value:
        console.print(f"veritag {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """veritag: import, auto-label, route, resolve, audit and export labeled data."""


def main() -> None:
    """Console entry point: user mistakes print one line, never a traceback."""
    try:
        app()
    except VeritagError as exc:
        err.print(f"[red]Error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(1)
    except OSError as exc:  # a path the user gave that cannot be written or read
        where = f" {exc.filename}" if exc.filename else ""
        err.print(
            f"[red]Error:[/] {escape(exc.strerror or str(exc))}:{escape(where)}", highlight=False
        )
        sys.exit(1)
    except KeyboardInterrupt:
        err.print(
            "[red]Interrupted.[/] Work not finished was rolled back; nothing acknowledged was lost."
        )
        sys.exit(130)
