"""Automation on a project: audit first, then the model's labels above a proven threshold."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner
from vt_helpers import make_project, spam_corpus, write_csv

from veritag import cli
from veritag.automation.autolabel import autolabel_project
from veritag.automation.project import (
    audit_keys,
    automate_project,
    latest_automation_run,
    queue_rows,
)
from veritag.errors import VeritagError
from veritag.io import ColumnMap, import_file
from veritag.store import Store
from veritag.store.models import AutomationItem, AutomationRun, Item, Project

N = 1000


def _project(store: Store, tmp_path: Path) -> tuple[Project, dict[str, str]]:
    project = make_project(store, "spam", {"type": "classification", "labels": ["ham", "spam"]})
    texts, labels = spam_corpus(N, seed=3)
    rows = [(f"t{i}", t, "a" if i % 2 else "b") for i, t in enumerate(texts)]
    import_file(
        store,
        project,
        write_csv(tmp_path / "items.csv", ["id", "text", "channel"], rows),
        ColumnMap(meta=["channel"]),
    )
    return project, {f"t{i}": str(y) for i, y in enumerate(labels)}


def _label(
    store: Store, project: Project, tmp_path: Path, ids: list[str], truth: dict[str, str], name: str
) -> None:
    import_file(
        store,
        project,
        write_csv(
            tmp_path / name, ["task", "worker", "label"], [(i, "tutor", truth[i]) for i in ids]
        ),
    )


def _decisions(store: Store, run_id: int) -> dict[str, tuple[str, str | None]]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(Item.external_id, AutomationItem.decision, AutomationItem.label)
            .join(Item, Item.id == AutomationItem.item_id)
            .where(AutomationItem.run_id == run_id)
        ).all()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_audit_first_then_automate_meets_the_target(store: Store, tmp_path: Path) -> None:
    project, truth = _project(store, tmp_path)
    first = automate_project(store, project, target=0.95, delta=0.05)
    assert first.source is None and first.n_auto == 0 and first.audit_rate == pytest.approx(0.2)
    assert 150 <= first.n_audit <= 250 and first.n_audit_labeled == 0
    audit = [row[0] for row in queue_rows(store, project, first.run_id)]
    assert len(audit) == first.n_audit == first.human_todo

    _label(store, project, tmp_path, audit, truth, "audit.csv")
    trained = autolabel_project(store, project, labeler="tfidf")
    assert trained.trained == len(audit) and trained.predicted == N - len(audit)
    result = automate_project(store, project, target=0.95, delta=0.05)
    assert (
        result.audit_rate == first.audit_rate and result.n_audit == first.n_audit
    )  # the same audit
    assert result.n_audit_labeled == result.n_audit
    assert result.automation_rate > 0.5
    (only,) = result.slices
    assert only.threshold is not None and only.bound is not None and only.bound >= 0.95
    decisions = _decisions(store, result.run_id)
    assert len(decisions) == N
    assert all(decisions[i][0] == "audit" for i in audit)
    auto = [i for i, (d, _) in decisions.items() if d == "auto"]
    assert len(auto) == result.n_auto
    realised = np.mean([decisions[i][1] == truth[i] for i in auto])
    assert realised >= 0.95
    todo = queue_rows(store, project, result.run_id)
    assert len(todo) == result.human_todo == N - len(audit) - len(auto)
    assert {r[1] for r in todo} == {"human"}
    confidences = [r[2] for r in todo]
    assert confidences == sorted(confidences)  # least confident first
    assert max(confidences) < only.threshold

    with store.engine.connect() as conn:
        assert latest_automation_run(conn, project.id).id == result.run_id
    with pytest.raises(DBAPIError), store.engine.begin() as conn:
        conn.execute(sa.update(AutomationRun).values(n_auto=0))
    with pytest.raises(DBAPIError), store.engine.begin() as conn:
        conn.execute(sa.delete(AutomationItem))


def test_a_slice_with_unlabeled_audit_items_is_not_automated(
    sqlite_store: Store, tmp_path: Path
) -> None:
    store = sqlite_store
    project, truth = _project(store, tmp_path)
    first = automate_project(store, project, target=0.9, delta=0.1, slice_field="channel")
    audit = [row[0] for row in queue_rows(store, project, first.run_id)]
    with store.engine.connect() as conn:
        channel = dict(
            conn.execute(sa.select(Item.external_id, Item.meta["channel"].as_string())).all()
        )
    labeled = [i for i in audit if channel[i] == "a"] + [i for i in audit if channel[i] == "b"][:5]
    _label(store, project, tmp_path, labeled, truth, "audit.csv")
    autolabel_project(store, project, labeler="tfidf")
    result = automate_project(store, project, target=0.9, delta=0.1, slice_field="channel")
    by_name = {s.name: s for s in result.slices}
    assert by_name["a"].n_auto > 0 and by_name["a"].audit_waiting == 0
    assert (
        by_name["b"].n_auto == 0
        and by_name["b"].threshold is None
        and by_name["b"].audit_waiting > 0
    )
    assert result.n_audit - result.n_audit_labeled == by_name["b"].audit_waiting


def test_audit_keys_are_uniform_and_stable() -> None:
    ids = np.arange(1, 200_001, dtype=np.int64)
    keys = audit_keys(7, ids)
    assert keys.min() >= 0.0 and keys.max() < 1.0
    counts = np.histogram(keys, bins=10, range=(0, 1))[0]
    assert np.all(np.abs(counts - 20_000) < 5 * np.sqrt(20_000))
    np.testing.assert_array_equal(keys, audit_keys(7, ids))
    assert not np.array_equal(keys, audit_keys(8, ids))
    # a higher rate only adds items
    assert np.all((keys < 0.1) <= (keys < 0.2))


def test_errors(sqlite_store: Store, tmp_path: Path) -> None:
    project, _ = _project(sqlite_store, tmp_path)
    with pytest.raises(VeritagError, match="target"):
        automate_project(sqlite_store, project, target=1.0, delta=0.05)
    with pytest.raises(VeritagError, match="audit-rate"):
        automate_project(sqlite_store, project, target=0.9, delta=0.05, audit_rate=0.0)
    with pytest.raises(VeritagError, match="no model source named"):
        automate_project(sqlite_store, project, target=0.9, delta=0.05, model="gpt")
    with pytest.raises(VeritagError, match="no item of project .* has the metadata field 'chanel'"):
        automate_project(sqlite_store, project, target=0.9, delta=0.05, slice_field="chanel")
    free = make_project(sqlite_store, "free", {"type": "free_text"})
    with pytest.raises(VeritagError, match="categorical"):
        automate_project(sqlite_store, free, target=0.9, delta=0.05)


def test_cli_flow(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VERITAG_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    texts, labels = spam_corpus(600, seed=5)
    truth = {f"t{i}": str(y) for i, y in enumerate(labels)}
    write_csv(tmp_path / "items.csv", ["id", "text"], [(f"t{i}", t) for i, t in enumerate(texts)])

    def run(*args: str) -> str:
        result = runner.invoke(cli.app, list(args))
        assert result.exit_code == 0, (result.output, result.exception)
        return " ".join(result.stdout.split())

    run("init", "spam", "--task", "classification", "--labels", "ham,spam")
    run("import", "spam", "items.csv")
    out = run("automate", "spam", "--queue-out", "audit.csv")
    assert "No model has labeled this project yet" in out
    with (tmp_path / "audit.csv").open() as fh:
        audit = [row["id"] for row in csv.DictReader(fh)]
    assert 150 <= len(audit) <= 260  # a Bernoulli sample at rate 200/600
    write_csv(
        tmp_path / "labels.csv",
        ["task", "worker", "label"],
        [(i, "tutor", truth[i]) for i in audit],
    )
    run("import", "spam", "labels.csv")
    assert f"trained on {len(audit)} items" in run("autolabel", "spam", "--labeler", "tfidf")
    out = run("automate", "spam", "--target", "0.9", "--delta", "0.1", "--queue-out", "todo.csv")
    assert f"{len(audit)} of {len(audit)} audited items labeled" in out
    with (tmp_path / "todo.csv").open() as fh:
        todo = list(csv.DictReader(fh))
    assert (
        todo
        and {r["reason"] for r in todo} == {"human"}
        and not set(audit) & {r["id"] for r in todo}
    )
    bad = runner.invoke(cli.app, ["automate"])
    assert bad.exit_code == 1 and "give a PROJECT" in str(bad.exception)


def test_audit_replays_the_run(
    sqlite_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from veritag.report.automation import build_automation_report
    from veritag.report.project import automation_audit_data

    store = sqlite_store
    project, truth = _project(store, tmp_path)
    with pytest.raises(VeritagError, match="no automation run"):
        automation_audit_data(store, project)
    first = automate_project(store, project, target=0.95, delta=0.05, slice_field="channel")
    with pytest.raises(VeritagError, match="only drew the audit"):
        automation_audit_data(store, project)
    _label(
        store,
        project,
        tmp_path,
        [r[0] for r in queue_rows(store, project, first.run_id)],
        truth,
        "a.csv",
    )
    autolabel_project(store, project, labeler="tfidf")
    result = automate_project(store, project, target=0.95, delta=0.05, slice_field="channel")
    data, current = automation_audit_data(store, project)
    assert current and data.slice_names == ("a", "b") and data.probs.shape == (N, 2)
    assert int(data.audit.sum()) == result.n_audit
    report = build_automation_report(data)
    assert report.summary.automated == result.n_auto
    by_name = {s.name: s for s in result.slices}
    for code, name in enumerate(data.slice_names):
        assert data.thresholds[code] == by_name[name].threshold

    url = str(store.engine.url)
    out = CliRunner().invoke(
        cli.app,
        [
            "audit",
            "spam",
            "--html",
            str(tmp_path / "a.html"),
            "--json",
            str(tmp_path / "a.json"),
            "--db",
            url,
        ],
    )
    assert out.exit_code == 0, (out.output, out.exception)
    page = (tmp_path / "a.html").read_text()
    assert "<svg" in page and "<script" not in page
    import json

    summary = json.loads((tmp_path / "a.json").read_text())["summary"]
    assert summary["automated"] == result.n_auto
    _label(store, project, tmp_path, ["t0", "t1"], truth, "late.csv")
    stale = CliRunner().invoke(cli.app, ["audit", "spam", "--db", url])
    assert stale.exit_code == 0 and "added since this run" in stale.stderr


def test_export_says_which_labels_were_automated(sqlite_store: Store, tmp_path: Path) -> None:
    import json

    from veritag.io import export_project

    store = sqlite_store
    project, truth = _project(store, tmp_path)
    export_project(store, project, tmp_path / "before.jsonl", "jsonl")
    assert "automation" not in json.loads((tmp_path / "before.jsonl").read_text().splitlines()[0])
    first = automate_project(store, project, target=0.95, delta=0.05)
    _label(
        store,
        project,
        tmp_path,
        [r[0] for r in queue_rows(store, project, first.run_id)],
        truth,
        "a.csv",
    )
    autolabel_project(store, project, labeler="tfidf")
    result = automate_project(store, project, target=0.95, delta=0.05)
    decisions = _decisions(store, result.run_id)
    for fmt in ("jsonl", "parquet"):
        export_project(store, project, tmp_path / f"out.{fmt}", fmt)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert {r["id"]: r["automation"] for r in rows} == {i: d for i, (d, _) in decisions.items()}
    auto = [r for r in rows if r["automation"] == "auto"]
    assert len(auto) == result.n_auto and all(r["label_source"] == "model" for r in auto)
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column("automation").to_pylist().count("auto") == result.n_auto
