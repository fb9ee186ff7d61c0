"""The command line records what it changes in the audit log as ``cli:<OS user>``: projects,
users, unlocks, tokens (by id and name, never the value), tutors, routing settings and exports."""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from veritag import cli
from veritag.store import audit, open_store


def _ok(runner: CliRunner, *args: str, stdin: str | None = None) -> str:
    result = runner.invoke(cli.app, list(args), input=stdin)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def test_cli_changes_are_recorded_as_the_os_user(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("VERITAG_DATABASE_URL", raising=False)
    monkeypatch.setattr(getpass, "getuser", lambda: "operator")
    runner = CliRunner()
    db = ("--db", str(tmp_path / "v.db"))
    _ok(runner, "init", "p", "--task", "classification", "--labels", "yes,no", *db)
    _ok(
        runner,
        "user",
        "add",
        "kim",
        "--role",
        "admin",
        "--password-stdin",
        *db,
        stdin="a long password\n",
    )
    _ok(runner, "user", "unlock", "kim", *db)
    secret = _ok(runner, "token", "add", "kim", "--name", "ci", *db).strip().splitlines()[-1]
    _ok(runner, "token", "revoke", "kim", "1", *db)
    _ok(runner, "route", "set", "p", "--max-labels", "2", *db)
    _ok(runner, "tutor", "p", "kim", "--cost", "3", *db)
    _ok(runner, "tutor", "p", "kim", "--inactive", *db)
    _ok(runner, "export", "p", str(tmp_path / "out.csv"), *db)

    store = open_store(f"sqlite:///{tmp_path / 'v.db'}")
    try:
        entries = list(reversed(audit.read(store)))
    finally:
        store.close()
    assert [e.action for e in entries] == [
        "project.create",
        "user.create",
        "user.unlock",
        "token.create",
        "token.revoke",
        "routing.configure",
        "tutor.add",
        "tutor.active",
        "export",
    ]
    assert {(e.actor, e.actor_id, e.client, e.outcome) for e in entries} == {
        ("cli:operator", None, None, "ok")
    }
    by = {e.action: e for e in entries}
    assert (by["user.create"].target, by["user.create"].detail) == ("kim", {"role": "admin"})
    assert (by["token.create"].target, by["token.create"].detail) == (
        "1",
        {"name": "ci", "user": "kim"},
    )
    assert by["routing.configure"].detail["max_labels"]["to"] == 2
    assert (by["export"].project, by["export"].target, by["export"].detail["rows"]) == (
        "p",
        "csv",
        0,
    )
    assert secret.startswith("vt_") and not any(
        secret in repr(e) or "a long password" in repr(e) for e in entries
    )
