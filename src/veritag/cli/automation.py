"""Model labels accepted under a proven accuracy: ``veritag autolabel``, ``automate`` and
``audit``."""

from __future__ import annotations

import csv
import dataclasses
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import VeritagError
from ..limits import MAX_SEED
from ._common import Db, app, console, err, open_db, project_named, write_pages

if TYPE_CHECKING:
    from ..automation.autolabel import AutolabelResult
    from ..automation.project import AutomationResult
    from ..store import Project, Store


@app.command()
def autolabel(
    project: Annotated[
        str, typer.Argument(help="Project name (single-label categorical task types)")
    ],
    labeler: Annotated[
        str,
        typer.Option(
            help="Labeler to train: minilm (bundled sentence embeddings + logistic regression) "
            "or tfidf"
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
    engine: Annotated[
        str,
        typer.Option(
            help="Where to label: local, or ray (a Ray cluster started here, or the one "
            "RAY_ADDRESS names) or ray:ADDRESS (join the cluster at ADDRESS)"
        ),
    ] = "local",
    actors: Annotated[
        int | None,
        typer.Option(help="With --engine ray: labeling actors [default: the cluster's CPUs]"),
    ] = None,
    items_parquet: Annotated[
        Path | None,
        typer.Option(
            help="With --engine ray: read the items to label from this Parquet file, folder or "
            "glob (as `export --format parquet-dataset` writes it) instead of the database"
        ),
    ] = None,
    db: Db = None,
) -> None:
    """Train a model on the human labels and store its probabilities for every item with text."""
    from ..automation.autolabel import autolabel_project
    from ..scale import parse_engine

    kind, address = parse_engine(engine)
    if kind == "local" and actors is not None:
        raise VeritagError("--actors is for --engine ray")
    if kind == "local" and items_parquet is not None:
        raise VeritagError("--items-parquet is for --engine ray")
    with open_db(db) as store:
        proj = project_named(store, project)
        if kind == "ray":
            result = _autolabel_on_ray(
                store,
                proj,
                address,
                labeler=labeler,
                fields=field or (),
                folds=folds,
                seed=seed,
                actors=actors,
                items_parquet=items_parquet,
            )
        else:
            with console.status(f"training {labeler} and labeling {project}..."):
                result = autolabel_project(
                    store, proj, labeler=labeler, fields=field or (), folds=folds, seed=seed
                )
    print_autolabel(result)


def _autolabel_on_ray(
    store: Store, project: Project, address: str | None, **options: Any
) -> AutolabelResult:
    """``autolabel`` on Ray, with a bar of the claims written back, and a word on the Parquet
    rows that name no item of the project."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from ..scale import autolabel_on_ray, ray_session

    unknown: list[str] = []  # the first few, to name
    skipped = 0

    def note(external: list[str]) -> None:
        nonlocal skipped
        skipped += len(external)
        unknown.extend(external[: 3 - len(unknown)])

    with (
        ray_session(address) as ray,
        Progress(
            "{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        ) as bar,
    ):
        task = bar.add_task(f"training, then labeling {project.name} on Ray", total=None)
        result = autolabel_on_ray(
            store,
            project,
            ray,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            unknown=note,
            **options,
        )
    if skipped:
        shown = ", ".join(repr(u) for u in unknown)
        err.print(
            f"Skipped {skipped} Parquet rows whose id names no item of {project.name!r} "
            f"(e.g. {escape(shown)})."
        )
    return result


def print_autolabel(result: AutolabelResult) -> None:
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
            help="Item metadata field: one threshold per value, and a slice without enough "
            "audit evidence is not automated",
        ),
    ] = None,
    audit_rate: Annotated[
        float | None,
        typer.Option(
            "--audit-rate",
            help="Share of items in the random human audit [default: the project's last rate, "
            "else 10% and at least 200 items]",
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
            help="TEXTS.csv GT.csv: replay automation on a labeled text file "
            "(task,text and task,label)",
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
    """Accept model labels above a threshold an audit proves meets --target (1 - --delta sure)."""
    if simulate is not None:
        if project is not None:
            raise VeritagError("give either a PROJECT or --simulate TEXTS.csv GT.csv, not both")
        _simulate(simulate, target, delta, audit_size, labeler, seed, as_json)
        return
    if project is None:
        raise VeritagError(
            "give a PROJECT to automate, or --simulate TEXTS.csv GT.csv to replay a labeled file"
        )
    from ..automation.project import automate_project, queue_rows

    with open_db(db) as store:
        proj = project_named(store, project)
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
    print_automation(result)
    if queue_out is not None:
        console.print(
            f"Wrote the {len(queue)} items that need a human to {escape(str(queue_out))}."
        )


def _simulate(
    files: tuple[Path, Path],
    target: float,
    delta: float,
    audit_size: int | None,
    labeler: str,
    seed: int,
    as_json: bool,
) -> None:
    from ..automation.replay import simulate_files

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


def _write_queue(path: Path, rows: list[tuple[str, str, float, str | None]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "reason", "model_confidence", "slice"])
        writer.writerows((i, reason, f"{conf:.6f}", s or "") for i, reason, conf, s in rows)
    tmp.replace(path)


def print_automation(result: AutomationResult) -> None:
    if result.source is None:
        console.print(
            "No model has labeled this project yet, so nothing is automated. "
            f"Run {result.run_id} drew the audit: {result.n_audit} of {result.n_items} items "
            f"(rate {result.audit_rate:.3f}), "
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
            "Nothing automated: in no slice do the audited items prove the model reaches "
            f"{result.target} (1 - {result.delta} sure), so every item stays with humans. "
            "A better model, or more audit "
            "evidence, moves the threshold; `veritag audit` shows how far off it is."
        )
    waiting = result.n_audit - result.n_audit_labeled
    if waiting:
        console.print(
            f"[yellow]{waiting} audited items await a human label[/]; "
            "slices with any are not automated "
            "until they are labeled (import the labels, then run automate again)."
        )
    console.print(f"{result.human_todo} items still need a human label (--queue-out writes them).")


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
    """Audit an automation run: calibration, rate vs accuracy, errors and bias per slice."""
    from ..report.automation import (
        build_automation_report,
        render_automation_html,
        render_automation_text,
    )
    from ..report.project import automation_audit_data

    with open_db(db) as store:
        proj = project_named(store, project)
        data, current = automation_audit_data(store, proj, run_id=run)
    built = build_automation_report(data)
    if not current:
        err.print(
            "Warning: claims or gold labels were added since this run; the audit replays the run's "
            "thresholds on the current labels. Run `veritag automate` again to decide anew."
        )
    render_automation_text(built, console)
    write_pages(
        html,
        lambda: render_automation_html(built, title=f"veritag automation audit: {project}"),
        as_json,
        built.to_dict,
    )
