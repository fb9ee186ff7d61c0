"""The quality report of a stored project (issue 16): it reads the project's stored truth run
through ``resolve.current_truth`` and is built on the claims that run was fitted on; a reader
(``refit="never"``) never fits and says how stale the run is, ``veritag report`` fits first."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner
from vt_helpers import LABELS, TEXTS

from veritag import cli
from veritag.report import build_report, render_html
from veritag.report.project import project_report
from veritag.resolve import ENGINE_PARAMS, NotResolved, load_project_claims, resolve_and_store
from veritag.store import Project, Store
from veritag.store.engine import open_store
from veritag.store.models import Claim, Gold, Item, Source, TruthRun
from veritag.store.queries import get_project, source_names
from veritag.truth import fit_truth


def _cli(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(cli.app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return " ".join(result.stdout.split())


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled RTE sample (800 items, 8000 claims), imported once, never resolved."""
    path = tmp_path_factory.mktemp("sample") / "rte.db"
    runner, db = CliRunner(), ["--db", str(path)]
    _cli(runner, "init", "rte", "--task", "classification", "--labels", "0,1", *db)
    _cli(runner, "import", "rte", str(TEXTS), "--meta", "rte_subtask", *db)
    _cli(runner, "import", "rte", str(LABELS), *db)
    return path


@pytest.fixture
def db(sample_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("VERITAG_DATABASE_URL", raising=False)
    path = tmp_path / "rte.db"
    shutil.copyfile(sample_db, path)
    return path


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{db}")
    yield opened
    opened.close()


def _project(store: Store) -> Project:
    with store.session() as session:
        project = get_project(session, name="rte")
        session.expunge(project)
    return project


def _runs(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(TruthRun)))


def _add_claim(store: Store, project: Project, value: str = "1") -> None:
    """One more human claim, from a new worker, on the first item."""
    with store.session() as session:
        item = session.scalar(sa.select(Item.id).where(Item.project_id == project.id).limit(1))
        source = Source(project_id=project.id, kind="human", name="late-worker")
        session.add(source)
        session.flush()
        session.add(Claim(project_id=project.id, item_id=item, source_id=source.id, value=value))


def test_a_report_never_fits_unless_asked(store: Store) -> None:
    project = _project(store)
    with pytest.raises(NotResolved):
        project_report(store, project)
    assert _runs(store) == 0
    report, warned = project_report(store, project, refit="stale")
    assert _runs(store) == 1 and warned == []
    assert report.truth == {"run": 1, "stale": False, "claims_since": 0, "refitted": True}
    again, _ = project_report(store, project)
    assert again.truth == {**report.truth, "refitted": False} and _runs(store) == 1


def test_the_stored_run_gives_the_report_a_fresh_fit_gives(store: Store) -> None:
    project = _project(store)
    resolve_and_store(store, project, "ds")
    stored, _ = project_report(store, project, domain="rte_subtask", top=7)
    with store.engine.connect() as conn:
        pc = load_project_claims(conn, project)
        names = source_names(conn, ids=pc.source_ids.tolist())
    fresh = build_report(
        pc.claims(),
        fit_truth(
            pc.claims(), "ds", gold_items=pc.gold[0], gold_labels=pc.gold[1], **ENGINE_PARAMS
        ),
        source_names=[names[int(s)][1] for s in pc.source_ids],
        source_kinds=[names[int(s)][0] for s in pc.source_ids],
        class_names=["0", "1"],
        item_ids=[str(i) for i in range(pc.item_ids.size)],
    )
    assert stored.summary.prior == pytest.approx(fresh.summary.prior, abs=1e-9)
    assert stored.summary.log_likelihood == pytest.approx(fresh.summary.log_likelihood)
    assert [(s.name, s.accuracy, s.agreement) for s in stored.sources] == [
        (s.name, pytest.approx(s.accuracy), pytest.approx(s.agreement)) for s in fresh.sources
    ]
    assert [c.quality for c in stored.suspect_claims] == pytest.approx(
        [c.quality for c in fresh.suspect_claims[:7]]
    )
    assert stored.agreement == fresh.agreement


def _add_gold(store: Store, project: Project, item: int | None = None) -> None:
    """A gold label on ``item``, or on a new item that has nothing else."""
    with store.session() as session:
        if item is None:
            new = Item(project_id=project.id, external_id="gold-only", text="gold only")
            session.add(new)
            session.flush()
            item = new.id
        session.add(Gold(project_id=project.id, item_id=item, value="0"))


def test_a_stale_run_is_reported_on_its_own_claims_and_says_so(store: Store) -> None:
    project = _project(store)
    with store.engine.connect() as conn:
        first = conn.scalar(sa.select(sa.func.min(Item.id)).where(Item.project_id == project.id))
    _add_gold(store, project, first)
    resolve_and_store(store, project, "ds")
    fresh, _ = project_report(store, project)
    _add_claim(store, project)
    _add_gold(store, project)  # a new item, after the run: not one of the run's items
    report, warned = project_report(store, project)
    assert _runs(store) == 1
    assert report.truth == {"run": 1, "stale": True, "claims_since": 1, "refitted": False}
    assert report.summary == fresh.summary  # the new claim and gold label are not in it
    assert warned == [
        "these labels come from truth run 1, which misses 1 claim added after it; resolve the "
        "project again (`veritag report` and `veritag resolve` do) to include them"
    ]
    page = render_html(report)
    assert "which misses 1 claim added after it" in page and "stored run 1" in page
    assert "which misses" not in render_html(fresh)
    assert report.to_dict()["truth"]["claims_since"] == 1
    refitted, warned = project_report(store, project, refit="stale")
    assert warned == [] and refitted.truth == {
        "run": 2,
        "stale": False,
        "claims_since": 0,
        "refitted": True,
    }
    assert refitted.summary.claims == fresh.summary.claims + 1
    assert refitted.summary.items == fresh.summary.items + 1 == 801


def test_a_method_reads_its_own_run(store: Store) -> None:
    project = _project(store)
    resolve_and_store(store, project, "ds")
    with pytest.raises(NotResolved, match="no stored mv run"):
        project_report(store, project, method="mv")
    assert project_report(store, project)[0].summary.method == "ds"  # the newest run, any method
    mv, _ = project_report(store, project, method="mv", refit="stale")
    assert mv.summary.method == "mv" and mv.truth["run"] == 2
    assert project_report(store, project)[0].truth["run"] == 2
    assert project_report(store, project, method="ds")[0].truth["run"] == 1


def test_the_command_fits_when_a_claim_came(db: Path, store: Store, tmp_path: Path) -> None:
    runner, args = (
        CliRunner(),
        ["report", "rte", "--db", str(db), "--json", str(tmp_path / "r.json")],
    )
    assert "Resolved the project again and stored it as run 1" in _cli(runner, *args)
    data = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert data["truth"] == {"run": 1, "stale": False, "claims_since": 0, "refitted": True}
    out = _cli(runner, *args)
    assert "Resolved" not in out and "stored run 1" in out and _runs(store) == 1
    _add_claim(store, _project(store))
    assert "stored it as run 2" in _cli(runner, *args)
    data = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert data["summary"]["claims"] == 8001 and data["truth"]["run"] == 2
