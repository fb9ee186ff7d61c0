"""The resolved labels and their quality: ``veritag resolve`` (a labels file or a project) and
``veritag report``."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import VeritagError
from ..resolve.defaults import DEFAULT_METHOD, OPEN_METHOD
from ._common import Db, LazyHelp, app, console, err, open_db, project_named, write_pages

if TYPE_CHECKING:
    from ..resolve import RankedSource


def _methods() -> tuple[str, ...]:
    from ..truth import METHODS

    return tuple(METHODS)


@app.command(cls=LazyHelp)
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
    engine: Annotated[
        str,
        typer.Option(
            help="local, or ray (a Ray cluster started here) or ray:ADDRESS (a running one): "
            "Dawid-Skene (ds, onecoin) distributed over item partitions; needs veritag[scale]"
        ),
    ] = "local",
    partitions: Annotated[
        int | None,
        typer.Option(help="With --engine ray: item partitions [default: 2 x the cluster's CPUs]"),
    ] = None,
    db: Db = None,
) -> None:
    """Resolve one label per item from all claims: a labels file, or a project (--project)."""
    if (labels is None) == (project is None):
        raise VeritagError(
            "give either a labels file (file mode) or --project NAME (project mode), "
            "not both or neither"
        )
    methods = _methods()
    if method not in methods:
        raise VeritagError(f"unknown method {method!r}; choose one of {', '.join(methods)}")
    scope = _engine_scope(engine, partitions, method, model_probs)
    if labels is not None:
        if db is not None:
            raise VeritagError(
                "file mode uses no database; drop --db, or resolve a project with --project"
            )
        if out is None:
            raise VeritagError("file mode needs -o OUT.csv for the resolved labels")
        with scope:
            _resolve_files(labels, method, gold, model_probs, out, workers, workers_out, encoding)
        return
    for flag, value in (("--gold", gold), ("--model-probs", model_probs), ("-o/--out", out)):
        if value is not None:
            raise VeritagError(
                f"{flag} is for file mode; a project takes gold labels and model "
                "probabilities with 'veritag import' and writes files with 'veritag export'"
            )
    assert project is not None
    from ..io.labels import write_sources
    from ..resolve.files import project_source_rows
    from ..resolve.runs import resolve_and_store
    from ..store.queries import project_schema, source_names

    with open_db(db) as store:
        proj = project_named(store, project)
        kind = project_schema(proj).type
        with scope:
            resolution = resolve_and_store(store, proj, method)
        with store.engine.connect() as conn:
            rows = project_source_rows(resolution, source_names(conn, ids=resolution.source_ids()))
    run = resolution.run
    assert run is not None
    chosen = run.params.get("chosen")  # what ``auto`` picked
    how = f"{run.method}{f' (chose {chosen})' if chosen else ''} ({run.engine_version})"
    if run.method == OPEN_METHOD:
        how = (
            f"majority vote over exact matches ({kind} labels have no fixed classes; "
            "--method does not apply)"
        )
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
        f"From human claims: {counts.get('claims', 0)}, "
        f"from model claims only: {counts.get('model', 0)}, "
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


@contextmanager
def _engine_scope(
    engine: str, partitions: int | None, method: str, model_probs: Path | None
) -> Iterator[None]:
    """Where ``resolve`` fits: here (``local``), or Ray for crowd-kit's Dawid-Skene models."""
    from ..scale import RAY_METHODS, parse_engine, ray_partitions

    kind, address = parse_engine(engine)
    if kind == "local":
        if partitions is not None:
            raise VeritagError("--partitions is for --engine ray")
        yield
        return
    if method not in RAY_METHODS:
        raise VeritagError(
            f"--engine ray fits {' and '.join(RAY_METHODS)} (Dawid-Skene); got --method {method}"
        )
    if model_probs is not None:
        raise VeritagError(
            "--engine ray fits crowd-kit's Dawid-Skene on hard labels; drop --model-probs"
        )
    with ray_partitions(address, partitions) as run:
        yield
    if run.fits:
        console.print(f"Fitted on Ray in {run.partitions} partitions.")
    else:
        console.print(
            "[yellow]Fitted locally: Ray runs crowd-kit's Dawid-Skene on human labels only, "
            "and this project has model claims (or nothing to fit).[/]"
        )


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
    from ..io.labels import read_label_files, write_labels, write_sources
    from ..resolve.files import resolve_files

    claims = read_label_files(labels, gold=gold, model_probs=model_probs, encoding=encoding)
    result = resolve_files(claims, method=method)
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


def _print_sources(title: str, rows: list[RankedSource], who: str = "source") -> None:
    table = Table(title=title)
    table.add_column(who)
    table.add_column("kind")
    table.add_column("claims", justify="right")
    table.add_column("accuracy", justify="right")
    for name, kind, n, acc in rows:
        table.add_row(escape(name), kind, str(n), "-" if math.isnan(acc) else f"{acc:.3f}")
    console.print(table)


@app.command(cls=LazyHelp)
def report(
    project: Annotated[str, typer.Argument(help="Project name (categorical task types)")],
    method: Annotated[
        str | None,
        typer.Option(
            help="One of {METHODS} [default: the newest stored run's; ds when none is stored]"
        ),
    ] = None,
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
    from ..report import render_html, render_text
    from ..report.project import project_report

    methods = _methods()
    if method is not None and method not in methods:
        raise VeritagError(f"unknown method {method!r}; choose one of {', '.join(methods)}")
    if top < 1:
        raise VeritagError("--top must be at least 1")
    with open_db(db) as store:
        proj = project_named(store, project)
        # A command covers every claim: the stored run is fitted again first if one came since.
        built, warned = project_report(
            store, proj, method=method, refit="stale", domain=domain, top=top
        )
    if built.truth and built.truth["refitted"]:
        console.print(f"Resolved the project again and stored it as run {built.truth['run']}.")
    for message in warned:
        err.print(f"Warning: {escape(message)}")
    render_text(built, console, max_rows=top)
    write_pages(
        html, lambda: render_html(built, title=f"veritag report: {project}"), as_json, built.to_dict
    )
