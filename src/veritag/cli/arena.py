"""Arena projects: ``veritag arena import|battles|leaderboard``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..limits import MAX_SEED
from ._common import Db, InputFormat, app, console, open_db, project_named

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
            help="Responses: prompt_id, prompt, model, response[, domain] per row "
            "(.jsonl, .csv, .parquet)"
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
    format: InputFormat = None,
    db: Db = None,
) -> None:
    """Import model responses as battles, one per prompt and pair of its models (idempotent)."""
    from ..arena import import_responses

    with open_db(db) as store:
        result = import_responses(
            store, project_named(store, project), file, max_pairs=max_pairs, seed=seed, fmt=format
        )
    console.print(
        f"{escape(str(file))}: {result.rows} rows, {result.prompts} prompts, "
        f"{result.models} models: "
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
    format: InputFormat = None,
    db: Db = None,
) -> None:
    """Import existing battles (winner: model_a, model_b, tie or both_bad) as votes (idempotent)."""
    from ..arena import import_battles

    with open_db(db) as store:
        result = import_battles(
            store, project_named(store, project), file, source_name=source, seed=seed, fmt=format
        )
    console.print(
        f"{escape(str(file))}: {result.rows} rows: {result.items_added} battles added, "
        f"{result.claims_added} votes added" + (" (nothing new)" if result.added_nothing else "")
    )


def _interval_bar(
    lower: float | None, rating: float, upper: float | None, lo: float, hi: float, width: int = 30
) -> str:
    """The interval as a text bar on the board's common axis: ``─`` the interval, ``●`` the
    rating."""
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
    from ..arena import project_leaderboard

    with open_db(db) as store:
        board = project_leaderboard(
            store,
            project_named(store, project),
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
