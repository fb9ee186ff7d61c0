"""Arena imports: responses become one battle item per prompt and model pair, judged battles become
claims oriented to the item's models; both idempotent, a bad row named by file and line."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from vt_helpers import make_project

from veritag.arena import battle_id, import_battles, import_responses
from veritag.errors import InputError, LabelError, RowErrors
from veritag.schema import parse_schema
from veritag.store import Project, Store
from veritag.store.models import Claim, ImportRecord, Item, Source
from veritag.truth.arena import OUTCOME_SPELLINGS, leaderboard

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "prd_vicuna80_battles_sample.jsonl"
MODELS = ("m-alpha", "m-beta", "m-gamma")


def arena(store: Store, name: str = "arena") -> Project:
    return make_project(store, name, {"type": "arena", "instructions": "Which answer is better?"})


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def responses(n_prompts: int = 4, models: tuple[str, ...] = MODELS) -> list[dict[str, Any]]:
    return [
        {
            "prompt_id": f"q{p}",
            "prompt": f"Question {p}?",
            "model": m,
            "response": f"{m} says {p}",
            "domain": "math" if p % 2 else "code",
        }
        for p in range(n_prompts)
        for m in models
    ]


def items(store: Store, project: Project) -> dict[str, Item]:
    with store.session() as session:
        return {
            i.external_id: i
            for i in session.scalars(sa.select(Item).where(Item.project_id == project.id))
        }


def votes(store: Store, project: Project) -> list[tuple[str, str, str]]:
    """(external id, source name, value) of every claim."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(Item.external_id, Source.name, Claim.value)
            .join(Item, Item.id == Claim.item_id)
            .join(Source, Source.id == Claim.source_id)
            .where(Claim.project_id == project.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def test_responses_become_one_item_per_prompt_and_pair(store: Store, tmp_path: Path) -> None:
    project = arena(store)
    result = import_responses(store, project, write_jsonl(tmp_path / "r.jsonl", responses()))
    assert (result.rows, result.prompts, result.models, result.items_added) == (12, 4, 3, 12)
    found = items(store, project)
    assert sorted(found) == sorted(
        battle_id(f"q{p}", x, y)
        for p in range(4)
        for x, y in (("m-alpha", "m-beta"), ("m-alpha", "m-gamma"), ("m-beta", "m-gamma"))
    )
    first = found["q1:m-alpha:m-beta"]
    data = first.data
    assert {data["model_a"], data["model_b"]} == {"m-alpha", "m-beta"}
    assert (
        data["response_a"] == f"{data['model_a']} says 1"
        and data["response_b"] == f"{data['model_b']} says 1"
    )
    assert data["prompt"] == first.text == "Question 1?"
    assert first.meta == {"domain": "math", "prompt_id": "q1"}
    # the coin puts the alphabetically first model on either side
    sides = Counter(
        i.data["model_a"] == min(i.data["model_a"], i.data["model_b"]) for i in found.values()
    )
    assert sides[True] and sides[False]

    again = import_responses(store, project, tmp_path / "r.jsonl")
    assert again.added_nothing and len(items(store, project)) == 12
    with store.engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(ImportRecord)) == 2


def test_max_pairs_caps_the_pairs_of_each_prompt_the_same_way_each_time(
    store: Store, tmp_path: Path
) -> None:
    project = arena(store)
    path = write_jsonl(tmp_path / "r.jsonl", responses(3, ("a1", "b2", "c3", "d4", "e5")))
    assert import_responses(store, project, path, max_pairs=4).items_added == 12
    first = set(items(store, project))
    assert import_responses(store, project, path, max_pairs=4).added_nothing
    assert set(items(store, project)) == first
    assert Counter(e.split(":")[0] for e in first) == {"q0": 4, "q1": 4, "q2": 4}


def test_csv_responses_and_a_bad_row_named_by_file_and_line(store: Store, tmp_path: Path) -> None:
    project = arena(store)
    good = tmp_path / "r.csv"
    good.write_text(
        "prompt_id,prompt,model,response\n1,Hi?,x,hello\n1,Hi?,y,hey\n", encoding="utf-8"
    )
    assert import_responses(store, project, good).items_added == 1
    assert set(items(store, project)) == {"1:x:y"}

    rows = responses(2)
    rows[4] = {**rows[4], "response": "  "}
    rows.insert(2, dict(rows[0]))  # a second answer of the same model to the same prompt
    bad = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(RowErrors) as caught:
        import_responses(store, project, bad)
    message = str(caught.value)
    assert (
        f"{bad}:3: field 'model': a second response of 'm-alpha' to prompt 'q0' (first on line 1)"
        in message
    )
    assert f"{bad}:6: field 'response': the value is empty" in message
    assert "nothing was written" in message and "--skip-invalid" not in message
    assert set(items(store, project)) == {"1:x:y"}


def test_a_classification_project_refuses_arena_files(store: Store, tmp_path: Path) -> None:
    project = make_project(store, "cls", {"type": "classification", "labels": ["a", "b"]})
    with pytest.raises(InputError, match="not an arena project"):
        import_responses(store, project, write_jsonl(tmp_path / "r.jsonl", responses()))


def test_battles_become_claims_relative_to_the_items_models(store: Store, tmp_path: Path) -> None:
    project = arena(store)
    path = write_jsonl(
        tmp_path / "b.jsonl",
        [
            {
                "question_id": 7,
                "model_a": "zed",
                "model_b": "amy",
                "winner": "model_a",
                "judge": "j1",
            },
            {
                "question_id": 7,
                "model_a": "amy",
                "model_b": "zed",
                "winner": "model_a",
                "judge": "j2",
            },
            {"question_id": 7, "model_a": "zed", "model_b": "amy", "winner": "tie", "judge": "j1"},
            {
                "question_id": 7,
                "model_a": "zed",
                "model_b": "amy",
                "winner": "model_a",
                "judge": "j1",
            },
            {
                "question_id": 8,
                "model_a": "zed",
                "model_b": "amy",
                "winner": "both_bad",
                "domain": "poetry",
            },
        ],
    )
    result = import_battles(store, project, path)
    assert (result.items_added, result.claims_added) == (2, 5)
    found = items(store, project)
    item = found["7:amy:zed"]
    zed = "A" if item.data["model_a"] == "zed" else "B"
    amy = "B" if zed == "A" else "A"
    assert Counter(votes(store, project)) == Counter(
        {
            ("7:amy:zed", "j1", zed): 2,
            ("7:amy:zed", "j1", "tie"): 1,
            ("7:amy:zed", "j2", amy): 1,
            ("8:amy:zed", "b", "both_bad"): 1,
        }
    )
    assert item.data.keys() == {"model_a", "model_b"} and item.meta == {
        "domain": None,
        "prompt_id": "7",
    }
    assert found["8:amy:zed"].meta["domain"] == "poetry"
    assert import_battles(store, project, path).added_nothing


def test_responses_fill_items_that_battles_created(store: Store, tmp_path: Path) -> None:
    project = arena(store)
    import_battles(
        store,
        project,
        write_jsonl(
            tmp_path / "b.jsonl",
            [{"question_id": "q0", "model_a": "m-beta", "model_b": "m-alpha", "winner": "model_b"}],
        ),
        source_name="crowd",
    )
    before = items(store, project)["q0:m-alpha:m-beta"].data
    result = import_responses(store, project, write_jsonl(tmp_path / "r.jsonl", responses(1)))
    assert (result.items_added, result.items_filled) == (2, 1)
    data = items(store, project)["q0:m-alpha:m-beta"].data
    assert (data["model_a"], data["model_b"]) == (before["model_a"], before["model_b"])
    assert data["response_a"] == f"{data['model_a']} says 0"
    alpha = "A" if data["model_a"] == "m-alpha" else "B"
    assert votes(store, project) == [("q0:m-alpha:m-beta", "crowd", alpha)]


def test_bad_battle_rows_are_named(store: Store, tmp_path: Path) -> None:
    project = arena(store)
    path = write_jsonl(
        tmp_path / "b.jsonl",
        [
            {"question_id": 1, "model_a": "x", "model_b": "y", "winner": "model_a"},
            {"question_id": 1, "model_a": "x", "model_b": "y", "winner": "model_c"},
            {"question_id": 1, "model_a": "x", "model_b": "x", "winner": "tie"},
            {"model_a": "x", "model_b": "y", "winner": "tie"},
        ],
    )
    with pytest.raises(RowErrors) as caught:
        import_battles(store, project, path)
    message = str(caught.value)
    assert f"{path}:2: field 'winner': 'model_c' is not one of" in message
    assert f"{path}:3: field 'model_b': a battle needs two different models" in message
    assert f"{path}:4: field 'question_id': missing field" in message
    assert items(store, project) == {}


def test_the_prd_vicuna80_sample(store: Store) -> None:
    project = arena(store)
    raw = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    result = import_battles(store, project, SAMPLE, source_name="prd-humans")
    assert result.rows == len(raw) and result.claims_added == len(raw)
    assert result.items_added == len(
        {(r["question_id"], *sorted((r["model_a"], r["model_b"]))) for r in raw}
    )
    assert {name for _, name, _ in votes(store, project)} == {"prd-humans"}
    assert Counter(v for _, _, v in votes(store, project))["tie"] == sum(
        r["winner"] == "tie" for r in raw
    )
    assert import_battles(store, project, SAMPLE, source_name="prd-humans").added_nothing


def test_the_arena_schema() -> None:
    from veritag.errors import LabelError
    from veritag.schema import TASK_TYPES, ArenaSchema, PairwiseSchema, parse_schema

    schema = parse_schema({"type": "arena"})
    assert (
        isinstance(schema, ArenaSchema)
        and isinstance(schema, PairwiseSchema)
        and "arena" in TASK_TYPES
    )
    assert schema.classes() == ["A", "B", "tie", "both_bad"]
    assert [
        schema.normalize(v) for v in ("a", " B ", "Tie", "both bad", "both-bad", "BOTH_BAD")
    ] == ["A", "B", "tie", "both_bad", "both_bad", "both_bad"]
    with pytest.raises(LabelError, match="not one of the accepted outcomes"):
        schema.normalize("left")
    assert type(parse_schema({"type": "pairwise"})) is PairwiseSchema


#: Every accepted spelling with the outcome it names (relative to the row's models): the table
#: itself, then the same words in another case, with blanks around or another word separator.
SPELLED = [
    *((s, o) for o, spellings in OUTCOME_SPELLINGS.items() for s in spellings),
    ("a", "A"),
    ("Model A", "A"),
    ("MODEL-B", "B"),
    (" Tie ", "tie"),
    ("Both bad", "both_bad"),
    ("both-bad", "both_bad"),
    ("BOTHBAD", "both_bad"),
    ("Tie (BothBad)", "both_bad"),
]
UNKNOWN = ["left", "model_c", "win", "both", "a b", "tie(bothbad)", ""]
FLIP = {"A": "B", "B": "A", "tie": "tie", "both_bad": "both_bad"}


def test_every_spelling_means_the_same_outcome_to_schema_importer_and_leaderboard(
    store: Store, tmp_path: Path
) -> None:
    schema = parse_schema({"type": "arena"})
    assert [schema.normalize(s) for s, _ in SPELLED] == [o for _, o in SPELLED]

    # The leaderboard: a spelling fits as its outcome (both_bad dropped, so it differs from tie).
    a, b = ["x", "x", "y"], ["y", "z", "z"]
    for spelled, outcome in SPELLED:
        assert (
            leaderboard(a, b, [spelled, "A", "B"], interval="none", both_bad="drop").rows()
            == leaderboard(a, b, [outcome, "A", "B"], interval="none", both_bad="drop").rows()
        ), spelled

    # The battles importer: each vote is stored as its outcome, turned to the item's models.
    project = arena(store)
    rows = [
        {"question_id": f"q{k}", "model_a": "m1", "model_b": "m2", "winner": spelled}
        for k, (spelled, _) in enumerate(SPELLED)
    ]
    import_battles(store, project, write_jsonl(tmp_path / "b.jsonl", rows))
    found = items(store, project)
    stored = {ext: value for ext, _, value in votes(store, project)}
    for k, (_, outcome) in enumerate(SPELLED):
        ext = battle_id(f"q{k}", "m1", "m2")
        assert stored[ext] == (outcome if found[ext].data["model_a"] == "m1" else FLIP[outcome])


def test_an_unknown_outcome_is_refused_by_all_three_naming_every_spelling(
    store: Store, tmp_path: Path
) -> None:
    accepted = [repr(s) for spellings in OUTCOME_SPELLINGS.values() for s in spellings]
    schema = parse_schema({"type": "arena"})
    messages = []
    for word in UNKNOWN:
        with pytest.raises(LabelError) as refused:
            schema.normalize(word)
        messages.append(str(refused.value))
        with pytest.raises(ValueError, match=r"battle 1: outcome ") as refused_too:
            leaderboard(["x", "x"], ["y", "y"], ["A", word], interval="none")
        messages.append(str(refused_too.value))
    project = arena(store)
    rows = [
        {"question_id": "q", "model_a": "m1", "model_b": "m2", "winner": word or "?"}
        for word in UNKNOWN
    ]
    path = write_jsonl(tmp_path / "b.jsonl", rows)
    with pytest.raises(RowErrors) as caught:
        import_battles(store, project, path)
    lines = [str(e) for e in caught.value.errors]
    assert [line.split(": field 'winner': ")[0] for line in lines] == [
        f"{path}:{k + 1}" for k in range(len(UNKNOWN))
    ]
    messages += lines
    assert all(all(s in m for s in accepted) for m in messages), messages
    assert items(store, project) == {}


@pytest.mark.parametrize("bad", ["\ud800", "a\u0000b"])
def test_unstorable_text_in_responses_is_named(store: Store, tmp_path: Path, bad: str) -> None:
    project = arena(store)
    rows = responses(2)
    rows[1] = {**rows[1], "response": bad}
    rows[3] = {**rows[3], "model": "m" + bad}
    with pytest.raises(RowErrors) as caught:
        import_responses(store, project, write_jsonl(tmp_path / "bad.jsonl", rows))
    message = str(caught.value)
    message.encode("utf-8")
    assert f"{tmp_path / 'bad.jsonl'}:2: field 'response'" in message
    assert f"{tmp_path / 'bad.jsonl'}:4: field 'model'" in message
    assert items(store, project) == {}
