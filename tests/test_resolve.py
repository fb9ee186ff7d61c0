"""Resolution with the truth engine: projects on both backends, stored runs, export reuse, files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from vt_helpers import (
    GT,
    LABELS,
    make_project,
    read_csv,
    read_jsonl,
    stored_posteriors,
    write_csv,
    write_jsonl,
)

from veritag.errors import InputError, VeritagError
from veritag.io import ColumnMap, export_project, import_file
from veritag.io.labels import read_label_files, write_labels
from veritag.resolve import (
    current_resolution,
    load_resolution,
    resolve_and_store,
    resolve_files,
    resolve_project,
)
from veritag.resolve import fit as resolve_module
from veritag.store import Claim, Store
from veritag.store.models import SourceReliability, TruthRun
from veritag.store.queries import latest_truth_run
from veritag.truth import ENGINE_VERSION, METHODS

DS = f"ds@{ENGINE_VERSION}"


def accuracy(store: Store, project, resolution) -> float:
    truth = {r["task"]: r["label"] for r in read_csv(GT)}
    with store.engine.connect() as conn:
        external = dict(conn.execute(sa.text("SELECT id, external_id FROM items")).all())
    hits = [
        label == truth[external[int(i)]] for i, label in zip(resolution.item_ids, resolution.labels)
    ]
    return sum(hits) / len(hits)


def count(store: Store, table, *where) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(table).where(*where)))


# --- the bundled sample -----------------------------------------------------------------------


def test_ds_beats_majority_vote_on_the_sample_and_is_stored(store: Store, rte) -> None:
    with store.engine.connect() as conn:
        mv = resolve_project(conn, rte, "mv")
    ds = resolve_and_store(store, rte)  # ds is the default
    assert ds.item_ids.size == mv.item_ids.size == 800
    assert accuracy(store, rte, ds) >= accuracy(store, rte, mv) >= 0.9
    assert ds.run is not None and ds.run.run_id is not None and ds.run.converged

    with store.engine.connect() as conn:
        run = conn.execute(sa.select(*TruthRun.__table__.c)).one()
        max_claim = conn.scalar(sa.select(sa.func.max(Claim.id)))
        sources = conn.execute(
            sa.select(
                SourceReliability.accuracy, SourceReliability.n_claims, SourceReliability.confusion
            )
        ).all()
    assert (run.project_id, run.method, run.engine_version) == (rte.id, "ds", ENGINE_VERSION)
    assert (run.max_claim_id, run.gold_count, run.n_items) == (max_claim, 0, 800)
    assert run.converged and run.n_iter > 1 and math.isfinite(run.log_likelihood)
    assert run.params["max_iter"] == 100 and run.params["tasks"] == "classes"
    posteriors = stored_posteriors(store)
    assert len(posteriors) == 800
    for p in posteriors:
        label, confidence, probs = p["label"], p["confidence"], p["probs"]
        n_claims, n_labels, basis = p["n_claims"], p["n_labels"], p["basis"]
        assert label in ("0", "1") and basis == "claims" and n_claims == n_labels == 10
        assert len(probs) == 2 and sum(probs) == pytest.approx(1.0)
        assert confidence == pytest.approx(max(probs)) and probs[int(label)] == max(probs)
    assert len(sources) == 164 and sum(n for _, n, _ in sources) == 8000
    assert all(0.0 <= acc <= 1.0 for acc, _, _ in sources)
    assert all(np.allclose(np.sum(confusion, axis=1), 1.0) for _, _, confusion in sources)

    with store.engine.connect() as conn:
        loaded = load_resolution(
            conn, latest_truth_run(conn, project_id=rte.id), with_probs=True, with_sources=True
        )
    assert list(loaded.labels) == list(ds.labels)
    np.testing.assert_array_equal(loaded.item_ids, ds.item_ids)
    np.testing.assert_allclose(loaded.confidence, ds.confidence, rtol=1e-12)
    np.testing.assert_allclose(loaded.probs, ds.probs, rtol=1e-12)
    np.testing.assert_allclose(loaded.sources.accuracy, ds.sources.accuracy, rtol=1e-12)
    assert list(loaded.method) == [DS] * 800


def test_export_reuses_the_stored_run_until_a_claim_or_gold_label_is_added(
    store: Store, rte, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = resolve_and_store(store, rte, "mv")

    def no_fitting(*_args, **_kwargs):
        raise AssertionError("export resolved although the stored run is current")

    with monkeypatch.context() as patch:
        patch.setattr(resolve_module, "fit_truth", no_fitting)
        result = export_project(store, rte, tmp_path / "a.jsonl", "jsonl")
    assert (result.resolved, result.run_id, result.method) == (False, first.run.run_id, "mv")
    assert {r["label_source"] for r in read_jsonl(tmp_path / "a.jsonl")} == {f"mv@{ENGINE_VERSION}"}

    # one more claim makes the run stale: export resolves with ds and stores a second run
    import_file(
        store,
        rte,
        write_csv(tmp_path / "more.csv", ["task", "worker", "label"], [("266", "new", "0")]),
    )
    result = export_project(store, rte, tmp_path / "b.jsonl", "jsonl")
    assert result.resolved and result.method == "ds" and result.run_id != first.run.run_id
    records = {r["id"]: r for r in read_jsonl(tmp_path / "b.jsonl")}
    assert records["266"]["n_labels"] == 11 and records["266"]["label_source"] == DS
    # and the next export reuses that one
    again = export_project(store, rte, tmp_path / "c.jsonl", "jsonl")
    assert (again.resolved, again.run_id) == (False, result.run_id)

    # a gold label makes it stale too; the old runs stay as history
    import_file(
        store,
        rte,
        write_csv(tmp_path / "gold.csv", ["task", "label"], [("266", "0")]),
        ColumnMap(gold="label"),
    )
    third = export_project(store, rte, tmp_path / "d.jsonl", "jsonl")
    assert third.resolved
    assert {r["id"]: r for r in read_jsonl(tmp_path / "d.jsonl")}["266"]["label_source"] == "gold"
    assert count(store, TruthRun) == 3
    assert len(stored_posteriors(store, first.run.run_id)) == 800
    with store.engine.connect() as conn:
        assert latest_truth_run(conn, project_id=rte.id).gold_count == 1
    # the long format holds raw claims and never resolves
    export_project(store, rte, tmp_path / "long.csv", "long")
    assert count(store, TruthRun) == 3


def test_runs_are_append_only(store: Store, rte) -> None:
    run = resolve_and_store(store, rte, "mv").run
    for statement in (
        "UPDATE truth_runs SET method = 'ds'",
        "DELETE FROM posterior_blocks",
        "UPDATE posterior_blocks SET n_items = 0",
        "UPDATE source_reliability SET accuracy = 1",
        "DELETE FROM truth_runs",
    ):
        with pytest.raises(DBAPIError) as info, store.engine.begin() as conn:
            conn.execute(sa.text(statement))
        assert "append-only" in str(info.value.orig)
    assert len(stored_posteriors(store, run.run_id)) == 800


def test_current_resolution_with_a_method(sqlite_store: Store, tmp_path: Path) -> None:
    project = make_project(sqlite_store)
    import_file(
        sqlite_store,
        project,
        write_csv(
            tmp_path / "l.csv",
            ["task", "worker", "label"],
            [("a", "w1", "1"), ("a", "w2", "0"), ("b", "w1", "1")],
        ),
    )
    ds, computed = current_resolution(sqlite_store, project)
    assert computed and ds.run.method == "ds"
    assert current_resolution(sqlite_store, project)[1] is False
    mv, computed = current_resolution(sqlite_store, project, "mv")  # no current mv run yet
    assert computed and mv.run.method == "mv"
    assert current_resolution(sqlite_store, project, "ds")[0].run.run_id == ds.run.run_id
    with pytest.raises(VeritagError, match="unknown method 'em'"):
        current_resolution(sqlite_store, project, "em")


def test_auto_records_the_method_it_chose(sqlite_store: Store, tmp_path: Path) -> None:
    """``auto`` is stored as asked, with the candidate its held-out likelihood picked in the params;
    file mode names the choice too."""
    project = make_project(sqlite_store)
    import_file(sqlite_store, project, LABELS)
    auto, _ = current_resolution(sqlite_store, project, "auto")
    assert auto.run.method == "auto" and auto.run.params["chosen"] in METHODS
    assert auto.run.params["chosen"] != "auto"
    done = resolve_files(read_label_files(LABELS), method="auto")
    assert done.method == f"auto (chose {auto.run.params['chosen']})"


# --- models as sources ------------------------------------------------------------------------


def _inverted_model_project(store: Store, tmp_path: Path, with_model: bool = True):
    """60 items: 40 labeled by three good humans, all 60 scored by a confidently wrong model."""
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, 60)
    project = make_project(store)
    humans = [
        (f"t{i}", f"w{w}", str(truth[i] if rng.random() < 0.9 else 1 - truth[i]))
        for i in range(40)
        for w in range(3)
    ]
    import_file(
        store, project, write_csv(tmp_path / "humans.csv", ["task", "worker", "label"], humans)
    )
    if with_model:
        preds = [
            (f"t{i}", json.dumps([0.9, 0.1] if truth[i] == 1 else [0.1, 0.9])) for i in range(60)
        ]
        import_file(
            store,
            project,
            write_csv(tmp_path / "preds.csv", ["id", "p"], preds),
            ColumnMap(probs="p", model="inverted"),
        )
    return project, {f"t{i}": str(t) for i, t in enumerate(truth)}


def test_a_model_checked_by_humans_is_read_through_its_reliability(
    store: Store, tmp_path: Path
) -> None:
    project, truth = _inverted_model_project(store, tmp_path)
    records = {
        r["id"]: r
        for r in read_jsonl(export_project(store, project, tmp_path / "o.jsonl", "jsonl").path)
    }
    model_only = [f"t{i}" for i in range(40, 60)]
    assert all(
        records[t]["label_source"] == "model" and records[t]["n_labels"] == 0 for t in model_only
    )
    # the model is always wrong where humans answered; ds learns that and reads it inverted
    assert all(records[t]["label"] == truth[t] for t in model_only)
    assert all(records[t]["label"] == truth[t] for t in truth)
    # taken at its word (mv counts its rows as votes) the model is wrong on every one of them
    mv = {
        r["id"]: r
        for r in read_jsonl(
            export_project(store, project, tmp_path / "m.jsonl", "jsonl", method="mv").path
        )
    }
    assert all(mv[t]["label"] != truth[t] for t in model_only)
    with store.engine.connect() as conn:
        stats = load_resolution(
            conn, latest_truth_run(conn, project_id=project.id, method="ds"), with_sources=True
        ).sources
    kinds = dict(store.engine.connect().execute(sa.text("SELECT id, kind FROM sources")).all())
    model = [i for i, sid in enumerate(stats.source_ids) if kinds[int(sid)] == "model"]
    assert len(model) == 1 and stats.accuracy[model[0]] < 0.2 and stats.n_claims[model[0]] == 60


def test_without_the_model_those_items_have_no_label(sqlite_store: Store, tmp_path: Path) -> None:
    project, _ = _inverted_model_project(sqlite_store, tmp_path, with_model=False)
    records = read_jsonl(export_project(sqlite_store, project, tmp_path / "o.jsonl", "jsonl").path)
    assert (
        len(records) == 40
    )  # the 20 other items were never imported: nobody said anything about them


def test_a_model_nobody_checked_is_taken_at_face_value(store: Store, tmp_path: Path) -> None:
    project = make_project(
        store, schema={"type": "classification", "labels": ["neg", "neu", "pos"]}
    )
    import_file(
        store,
        project,
        write_csv(
            tmp_path / "p.csv",
            ["id", "p"],
            [("1", "[0.1, 0.2, 0.7]"), ("2", "[0.6, 0.3, 0.1]"), ("3", "[0.2, 0.5, 0.3]")],
        ),
        ColumnMap(probs="p", model="m"),
    )
    import_file(
        store,
        project,
        write_csv(tmp_path / "p2.csv", ["id", "p"], [("3", "[0.0, 0.1, 0.9]")]),
        ColumnMap(probs="p", model="m2"),
    )
    import_file(
        store,
        project,
        write_csv(tmp_path / "g.csv", ["id", "g"], [("4", "neu")]),
        ColumnMap(gold="g"),
    )
    resolution = resolve_and_store(store, project)
    got = {
        int(i): (label, round(float(c), 6), source)
        for i, label, c, source in zip(
            resolution.item_ids, resolution.labels, resolution.confidence, resolution.method
        )
    }
    assert list(got.values()) == [
        ("pos", 0.7, "model"),
        ("neg", 0.6, "model"),
        ("pos", 0.6, "model"),
        ("neu", 1.0, "gold"),
    ]
    assert np.isnan(resolution.sources.accuracy).all()  # nothing measured either model


# --- other task types -------------------------------------------------------------------------


def test_multilabel_runs_binary_subtasks(store: Store, tmp_path: Path) -> None:
    labels = ["a", "b", "c"]
    project = make_project(store, schema={"type": "multilabel", "labels": labels})
    rng = np.random.default_rng(7)
    truth = {
        f"i{i}": sorted(str(x) for x in rng.choice(labels, rng.integers(0, 4), replace=False))
        for i in range(40)
    }
    rows = []
    for item, chosen in truth.items():
        for w in range(3):  # good workers: each label decision flipped 10% of the time
            got = [x for x in labels if (x in chosen) != (rng.random() < 0.1)]
            rows.append({"task": item, "worker": f"w{w}", "label": got})
        rows.append(
            {"task": item, "worker": "contrarian", "label": [x for x in labels if x not in chosen]}
        )
    import_file(store, project, write_jsonl(tmp_path / "l.jsonl", rows))
    import_file(
        store,
        project,
        write_jsonl(tmp_path / "g.jsonl", [{"id": "i0", "gold": ["c", "a"]}]),
        ColumnMap(gold="gold"),
    )
    resolution = resolve_and_store(store, project)
    assert resolution.run.method == "ds" and resolution.run.params["tasks"] == "binary per label"
    records = {
        r["id"]: r
        for r in read_jsonl(export_project(store, project, tmp_path / "o.jsonl", "jsonl").path)
    }
    assert (records["i0"]["label"], records["i0"]["confidence"], records["i0"]["label_source"]) == (
        ["a", "c"],
        1.0,
        "gold",
    )
    others = [item for item in truth if item != "i0"]
    assert sum(records[i]["label"] == truth[i] for i in others) >= len(others) - 1
    assert all(
        0.5 <= records[i]["confidence"] <= 1.0 and records[i]["n_labels"] == 4 for i in others
    )
    assert all(records[i]["label_source"] == DS for i in others)
    with store.engine.connect() as conn:
        stats = load_resolution(
            conn, latest_truth_run(conn, project_id=project.id), with_sources=True
        ).sources
    assert all(len(p["probs"]) == 3 for p in stored_posteriors(store))
    assert stats.confusion.shape == (4, 2, 2) and sorted(stats.n_claims.tolist()) == [
        40,
        40,
        40,
        40,
    ]
    assert np.nanmin(stats.accuracy) < 0.2  # the contrarian is found out
    assert np.nanmax(stats.accuracy) > 0.8
    table = pq.read_table(export_project(store, project, tmp_path / "o.parquet", "parquet").path)
    assert table.schema.field("label").type == pa.list_(pa.string())


def test_open_ended_tasks_keep_the_majority_vote(sqlite_store: Store, tmp_path: Path) -> None:
    project = make_project(sqlite_store, schema={"type": "free_text"})
    import_file(
        sqlite_store,
        project,
        write_csv(
            tmp_path / "l.csv",
            ["task", "worker", "label"],
            [
                ("1", "w1", "a cat"),
                ("1", "w2", "a cat"),
                ("1", "w3", "a dog"),
                ("2", "w1", "hi"),
                ("2", "w3", "hi"),
            ],
        ),
    )
    resolution = resolve_and_store(sqlite_store, project, "ds")
    assert resolution.run.method == "majority_vote"
    assert list(resolution.labels) == ["a cat", "hi"]
    assert resolution.confidence.tolist() == pytest.approx([2 / 3, 1.0])
    assert list(resolution.method) == ["majority_vote"] * 2
    assert resolution.sources.accuracy.tolist() == pytest.approx([1.0, 1.0, 0.5])  # w1, w2, w3
    # a ds export finds that run: the method of open-ended runs is always majority_vote
    assert not export_project(
        sqlite_store, project, tmp_path / "o.jsonl", "jsonl", method="ds"
    ).resolved


def test_fact_check_gold_keeps_its_evidence(sqlite_store: Store, tmp_path: Path) -> None:
    project = make_project(sqlite_store, schema={"type": "fact_check"})
    import_file(
        sqlite_store,
        project,
        write_jsonl(
            tmp_path / "l.jsonl",
            [
                {"task": "a", "worker": "w1", "label": {"verdict": "refuted", "evidence": "e1"}},
                {"task": "a", "worker": "w2", "label": {"verdict": "supported", "evidence": "e2"}},
                {"task": "a", "worker": "w3", "label": {"verdict": "supported", "evidence": "e3"}},
                {
                    "task": "b",
                    "worker": "w1",
                    "label": {"verdict": "supported", "evidence": "e4"},
                },  # wrong, says gold
            ],
        ),
    )
    import_file(
        sqlite_store,
        project,
        write_jsonl(
            tmp_path / "g.jsonl",
            [{"id": "b", "gold": {"verdict": "refuted", "evidence": "the source"}}],
        ),
        ColumnMap(gold="gold"),
    )
    records = {
        r["id"]: r
        for r in read_jsonl(
            export_project(sqlite_store, project, tmp_path / "o.jsonl", "jsonl").path
        )
    }
    assert records["a"]["label"] == {"verdict": "supported"} and records["a"]["label_source"] == DS
    assert records["b"]["label"] == {"verdict": "refuted", "evidence": "the source"}


# --- file mode --------------------------------------------------------------------------------


def test_file_mode_on_the_sample_with_gold_and_a_model(tmp_path: Path) -> None:
    gt = {r["task"]: r["label"] for r in read_csv(GT)}
    plain = resolve_files(read_label_files(LABELS))
    with_mv = resolve_files(read_label_files(LABELS), method="mv")

    def hits(result) -> float:
        return sum(label == gt[t] for t, label in zip(result.tasks, result.labels)) / len(
            result.tasks
        )

    assert len(plain.tasks) == 800 and plain.classes == ["0", "1"]
    assert hits(plain) >= hits(with_mv) >= 0.9
    assert len(plain.sources) == 164 and plain.n_claims.sum() == 8000
    # a model that agrees with the ground truth at 0.8, two ways of writing the file
    model = write_csv(
        tmp_path / "m.csv",
        ["task", "1", "0"],
        [(t, 0.8, 0.2) if label == "1" else (t, 0.2, 0.8) for t, label in gt.items()],
    )
    models = write_csv(
        tmp_path / "mm.csv",
        ["task", "model", "0", "1"],
        [(t, "m", 0.2, 0.8) if label == "1" else (t, "m", 0.8, 0.2) for t, label in gt.items()],
    )
    first, second = (
        resolve_files(read_label_files(LABELS, model_probs=model)),
        resolve_files(read_label_files(LABELS, model_probs=models)),
    )
    assert first.labels == second.labels and hits(first) > hits(plain)
    assert ("model", "model") in first.sources and ("m", "model") in second.sources
    gold = write_csv(tmp_path / "g.csv", ["task", "label"], list(gt.items())[:100])
    pinned = resolve_files(read_label_files(LABELS, gold=gold))
    assert pinned.n_gold == 100 and all(
        pinned.labels[pinned.tasks.index(t)] == label for t, label in list(gt.items())[:100]
    )
    out = tmp_path / "out.csv"
    write_labels(plain, out)
    rows = read_csv(out)
    assert list(rows[0]) == ["task", "label", "confidence"] and len(rows) == 800
    assert [r["task"] for r in rows] == list(dict.fromkeys(r["task"] for r in read_csv(LABELS)))


def test_file_mode_keeps_labels_as_written_and_reads_jsonl_and_parquet(tmp_path: Path) -> None:
    rows = [
        ("x", "w1", "1.0"),
        ("x", "w2", "1.0"),
        ("y", "w1", "01"),
        ("y", "w2", "01"),
        ("z", "w1", "2"),
    ]
    result = resolve_files(
        read_label_files(write_csv(tmp_path / "l.csv", ["task", "worker", "label"], rows)),
        method="mv",
    )
    assert result.classes == ["01", "1.0", "2"]  # numeric order, original text
    assert result.labels == ["1.0", "01", "2"]
    jsonl = write_jsonl(
        tmp_path / "l.jsonl", [{"task": t, "worker": w, "label": int(float(v))} for t, w, v in rows]
    )
    assert resolve_files(read_label_files(jsonl), method="mv").labels == ["1", "1", "2"]
    parquet = tmp_path / "l.parquet"
    pq.write_table(
        pa.table({"task": ["x", "y"], "worker": ["w", "w"], "label": ["b", "a"]}), parquet
    )
    assert resolve_files(read_label_files(parquet)).labels == ["b", "a"]


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        (
            "gold",
            "task,label\nx,1\ny,maybe\n",
            "g.csv:3: field 'label': 'maybe' is not among the labels",
        ),
        (
            "gold",
            "task,label\nx,1\nx,0\n",
            "g.csv:3: field 'label': task 'x' has gold label '1' on line 2",
        ),
        ("labels", "task,worker,label\nx,w1,1\ny,w2\n", "l.csv:3: expected 3 columns, found 2"),
        ("labels", "task,worker,label\nx,,1\n", "l.csv:2: field 'worker': the value is empty"),
        ("labels", "task,label\nx,1\n", "missing column(s) ['worker']"),
        ("probs", "task,0,1,2\nx,0.5,0.5,0\n", "column(s) ['2'] are not among the labels"),
        ("probs", "task,1\nx,0.5\n", "no probability column for class(es) ['0']"),
        ("probs", "task,0,1\nx,0.5,lots\n", "p.csv:2: field '1': 'lots' is not a number"),
        ("probs", "task,0,1\nx,0,0\n", "p.csv:2: the probabilities sum to 0"),
    ],
)
def test_file_mode_refuses_bad_input_naming_file_and_line(
    tmp_path: Path, name: str, body: str, message: str
) -> None:
    files = {"labels": "task,worker,label\nx,w1,1\nx,w2,0\ny,w1,0\n", "gold": None, "probs": None}
    files[name] = body
    paths = {
        key: None if text is None else tmp_path / f"{key[0]}.csv" for key, text in files.items()
    }
    for key, text in files.items():
        if text is not None:
            paths[key].write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_label_files(paths["labels"], gold=paths["gold"], model_probs=paths["probs"])
    assert message in str(info.value)
