"""Exports: resolved labels with confidence in every format, long round trip, DPO pairs, gold,
models."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from vt_helpers import (
    GT,
    LABELS,
    TEXTS,
    counts,
    majority_by_hand,
    make_project,
    read_csv,
    read_jsonl,
    triples,
    write_csv,
    write_jsonl,
)

from veritag.errors import InputError
from veritag.io import EXPORT_FORMATS, ColumnMap, export_project, import_file
from veritag.io.exporter import _cell
from veritag.store import Store
from veritag.store.models import Item
from veritag.truth import ENGINE_VERSION

COLUMNS = [
    "id",
    "text",
    "hypothesis",
    "rte_subtask",
    "label",
    "confidence",
    "n_labels",
    "label_source",
]
# Tests that compare with a majority vote counted by hand export with method="mv"; the default
# is ds.
MV = f"mv@{ENGINE_VERSION}"


@pytest.fixture(scope="module")
def expected() -> dict[str, tuple[str, float, int]]:
    return majority_by_hand(LABELS)


def check_resolved(records: list[dict], expected: dict[str, tuple[str, float, int]]) -> None:
    texts = read_csv(TEXTS)
    assert [r["id"] for r in records] == [t["task"] for t in texts], (
        "items come out in import order"
    )
    for record, source in zip(records, texts):
        label, share, n = expected[record["id"]]
        assert record["label"] == label
        assert float(record["confidence"]) == pytest.approx(share)
        assert int(record["n_labels"]) == n == 10
        assert record["label_source"] == MV
        assert record["text"] == source["text"]
        assert record["hypothesis"] == source["hypothesis"]
        assert record["rte_subtask"] == source["rte_subtask"]


# --- the resolved formats ---------------------------------------------------------------------


def test_jsonl(store: Store, rte, tmp_path: Path, expected) -> None:
    out = tmp_path / "out.jsonl"
    result = export_project(store, rte, out, "jsonl", method="mv")
    assert (result.path, result.rows) == (out, 800)
    records = read_jsonl(out)
    assert len(records) == 800
    assert list(records[0]) == COLUMNS
    assert all(
        isinstance(r["confidence"], float) and isinstance(r["n_labels"], int) for r in records
    )
    check_resolved(records, expected)


def test_resolved_labels_beat_the_crowd_on_ground_truth(store: Store, rte, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    export_project(store, rte, out, "jsonl")
    truth = {r["task"]: r["label"] for r in read_csv(GT)}
    records = read_jsonl(out)
    accuracy = sum(r["label"] == truth[r["id"]] for r in records) / len(records)
    assert accuracy >= 0.85


def test_csv(store: Store, rte, tmp_path: Path, expected) -> None:
    out = tmp_path / "out.csv"
    assert export_project(store, rte, out, "csv", method="mv").rows == 800
    with out.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == COLUMNS
        records = list(reader)
    check_resolved(records, expected)


def test_parquet(store: Store, rte, tmp_path: Path, expected) -> None:
    out = tmp_path / "out.parquet"
    assert export_project(store, rte, out, "parquet", method="mv").rows == 800
    table = pq.read_table(out)
    assert table.column_names == COLUMNS
    assert table.schema.field("label").type == pa.string()
    assert table.schema.field("confidence").type == pa.float64()
    assert table.schema.field("n_labels").type == pa.int64()
    check_resolved(table.to_pylist(), expected)


def test_small_chunks_give_the_same_file(store: Store, rte, tmp_path: Path) -> None:
    export_project(store, rte, tmp_path / "a.jsonl", "jsonl")
    export_project(store, rte, tmp_path / "b.jsonl", "jsonl", chunk_rows=7)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def test_progress_reaches_the_end(store: Store, rte, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    export_project(
        store,
        rte,
        tmp_path / "a.jsonl",
        "jsonl",
        chunk_rows=300,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(300, 800), (600, 800), (800, 800)]


def test_hf_folder_loads_with_datasets(
    sqlite_store: Store, tmp_path: Path, hf_offline: Path, expected, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project(sqlite_store)
    import_file(sqlite_store, project, TEXTS, ColumnMap(meta=["rte_subtask"]))
    import_file(sqlite_store, project, LABELS)
    folder = tmp_path / "rte-hf"
    assert export_project(sqlite_store, project, folder, "hf", method="mv").rows == 800
    assert (folder / "README.md").read_text(encoding="utf-8").startswith("---\nconfigs:")
    assert sorted(p.name for p in (folder / "data").iterdir()) == ["train-00000-of-00001.parquet"]

    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    loaded = datasets.load_dataset(str(folder), cache_dir=str(hf_offline))
    assert list(loaded) == ["train"]
    train = loaded["train"]
    assert train.num_rows == 800
    assert train.column_names == COLUMNS
    check_resolved(train.to_list(), expected)


def test_unlabeled_items_have_no_label(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    import_file(
        store, project, write_csv(tmp_path / "i.csv", ["id", "text"], [("1", "a"), ("2", "b")])
    )
    import_file(
        store,
        project,
        write_csv(tmp_path / "l.csv", ["task", "worker", "label"], [("2", "w", "1")]),
    )
    records = {
        r["id"]: r
        for r in read_jsonl(
            export_project(store, project, tmp_path / "o.jsonl", "jsonl", method="mv").path
        )
    }
    assert records["1"] == {
        "id": "1",
        "text": "a",
        "label": None,
        "confidence": None,
        "n_labels": 0,
        "label_source": None,
    }
    assert (records["2"]["label"], records["2"]["confidence"], records["2"]["n_labels"]) == (
        "1",
        1.0,
        1,
    )
    table = pq.read_table(
        export_project(store, project, tmp_path / "o.parquet", "parquet").path
    ).to_pylist()
    assert table[0]["label"] is None and table[0]["n_labels"] == 0


def test_empty_project(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    assert export_project(store, project, tmp_path / "o.jsonl", "jsonl").rows == 0
    assert (tmp_path / "o.jsonl").read_text() == ""
    assert export_project(store, project, tmp_path / "o.parquet", "parquet").rows == 0
    table = pq.read_table(tmp_path / "o.parquet")
    assert table.num_rows == 0
    assert {"id", "label", "confidence"} <= set(table.column_names)
    assert export_project(store, project, tmp_path / "o.long.csv", "long").rows == 0
    assert (tmp_path / "o.long.csv").read_text().splitlines() == ["task,worker,label"]


def test_export_replaces_the_target_and_leaves_no_temp_files(
    store: Store, rte, tmp_path: Path
) -> None:
    out = tmp_path / "sub" / "out.jsonl"
    out.parent.mkdir()
    out.write_text("old\n")
    export_project(store, rte, out, "jsonl")
    assert len(read_jsonl(out)) == 800
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.jsonl"]


def test_unknown_format(store: Store, rte, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown export format 'xlsx'"):
        export_project(store, rte, tmp_path / "o.xlsx", "xlsx")
    assert not (tmp_path / "o.xlsx").exists()
    assert set(EXPORT_FORMATS) == {
        "jsonl",
        "csv",
        "parquet",
        "parquet-dataset",
        "hf",
        "long",
        "dpo",
    }


def test_meta_does_not_overwrite_item_fields(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    path = write_jsonl(
        tmp_path / "i.jsonl", [{"id": "1", "text": "t", "domain": "field", "src": "m"}]
    )
    import_file(store, project, path, ColumnMap(fields=["domain"], meta=["domain", "src"]))
    (record,) = read_jsonl(export_project(store, project, tmp_path / "o.jsonl", "jsonl").path)
    assert record["domain"] == "field"
    assert record["meta.domain"] == "field"
    assert record["src"] == "m"


# --- long format round trip -------------------------------------------------------------------


def test_long_round_trip(store: Store, rte, tmp_path: Path) -> None:
    out = tmp_path / "long.csv"
    assert export_project(store, rte, out, "long").rows == 8000
    assert out.read_text(encoding="utf-8").splitlines()[0] == "task,worker,label"
    assert triples(out) == triples(LABELS)
    assert len(read_csv(out)) == 8000

    fresh = make_project(store, name="copy")
    result = import_file(store, fresh, out)
    assert (result.items_added, result.claims_added) == (800, 8000)
    assert counts(store, fresh)["sources"] == 164
    again = tmp_path / "long2.csv"
    export_project(store, fresh, again, "long")
    assert triples(again) == triples(LABELS)
    assert len(read_csv(again)) == 8000


def test_long_keeps_structured_labels_as_json(store: Store, tmp_path: Path) -> None:
    project = make_project(store, schema={"type": "multilabel", "labels": ["a", "b", "c"]})
    import_file(
        store,
        project,
        write_jsonl(
            tmp_path / "l.jsonl",
            [
                {"task": "1", "worker": "w", "label": ["c", "a"]},
                {"task": "1", "worker": "v", "label": []},
            ],
        ),
    )
    out = tmp_path / "long.csv"
    export_project(store, project, out, "long")
    rows = read_csv(out)
    assert [(r["task"], r["worker"], json.loads(r["label"])) for r in rows] == [
        ("1", "w", ["a", "c"]),
        ("1", "v", []),
    ]
    fresh = make_project(
        store, name="copy", schema={"type": "multilabel", "labels": ["a", "b", "c"]}
    )
    assert import_file(store, fresh, out).claims_added == 2


def test_long_leaves_out_model_claims(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    path = write_csv(
        tmp_path / "x.csv", ["task", "worker", "label", "p"], [("1", "w", "1", "[0.5, 0.5]")]
    )
    import_file(store, project, path, ColumnMap(probs="p"))
    out = tmp_path / "long.csv"
    assert export_project(store, project, out, "long").rows == 1
    assert triples(out) == {("1", "w", "1")}


# --- DPO --------------------------------------------------------------------------------------


def _pairwise(store: Store, tmp_path: Path):
    project = make_project(store, name="prefs", schema={"type": "pairwise"})
    import_file(
        store,
        project,
        write_jsonl(
            tmp_path / "pairs.jsonl",
            [
                {
                    "id": f"p{i}",
                    "prompt": f"question {i}",
                    "response_a": f"answer a{i}",
                    "response_b": f"answer b{i}",
                }
                for i in range(1, 6)
            ],
        ),
    )
    votes = [
        ("p1", "w1", "A"),
        ("p1", "w2", "A"),
        ("p1", "w3", "B"),  # A wins 2/3
        ("p2", "w1", "b"),
        ("p2", "w2", "B"),  # B wins
        ("p3", "w1", "tie"),
        ("p3", "w2", "TIE"),
        ("p3", "w3", "A"),  # tie wins: dropped
        ("p4", "w1", "B"),
        ("p4", "w2", "A"),  # A/B tie goes to the first class, A
        # p5: nobody voted: dropped
    ]
    import_file(
        store, project, write_csv(tmp_path / "votes.csv", ["task", "worker", "label"], votes)
    )
    return project


def test_dpo_pairs(store: Store, tmp_path: Path) -> None:
    project = _pairwise(store, tmp_path)
    out = tmp_path / "dpo.jsonl"
    assert export_project(store, project, out, "dpo", method="mv").rows == 3
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == ["p1", "p2", "p4"]
    by_id = {r["id"]: r for r in rows}
    assert by_id["p1"] == {
        "id": "p1",
        "prompt": "question 1",
        "chosen": "answer a1",
        "rejected": "answer b1",
        "confidence": pytest.approx(2 / 3),
    }
    assert (by_id["p2"]["chosen"], by_id["p2"]["rejected"], by_id["p2"]["confidence"]) == (
        "answer b2",
        "answer a2",
        1.0,
    )
    assert (by_id["p4"]["chosen"], by_id["p4"]["confidence"]) == ("answer a4", 0.5)
    # the resolved jsonl export still has every item, ties included
    records = {
        r["id"]: r
        for r in read_jsonl(export_project(store, project, tmp_path / "all.jsonl", "jsonl").path)
    }
    assert records["p3"]["label"] == "tie"
    assert records["p5"]["label"] is None


def test_dpo_with_custom_fields(store: Store, tmp_path: Path) -> None:
    schema = {"type": "pairwise", "prompt_field": "q", "a_field": "left", "b_field": "right"}
    project = make_project(store, name="custom", schema=schema)
    import_file(
        store,
        project,
        write_csv(tmp_path / "i.csv", ["id", "q", "left", "right"], [("1", "Q", "L", "R")]),
    )
    import_file(
        store,
        project,
        write_csv(tmp_path / "v.csv", ["task", "worker", "label"], [("1", "w", "B")]),
    )
    (row,) = read_jsonl(export_project(store, project, tmp_path / "d.jsonl", "dpo").path)
    assert (row["prompt"], row["chosen"], row["rejected"]) == ("Q", "R", "L")


def test_dpo_prompt_falls_back_to_text(store: Store, tmp_path: Path) -> None:
    project = make_project(store, name="p", schema={"type": "pairwise"})
    import_file(
        store,
        project,
        write_csv(
            tmp_path / "i.csv",
            ["id", "text", "response_a", "response_b"],
            [("1", "the prompt", "x", "y")],
        ),
    )
    import_file(
        store,
        project,
        write_csv(tmp_path / "v.csv", ["task", "worker", "label"], [("1", "w", "A")]),
    )
    (row,) = read_jsonl(export_project(store, project, tmp_path / "d.jsonl", "dpo").path)
    assert row["prompt"] == "the prompt"


def test_dpo_item_without_responses(store: Store, tmp_path: Path) -> None:
    project = make_project(store, name="p", schema={"type": "pairwise"})
    import_file(
        store,
        project,
        write_csv(tmp_path / "v.csv", ["task", "worker", "label"], [("1", "w", "A")]),
    )
    with pytest.raises(InputError, match="item '1' lacks"):
        export_project(store, project, tmp_path / "d.jsonl", "dpo")
    assert not (tmp_path / "d.jsonl").exists()


def test_dpo_needs_a_pairwise_project(store: Store, rte, tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        export_project(store, rte, tmp_path / "d.jsonl", "dpo")
    assert "pairwise" in str(info.value)
    assert "'rte' is classification" in str(info.value)
    assert not (tmp_path / "d.jsonl").exists()


# --- gold and models --------------------------------------------------------------------------


def test_gold_pins_the_resolved_label(store: Store, rte, tmp_path: Path, expected) -> None:
    # pin the label the crowd did not choose on five items
    pinned = list(expected)[:5]
    flipped = {task: "1" if expected[task][0] == "0" else "0" for task in pinned}
    gold = write_csv(tmp_path / "gold.csv", ["task", "label"], sorted(flipped.items()))
    assert import_file(store, rte, gold, ColumnMap(gold="label")).gold_added == 5
    records = {
        r["id"]: r
        for r in read_jsonl(export_project(store, rte, tmp_path / "o.jsonl", "jsonl").path)
    }
    for task, label in flipped.items():
        assert records[task]["label"] == label
        assert records[task]["confidence"] == 1.0
        assert records[task]["label_source"] == "gold"
        assert records[task]["n_labels"] == 10
    others = [r for task, r in records.items() if task not in flipped]
    assert all(r["label_source"] == f"ds@{ENGINE_VERSION}" for r in others)


def test_gold_on_an_item_nobody_labeled(store: Store, tmp_path: Path) -> None:
    project = make_project(store)
    import_file(
        store,
        project,
        write_csv(tmp_path / "i.csv", ["id", "text", "g"], [("1", "a", "1"), ("2", "b", "")]),
        ColumnMap(gold="g"),
    )
    records = read_jsonl(export_project(store, project, tmp_path / "o.jsonl", "jsonl").path)
    assert [
        (r["id"], r["label"], r["confidence"], r["label_source"], r["n_labels"]) for r in records
    ] == [("1", "1", 1.0, "gold", 0), ("2", None, None, None, 0)]


def test_model_probs_fill_items_without_human_labels(store: Store, tmp_path: Path) -> None:
    project = make_project(
        store, schema={"type": "classification", "labels": ["neg", "neu", "pos"]}
    )
    preds = write_csv(
        tmp_path / "preds.csv",
        ["id", "text", "p"],
        [
            ("1", "great", "[0.1, 0.2, 0.7]"),
            ("2", "meh", '{"neu": 0.6, "neg": 0.4}'),
            ("3", "awful", "[0.8, 0.1, 0.1]"),
        ],
    )
    import_file(store, project, preds, ColumnMap(probs="p", model="m1"))
    # a second model is more confident about item 2
    second = write_csv(tmp_path / "preds2.csv", ["id", "p"], [("2", "[0.05, 0.05, 0.9]")])
    import_file(store, project, second, ColumnMap(probs="p", model="m2"))
    # humans answered item 3: their two votes outweigh the model's probability row
    import_file(
        store,
        project,
        write_csv(
            tmp_path / "l.csv",
            ["task", "worker", "label"],
            [("3", "w1", "pos"), ("3", "w2", "pos")],
        ),
    )
    # with mv a model row is a fractional vote; ds and models as measured sources:
    # tests/test_resolve.py
    records = {
        r["id"]: r
        for r in read_jsonl(
            export_project(store, project, tmp_path / "o.jsonl", "jsonl", method="mv").path
        )
    }
    assert (records["1"]["label"], records["1"]["label_source"], records["1"]["n_labels"]) == (
        "pos",
        "model",
        0,
    )
    assert records["1"]["confidence"] == pytest.approx(0.7)
    assert (records["2"]["label"], records["2"]["confidence"]) == (
        "pos",
        pytest.approx((0.0 + 0.9) / 2),
    )
    assert (records["3"]["label"], records["3"]["label_source"], records["3"]["confidence"]) == (
        "pos",
        MV,
        pytest.approx((1 + 1 + 0.1) / 3),
    )
    table = pq.read_table(export_project(store, project, tmp_path / "o.parquet", "parquet").path)
    assert table.column("label").to_pylist() == ["pos", "pos", "pos"]


# --- other task types -------------------------------------------------------------------------


def test_multilabel_export(store: Store, tmp_path: Path) -> None:
    project = make_project(store, schema={"type": "multilabel", "labels": ["a", "b", "c"]})
    import_file(
        store,
        project,
        write_jsonl(
            tmp_path / "l.jsonl",
            [
                {"task": "1", "worker": "w1", "label": ["a", "b"]},
                {"task": "1", "worker": "w2", "label": ["a"]},
                {"task": "1", "worker": "w3", "label": ["a", "c"]},
                {"task": "2", "worker": "w1", "label": []},
            ],
        ),
    )
    records = {
        r["id"]: r
        for r in read_jsonl(
            export_project(store, project, tmp_path / "o.jsonl", "jsonl", method="mv").path
        )
    }
    assert records["1"]["label"] == ["a"]
    assert records["1"]["confidence"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert records["1"]["n_labels"] == 3
    assert (records["2"]["label"], records["2"]["confidence"], records["2"]["n_labels"]) == (
        [],
        1.0,
        1,
    )
    table = pq.read_table(export_project(store, project, tmp_path / "o.parquet", "parquet").path)
    assert table.schema.field("label").type == pa.list_(pa.string())
    assert table.column("label").to_pylist() == [["a"], []]


def test_span_export(store: Store, tmp_path: Path) -> None:
    project = make_project(store, schema={"type": "span", "labels": ["PER"]})
    import_file(
        store, project, write_csv(tmp_path / "i.csv", ["id", "text"], [("1", "Ada Lovelace")])
    )
    span = [{"start": 0, "end": 3, "label": "PER"}]
    import_file(
        store,
        project,
        write_jsonl(
            tmp_path / "s.jsonl",
            [
                {"task": "1", "worker": "w1", "label": span},
                {"task": "1", "worker": "w2", "label": json.dumps(span)},
            ],
        ),
    )
    (record,) = read_jsonl(export_project(store, project, tmp_path / "o.jsonl", "jsonl").path)
    assert (record["label"], record["confidence"]) == (span, 1.0)
    table = pq.read_table(export_project(store, project, tmp_path / "o.parquet", "parquet").path)
    assert table.column("label").to_pylist() == [span]


def test_rating_export_keeps_integers(sqlite_store: Store, tmp_path: Path) -> None:
    project = make_project(sqlite_store, schema={"type": "rating", "min": 1, "max": 5})
    import_file(
        sqlite_store,
        project,
        write_csv(
            tmp_path / "l.csv",
            ["task", "worker", "label"],
            [("a", "w1", "3"), ("a", "w2", "3"), ("b", "w1", "5")],
        ),
    )
    records = read_jsonl(export_project(sqlite_store, project, tmp_path / "o.jsonl", "jsonl").path)
    assert [r["label"] for r in records] == [3, 5]
    table = pq.read_table(
        export_project(sqlite_store, project, tmp_path / "o.parquet", "parquet").path
    )
    assert table.column("label").to_pylist() == [3, 5]


def test_fact_check_majority_is_over_verdicts(sqlite_store: Store, tmp_path: Path) -> None:
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
            ],
        ),
    )
    (record,) = read_jsonl(
        export_project(sqlite_store, project, tmp_path / "o.jsonl", "jsonl", method="mv").path
    )
    assert record["label"]["verdict"] == "supported"
    assert record["confidence"] == pytest.approx(2 / 3)


def test_label_with_surrounding_spaces_is_refused_up_front(sqlite_store: Store) -> None:
    """Such a label could never be matched by a claim, so the project is refused at creation."""
    from veritag.errors import SchemaError

    with pytest.raises(SchemaError, match="surrounding spaces"):
        make_project(sqlite_store, schema={"type": "classification", "labels": [" yes", "no"]})


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_fields_of_later_items_are_kept(sqlite_store: Store, tmp_path: Path, fmt: str) -> None:
    project = make_project(sqlite_store)
    import_file(
        sqlite_store,
        project,
        write_csv(tmp_path / "a.csv", ["id", "text", "src"], [("1", "t1", "web")]),
    )
    import_file(
        sqlite_store,
        project,
        write_csv(tmp_path / "b.csv", ["id", "text", "lang"], [("2", "t2", "en")]),
    )
    jsonl = {
        r["id"]: r
        for r in read_jsonl(
            export_project(sqlite_store, project, tmp_path / "o.jsonl", "jsonl").path
        )
    }
    assert jsonl["2"]["lang"] == "en"  # JSONL keeps it
    out = export_project(sqlite_store, project, tmp_path / f"o.{fmt}", fmt).path
    records = read_csv(out) if fmt == "csv" else pq.read_table(out).to_pylist()
    assert {r["id"]: r.get("lang") for r in records}["2"] == "en"


# --- CSV formula injection --------------------------------------------------------------------

#: Item texts a spreadsheet would run as formulas (OWASP's CSV injection starts).
FORMULAS = ["=1+1", "+SUM(A1)", "-2+3", "@cmd", '=HYPERLINK("http://x","y")', "\tTAB"]


def _formula_project(store: Store, tmp_path: Path) -> Any:
    """Items whose text, field, id, worker and label all start like formulas, plus plain numbers."""
    project = make_project(store, schema={"type": "classification", "labels": ["=1+1", "ok"]})
    import_file(
        store,
        project,
        write_jsonl(
            tmp_path / "i.jsonl",
            [
                {"id": f"=id{i}", "text": text, "note": f"@note{i}", "score": -3 - i}
                for i, text in enumerate(FORMULAS)
            ],
        ),
    )
    import_file(
        store,
        project,
        write_jsonl(
            tmp_path / "l.jsonl",
            [{"task": f"=id{i}", "worker": "-w", "label": "=1+1"} for i in range(len(FORMULAS))],
        ),
    )
    with (
        store.session() as session
    ):  # the importer turns a leading CR into a newline; store one as is
        session.add(
            Item(
                project_id=project.id,
                external_id="cr",
                text="\rCR",
                data={"note": "\r", "score": 0},
            )
        )
    return project


def test_cell_neutralises_every_formula_start() -> None:
    for text in [*FORMULAS, "\rCR"]:
        assert _cell(text) == "'" + text
        assert _cell(text, raw=True) == text
    assert _cell("plain") == "plain" and _cell("a=b") == "a=b" and _cell("") == ""
    assert _cell(-2) == -2 and _cell(0.5) == 0.5 and _cell(None) == ""
    assert _cell(["=x"]) == '["=x"]'


def test_csv_neutralises_formula_cells(store: Store, tmp_path: Path) -> None:
    project = _formula_project(store, tmp_path)
    rows = read_csv(export_project(store, project, tmp_path / "o.csv", "csv").path)
    assert [r["text"] for r in rows] == ["'" + t for t in [*FORMULAS, "\rCR"]]
    assert [r["id"] for r in rows[:-1]] == [f"'=id{i}" for i in range(len(FORMULAS))]
    assert [r["note"] for r in rows[:-1]] == [f"'@note{i}" for i in range(len(FORMULAS))]
    assert rows[-1]["note"] == "'\r"
    assert [r["score"] for r in rows] == [str(-3 - i) for i in range(len(FORMULAS))] + ["0"], (
        "numbers stay numbers"
    )
    assert {r["label"] for r in rows[:-1]} == {"'=1+1"}
    assert float(rows[0]["confidence"]) > 0

    raw = read_csv(export_project(store, project, tmp_path / "raw.csv", "csv", csv_raw=True).path)
    assert [r["text"] for r in raw] == [*FORMULAS, "\rCR"]
    assert {r["label"] for r in raw[:-1]} == {"=1+1"}


def test_csv_neutralises_a_formula_column_name(sqlite_store: Store, tmp_path: Path) -> None:
    project = make_project(sqlite_store)
    import_file(
        sqlite_store,
        project,
        write_jsonl(tmp_path / "i.jsonl", [{"id": "1", "text": "t", "=cmd": "v"}]),
    )
    out = export_project(sqlite_store, project, tmp_path / "o.csv", "csv").path
    assert out.read_text(encoding="utf-8").splitlines()[0].startswith("id,text,'=cmd,")
    raw = export_project(sqlite_store, project, tmp_path / "r.csv", "csv", csv_raw=True).path
    assert raw.read_text(encoding="utf-8").splitlines()[0].startswith("id,text,=cmd,")


def test_long_neutralises_formula_cells(store: Store, tmp_path: Path) -> None:
    project = _formula_project(store, tmp_path)
    rows = read_csv(export_project(store, project, tmp_path / "long.csv", "long").path)
    assert [(r["task"], r["worker"], r["label"]) for r in rows] == [
        (f"'=id{i}", "'-w", "'=1+1") for i in range(len(FORMULAS))
    ]
    raw = read_csv(export_project(store, project, tmp_path / "raw.csv", "long", csv_raw=True).path)
    assert [(r["task"], r["worker"], r["label"]) for r in raw] == [
        (f"=id{i}", "-w", "=1+1") for i in range(len(FORMULAS))
    ]


def test_jsonl_and_parquet_keep_formula_text(store: Store, tmp_path: Path) -> None:
    project = _formula_project(store, tmp_path)
    texts = [*FORMULAS, "\rCR"]
    records = read_jsonl(export_project(store, project, tmp_path / "o.jsonl", "jsonl").path)
    assert [r["text"] for r in records] == texts and records[0]["label"] == "=1+1"
    table = pq.read_table(export_project(store, project, tmp_path / "o.parquet", "parquet").path)
    assert table.column("text").to_pylist() == texts
    assert table.column("id").to_pylist()[0] == "=id0"
