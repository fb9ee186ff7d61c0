"""A tutor's work from the command line: ``veritag work next|submit|release``.

A pairwise (or arena) lease shows its two responses as left and right, in the order the web page
shows them and without the models' names, and takes left, right or tie back
(``routing.pairwise``), so the command line and the web speak the same way.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated

import typer
from rich.markup import escape

from ._common import Db, ProjectName, app, console, open_db, project_named

work_app = typer.Typer(
    help="A tutor's work: lease the next item to label, answer a lease, or give one back.",
    no_args_is_help=True,
)
app.add_typer(work_app, name="work")

Tutor = Annotated[str, typer.Option("--tutor", help="The tutor asking for work or answering")]
Lease = Annotated[int, typer.Argument(help="Lease id (from 'veritag work next')")]


@work_app.command("next")
def work_next(
    project: ProjectName,
    tutor_name: Tutor,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    db: Db = None,
) -> None:
    """Lease the next item the tutor should label (pull); a tutor's open lease is resumed.

    A pair shows its responses as left and right, without the models' names, as the web does.
    """
    from ..routing import pairwise
    from ..routing import service as routing
    from ..schema import PairwiseSchema
    from ..store.queries import project_schema

    with open_db(db) as store:
        proj = project_named(store, project)
        lease = routing.request_work(store, proj, tutor_name)
    if lease is None:
        console.print(
            f"Nothing to label for {escape(tutor_name)}: every item is done or leased, or the "
            "budget cannot pay for another label."
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
    gold = ", gold check" if lease.is_gold else ""
    console.print(
        f"Lease {lease.id} for {escape(tutor_name)} until "
        f"{lease.expires_at:%Y-%m-%d %H:%M:%S} UTC: {item} ({escape(lease.domain)}{gold})."
    )
    if lease.text and "pair" not in shown:
        console.print(escape(lease.text))
    for key, value in (shown.get("pair") or shown["data"] or {}).items():
        console.print(f"{escape(str(key))}: {escape(str(value))}")
    console.print(
        f"Answer with: veritag work submit {escape(project)} {lease.id} {escape(answer)} "
        f"--tutor {escape(tutor_name)}"
    )


@work_app.command("submit")
def work_submit(
    project: ProjectName,
    lease: Lease,
    label: Annotated[
        str,
        typer.Argument(help="The answer: a label of the project (left, right or tie for a pair)"),
    ],
    tutor_name: Tutor,
    db: Db = None,
) -> None:
    """Answer a lease with a label; the answer is stored as the tutor's claim."""
    from ..routing import service as routing

    with open_db(db) as store:
        claim = routing.submit(store, project_named(store, project), lease, label, tutor=tutor_name)
    console.print(f"Lease {lease} answered: claim {claim}.")


@work_app.command("release")
def work_release(project: ProjectName, lease: Lease, tutor_name: Tutor, db: Db = None) -> None:
    """Give a lease back unanswered, so the item can go to another tutor."""
    from ..routing import service as routing

    with open_db(db) as store:
        routing.release(store, project_named(store, project), lease, tutor=tutor_name)
    console.print(f"Lease {lease} given back.")
