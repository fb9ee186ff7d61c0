"""``veritag init`` and ``veritag status``: create a database and projects, and see where they
stand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import VeritagError
from ._common import Db, LazyHelp, app, cli_actor, console, open_db


@app.command(cls=LazyHelp)
def init(
    project: Annotated[str | None, typer.Argument(help="Name of the project to create")] = None,
    task: Annotated[str | None, typer.Option(help="Task type: {TASK_TYPES}")] = None,
    labels: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated labels (classification, multilabel, span) "
            "or verdicts (fact_check)"
        ),
    ] = None,
    scale: Annotated[str | None, typer.Option(help="Rating scale as MIN-MAX, e.g. 1-5")] = None,
    schema: Annotated[
        Path | None, typer.Option(help="A JSON file with the full task schema")
    ] = None,
    description: Annotated[str, typer.Option(help="What the project is about")] = "",
    db: Db = None,
) -> None:
    """Create the database (if needed) and, given a name, a project with its task schema."""
    from ..store.queries import create_project, project_schema

    with open_db(db) as store:
        where = store.engine.url.render_as_string(hide_password=True)
        if project is None:
            console.print(f"Database ready: [bold]{escape(where)}[/]")
            return
        spec = _schema_spec(task, labels, scale, schema)
        with store.session() as session:
            created = create_project(
                session, name=project, schema=spec, description=description, actor=cli_actor()
            )
            kind = project_schema(created).type
        console.print(f"Created project [bold]{escape(project)}[/] ({kind}) in {escape(where)}")


def _schema_spec(
    task: str | None, labels: str | None, scale: str | None, schema: Path | None
) -> dict:
    from ..schema import TASK_TYPES, parse_schema

    if schema is not None:
        if task or labels or scale:
            raise VeritagError("give either --schema or --task/--labels/--scale, not both")
        try:
            return json.loads(schema.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise VeritagError(f"cannot read schema file {schema}: {exc}") from None
    if task is None:
        raise VeritagError(
            f"a project needs a task type: --task {{{','.join(TASK_TYPES)}}} or --schema FILE.json"
        )
    spec: dict = {"type": task}
    if labels:
        names = [part.strip() for part in labels.split(",")]
        spec["verdicts" if task == "fact_check" else "labels"] = names
    if scale:
        low, _, high = scale.partition("-")
        try:
            spec.update(min=int(low), max=int(high))
        except ValueError:
            raise VeritagError(f"--scale must look like 1-5, got {scale!r}") from None
    parse_schema(spec)
    return spec


@app.command()
def status(
    project: Annotated[
        str | None, typer.Argument(help="Project name [default: all projects]")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
    db: Db = None,
) -> None:
    """Show projects with their items, claims, sources, gold labels and imports."""
    from ..status import project_row, project_status
    from ..store.queries import get_project, list_projects

    with open_db(db) as store, store.session() as session:
        projects = [get_project(session, name=project)] if project else list_projects(session)
        rows = [project_row(session, p) for p in projects]
        imports, latest, automation = [], None, None
        if project:
            detail = project_status(session, projects[0])
            automation = detail.automation
            latest = (
                None
                if detail.resolution is None
                else {**detail.resolution, "at": f"{detail.resolution['at']:%Y-%m-%d %H:%M}"}
            )
            imports = [{**r, "at": f"{r['at']:%Y-%m-%d %H:%M}"} for r in detail.imports]
    if as_json:
        detail = {
            "projects": rows,
            "imports": imports,
            "resolution": latest,
            "automation": automation,
        }
        console.print_json(json.dumps(detail if project else {"projects": rows}))
        return
    if not rows:
        console.print(
            "No projects yet. Create one with: veritag init NAME --task classification --labels a,b"
        )
        return
    table = Table(title="Projects")
    for column in rows[0]:
        table.add_column(
            column.replace("_", " "), justify="left" if column in ("project", "task") else "right"
        )
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)
    if imports:
        history = Table(title="Imports")
        for column in imports[0]:
            history.add_column(column)
        for row in imports:
            history.add_row(*(str(v) for v in row.values()))
        console.print(history)
    if project:
        if latest is None:
            console.print("Not resolved yet: veritag resolve --project NAME (export resolves too).")
        else:
            state = (
                "stale: claims or gold labels were added since; export will resolve again"
                if latest["stale"]
                else "covers every claim and gold label"
            )
            console.print(
                f"Latest resolution: run {latest['run']}, {latest['method']} "
                f"({latest['engine_version']}), "
                f"{latest['items']} items, {latest['at']}; {state}."
            )
        if automation is not None:
            bound = (
                ""
                if automation["overall_bound"] is None
                else f", pooled bound {automation['overall_bound']:.4f}"
            )
            console.print(
                f"Latest automation: run {automation['run']}, {automation['automated']} of "
                f"{automation['items']} items automated ({automation['automation_rate']:.1%}) "
                "at target "
                f"{automation['target']}, delta {automation['delta']}{bound}; audit "
                f"{automation['audit_labeled']} of {automation['audit']} labeled "
                "(veritag audit for more)."
            )
