"""A GET never runs the truth engine and never stores a truth run (issue 16): it reads the newest
stored run and says how stale it is; writes and commands fit."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from server_helpers import World, form_login

from veritag.server import create_app
from veritag.store.models import Claim, PosteriorBlock, Source, TruthRun

READS = [
    "/projects/p/status",
    "/projects/p/dashboard",
    "/projects/p/review/queue",
    "/projects/p/queue",
    "/projects/p/reports/quality",
    "/projects/p/reports/automation",
    "/projects/p/routing",
    "/projects/p/export?format=jsonl",
    "/projects/p/export?format=csv",
]
#: The dashboard's pages and plots (cookie login, not under /api/v1).
PAGES = ["/p/p/dashboard", "/p/p/review", "/p/p/plots/accuracy.svg", "/p/p/plots/confidence.svg"]
#: Every way into the truth engine's fit, by the name modules import it under.
FIT_ENTRY_POINTS = ("fit_truth", "fit_categorical", "resolve_project", "resolve_and_store")
#: Loaded first, so each module holding one of them by name is in ``sys.modules`` to patch.
FIT_MODULES = (
    "veritag.truth",
    "veritag.truth.engine",
    "veritag.resolve.fit",
    "veritag.resolve.project",
    "veritag.resolve.runs",
    "veritag.resolve.current",
    "veritag.report.project",
)


@contextmanager
def _engine_refused(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Within the block every fit entry point, wherever a veritag module bound it by name,
    records its call and raises: a GET that reaches the engine fails loudly."""
    for name in FIT_MODULES:
        importlib.import_module(name)
    calls: list[str] = []

    def refuse(entry: str) -> Callable[..., Any]:
        def fit(*_: Any, **__: Any) -> Any:
            calls.append(entry)
            raise AssertionError(f"a GET ran the truth engine ({entry})")

        return fit

    with monkeypatch.context() as m:
        for name, module in list(sys.modules.items()):
            if name.startswith("veritag"):
                for entry in FIT_ENTRY_POINTS:
                    if entry in vars(module):
                        m.setattr(module, entry, refuse(entry))
        yield calls


def _gets(w: World, monkeypatch: pytest.MonkeyPatch, pages: TestClient) -> None:
    """Every read, with the engine refused: each answers (< 500) and none fits or stores."""
    stored = _runs(w)
    with _engine_refused(monkeypatch) as calls:
        for path in READS:
            r = w.call("ana", "GET", path)
            assert r.status_code < 500, (path, r.text)
            assert _runs(w) == stored, path
        for path in PAGES:
            assert pages.get(path).status_code == 200, path
    assert calls == []


def _runs(w: World) -> tuple[int, int]:
    with w.store.engine.connect() as conn:
        return (
            int(conn.scalar(sa.select(sa.func.count()).select_from(TruthRun))),
            int(conn.scalar(sa.select(sa.func.count()).select_from(PosteriorBlock))),
        )


def _label(w: World, item: str, value: str, worker: str) -> None:
    with w.store.session() as session:
        project_id = session.scalar(
            sa.text("SELECT project_id FROM items WHERE id = :i"), {"i": w.items[item]}
        )
        source = session.scalar(
            sa.select(Source).where(Source.project_id == project_id, Source.name == worker)
        )
        if source is None:
            source = Source(project_id=project_id, kind="human", name=worker)
            session.add(source)
            session.flush()
        session.add(
            Claim(project_id=project_id, item_id=w.items[item], source_id=source.id, value=value)
        )


def test_no_get_writes_a_truth_run(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    w = world
    pages = TestClient(create_app(w.store))
    form_login(pages, "ana")
    for worker, value in (("w1", "yes"), ("w2", "no"), ("w3", "yes")):
        _label(w, "plain", value, worker)
    _gets(w, monkeypatch, pages)  # a project never resolved: reads answer, nothing is fitted
    assert _runs(w) == (0, 0)
    assert w.call("ana", "GET", "/projects/p/export?format=jsonl").status_code == 409
    assert w.call("ana", "GET", "/projects/p/reports/quality").status_code == 409
    assert "no resolved labels" in pages.get("/p/p/plots/accuracy.svg").text
    queue = w.call("ana", "GET", "/projects/p/review/queue").json()
    assert queue["truth"] == {"run": None, "stale": True, "claims_since": 0, "refitted": False}
    assert queue["total"] >= 1  # the tutors' disagreement shows without any run
    w.resolve("ana", method="ds")
    stored = _runs(w)
    assert stored[0] == 1
    _label(w, "html", "no", "w1")  # a claim after the run
    _gets(w, monkeypatch, pages)
    assert _runs(w) == stored
    export = w.call("ana", "GET", "/projects/p/export?format=jsonl")
    assert export.status_code == 200 and export.headers["X-Veritag-Claims-Since"] == "1"
    assert w.call("ana", "GET", "/projects/p/review/queue").json()["truth"]["claims_since"] == 1


def test_the_quality_report_reads_the_stored_run_and_says_what_it_misses(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world
    for worker, value in (("w1", "yes"), ("w2", "no"), ("w3", "yes")):
        _label(w, "plain", value, worker)
    run = w.resolve("ana", method="ds")["run"]
    report = w.call("ana", "GET", "/projects/p/reports/quality?format=json").json()
    assert report["warnings"] == []
    assert report["report"]["truth"] == {
        "run": run,
        "stale": False,
        "claims_since": 0,
        "refitted": False,
    }
    _label(w, "html", "no", "w1")
    _label(w, "html", "no", "w2")
    with _engine_refused(monkeypatch):
        stale = w.call("ana", "GET", "/projects/p/reports/quality?format=json").json()
        page = w.call("ana", "GET", "/projects/p/reports/quality").text
    truth = stale["report"]["truth"]
    assert truth == {"run": run, "stale": True, "claims_since": 2, "refitted": False}
    # Built on the claims the run was fitted on: the two new claims are not counted.
    assert stale["report"]["summary"]["claims"] == report["report"]["summary"]["claims"] == 3
    assert len(stale["warnings"]) == 1 and "misses 2 claims" in stale["warnings"][0]
    assert f"truth run {run}, which misses 2 claims" in page
    glad = w.call("ana", "GET", "/projects/p/reports/quality?format=json&method=glad")
    assert glad.status_code == 409 and "no stored glad run" in glad.text
