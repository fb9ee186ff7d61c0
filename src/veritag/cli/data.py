"""Data in and out: ``veritag import``, ``export``, ``backup`` and ``restore``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from ..errors import VeritagError
from ..io.formats import EXPORT_FORMATS, PARTITION_ROWS
from ._common import (
    Db,
    InputFormat,
    ProjectName,
    app,
    cli_actor,
    console,
    err,
    open_db,
    progress_bars,
    project_named,
)

if TYPE_CHECKING:
    from ..io import ImportResult


@app.command("import")
def import_(
    project: ProjectName,
    file: Annotated[
        Path,
        typer.Argument(
            help="A .csv, .tsv, .jsonl or .parquet file, or a folder or quoted glob of Parquet "
            "files (a Parquet dataset, as --format parquet-dataset exports)"
        ),
    ],
    format: InputFormat = None,
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
    """Import items, human labels, gold labels or model probabilities from one file or dataset."""
    from ..config import load_settings
    from ..io.importer import ColumnMap, import_file

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
    with open_db(db) as store:
        proj = project_named(store, project)
        with progress_bars() as bar:
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
    print_import(result)


def print_import(result: ImportResult) -> None:
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
    project: ProjectName,
    out: Annotated[
        Path, typer.Argument(help="Output file, or folder for --format hf or parquet-dataset")
    ],
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
    partition_rows: Annotated[
        int,
        typer.Option(
            "--partition-rows",
            min=1,
            help="hf, parquet-dataset: rows per Parquet file (the export streams file by file)",
        ),
    ] = PARTITION_ROWS,
    db: Db = None,
) -> None:
    """Export items with resolved labels and confidence (or all labels with --format long)."""
    fmt = format or {".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet"}.get(
        out.suffix.lower()
    )
    if fmt is None:
        raise VeritagError(
            f"cannot tell the export format from {out.name!r}; "
            f"pass --format ({', '.join(EXPORT_FORMATS)})"
        )
    from ..io.exporter import export_project
    from ..store import audit

    with open_db(db) as store:
        proj = project_named(store, project)
        with progress_bars() as bar:
            result = export_project(
                store,
                proj,
                out,
                fmt,
                progress=bar(f"export {out.name}"),
                csv_raw=csv_raw,
                partition_rows=partition_rows,
            )
        audit.record(
            store,
            "export",
            actor=cli_actor(),
            project=proj.name,
            target=fmt,
            detail={"rows": result.rows, "run_id": result.run_id, "file": str(result.path)},
        )
    if result.resolved:
        console.print(
            "No stored resolution covered every claim and gold label: "
            f"resolved {result.items_resolved} "
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
    from ..config import database_url_for
    from ..store.backup import backup as take_backup
    from ..store.backup import describe, meta_path

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
    from ..config import database_url_for
    from ..store.backup import describe
    from ..store.backup import restore as do_restore

    info = do_restore(database_url_for(db), backup_file, force=force)
    console.print(
        f"Restored {escape(str(backup_file))} (taken {info.created_at}; {describe(info)})."
    )
