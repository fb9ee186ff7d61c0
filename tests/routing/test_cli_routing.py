"""Routing from the command line: tutors, settings, pulling work, answering and giving back
leases."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from veritag import cli
from veritag.errors import VeritagError
from veritag.store import Claim, open_store
from veritag.store.models import Assignment

ITEMS = [
    ("a1", "Stocks fell sharply on the earnings report", "finance"),
    ("a2", "The patient shows symptoms of diabetes", "medicine"),
    ("a3", "Bond yields rose after the central bank decision", "finance"),
]


def test_tutor_route_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VERITAG_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    (tmp_path / "items.csv").write_text(
        "id,text,domain\n" + "".join(f"{i},{t},{d}\n" for i, t, d in ITEMS)
    )

    def run(*args: str) -> str:
        result = runner.invoke(cli.app, list(args))
        assert result.exit_code == 0, (result.output, result.exception)
        return " ".join(result.stdout.split())

    run("init", "p", "--task", "classification", "--labels", "yes,no")
    run("import", "p", "items.csv", "--meta", "domain")
    assert "budget left 3" in run(
        "route", "set", "p", "--budget", "3", "--gold-rate", "0", "--target", "0.9"
    )
    assert "cost 2 per label, domains finance" in run(
        "tutor", "p", "ann", "--domains", "finance", "--cost", "2"
    )
    run("tutor", "p", "bob")
    lease = json.loads(run("work", "next", "p", "--tutor", "ann", "--json"))
    assert lease["domain"] in ("finance", "medicine") and lease["cost"] == 2.0
    assert "claim" in run("work", "submit", "p", str(lease["id"]), "yes", "--tutor", "ann")
    again = runner.invoke(
        cli.app, ["work", "submit", "p", str(lease["id"]), "yes", "--tutor", "ann"]
    )
    assert again.exit_code == 1 and isinstance(again.exception, VeritagError)
    bad = runner.invoke(cli.app, ["work", "next", "p", "--tutor", "bob"])
    assert bad.exit_code == 0
    second = re.search(r"Lease (\d+) for bob", " ".join(bad.stdout.split()))
    assert second, bad.stdout
    refused = runner.invoke(
        cli.app, ["work", "submit", "p", second.group(1), "maybe", "--tutor", "bob"]
    )
    assert refused.exit_code == 1 and "maybe" in str(refused.exception)
    assert "given back" in run("work", "release", "p", second.group(1), "--tutor", "bob")
    status = json.loads(run("route", "show", "p", "--json"))
    assert status["labels_spent"] == 1 and status["budget_left"] == 1.0
    assert [t["name"] for t in status["tutors"]] == ["ann", "bob"]
    ranked = json.loads(run("route", "best", "p", "a2", "--json"))
    assert {r["tutor"] for r in ranked} <= {"ann", "bob"}
    assert "inactive" in run("tutor", "p", "bob", "--inactive")
    assert "Nothing to label" in run(
        "work", "next", "p", "--tutor", "ann"
    )  # the budget cannot pay for 2 more
    dup = runner.invoke(cli.app, ["tutor", "p", "ann"])
    assert dup.exit_code == 1 and "already a tutor" in str(dup.exception)


def test_pairwise_work_from_the_command_line_speaks_left_and_right(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``veritag work next`` shows a pairwise lease as the web API does (left/right, models
    hidden) and
    takes left/right back, stored as A/B (``routing.pairwise``)."""
    monkeypatch.delenv("VERITAG_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    (tmp_path / "pairs.csv").write_text(
        "id,prompt,response_a,response_b,model_a\n"
        + "".join(f"c{i},question {i},A-answer {i},B-answer {i},gpt-x\n" for i in range(6))
    )

    def run(*args: str) -> str:
        result = runner.invoke(cli.app, list(args))
        assert result.exit_code == 0, (result.output, result.exception)
        return result.stdout

    run("init", "pw", "--task", "pairwise")
    run("import", "pw", "pairs.csv")
    run("route", "set", "pw", "--gold-rate", "0", "--max-labels", "1", "--target", "0.5")
    run("tutor", "pw", "ann")
    stored = []
    for _ in range(6):
        shown = run("work", "next", "pw", "--tutor", "ann")
        assert "gpt-x" not in shown and "response_a" not in shown and "left|right|tie" in shown
        lease = json.loads(
            run("work", "next", "pw", "--tutor", "ann", "--json")
        )  # the same lease, resumed
        assert lease["data"] is None and lease["external_id"] is None
        left = lease["pair"]["left"]
        assert f"left: {left}" in shown
        run("work", "submit", "pw", str(lease["id"]), "left", "--tutor", "ann")
        stored.append((left[0], lease["id"]))
    store = open_store(f"sqlite:///{tmp_path / 'veritag.db'}")
    with store.engine.connect() as conn:
        values = {
            i: v
            for i, v in conn.execute(
                sa.select(Assignment.id, Claim.value).join(Claim, Claim.id == Assignment.claim_id)
            )
        }
    store.close()
    assert {
        lease: side for side, lease in stored
    } == values  # "left" became whichever response was on the left
    assert {side for side, _ in stored} == {"A", "B"}  # both orders occurred


def test_work_and_route_are_sub_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``veritag work next|submit|release`` and ``veritag route set|show|best`` (issue 16): the
    hint ``work next`` prints is a command that works, ``route set`` without a setting is refused,
    and the flag forms they replace are gone."""
    monkeypatch.delenv("VERITAG_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    (tmp_path / "items.csv").write_text(
        "id,text,domain\n" + "".join(f"{i},{t},{d}\n" for i, t, d in ITEMS)
    )
    for args in (
        ["init", "p", "--task", "classification", "--labels", "yes,no"],
        ["import", "p", "items.csv", "--meta", "domain"],
        ["route", "set", "p", "--gold-rate", "0"],
        ["tutor", "p", "ann"],
    ):
        assert runner.invoke(cli.app, args).exit_code == 0, args
    shown = runner.invoke(cli.app, ["work", "next", "p", "--tutor", "ann"]).stdout
    hint = re.search(r"Answer with: veritag (.+)", shown)
    assert hint, shown
    answer = hint.group(1).replace("LABEL", "yes").split()
    assert answer[:2] == ["work", "submit"]
    answered = runner.invoke(cli.app, answer)
    assert answered.exit_code == 0 and "answered: claim" in answered.stdout, answered.output
    assert '"labels_spent": 1' in runner.invoke(cli.app, ["route", "show", "p", "--json"]).stdout
    best = runner.invoke(cli.app, ["route", "best", "p", "a2"])
    assert best.exit_code == 0 and "Who should label a2 next" in best.stdout

    nothing = runner.invoke(cli.app, ["route", "set", "p"])
    assert nothing.exit_code == 1 and "at least one setting" in str(nothing.exception)
    for old in (
        ["work", "p", "--tutor", "ann"],
        ["work", "next", "p", "--tutor", "ann", "--submit", "1", "yes"],
        ["route", "p", "--json"],
        ["route", "show", "p", "--best", "a2"],
        ["token", "ann", "--list"],
    ):
        assert runner.invoke(cli.app, old).exit_code == 2, old  # a usage error, not a mode
