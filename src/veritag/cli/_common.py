"""What every command group shares: the typer app, the consoles, the ``--db`` option, opening the
store and finding a project, progress bars, and help that names choices from heavy modules.

Option help that lists choices defined in a heavy module names a placeholder (``_CHOICES``),
filled in only when help is shown (``LazyHelp``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand

from ..io.formats import FORMATS

if TYPE_CHECKING:
    import click

    from ..store import Project, Store
    from ..store.audit import Actor

#: Placeholders in option help, and the module and name of the list each stands for. The lists
#: live in modules that are slow to import (the engine, the schemas) and change there (the engine
#: gains methods), so help fills them in only when it is shown (see ``_choices``).
_CHOICES = {
    "{METHODS}": ("veritag.truth.engine", "METHODS"),
    "{TASK_TYPES}": ("veritag.schema", "TASK_TYPES"),
}


def _choices(module: str, name: str) -> tuple[str, ...]:
    """``module.name``, read from the module's source while it is a literal tuple of strings.

    Importing the engine takes a second (scipy), a long wait for a help page; should the list
    stop being a literal, the module is imported after all.
    """
    import ast

    source = Path(__file__).parents[1].joinpath(*module.split(".")[1:]).with_suffix(".py")
    try:
        for node in ast.parse(source.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets
            ):
                value = ast.literal_eval(node.value)
                if isinstance(value, tuple) and all(isinstance(v, str) for v in value):
                    return value
    except (OSError, SyntaxError, ValueError):
        pass
    return tuple(getattr(import_module(module), name))


def fill_choices(text: str) -> str:
    """``text`` with its ``_CHOICES`` placeholders replaced by the lists, as help shows it (the
    reference pages, ``scripts/gen_reference.py``, show the same)."""
    for token, (module, name) in _CHOICES.items():
        if token in text:
            text = text.replace(token, ", ".join(_choices(module, name)))
    return text


class LazyHelp(TyperCommand):
    """A command whose option help may name ``_CHOICES`` placeholders."""

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        for param in self.params:
            text = getattr(param, "help", None)
            if text:
                param.help = fill_choices(text)  # type: ignore[attr-defined]
        super().format_help(ctx, formatter)


app = typer.Typer(
    name="veritag",
    help="Label data for AI with measured quality. Start with: veritag quickstart",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

Db = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database file or SQLAlchemy URL [default: $VERITAG_DATABASE_URL, else ./veritag.db]",
    ),
]
ProjectName = Annotated[str, typer.Argument(help="Project name")]
InputFormat = Annotated[
    str | None,
    typer.Option("--format", help=f"One of {', '.join(FORMATS)} [default: from the suffix]"),
]


@contextmanager
def open_db(db: str | None) -> Iterator[Store]:
    """The store at ``--db`` (or the configured default), migrated, and closed after the command."""
    from ..config import database_url_for
    from ..store import open_store

    store = open_store(database_url_for(db))
    try:
        yield store
    finally:
        store.close()


def project_named(store: Store, name: str) -> Project:
    """The project called ``name`` (``NotFound``, naming the projects there are, if none is)."""
    from ..store.queries import get_project

    with store.session() as session:
        return get_project(session, name=name)


def cli_actor() -> Actor:
    """Who a command acts as in the audit log: the OS user who ran it (``cli:<user>``)."""
    from ..store.audit import Actor

    return Actor.cli()


@contextmanager
def progress_bars(
    quiet: bool = False,
) -> Iterator[Callable[[str], Callable[[int, int], None] | None]]:
    """A factory of progress callbacks, one bar per step; silent when output is not a terminal."""
    if quiet or not err.is_terminal:
        yield lambda _label: None
        return
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:

        def make(label: str) -> Callable[[int, int], None]:
            task = bar.add_task(label, total=None)
            return lambda done, total: bar.update(task, completed=done, total=total)

        yield make


def write_pages(
    html: Path | None, page: Callable[[], str], as_json: Path | None, data: Callable[[], dict]
) -> None:
    """Write the HTML page and the JSON a report command was asked for, and say so."""
    if html is not None:
        write_text(html, page())
        console.print(f"Wrote {escape(str(html))}.")
    if as_json is not None:
        write_text(as_json, json.dumps(data(), indent=2, allow_nan=False))
        console.print(f"Wrote {escape(str(as_json))}.")


def write_text(path: Path, text: str) -> None:
    """Write via a temporary name, so a half-written page never replaces a good one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
