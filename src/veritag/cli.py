"""The ``veritag`` command: thin typer commands over the package's functions.

A ``VeritagError`` becomes one red line and exit code 1; anything else is a bug and keeps its
traceback.

Each command imports what it needs inside its function: the store (SQLAlchemy, alembic), the
engine (scipy), pandas and scikit-learn cost seconds to import, and ``veritag --help`` or
``veritag resolve labels.csv`` should not pay for what they never use. Option help that lists
choices defined in a heavy module names a placeholder (``_CHOICES``) filled in when help is shown.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperCommand

from . import __version__
from .errors import VeritagError
from .io.formats import EXPORT_FORMATS, FORMATS
from .limits import MAX_SEED
from .resolve.defaults import DEFAULT_METHOD, OPEN_METHOD

if TYPE_CHECKING:
    import click

    from .automation.autolabel import AutolabelResult
    from .automation.project import AutomationResult
    from .io import ImportResult
    from .resolve import SourceRow
    from .store import Project, Store
    from .store.audit import Actor

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

    source = Path(__file__).parent.joinpath(*module.split(".")[1:]).with_suffix(".py")
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


def _fill_choices(text: str) -> str:
    for token, (module, name) in _CHOICES.items():
        if token in text:
            text = text.replace(token, ", ".join(_choices(module, name)))
    return text


class _LazyHelp(TyperCommand):
    """A command whose option help may name ``_CHOICES`` placeholders."""

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        for param in self.params:
            text = getattr(param, "help", None)
            if text:
                param.help = _fill_choices(text)  # type: ignore[attr-defined]
        super().format_help(ctx, formatter)


def _methods() -> tuple[str, ...]:
    from .truth import METHODS

    return tuple(METHODS)


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


@contextmanager
def _store(db: str | None) -> Iterator[Store]:
    from .config import database_url_for
    from .store import open_store

    store = open_store(database_url_for(db))
    try:
        yield store
    finally:
        store.close()


def _project(store: Store, name: str) -> Project:
    """The project called ``name`` (``NotFound``, naming the projects there are, if none is)."""
    from .store.queries import get_project

    with store.session() as session:
        return get_project(session, name=name)


def _actor() -> Actor:
    """Who a command acts as in the audit log: the OS user who ran it (``cli:<user>``)."""
    from .store.audit import Actor

    return Actor.cli()


@contextmanager
def _progress(quiet: bool = False) -> Iterator[Callable[[str], Callable[[int, int], None] | None]]:
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


@app.command(cls=_LazyHelp)
def init(
    project: Annotated[str | None, typer.Argument(help="Name of the project to create")] = None,
    task: Annotated[str | None, typer.Option(help="Task type: {TASK_TYPES}")] = None,
    labels: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated labels (classification, multilabel, span) or verdicts (fact_check)"
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
    from .store.queries import create_project, project_schema

    with _store(db) as store:
        if project is None:
            console.print(
                f"Database ready: [bold]{escape(store.engine.url.render_as_string(hide_password=True))}[/]"
            )
            return
        spec = _schema_spec(task, labels, scale, schema)
        with store.session() as session:
            created = create_project(
                session, name=project, schema=spec, description=description, actor=_actor()
            )
            kind = project_schema(created).type
        where = store.engine.url.render_as_string(hide_password=True)
        console.print(f"Created project [bold]{escape(project)}[/] ({kind}) in {escape(where)}")


def _schema_spec(
    task: str | None, labels: str | None, scale: str | None, schema: Path | None
) -> dict:
    from .schema import TASK_TYPES, parse_schema

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


@app.command("import")
def import_(
    project: Annotated[str, typer.Argument(help="Project name")],
    file: Annotated[Path, typer.Argument(help="A .csv, .tsv, .jsonl or .parquet file")],
    format: Annotated[
        str | None,
        typer.Option("--format", help=f"One of {', '.join(FORMATS)} [default: from the suffix]"),
    ] = None,
    id: Annotated[
        str | None, typer.Option("--id", help="Column with the item id [default: id, else task]")
    ] = None,
    text: Annotated[
        str | None, typer.Option(help="Column with the item text [default: text]")
    ] = None,
    field: Annotated[
        list[str] | None,
        typer.Option("--field", help="Item field column (repeat) [default: every unmapped column]"),
    ] = None,
    meta: Annotated[
        list[str] | None,
        typer.Option("--meta", help="Metadata column for slices, e.g. domain (repeat)"),
    ] = None,
    gold: Annotated[
        str | None, typer.Option(help="Column with known-correct (gold) labels")
    ] = None,
    label: Annotated[
        str | None,
        typer.Option(help="Column with human labels [default: label, with a worker column]"),
    ] = None,
    worker: Annotated[
        str | None, typer.Option(help="Column naming who gave each label [default: worker]")
    ] = None,
    source: Annotated[
        str | None, typer.Option(help="Annotator name for labels when there is no worker column")
    ] = None,
    probs: Annotated[
        str | None, typer.Option(help="Column with model probabilities (JSON list or object)")
    ] = None,
    model: Annotated[str, typer.Option(help="Name of the model that produced --probs")] = "model",
    encoding: Annotated[str, typer.Option(help="Text encoding of CSV/JSONL files")] = "utf-8",
    skip_invalid: Annotated[
        bool,
        typer.Option(
            "--skip-invalid", help="Import the good rows and write the bad ones to a report"
        ),
    ] = False,
    report: Annotated[
        Path | None,
        typer.Option(help="Where --skip-invalid writes bad rows [default: ./FILE.errors.csv]"),
    ] = None,
    db: Db = None,
) -> None:
    """Import items, human labels, gold labels or model probabilities from one file."""
    from .config import load_settings
    from .io.importer import ColumnMap, import_file

    columns = ColumnMap(
        id=id,
        text=text,
        fields=field or None,
        meta=meta or [],
        gold=gold,
        label=label,
        worker=worker,
        source=source,
        probs=probs,
        model=model,
    )
    with _store(db) as store:
        proj = _project(store, project)
        with _progress() as bar:
            result = import_file(
                store,
                proj,
                file,
                columns,
                fmt=format,
                encoding=encoding,
                skip_invalid=skip_invalid,
                report=report,
                batch_rows=load_settings().import_batch_rows,
                progress=bar(f"import {file.name}"),
            )
    _print_import(result)


def _print_import(result: ImportResult) -> None:
    path = escape(result.path)
    if result.rows_skipped and result.rows_skipped == result.rows:
        console.print(f"Nothing imported from {path}: all {result.rows} rows were bad.")
    elif result.added_nothing and not result.rows_skipped:
        when = (
            f" (this file was first imported {result.imported_before:%Y-%m-%d %H:%M})"
            if result.imported_before
            else ""
        )
        console.print(f"Nothing new in {path}: all {result.rows} rows were already imported{when}.")
    else:
        filled = (
            f", {result.items_filled} items given their text and fields"
            if result.items_filled
            else ""
        )
        console.print(
            f"Imported {path}: {result.rows} rows, {result.items_added} new items{filled}, "
            f"{result.claims_added} new claims, {result.gold_added} new gold labels."
        )
    if result.rows_skipped:
        err.print(
            f"[yellow]Skipped {result.rows_skipped} bad row(s); see {escape(str(result.report))}[/]"
        )


@app.command()
def export(
    project: Annotated[str, typer.Argument(help="Project name")],
    out: Annotated[Path, typer.Argument(help="Output file, or folder for --format hf")],
    format: Annotated[
        str | None,
        typer.Option(
            "--format", help=f"One of {', '.join(EXPORT_FORMATS)} [default: from the suffix]"
        ),
    ] = None,
    csv_raw: Annotated[
        bool,
        typer.Option(
            "--csv-raw",
            help="CSV: write cells starting with = + - @ as they are, "
            "without the ' that keeps spreadsheets from running them",
        ),
    ] = False,
    db: Db = None,
) -> None:
    """Export items with resolved labels and confidence (or all labels with --format long)."""
    fmt = format or {".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet"}.get(
        out.suffix.lower()
    )
    if fmt is None:
        raise VeritagError(
            f"cannot tell the export format from {out.name!r}; pass --format ({', '.join(EXPORT_FORMATS)})"
        )
    from .io.exporter import export_project
    from .store import audit

    with _store(db) as store:
        proj = _project(store, project)
        with _progress() as bar:
            result = export_project(
                store, proj, out, fmt, progress=bar(f"export {out.name}"), csv_raw=csv_raw
            )
        audit.record(
            store,
            "export",
            actor=_actor(),
            project=proj.name,
            target=fmt,
            detail={"rows": result.rows, "run_id": result.run_id, "file": str(result.path)},
        )
    if result.resolved:
        console.print(
            f"No stored resolution covered every claim and gold label: resolved {result.items_resolved} "
            f"items with {result.method} and stored it as run {result.run_id}."
        )
    console.print(f"Wrote {result.rows} rows to {escape(str(result.path))} ({fmt}).")


@app.command()
def backup(
    out: Annotated[
        Path,
        typer.Argument(help="Backup file to write (a .meta.json sidecar is written beside it)"),
    ],
    db: Db = None,
) -> None:
    """Copy the database to OUT, consistently even while a server writes to it."""
    from .config import database_url_for
    from .store.backup import backup as take_backup
    from .store.backup import describe, meta_path

    info = take_backup(database_url_for(db), out)
    console.print(
        f"Backed up the {info.dialect} database to {escape(str(out))} ({describe(info)}); "
        f"metadata in {escape(meta_path(out).name)}."
    )


@app.command()
def restore(
    backup_file: Annotated[
        Path, typer.Argument(metavar="FILE", help="A file written by veritag backup")
    ],
    force: Annotated[
        bool, typer.Option("--force", help="Restore even over a newer database")
    ] = False,
    db: Db = None,
) -> None:
    """Replace the database with a backup; refuses one that holds newer data unless --force."""
    from .config import database_url_for
    from .store.backup import describe
    from .store.backup import restore as do_restore

    info = do_restore(database_url_for(db), backup_file, force=force)
    console.print(
        f"Restored {escape(str(backup_file))} (taken {info.created_at}; {describe(info)})."
    )


@app.command()
def status(
    project: Annotated[
        str | None, typer.Argument(help="Project name [default: all projects]")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
    db: Db = None,
) -> None:
    """Show projects with their items, claims, sources, gold labels and imports."""
    from .status import project_row, project_status
    from .store.queries import get_project, list_projects

    with _store(db) as store, store.session() as session:
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
                f"Latest resolution: run {latest['run']}, {latest['method']} ({latest['engine_version']}), "
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
                f"{automation['items']} items automated ({automation['automation_rate']:.1%}) at target "
                f"{automation['target']}, delta {automation['delta']}{bound}; audit "
                f"{automation['audit_labeled']} of {automation['audit']} labeled (veritag audit for more)."
            )


@app.command(cls=_LazyHelp)
def resolve(
    labels: Annotated[
        Path | None,
        typer.Argument(
            help="File mode: a long task,worker,label file (.csv, .tsv, .jsonl, .parquet)"
        ),
    ] = None,
    project: Annotated[
        str | None,
        typer.Option("--project", help="Project mode: resolve this project and store the run"),
    ] = None,
    method: Annotated[
        str, typer.Option(help="One of {METHODS} (ds: Dawid-Skene)")
    ] = DEFAULT_METHOD,
    gold: Annotated[
        Path | None, typer.Option(help="File mode: known-correct labels, task,label")
    ] = None,
    model_probs: Annotated[
        Path | None,
        typer.Option(
            "--model-probs",
            help="File mode: model probabilities, task[,model],<one column per class>",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("-o", "--out", help="File mode: where to write task,label,confidence (CSV)"),
    ] = None,
    workers: Annotated[
        bool,
        typer.Option(
            "--workers",
            help="Print every worker's (and model's) estimated accuracy and claim count",
        ),
    ] = False,
    workers_out: Annotated[
        Path | None,
        typer.Option(
            "--workers-out", help="Write the per-worker table as CSV: worker,kind,n_claims,accuracy"
        ),
    ] = None,
    encoding: Annotated[
        str, typer.Option(help="File mode: text encoding of CSV/JSONL inputs")
    ] = "utf-8",
    db: Db = None,
) -> None:
    """Resolve one label per item from all claims: a labels file (file mode) or a project (--project)."""
    if (labels is None) == (project is None):
        raise VeritagError(
            "give either a labels file (file mode) or --project NAME (project mode), not both or neither"
        )
    methods = _methods()
    if method not in methods:
        raise VeritagError(f"unknown method {method!r}; choose one of {', '.join(methods)}")
    if labels is not None:
        if db is not None:
            raise VeritagError(
                "file mode uses no database; drop --db, or resolve a project with --project"
            )
        if out is None:
            raise VeritagError("file mode needs -o OUT.csv for the resolved labels")
        _resolve_files(labels, method, gold, model_probs, out, workers, workers_out, encoding)
        return
    for flag, value in (("--gold", gold), ("--model-probs", model_probs), ("-o/--out", out)):
        if value is not None:
            raise VeritagError(
                f"{flag} is for file mode; a project takes gold labels and model "
                "probabilities with 'veritag import' and writes files with 'veritag export'"
            )
    assert project is not None
    from .resolve.files import project_source_rows, write_sources
    from .resolve.runs import resolve_and_store
    from .store.queries import project_schema, source_names

    with _store(db) as store:
        proj = _project(store, project)
        kind = project_schema(proj).type
        resolution = resolve_and_store(store, proj, method)
        with store.engine.connect() as conn:
            rows = project_source_rows(resolution, source_names(conn, ids=resolution.source_ids()))
    run = resolution.run
    assert run is not None
    chosen = run.params.get("chosen")  # what ``auto`` picked
    how = f"{run.method}{f' (chose {chosen})' if chosen else ''} ({run.engine_version})"
    if run.method == OPEN_METHOD:
        how = f"majority vote over exact matches ({kind} labels have no fixed classes; --method does not apply)"
    counts = resolution.basis_counts()
    fit = (
        ""
        if run.method == OPEN_METHOD or run.method in ("mv", "wmv")
        else (
            f", {run.n_iter} iterations, "
            + ("converged" if run.converged else "[yellow]did not converge[/]")
        )
    )
    console.print(
        f"Resolved {resolution.item_ids.size} items of [bold]{escape(project)}[/] with {how}{fit}. "
        f"Stored as run {run.run_id}."
    )
    console.print(
        f"From human claims: {counts.get('claims', 0)}, from model claims only: {counts.get('model', 0)}, "
        f"gold: {counts.get('gold', 0)}."
    )
    if workers:
        _print_sources("Sources by estimated accuracy", rows)
    elif rows:
        measured = [r for r in rows if not math.isnan(r[3])]
        if len(measured) <= 10:
            _print_sources("Sources by estimated accuracy", measured)
        else:
            _print_sources("Most accurate sources", measured[:5])
            _print_sources("Least accurate sources", measured[-5:])
    if workers_out is not None:
        write_sources(rows, workers_out)
        console.print(f"Wrote {len(rows)} sources to {escape(str(workers_out))}.")


@app.command(cls=_LazyHelp)
def report(
    project: Annotated[str, typer.Argument(help="Project name (categorical task types)")],
    method: Annotated[str, typer.Option(help="One of {METHODS}")] = DEFAULT_METHOD,
    domain: Annotated[
        str | None,
        typer.Option(help="Item metadata field to break reliability down by, e.g. domain"),
    ] = None,
    top: Annotated[int, typer.Option(help="How many suspected errors to list")] = 20,
    html: Annotated[
        Path | None, typer.Option(help="Also write a self-contained HTML page with plots")
    ] = None,
    as_json: Annotated[
        Path | None, typer.Option("--json", help="Also write the whole report as JSON")
    ] = None,
    db: Db = None,
) -> None:
    """Per-source reliability, agreement between tutors, and the labels most likely wrong."""
    from .report import render_html, render_text
    from .report.project import project_report

    methods = _methods()
    if method not in methods:
        raise VeritagError(f"unknown method {method!r}; choose one of {', '.join(methods)}")
    if top < 1:
        raise VeritagError("--top must be at least 1")
    with _store(db) as store:
        proj = _project(store, project)
        built, warned = project_report(store, proj, method=method, domain=domain, top=top)
    for message in warned:
        err.print(f"Warning: {escape(message)}")
    render_text(built, console, max_rows=top)
    _write_pages(
        html, lambda: render_html(built, title=f"veritag report: {project}"), as_json, built.to_dict
    )


def _write_pages(
    html: Path | None, page: Callable[[], str], as_json: Path | None, data: Callable[[], dict]
) -> None:
    """Write the HTML page and the JSON a report command was asked for, and say so."""
    if html is not None:
        _write_text(html, page())
        console.print(f"Wrote {escape(str(html))}.")
    if as_json is not None:
        _write_text(as_json, json.dumps(data(), indent=2, allow_nan=False))
        console.print(f"Wrote {escape(str(as_json))}.")


def _write_text(path: Path, text: str) -> None:
    """Write via a temporary name, so a half-written page never replaces a good one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


@app.command()
def autolabel(
    project: Annotated[
        str, typer.Argument(help="Project name (single-label categorical task types)")
    ],
    labeler: Annotated[
        str,
        typer.Option(
            help="Labeler to train: minilm (bundled sentence embeddings + logistic regression) or tfidf"
        ),
    ] = "minilm",
    field: Annotated[
        list[str] | None,
        typer.Option(
            "--field",
            help="Item field to append to the text (repeatable), e.g. a hypothesis or a response",
        ),
    ] = None,
    folds: Annotated[
        int, typer.Option(help="Folds for the out-of-fold probabilities of labeled items")
    ] = 5,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Seed of the folds")] = 0,
    db: Db = None,
) -> None:
    """Train a model on the human labels and store its probabilities for every item with text."""
    from .automation.autolabel import autolabel_project

    with _store(db) as store:
        proj = _project(store, project)
        with console.status(f"training {labeler} and labeling {project}..."):
            result = autolabel_project(
                store, proj, labeler=labeler, fields=field or (), folds=folds, seed=seed
            )
    _print_autolabel(result)


def _print_autolabel(result: AutolabelResult) -> None:
    console.print(
        f"Labeler {result.source}: trained on {result.trained} items (out-of-fold accuracy "
        f"{result.accuracy:.3f} against the human labels), predicted {result.predicted} more."
    )
    console.print(
        f"Added {result.claims_added} new model claims"
        + (
            " (this labeler had labeled every item from these human labels already)."
            if not result.claims_added
            else "."
        )
    )


@app.command()
def automate(
    project: Annotated[
        str | None, typer.Argument(help="Project to automate (not with --simulate)")
    ] = None,
    target: Annotated[
        float, typer.Option(help="Accuracy the auto-accepted labels must reach")
    ] = 0.98,
    delta: Annotated[float, typer.Option(help="Allowed probability that they do not")] = 0.05,
    model: Annotated[
        str | None, typer.Option(help="Model source whose labels to accept [default: the newest]")
    ] = None,
    slice_: Annotated[
        str | None,
        typer.Option(
            "--slice",
            help="Item metadata field: one threshold per value, and a slice without enough audit evidence is not automated",
        ),
    ] = None,
    audit_rate: Annotated[
        float | None,
        typer.Option(
            "--audit-rate",
            help="Share of items in the random human audit [default: the project's last rate, else 10% and at least 200 items]",
        ),
    ] = None,
    min_audit: Annotated[
        int, typer.Option("--min-audit", help="Fewest audited items above a threshold")
    ] = 0,
    simultaneous: Annotated[
        bool, typer.Option(help="Split delta over the slices, so all of them hold at once")
    ] = False,
    queue_out: Annotated[
        Path | None,
        typer.Option(
            "--queue-out", help="Write the items that still need a human to this CSV (audit first)"
        ),
    ] = None,
    simulate: Annotated[
        tuple[Path, Path] | None,
        typer.Option(
            "--simulate",
            help="TEXTS.csv GT.csv: replay automation on a labeled text file (task,text and task,label)",
        ),
    ] = None,
    audit_size: Annotated[
        int | None,
        typer.Option(
            "--audit-size", help="With --simulate: items in the audit [default: 10%, at least 200]"
        ),
    ] = None,
    labeler: Annotated[
        str,
        typer.Option(help="With --simulate: labeler giving the probabilities (minilm or tfidf)"),
    ] = "minilm",
    seed: Annotated[
        int,
        typer.Option(
            min=0, max=MAX_SEED, help="Seed of the audit draw (and of the folds with --simulate)"
        ),
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
    db: Db = None,
) -> None:
    """Accept model labels only above a threshold an audit proves meets --target (1 - --delta sure)."""
    if simulate is not None:
        if project is not None:
            raise VeritagError("give either a PROJECT or --simulate TEXTS.csv GT.csv, not both")
        _simulate(simulate, target, delta, audit_size, labeler, seed, as_json)
        return
    if project is None:
        raise VeritagError(
            "give a PROJECT to automate, or --simulate TEXTS.csv GT.csv to replay a labeled file"
        )
    from .automation.project import automate_project, queue_rows

    with _store(db) as store:
        proj = _project(store, project)
        result = automate_project(
            store,
            proj,
            target=target,
            delta=delta,
            model=model,
            slice_field=slice_,
            audit_rate=audit_rate,
            min_audit=min_audit,
            simultaneous=simultaneous,
            seed=seed,
        )
        queue = queue_rows(store, proj, result.run_id) if queue_out is not None else []
    if queue_out is not None:
        _write_queue(queue_out, queue)
    if as_json:
        data = dataclasses.asdict(result)
        data["automation_rate"] = result.automation_rate
        console.print_json(json.dumps(data))
        return
    _print_automation(result)
    if queue_out is not None:
        console.print(
            f"Wrote the {len(queue)} items that need a human to {escape(str(queue_out))}."
        )


def _write_queue(path: Path, rows: list[tuple[str, str, float, str | None]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "reason", "model_confidence", "slice"])
        writer.writerows((i, reason, f"{conf:.6f}", s or "") for i, reason, conf, s in rows)
    tmp.replace(path)


def _print_automation(result: AutomationResult) -> None:
    if result.source is None:
        console.print(
            f"No model has labeled this project yet, so nothing is automated. Run {result.run_id} drew "
            f"the audit: {result.n_audit} of {result.n_items} items (rate {result.audit_rate:.3f}), "
            f"{result.n_audit_labeled} of them labeled. Have humans label the audit (--queue-out "
            "writes it), import the labels, run `veritag autolabel`, then automate again."
        )
        return
    table = Table(
        title=f"Automation of {result.source} at target {result.target}, delta {result.delta}"
    )
    for name, right in (
        ("slice", False),
        ("items", True),
        ("automated", True),
        ("audit", True),
        ("awaiting labels", True),
        ("threshold", True),
        ("bound", True),
        ("audited above", True),
    ):
        table.add_column(name, justify="right" if right else "left")
    for s in result.slices:
        table.add_row(
            escape(s.name),
            str(s.n_items),
            f"{s.n_auto} ({s.n_auto / s.n_items:.0%})" if s.n_items else "0",
            str(s.audit_drawn),
            str(s.audit_waiting) if s.audit_waiting else "-",
            "-" if s.threshold is None else f"{s.threshold:.4f}",
            "-" if s.bound is None else f"{s.bound:.4f}",
            str(s.audit_above),
        )
    console.print(table)
    bound = (
        ""
        if result.overall_bound is None
        else f" (pooled audit lower bound {result.overall_bound:.4f})"
    )
    console.print(
        f"Run {result.run_id}: {result.n_auto} of {result.n_items} items automated "
        f"({result.automation_rate:.1%}){bound}; audit rate {result.audit_rate:.3f}: "
        f"{result.n_audit_labeled} of {result.n_audit} audited items labeled."
    )
    if not result.n_auto and result.n_audit_labeled:
        console.print(
            f"Nothing automated: in no slice do the audited items prove the model reaches {result.target} "
            f"(1 - {result.delta} sure), so every item stays with humans. A better model, or more audit "
            "evidence, moves the threshold; `veritag audit` shows how far off it is."
        )
    waiting = result.n_audit - result.n_audit_labeled
    if waiting:
        console.print(
            f"[yellow]{waiting} audited items await a human label[/]; slices with any are not automated "
            "until they are labeled (import the labels, then run automate again)."
        )
    console.print(f"{result.human_todo} items still need a human label (--queue-out writes them).")


def _simulate(
    files: tuple[Path, Path],
    target: float,
    delta: float,
    audit_size: int | None,
    labeler: str,
    seed: int,
    as_json: bool,
) -> None:
    from .automation.replay import simulate_files

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn convergence chatter on tiny folds
        try:
            result = simulate_files(
                files[0],
                files[1],
                target=target,
                delta=delta,
                audit_size=audit_size,
                labeler=labeler,
                seed=seed,
            )
        except ValueError as exc:
            raise VeritagError(str(exc)) from exc
    if as_json:
        console.print_json(json.dumps(result))
        return
    rate, acc = result["automation_rate"], result["realized_accuracy"]
    console.print(
        f"{result['items']} items, labeler {result['labeler']} (out-of-fold accuracy "
        f"{result['model_accuracy']:.3f}), audit of {result['audit_drawn']} items."
    )
    if result["threshold"] is None:
        console.print(
            f"Nothing can be automated at target {target} with delta {delta}: no threshold's "
            "audited items prove it. Every item goes to humans."
        )
        return
    console.print(
        f"Automate {rate:.1%} of items: confidence >= {result['threshold']:.4f}, lower bound "
        f"{result['bound']:.4f} from {result['audit_size']} audited items above it "
        f"(target {target}, delta {delta})."
    )
    if acc is not None:
        console.print(f"Realised accuracy of auto-accepted items outside the audit: {acc:.4f}.")


@app.command()
def tutor(
    project: Annotated[str, typer.Argument(help="Project name")],
    name: Annotated[
        str, typer.Argument(help="Tutor name (the human source their labels come from)")
    ],
    domains: Annotated[
        str | None,
        typer.Option(help="Comma-separated domains the tutor declares, e.g. medicine,stem"),
    ] = None,
    cost: Annotated[
        float, typer.Option(help="Cost of one label from this tutor, in budget units")
    ] = 1.0,
    active: Annotated[
        bool | None,
        typer.Option(
            "--active/--inactive", help="Make an existing tutor available for work, or not"
        ),
    ] = None,
    db: Db = None,
) -> None:
    """Add a tutor to a project (declared domains, cost per label), or switch one on or off."""
    from .routing import service as routing

    with _store(db) as store:
        proj = _project(store, project)
        known = {t.name for t in routing.list_tutors(store, proj)}
        if name in known and active is not None:
            profile = routing.set_tutor_active(store, proj, name, active, actor=_actor())
        else:
            profile = routing.add_tutor(
                store,
                proj,
                name,
                domains=_split(domains),
                cost=cost,
                active=True if active is None else active,
                actor=_actor(),
            )
    state = "active" if profile.active else "inactive"
    console.print(
        f"Tutor {escape(profile.name)} of {escape(project)}: {state}, cost {profile.cost:g} per label, "
        f"domains {', '.join(profile.domains) or '(none declared)'}."
    )


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


@app.command()
def route(
    project: Annotated[str, typer.Argument(help="Project name")],
    target: Annotated[float | None, typer.Option(help="Posterior at which an item is done")] = None,
    max_labels: Annotated[
        int | None, typer.Option("--max-labels", help="Human labels per item at most")
    ] = None,
    min_labels: Annotated[
        int | None,
        typer.Option(
            "--min-labels", help="Human labels an item gets before the target may stop it"
        ),
    ] = None,
    gold_rate: Annotated[
        float | None,
        typer.Option("--gold-rate", help="Share of a tutor's leases that are gold checks"),
    ] = None,
    budget: Annotated[
        float | None, typer.Option(help="Total cost units for labels (spent plus reserved)")
    ] = None,
    lease_seconds: Annotated[
        int | None, typer.Option("--lease-seconds", help="How long a lease runs before it expires")
    ] = None,
    domains: Annotated[
        str | None, typer.Option(help="Comma-separated domains of the project")
    ] = None,
    domain_field: Annotated[
        str | None, typer.Option("--domain-field", help="Item metadata field naming the domain")
    ] = None,
    best: Annotated[
        str | None, typer.Option(help="Item id: rank the tutors who should label it next (push)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    db: Db = None,
) -> None:
    """Set a project's routing (target, label cap, budget, gold rate, leases) and show where it stands."""
    from .routing import service as routing

    given = {
        "target": target,
        "max_labels": max_labels,
        "min_labels": min_labels,
        "gold_rate": gold_rate,
        "budget": budget,
        "lease_seconds": lease_seconds,
        "domain_field": domain_field,
        "domains": _split(domains) if domains is not None else None,
    }
    with _store(db) as store:
        proj = _project(store, project)
        if any(v is not None for v in given.values()):
            routing.configure(
                store, proj, actor=_actor(), **{k: v for k, v in given.items() if v is not None}
            )
        if best is not None:
            ranked = routing.best_tutors(store, proj, best, k=10)
            if as_json:
                console.print_json(json.dumps([dataclasses.asdict(r) for r in ranked]))
                return
            table = Table(title=f"Who should label {escape(best)} next")
            for column in ("tutor", "expected gain", "cost", "gain per cost"):
                table.add_column(column, justify="left" if column == "tutor" else "right")
            for r in ranked:
                table.add_row(escape(r.tutor), f"{r.gain:.4f}", f"{r.cost:g}", f"{r.score:.4f}")
            console.print(table)
            return
        status = routing.routing_status(store, proj)
    if as_json:
        console.print_json(json.dumps(dataclasses.asdict(status), default=str))
        return
    st, left = (
        status.settings,
        "unlimited" if status.budget_left is None else f"{status.budget_left:g}",
    )
    console.print(
        f"Routing of {escape(project)}: target {st.target}, {st.min_labels}-{st.max_labels} labels per item, "
        f"gold rate {st.gold_rate}, leases {st.lease_seconds} s, domains {', '.join(st.domains)}."
    )
    console.print(
        f"{status.done} of {status.items} items done, {status.pending} pending, {status.in_flight} leased; "
        f"{status.labels_spent} labels spent ({status.spent:g} units, {status.reserved:g} reserved), "
        f"budget left {left}."
    )
    if status.tutors:
        table = Table(title="Tutors")
        for column in ("tutor", "active", "cost", "domains", "spent", "gold", "skill by domain"):
            table.add_column(column)
        for t in status.tutors:
            skill = ", ".join(f"{d} {a:.2f} ({t.measured.get(d, 0)})" for d, a in t.skill.items())
            table.add_row(
                escape(t.name),
                "yes" if t.active else "no",
                f"{t.cost:g}",
                ", ".join(t.domains) or "-",
                f"{t.spent:g}",
                str(t.gold),
                escape(skill),
            )
        console.print(table)


@app.command()
def work(
    project: Annotated[str, typer.Argument(help="Project name")],
    tutor_name: Annotated[
        str, typer.Option("--tutor", help="The tutor asking for work or answering")
    ],
    submit: Annotated[
        tuple[int, str] | None, typer.Option(help="LEASE LABEL: answer a lease")
    ] = None,
    release: Annotated[int | None, typer.Option(help="LEASE: give a lease back unanswered")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    db: Db = None,
) -> None:
    """Lease the next item a tutor should label (pull), answer a lease, or give one back.

    A pairwise (or arena) lease shows its two responses as left and right, in the order the web
    page shows them and without the models' names, and takes left, right or tie back.
    """
    from .routing import pairwise
    from .routing import service as routing
    from .schema import PairwiseSchema
    from .store.queries import project_schema

    with _store(db) as store:
        proj = _project(store, project)
        if submit is not None:
            claim = routing.submit(store, proj, submit[0], submit[1], tutor=tutor_name)
            console.print(f"Lease {submit[0]} answered: claim {claim}.")
            return
        if release is not None:
            routing.release(store, proj, release, tutor=tutor_name)
            console.print(f"Lease {release} given back.")
            return
        lease = routing.request_work(store, proj, tutor_name)
    if lease is None:
        console.print(
            f"Nothing to label for {escape(tutor_name)}: every item is done or leased, or the budget "
            "cannot pay for another label."
        )
        return
    schema = project_schema(proj)
    shown = dataclasses.asdict(lease)
    answer = "LABEL"
    if isinstance(schema, PairwiseSchema):  # blind as on the web: the models stay hidden
        shown |= {
            "data": None,
            "external_id": None,
            "pair": pairwise.pair_view(schema, proj.id, lease.id, lease.data),
        }
        answer = "|".join(pairwise.answers(schema))
    if as_json:
        console.print_json(json.dumps(shown, default=str))
        return
    item = "a pair" if "pair" in shown else f"item {escape(lease.external_id)}"
    console.print(
        f"Lease {lease.id} for {escape(tutor_name)} until {lease.expires_at:%Y-%m-%d %H:%M:%S} UTC: "
        f"{item} ({escape(lease.domain)}{', gold check' if lease.is_gold else ''})."
    )
    if lease.text and "pair" not in shown:
        console.print(escape(lease.text))
    for key, value in (shown.get("pair") or shown["data"] or {}).items():
        console.print(f"{escape(str(key))}: {escape(str(value))}")
    console.print(
        f"Answer with: veritag work {escape(project)} --tutor {escape(tutor_name)} --submit {lease.id} "
        f"{escape(answer)}"
    )


@app.command("simulate")
def simulate_routing_cmd(
    labels: Annotated[
        Path, typer.Argument(help="LABELS.csv: every recorded answer (task,worker,label)")
    ],
    truth: Annotated[
        Path, typer.Argument(help="GT.csv: the true label of some or all tasks (task,label)")
    ],
    texts: Annotated[
        Path | None,
        typer.Option(
            "--texts",
            help="TEXTS.csv (task and text columns): add the auto-labeler's claims as a source",
        ),
    ] = None,
    policy: Annotated[
        str,
        typer.Option(help="adaptive (gain-driven routing) or fixed (k random workers per item)"),
    ] = "adaptive",
    target: Annotated[
        float, typer.Option(help="Posterior at which an item needs no more labels")
    ] = 0.95,
    max_labels: Annotated[
        int, typer.Option("--max-labels", help="Most human labels per item")
    ] = 10,
    budget: Annotated[
        float | None, typer.Option(help="Most human labels in all [default: no limit]")
    ] = None,
    labeler: Annotated[
        str, typer.Option(help="With --texts: labeler giving the model claims (tfidf or minilm)")
    ] = "tfidf",
    seed: Annotated[
        int,
        typer.Option(
            min=0, max=MAX_SEED, help="Seed of every random draw: the same seed gives the same run"
        ),
    ] = 0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as one JSON object")
    ] = False,
    plot: Annotated[
        Path | None, typer.Option(help="Write accuracy against human labels spent to this PNG")
    ] = None,
) -> None:
    """Replay a routing policy on a real crowd: accuracy and human labels, against asking everyone."""
    from .routing import RoutingConfig, simulate_routing

    try:
        config = RoutingConfig(target=target, max_labels=max_labels, budget=budget)
    except ValueError as exc:
        raise VeritagError(str(exc)) from exc
    if policy not in ("adaptive", "fixed"):
        raise VeritagError(f"unknown policy {policy!r}; choose adaptive or fixed")
    result = simulate_routing(
        labels,
        truth,
        texts=texts,
        policy=policy,
        config=config,  # type: ignore[arg-type]
        labeler=labeler,
        seed=seed,
    )
    if plot is not None:
        from .routing.plot import plot_result

        plot_result(plot, result)
    if as_json:
        console.print_json(json.dumps(result.to_dict()))
        return
    model = (
        f", with {result.model_claims} model claims ({result.labeler})"
        if result.model_claims
        else ""
    )
    console.print(
        f"{result.policy} routing{model}: accuracy [bold]{result.accuracy:.3f}[/] on "
        f"{result.scored_items} items with ground truth, {result.human_labels} human labels "
        f"({result.human_labels / max(result.items, 1):.2f} per item)."
    )
    for name, what in (("mv_all", "majority vote"), ("ds_all", "Dawid-Skene")):
        b = result.baselines[name]
        share = result.human_labels / b["human_labels"] if b["human_labels"] else 0.0
        console.print(
            f"{what} over all {b['human_labels']} recorded labels: accuracy {b['accuracy']:.3f} "
            f"(routing used {share:.0%} of its labels)."
        )
    if plot is not None:
        console.print(f"Wrote the curve to {escape(str(plot))}.")


@app.command()
def audit(
    project: Annotated[
        str, typer.Argument(help="Project with an automation run (veritag automate)")
    ],
    run: Annotated[int | None, typer.Option(help="Automation run id [default: the newest]")] = None,
    html: Annotated[
        Path | None, typer.Option(help="Also write a self-contained HTML page with plots")
    ] = None,
    as_json: Annotated[
        Path | None, typer.Option("--json", help="Also write the whole audit as JSON")
    ] = None,
    db: Db = None,
) -> None:
    """Audit an automation run: calibration, automation rate vs accuracy, errors and bias per slice."""
    from .report.automation import (
        build_automation_report,
        render_automation_html,
        render_automation_text,
    )
    from .report.project import automation_audit_data

    with _store(db) as store:
        proj = _project(store, project)
        data, current = automation_audit_data(store, proj, run_id=run)
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # scikit-learn chatter while cross-fitting calibrators on few items
        built = build_automation_report(data)
    if not current:
        err.print(
            "Warning: claims or gold labels were added since this run; the audit replays the run's "
            "thresholds on the current labels. Run `veritag automate` again to decide anew."
        )
    render_automation_text(built, console)
    _write_pages(
        html,
        lambda: render_automation_html(built, title=f"veritag automation audit: {project}"),
        as_json,
        built.to_dict,
    )


def _print_sources(title: str, rows: list[SourceRow], who: str = "source") -> None:
    table = Table(title=title)
    table.add_column(who)
    table.add_column("kind")
    table.add_column("claims", justify="right")
    table.add_column("accuracy", justify="right")
    for name, kind, n, acc in rows:
        table.add_row(escape(name), kind, str(n), "-" if math.isnan(acc) else f"{acc:.3f}")
    console.print(table)


def _resolve_files(
    labels: Path,
    method: str,
    gold: Path | None,
    model_probs: Path | None,
    out: Path,
    workers: bool,
    workers_out: Path | None,
    encoding: str,
) -> None:
    from .resolve.files import resolve_files, write_labels, write_sources

    result = resolve_files(
        labels, method=method, gold=gold, model_probs=model_probs, encoding=encoding
    )
    write_labels(result, out)
    fit = (
        ""
        if method in ("mv", "wmv")
        else (
            f", {result.n_iter} iterations, "
            + ("converged" if result.converged else "[yellow]did not converge[/]")
        )
    )
    inputs = f"{result.n_labels} labels by {sum(k == 'human' for _, k in result.sources)} workers"
    if result.n_model_rows:
        inputs += f", {result.n_model_rows} model rows"
    if result.n_gold:
        inputs += f", {result.n_gold} gold labels"
    console.print(f"Resolved {result.n_tasks} tasks from {inputs} with {result.method}{fit}.")
    console.print(f"Wrote {result.n_tasks} rows to {escape(str(out))} (task,label,confidence).")
    rows = result.source_rows()
    if workers:
        _print_sources("Workers by estimated accuracy", rows, "worker")
    if workers_out is not None:
        write_sources(rows, workers_out)
        console.print(f"Wrote {len(rows)} workers to {escape(str(workers_out))}.")


@app.command()
def quickstart(
    folder: Annotated[
        Path, typer.Option("--dir", help="Where to put the database and exports")
    ] = Path("veritag-quickstart"),
    serve_ui: Annotated[
        bool, typer.Option("--serve/--no-serve", help="End by serving the web UI")
    ] = True,
    port: Annotated[int, typer.Option(help="Port of the web UI (on 127.0.0.1)")] = 8000,
) -> None:
    """Run the whole job on the bundled sample (800 RTE items with 8000 real crowd labels), then
    serve the web UI with demo accounts so you can label its uncertain items."""
    from .quickstart import run_quickstart

    with _progress() as bar:
        result = run_quickstart(folder, progress=bar)
    for r in result.imports:
        _print_import(r)
    for e in result.exports:
        console.print(f"Wrote {e.rows} resolved items to {e.path}")
    console.print(
        f"Resolved-label accuracy against the sample's ground truth: [bold]{result.accuracy:.3f}[/] "
        f"on {result.items_scored} items ({result.method}, stored as run {result.run_id}; "
        f"majority vote: {result.majority_accuracy:.3f})."
    )
    if result.autolabel is not None:
        _print_autolabel(result.autolabel)
    if result.automation is not None:
        _print_automation(result.automation)
    else:
        console.print(
            f"Automation run {result.automation_run} still covers every claim; nothing decided anew."
        )
    if result.automated_accuracy is not None:
        console.print(
            f"Accuracy of the auto-accepted labels against ground truth: {result.automated_accuracy:.3f}."
        )
    if result.audit_page is not None:
        console.print(
            f"Automation audit (calibration, rate vs accuracy, bias per slice): {result.audit_page}"
        )
    console.print(f"Database: {result.database}. Try: veritag status --db {result.database}")
    _demo(result.database, folder, serve_ui, port)


def _demo(database: Path, folder: Path, serve_ui: bool, port: int) -> None:
    """Demo accounts and routing on the sample, then (``serve_ui``) the server on 127.0.0.1."""
    from .demo import setup_demo
    from .quickstart import PROJECT
    from .routing import service as routing

    db = f"sqlite:///{database.resolve()}"
    with _store(db) as store:
        project = _project(store, PROJECT)
        accounts = setup_demo(store, project, folder)
        pending = routing.routing_status(store, project).pending
        table = Table(
            "user",
            "password",
            "role",
            title=f"Demo accounts (saved in {folder / 'demo-accounts.txt'})",
        )
        for a in accounts:
            table.add_row(a.username, a.password, a.role)
        console.print(table)
        console.print(
            f"{pending} uncertain items are routed to tutors (another label is asked for below 99% sure)."
        )
        if not serve_ui:
            console.print(f"Serve the UI with: veritag serve --db {db}")
            return
        console.print(
            f"Open http://127.0.0.1:{port}/login and log in as tutor to label (Ctrl+C stops the server)."
        )
        _run_server(store, "127.0.0.1", port)


def _run_server(store: Store, host: str, port: int, log_level: str = "warning") -> None:
    import uvicorn

    from .server import create_app

    uvicorn.run(create_app(store), host=host, port=port, log_level=log_level)


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0: every interface; put TLS in front)")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    log_level: Annotated[
        str, typer.Option(help="uvicorn's log level (warning: no line per request)")
    ] = "info",
    workers: Annotated[
        int, typer.Option(min=1, help="Server processes (each with its own database connections)")
    ] = 1,
    db: Db = None,
) -> None:
    """Run the server: the web UI and the JSON API under /api/v1 (docs at /api/v1/docs)."""
    with _store(db) as store:  # migrates the database once, before any worker starts
        console.print(
            f"veritag server on http://{host}:{port}/ (API docs at /api/v1/docs; Ctrl+C stops it)"
        )
        if workers == 1:
            _run_server(store, host, port, log_level)
            return
        url = store.engine.url.render_as_string(hide_password=False)
    import uvicorn

    os.environ["VERITAG_DATABASE_URL"] = url  # what each worker's app_from_env opens
    uvicorn.run(
        "veritag.server.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
    )


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
    from .store.queries import create_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with _store(db) as store, store.session() as session:
        user = create_user(session, username=username, password=password, role=role, actor=_actor())
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

    from .errors import NotFound
    from .server.throttle import unlock_account
    from .store.models import User

    with _store(db) as store, store.session() as session:
        if session.scalar(sa.select(User.id).where(User.username == username)) is None:
            raise NotFound(f"no user named {username!r}")
        cleared = unlock_account(session, username, _actor())
    console.print(
        f"User {escape(username)} unlocked."
        if cleared
        else f"User {escape(username)} was not locked."
    )


arena_app = typer.Typer(
    help="Arena projects: model responses, battles and the leaderboard.", no_args_is_help=True
)
app.add_typer(arena_app, name="arena")


@arena_app.command("import")
def arena_import(
    project: Annotated[
        str, typer.Argument(help="An arena project (veritag init NAME --task arena)")
    ],
    file: Annotated[
        Path,
        typer.Argument(
            help="Responses: prompt_id, prompt, model, response[, domain] per row (.jsonl, .csv, .parquet)"
        ),
    ],
    max_pairs: Annotated[
        int | None,
        typer.Option(
            "--max-pairs", min=1, help="At most this many model pairs per prompt [default: all]"
        ),
    ] = None,
    seed: Annotated[
        int,
        typer.Option(
            min=0,
            max=MAX_SEED,
            help="Salts the coin that picks each battle's model A, and the pairs drawn",
        ),
    ] = 0,
    format: Annotated[
        str | None,
        typer.Option("--format", help=f"One of {', '.join(FORMATS)} [default: from the suffix]"),
    ] = None,
    db: Db = None,
) -> None:
    """Import model responses as battles: one item per prompt and pair of its models (idempotent)."""
    from .arena import import_responses

    with _store(db) as store:
        result = import_responses(
            store, _project(store, project), file, max_pairs=max_pairs, seed=seed, fmt=format
        )
    console.print(
        f"{escape(str(file))}: {result.rows} rows, {result.prompts} prompts, {result.models} models: "
        f"{result.items_added} battles added, {result.items_filled} given their responses"
        + (" (nothing new)" if result.added_nothing else "")
    )


@arena_app.command("battles")
def arena_battles(
    project: Annotated[str, typer.Argument(help="An arena project")],
    file: Annotated[
        Path,
        typer.Argument(
            help="Judged battles: question_id, model_a, model_b, winner[, judge] per row"
        ),
    ],
    source: Annotated[
        str | None,
        typer.Option(help="Who voted, for rows without a judge column [default: the file's name]"),
    ] = None,
    seed: Annotated[
        int,
        typer.Option(min=0, max=MAX_SEED, help="Salts the coin that picks a new battle's model A"),
    ] = 0,
    format: Annotated[
        str | None,
        typer.Option("--format", help=f"One of {', '.join(FORMATS)} [default: from the suffix]"),
    ] = None,
    db: Db = None,
) -> None:
    """Import existing battles (winner: model_a, model_b, tie or both_bad) as votes (idempotent)."""
    from .arena import import_battles

    with _store(db) as store:
        result = import_battles(
            store, _project(store, project), file, source_name=source, seed=seed, fmt=format
        )
    console.print(
        f"{escape(str(file))}: {result.rows} rows: {result.items_added} battles added, "
        f"{result.claims_added} votes added" + (" (nothing new)" if result.added_nothing else "")
    )


def _interval_bar(
    lower: float | None, rating: float, upper: float | None, lo: float, hi: float, width: int = 30
) -> str:
    """The interval as a text bar on the board's common axis: ``─`` the interval, ``●`` the rating."""
    span = max(hi - lo, 1e-9)

    def at(x: float) -> int:
        return min(width - 1, max(0, round((x - lo) / span * (width - 1))))

    cells = [" "] * width
    if lower is not None and upper is not None:
        for i in range(at(lower), at(upper) + 1):
            cells[i] = "─"
    cells[at(rating)] = "●"
    return "".join(cells)


@arena_app.command("leaderboard")
def arena_leaderboard(
    project: Annotated[str, typer.Argument(help="An arena project")],
    domain: Annotated[
        str | None, typer.Option(help="Only battles on prompts of this domain")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the board as JSON")] = False,
    ties: Annotated[str, typer.Option(help="half (a tie is half a win each) or davidson")] = "half",
    interval: Annotated[str, typer.Option(help="bootstrap, sandwich or none")] = "bootstrap",
    rounds: Annotated[int, typer.Option(help="Bootstrap rounds")] = 100,
    unweighted: Annotated[
        bool,
        typer.Option(
            "--unweighted", help="Count every vote 1 (default: weigh by tutor reliability)"
        ),
    ] = False,
    db: Db = None,
) -> None:
    """Rank the project's models (Bradley-Terry, 95% intervals) from its tutors' standing votes."""
    from .arena import project_leaderboard

    with _store(db) as store:
        board = project_leaderboard(
            store,
            _project(store, project),
            domain=domain,
            ties=ties,
            interval=interval,
            rounds=rounds,
            weighted=not unweighted,
        )
    rows = board.rows()
    if as_json:
        print(
            json.dumps(
                {
                    "project": project,
                    "domain": domain,
                    "ties": board.ties,
                    "interval": board.interval,
                    "weighted": not unweighted,
                    "tie_param": board.tie_param,
                    "models": rows,
                },
                indent=2,
            )
        )
        return
    known = [x for r in rows for x in (r["lower"], r["upper"], r["rating"]) if x is not None]
    lo, hi = min(known), max(known)
    title = f"Arena leaderboard of {escape(project)}" + (
        f", domain {escape(domain)}" if domain else ""
    )
    table = Table(
        "rank", "model", "rating", "95% interval", "battles", f"{lo:.0f} … {hi:.0f}", title=title
    )
    for r in rows:
        bounds = "-" if r["lower"] is None else f"{r['lower']:.0f} – {r['upper']:.0f}"
        table.add_row(
            str(r["rank"]),
            escape(r["model"]),
            f"{r['rating']:.0f}",
            bounds,
            str(r["battles"]),
            _interval_bar(r["lower"], r["rating"], r["upper"], lo, hi),
        )
    console.print(table)
    weights = "votes unweighted" if unweighted else "votes weighted by tutor reliability"
    console.print(
        f"Bradley-Terry, ties {board.ties}, {board.interval} intervals, {weights}; models whose "
        "intervals overlap share a rank."
    )


@app.command()
def token(
    username: Annotated[str, typer.Argument(help="The user the token acts as")],
    name: Annotated[str, typer.Option(help="What the token is for, to tell tokens apart")] = "cli",
    list_: Annotated[
        bool, typer.Option("--list", help="List the user's tokens instead of making one")
    ] = False,
    revoke: Annotated[int | None, typer.Option(help="Revoke the user's token with this id")] = None,
    db: Db = None,
) -> None:
    """Make an API token for a user and print it once (send it as 'Authorization: Bearer ...');
    or list the user's tokens, or revoke one."""
    import sqlalchemy as sa

    from .server.auth import list_tokens, new_token, revoke_token
    from .store.models import User

    with _store(db) as store, store.session() as session:
        user = session.scalar(sa.select(User).where(User.username == username))
        if user is None:
            raise VeritagError(f"no user named {username!r}; add one with 'veritag user add'")
        if revoke is not None:
            revoke_token(session, revoke, user.id, _actor())
            err.print(f"revoked token {revoke} of {escape(username)}")
            return
        if list_:
            table = Table(
                "id",
                "name",
                "created",
                "last used",
                "revoked",
                title=f"API tokens of {escape(username)}",
            )
            for t in list_tokens(session, user.id):
                table.add_row(
                    str(t.id),
                    escape(t.name),
                    f"{t.created_at:%Y-%m-%d %H:%M}",
                    "-" if t.last_used_at is None else f"{t.last_used_at:%Y-%m-%d %H:%M}",
                    "yes" if t.revoked else "no",
                )
            console.print(table)
            return
        _, secret = new_token(session, user, name, _actor())
    err.print(
        f"API token {escape(name)!r} for {escape(username)} (shown once; only its hash is stored):"
    )
    print(secret)


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
