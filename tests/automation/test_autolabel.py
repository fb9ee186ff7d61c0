"""The auto-labeler: out-of-fold model claims for labeled items, predictions for the rest."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner
from vt_helpers import LABELS, TEXTS, counts, make_project, spam_corpus, write_csv

from veritag import cli
from veritag.automation.autolabel import autolabel_project
from veritag.errors import VeritagError
from veritag.io import import_file
from veritag.resolve import resolve_and_store
from veritag.store import Store
from veritag.store.models import Claim, Project, Source


def model_claims(store: Store, project: Project) -> list[tuple[int, list[float], str]]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(Claim.item_id, Claim.probs, Source.name, Source.version)
            .join(Source, Source.id == Claim.source_id)
            .where(Claim.project_id == project.id, Source.kind == "model")
        ).all()
    return [
        (r[0], r[1] if isinstance(r[1], list) else json.loads(r[1]), f"{r[2]}@{r[3]}") for r in rows
    ]


def test_autolabel_rte_is_idempotent_and_resolvable(store: Store, rte: Project) -> None:
    result = autolabel_project(store, rte, labeler="tfidf", folds=3)
    assert (result.trained, result.predicted, result.claims_added) == (800, 0, 800)
    assert result.source == "tfidf-logreg@1"
    assert 0.0 <= result.accuracy <= 1.0
    rows = model_claims(store, rte)
    assert len(rows) == 800 and {r[2] for r in rows} == {"tfidf-logreg@1"}
    probs = np.array([r[1] for r in rows])
    assert probs.shape == (800, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert counts(store, rte)["claims"] == 8800

    again = autolabel_project(store, rte, labeler="tfidf", folds=3)
    assert (again.trained, again.claims_added) == (800, 0)
    assert counts(store, rte)["claims"] == 8800

    resolution = resolve_and_store(store, rte)
    assert resolution.item_ids.size == 800
    with store.engine.connect() as conn:
        model_id = conn.scalar(
            sa.select(Source.id).where(Source.project_id == rte.id, Source.kind == "model")
        )
    stats = resolution.sources
    assert stats is not None and model_id in stats.source_ids.tolist()
    accuracy = stats.accuracy[stats.source_ids.tolist().index(model_id)]
    assert not math.isnan(accuracy) and 0.0 <= accuracy <= 1.0


def _spam_project(store: Store, tmp_path: Path, labeled: int, n: int = 60) -> Project:
    project = make_project(store, "spam", {"type": "classification", "labels": ["ham", "spam"]})
    texts, labels = spam_corpus(n, seed=1)
    import_file(
        store,
        project,
        write_csv(
            tmp_path / "items.csv", ["id", "text"], [(f"t{i}", t) for i, t in enumerate(texts)]
        ),
    )
    import_file(
        store,
        project,
        write_csv(
            tmp_path / "labels.csv",
            ["task", "worker", "label"],
            [(f"t{i}", "ann", labels[i]) for i in range(labeled)],
        ),
    )
    return project


def test_unlabeled_items_get_predictions(store: Store, tmp_path: Path) -> None:
    project = _spam_project(store, tmp_path, labeled=40)
    result = autolabel_project(store, project, labeler="tfidf")
    assert (result.trained, result.predicted, result.claims_added) == (40, 20, 60)
    assert result.accuracy >= 0.8
    rows = model_claims(store, project)
    assert len({r[0] for r in rows}) == 60
    np.testing.assert_allclose(np.array([r[1] for r in rows]).sum(axis=1), 1.0)
    # items labeled only by the model stay out of training on a second run
    again = autolabel_project(store, project, labeler="tfidf")
    assert (again.trained, again.predicted, again.claims_added) == (40, 20, 0)


def test_new_human_labels_retrain_and_replace_the_models_claims(
    store: Store, tmp_path: Path
) -> None:
    project = _spam_project(store, tmp_path, labeled=30)
    first = autolabel_project(store, project, labeler="tfidf")
    _, labels = spam_corpus(60, seed=1)
    import_file(
        store,
        project,
        write_csv(
            tmp_path / "more.csv",
            ["task", "worker", "label"],
            [(f"t{i}", "ann", labels[i]) for i in range(30, 50)],
        ),
    )
    second = autolabel_project(store, project, labeler="tfidf")
    assert (first.trained, second.trained, second.predicted, second.claims_added) == (
        30,
        50,
        10,
        60,
    )
    assert len(model_claims(store, project)) == 120  # history kept
    resolution = resolve_and_store(store, project)
    assert int(resolution.n_claims.sum()) == 50 + 60  # one model claim per item counts: the newest
    unlabeled = resolution.basis == 1  # items only the model speaks for
    assert unlabeled.sum() == 10


def test_errors(store: Store, tmp_path: Path) -> None:
    free = make_project(store, "free", {"type": "free_text"})
    with pytest.raises(VeritagError, match="categorical"):
        autolabel_project(store, free, labeler="tfidf")
    few = _spam_project(store, tmp_path, labeled=3)
    with pytest.raises(VeritagError, match="at least 5"):
        autolabel_project(store, few, labeler="tfidf")
    with pytest.raises(VeritagError, match="unknown labeler"):
        autolabel_project(store, few, labeler="nope")


def test_one_class_is_an_error(sqlite_store: Store, tmp_path: Path) -> None:
    project = make_project(sqlite_store, "one", {"type": "classification", "labels": ["a", "b"]})
    import_file(
        sqlite_store,
        project,
        write_csv(
            tmp_path / "items.csv", ["id", "text"], [(f"t{i}", f"text {i}") for i in range(8)]
        ),
    )
    import_file(
        sqlite_store,
        project,
        write_csv(
            tmp_path / "labels.csv",
            ["task", "worker", "label"],
            [(f"t{i}", "ann", "a") for i in range(8)],
        ),
    )
    with pytest.raises(VeritagError, match="two classes"):
        autolabel_project(sqlite_store, project, labeler="tfidf")


def test_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VERITAG_DATABASE_URL", raising=False)
    runner = CliRunner()
    db = ("--db", str(tmp_path / "v.db"))
    for args in (
        ["init", "rte", "--task", "classification", "--labels", "0,1", *db],
        ["import", "rte", str(TEXTS), "--meta", "rte_subtask", *db],
        ["import", "rte", str(LABELS), *db],
    ):
        assert runner.invoke(cli.app, args).exit_code == 0
    result = runner.invoke(
        cli.app, ["autolabel", "rte", "--labeler", "tfidf", "--folds", "3", "--seed", "1", *db]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    out = " ".join(re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", result.stdout).split())
    assert "tfidf-logreg@1" in out and "800 new model claims" in out and "trained on 800" in out
    result = runner.invoke(cli.app, ["autolabel", "rte", "--labeler", "llm", *db])
    assert result.exit_code == 1 and isinstance(result.exception, VeritagError)
