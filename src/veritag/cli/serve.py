"""The web UI: ``veritag serve``, and ``veritag quickstart`` (the whole job on the sample, then
the UI with demo accounts)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from ._common import Db, app, console, open_db, progress_bars, project_named
from .automation import print_autolabel, print_automation
from .data import print_import

if TYPE_CHECKING:
    from ..store import Store


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
    """Run the whole job on the bundled RTE sample, then serve the web UI with demo accounts."""
    from ..quickstart import run_quickstart

    with progress_bars() as bar:
        result = run_quickstart(folder, progress=bar)
    for r in result.imports:
        print_import(r)
    for e in result.exports:
        console.print(f"Wrote {e.rows} resolved items to {e.path}")
    console.print(
        "Resolved-label accuracy against the sample's ground truth: "
        f"[bold]{result.accuracy:.3f}[/] "
        f"on {result.items_scored} items ({result.method}, stored as run {result.run_id}; "
        f"majority vote: {result.majority_accuracy:.3f})."
    )
    if result.autolabel is not None:
        print_autolabel(result.autolabel)
    if result.automation is not None:
        print_automation(result.automation)
    else:
        console.print(
            f"Automation run {result.automation_run} still covers every claim; "
            "nothing decided anew."
        )
    if result.automated_accuracy is not None:
        console.print(
            "Accuracy of the auto-accepted labels against ground truth: "
            f"{result.automated_accuracy:.3f}."
        )
    if result.audit_page is not None:
        console.print(
            f"Automation audit (calibration, rate vs accuracy, bias per slice): {result.audit_page}"
        )
    console.print(f"Database: {result.database}. Try: veritag status --db {result.database}")
    _demo(result.database, folder, serve_ui, port)


def _demo(database: Path, folder: Path, serve_ui: bool, port: int) -> None:
    """Demo accounts and routing on the sample, then (``serve_ui``) the server on 127.0.0.1."""
    from ..demo import setup_demo
    from ..quickstart import PROJECT
    from ..routing import service as routing

    db = f"sqlite:///{database.resolve()}"
    with open_db(db) as store:
        project = project_named(store, PROJECT)
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
            f"{pending} uncertain items are routed to tutors "
            "(another label is asked for below 99% sure)."
        )
        if not serve_ui:
            console.print(f"Serve the UI with: veritag serve --db {db}")
            return
        console.print(
            f"Open http://127.0.0.1:{port}/login and log in as tutor to label "
            "(Ctrl+C stops the server)."
        )
        _run_server(store, "127.0.0.1", port)


def _run_server(store: Store, host: str, port: int, log_level: str = "warning") -> None:
    import uvicorn

    from ..server import create_app

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
    with open_db(db) as store:  # migrates the database once, before any worker starts
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
