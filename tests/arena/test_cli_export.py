"""``veritag arena`` on the command line, and DPO pairs exported from an arena project."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from veritag.arena import import_battles, import_responses
from veritag.cli import app
from veritag.io import export_project
from veritag.store import Store
from veritag.store.models import Item

from .test_import import SAMPLE, arena, responses, write_jsonl

runner = CliRunner()


def test_the_arena_commands(tmp_path: Path) -> None:
    db = ["--db", str(tmp_path / "v.db")]
    assert runner.invoke(app, ["init", "ar", "--task", "arena", *db]).exit_code == 0
    out = runner.invoke(
        app, ["arena", "import", "ar", str(write_jsonl(tmp_path / "r.jsonl", responses())), *db]
    )
    assert out.exit_code == 0 and "12 battles added" in out.output
    out = runner.invoke(app, ["arena", "battles", "ar", str(SAMPLE), "--source", "crowd", *db])
    assert (
        out.exit_code == 0 and f"{len(SAMPLE.read_text().splitlines())} votes added" in out.output
    )
    out = runner.invoke(app, ["arena", "battles", "ar", str(SAMPLE), "--source", "crowd", *db])
    assert "nothing new" in out.output
    out = runner.invoke(
        app, ["arena", "leaderboard", "ar", "--rounds", "20", *db], env={"COLUMNS": "140"}
    )
    assert out.exit_code == 0 and "gpt4" in out.output and "95% interval" in out.output
    out = runner.invoke(
        app,
        [
            "arena",
            "leaderboard",
            "ar",
            "--json",
            "--interval",
            "sandwich",
            "--unweighted",
            "--ties",
            "davidson",
            *db,
        ],
    )
    board = json.loads(out.output)
    assert board["ties"] == "davidson" and board["tie_param"] > 0 and board["weighted"] is False
    assert (
        board["models"][0]["rank"] == 1
        and {"model", "rating", "lower", "upper", "battles"} <= board["models"][0].keys()
    )
    out = runner.invoke(app, ["arena", "leaderboard", "ar", "--domain", "nope", *db])
    assert out.exit_code == 1 and "no votes in domain 'nope'" in str(out.exception)


def test_dpo_pairs_from_an_arena_project(store: Store, tmp_path: Path) -> None:
    project = arena(store)
    import_responses(store, project, write_jsonl(tmp_path / "r.jsonl", responses(2)))
    with store.engine.connect() as conn:
        found = {
            ext: data
            for ext, data in conn.execute(
                sa.select(Item.external_id, Item.data).where(Item.project_id == project.id)
            )
        }
    winners = {
        "q0:m-alpha:m-beta": "m-alpha",
        "q0:m-alpha:m-gamma": "m-gamma",
        "q1:m-alpha:m-beta": "tie",
        "q1:m-beta:m-gamma": "both_bad",
    }
    rows = []
    for ext, winner in winners.items():
        prompt_id, x, y = ext.split(":")
        rows.append(
            {
                "question_id": prompt_id,
                "model_a": x,
                "model_b": y,
                "judge": "tut",
                "winner": winner
                if winner in ("tie", "both_bad")
                else "model_a"
                if winner == x
                else "model_b",
            }
        )
    import_battles(store, project, write_jsonl(tmp_path / "b.jsonl", rows))
    out = tmp_path / "dpo.jsonl"
    result = export_project(store, project, out, "dpo")
    pairs = {r["id"]: r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    assert result.rows == 2 and set(pairs) == {
        "q0:m-alpha:m-beta",
        "q0:m-alpha:m-gamma",
    }  # tie, both bad dropped
    for ext, pair in pairs.items():
        data, winner = found[ext], winners[ext]
        loser = data["model_b"] if data["model_a"] == winner else data["model_a"]
        assert pair["prompt"] == data["prompt"]
        assert (
            pair["chosen"] == f"{winner} says {ext[1]}"
            and pair["rejected"] == f"{loser} says {ext[1]}"
        )
        assert "m-" not in json.dumps(
            {k: v for k, v in pair.items() if k not in ("id", "chosen", "rejected")}
        )
