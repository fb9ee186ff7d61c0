"""Routing set up and looked at: ``veritag tutor``, ``veritag route set|show|best`` and the
replay ``veritag simulate``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import VeritagError
from ..limits import MAX_SEED
from ._common import Db, ProjectName, app, cli_actor, console, open_db, project_named

if TYPE_CHECKING:
    from ..routing.service import RoutingStatus


@app.command()
def tutor(
    project: ProjectName,
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
    from ..routing import service as routing

    with open_db(db) as store:
        proj = project_named(store, project)
        known = {t.name for t in routing.list_tutors(store, proj)}
        if name in known and active is not None:
            profile = routing.set_tutor_active(store, proj, name, active, actor=cli_actor())
        else:
            profile = routing.add_tutor(
                store,
                proj,
                name,
                domains=_split(domains),
                cost=cost,
                active=True if active is None else active,
                actor=cli_actor(),
            )
    state = "active" if profile.active else "inactive"
    console.print(
        f"Tutor {escape(profile.name)} of {escape(project)}: {state}, "
        f"cost {profile.cost:g} per label, "
        f"domains {', '.join(profile.domains) or '(none declared)'}."
    )


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


route_app = typer.Typer(
    help="A project's routing: change its settings, see where it stands, or rank its tutors.",
    no_args_is_help=True,
)
app.add_typer(route_app, name="route")


@route_app.command("set")
def route_set(
    project: ProjectName,
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
    as_json: Annotated[bool, typer.Option("--json", help="Print where it stands as JSON")] = False,
    db: Db = None,
) -> None:
    """Change the routing settings given, then show where the project stands (as route show)."""
    from ..routing import service as routing

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
    changes = {k: v for k, v in given.items() if v is not None}
    if not changes:
        raise VeritagError(
            "give at least one setting to change (--target, --max-labels, --min-labels, "
            "--gold-rate, --budget, --lease-seconds, --domains, --domain-field); "
            "'veritag route show' shows them"
        )
    with open_db(db) as store:
        proj = project_named(store, project)
        routing.configure(store, proj, actor=cli_actor(), **changes)
        status = routing.routing_status(store, proj)
    _print_status(project, status, as_json)


@route_app.command("show")
def route_show(
    project: ProjectName,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    db: Db = None,
) -> None:
    """Show a project's routing: settings, items done, budget left, each tutor's skill."""
    from ..routing import service as routing

    with open_db(db) as store:
        proj = project_named(store, project)
        status = routing.routing_status(store, proj)
    _print_status(project, status, as_json)


@route_app.command("best")
def route_best(
    project: ProjectName,
    item: Annotated[str, typer.Argument(help="Item id")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    db: Db = None,
) -> None:
    """Rank the tutors who should label an item next (push): expected gain per unit of cost."""
    from ..routing import service as routing

    with open_db(db) as store:
        ranked = routing.best_tutors(store, project_named(store, project), item, k=10)
    if as_json:
        console.print_json(json.dumps([dataclasses.asdict(r) for r in ranked]))
        return
    table = Table(title=f"Who should label {escape(item)} next")
    for column in ("tutor", "expected gain", "cost", "gain per cost"):
        table.add_column(column, justify="left" if column == "tutor" else "right")
    for r in ranked:
        table.add_row(escape(r.tutor), f"{r.gain:.4f}", f"{r.cost:g}", f"{r.score:.4f}")
    console.print(table)


def _print_status(project: str, status: RoutingStatus, as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(dataclasses.asdict(status), default=str))
        return
    st, left = (
        status.settings,
        "unlimited" if status.budget_left is None else f"{status.budget_left:g}",
    )
    console.print(
        f"Routing of {escape(project)}: target {st.target}, "
        f"{st.min_labels}-{st.max_labels} labels per item, gold rate {st.gold_rate}, "
        f"leases {st.lease_seconds} s, domains {', '.join(st.domains)}."
    )
    console.print(
        f"{status.done} of {status.items} items done, {status.pending} pending, "
        f"{status.in_flight} leased; {status.labels_spent} labels spent ({status.spent:g} units, "
        f"{status.reserved:g} reserved), budget left {left}."
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
        float | None,
        typer.Option(
            help="Posterior at which an item needs no more labels [default: a project's, 0.95]"
        ),
    ] = None,
    max_labels: Annotated[
        int | None,
        typer.Option("--max-labels", help="Most human labels per item [default: a project's, 5]"),
    ] = None,
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
    """Replay routing on a real crowd: accuracy and human labels, against asking everyone."""
    from ..routing import RoutingConfig, simulate_routing

    try:
        given = {"target": target, "max_labels": max_labels, "budget": budget}
        config = RoutingConfig(**{k: v for k, v in given.items() if v is not None})
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
        from ..routing.plot import plot_result

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
