"""The ``veritag`` command: the whole job end to end, and user mistakes as one 'Error:' line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result
from vt_helpers import GT, LABELS, TEXTS, read_csv, read_jsonl, triples

from veritag import cli
from veritag.errors import AlreadyExists, InputError, NotFound, SchemaError, VeritagError
from veritag.truth import METHODS

VERITAG = Path(sys.executable).parent / "veritag"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def plain(text: str) -> str:
    """Output without colour codes, with Rich's line wrapping undone."""
    return " ".join(ANSI.sub("", text).split())


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("VERITAG_DATABASE_URL", raising=False)
    return CliRunner()


def ok(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(cli.app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return plain(result.stdout)


def fails(runner: CliRunner, *args: str) -> Result:
    result = runner.invoke(cli.app, list(args))
    assert result.exit_code == 1
    assert isinstance(result.exception, VeritagError), result.exception
    return result


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """Run the console entry point in this process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["veritag", *args])
    with pytest.raises(SystemExit) as info:
        cli.main()
    captured = capsys.readouterr()
    return info.value.code or 0, ANSI.sub("", captured.out), ANSI.sub("", captured.err)


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1, stderr
    return errors[0]


# --- end to end -------------------------------------------------------------------------------


def test_end_to_end(runner: CliRunner, db_url: str, tmp_path: Path) -> None:
    db = ("--db", db_url)
    out = ok(runner, "init", "rte", "--task", "classification", "--labels", "0,1", *db)
    assert "Created project rte (classification)" in out

    out = ok(runner, "import", "rte", str(TEXTS), "--meta", "rte_subtask", *db)
    assert "800 rows, 800 new items, 0 new claims, 0 new gold labels" in out
    out = ok(runner, "import", "rte", str(LABELS), *db)
    assert "8000 rows, 0 new items, 8000 new claims" in out
    out = ok(runner, "import", "rte", str(LABELS), *db)
    assert "Nothing new" in out
    assert "all 8000 rows were already imported" in out
    assert "this file was first imported" in out

    jsonl = tmp_path / "out.jsonl"
    out = ok(runner, "export", "rte", str(jsonl), *db)
    assert "Wrote 800 rows" in out
    records = read_jsonl(jsonl)
    assert len(records) == 800
    assert {r["rte_subtask"] for r in records} == {t["rte_subtask"] for t in read_csv(TEXTS)}
    truth = {r["task"]: r["label"] for r in read_csv(GT)}
    assert sum(r["label"] == truth[r["id"]] for r in records) / 800 >= 0.85

    long = tmp_path / "long.csv"
    out = ok(runner, "export", "rte", str(long), "--format", "long", *db)
    assert "Wrote 8000 rows" in out
    assert triples(long) == triples(LABELS)

    parquet = tmp_path / "out.parquet"
    assert "Wrote 800 rows" in ok(runner, "export", "rte", str(parquet), *db)
    assert parquet.stat().st_size > 0
    hf = tmp_path / "hf"
    assert "(hf)" in ok(runner, "export", "rte", str(hf), "--format", "hf", *db)
    assert (hf / "README.md").is_file()

    status = json.loads(runner.invoke(cli.app, ["status", "--json", *db]).stdout)
    assert status == {
        "projects": [
            {
                "project": "rte",
                "task": "classification",
                "items": 800,
                "claims": 8000,
                "human_claims": 8000,
                "labeled_items": 800,
                "sources": 164,
                "gold": 0,
                "imports": 3,
            }
        ]
    }
    detail = json.loads(runner.invoke(cli.app, ["status", "rte", "--json", *db]).stdout)
    assert detail["projects"][0]["items"] == 800
    assert [(i["rows"], i["items"], i["claims"], i["skipped"]) for i in detail["imports"]] == [
        (800, 800, 0, 0),
        (8000, 0, 8000, 0),
        (8000, 0, 0, 0),
    ]
    assert detail["imports"][0]["file"] == str(TEXTS)

    table = ok(runner, "status", *db)
    assert "Projects" in table and "rte" in table and "8000" in table


def test_export_csv_neutralises_formulas(runner: CliRunner, db_url: str, tmp_path: Path) -> None:
    db = ("--db", db_url)
    formulas = ["=1+1", "+SUM(A1)", "-2+3", "@cmd", '=HYPERLINK("http://x","y")', "\tTAB"]
    ok(runner, "init", "f", "--task", "classification", "--labels", "yes,no", *db)
    items = tmp_path / "items.jsonl"
    items.write_text(
        "".join(
            json.dumps({"id": f"=i{n}", "text": t, "score": -1.5}) + "\n"
            for n, t in enumerate(formulas)
        ),
        encoding="utf-8",
    )
    ok(runner, "import", "f", str(items), *db)
    labels = tmp_path / "labels.jsonl"
    labels.write_text(
        "".join(
            json.dumps({"task": f"=i{n}", "worker": "@w", "label": "yes"}) + "\n"
            for n in range(len(formulas))
        ),
        encoding="utf-8",
    )
    ok(runner, "import", "f", str(labels), *db)
    safe, raw = tmp_path / "safe.csv", tmp_path / "raw.csv"
    ok(runner, "export", "f", str(safe), *db)
    ok(runner, "export", "f", str(raw), "--csv-raw", *db)
    assert [r["text"] for r in read_csv(safe)] == ["'" + t for t in formulas]
    assert {r["score"] for r in read_csv(safe)} == {"-1.5"}, "numbers are never prefixed"
    assert [r["text"] for r in read_csv(raw)] == formulas
    safe_long, raw_long = tmp_path / "safe-long.csv", tmp_path / "raw-long.csv"
    ok(runner, "export", "f", str(safe_long), "--format", "long", *db)
    ok(runner, "export", "f", str(raw_long), "--format", "long", "--csv-raw", *db)
    assert {(r["task"], r["worker"]) for r in read_csv(safe_long)} == {
        (f"'=i{n}", "'@w") for n in range(len(formulas))
    }
    assert {(r["task"], r["worker"]) for r in read_csv(raw_long)} == {
        (f"=i{n}", "@w") for n in range(len(formulas))
    }
    jsonl = tmp_path / "out.jsonl"
    ok(runner, "export", "f", str(jsonl), *db)
    assert [r["text"] for r in read_jsonl(jsonl)] == formulas


def test_backup_and_restore(runner: CliRunner, db_url: str, tmp_path: Path) -> None:
    db = ("--db", db_url)
    ok(runner, "init", "b", "--task", "classification", "--labels", "0,1", *db)
    ok(runner, "import", "b", str(LABELS), *db)
    out = tmp_path / "veritag.backup"
    assert "Backed up the" in ok(runner, "backup", str(out), *db)
    assert out.is_file() and (tmp_path / "veritag.backup.meta.json").is_file()
    labels = tmp_path / "more.csv"
    labels.write_text("task,worker,label\nnew-item,new-worker,1\n", encoding="utf-8")
    ok(runner, "import", "b", str(labels), *db)
    refused = fails(runner, "restore", str(out), *db)
    assert "newer than the backup" in str(refused.exception) and "--force" in str(refused.exception)
    assert "Restored" in ok(runner, "restore", str(out), "--force", *db)
    status = json.loads(runner.invoke(cli.app, ["status", "b", "--json", *db]).stdout)
    assert (status["projects"][0]["claims"], status["projects"][0]["items"]) == (8000, 800)


def test_backup_without_pg_tools(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from veritag.store import backup

    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(backup, "PG_BIN_GLOBS", ())
    result = fails(
        runner,
        "backup",
        str(tmp_path / "pg.backup"),
        "--db",
        "postgresql+psycopg://u@127.0.0.1:1/x",
    )
    assert "pg_dump was not found on PATH" in str(result.exception)


def test_status_without_projects(runner: CliRunner, tmp_path: Path) -> None:
    db = str(tmp_path / "v.db")
    assert "No projects yet" in ok(runner, "status", "--db", db)
    assert json.loads(runner.invoke(cli.app, ["status", "--json", "--db", db]).stdout) == {
        "projects": []
    }


def test_init_without_a_name_creates_the_database(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "fresh.db"
    out = ok(runner, "init", "--db", str(db))
    assert "Database ready" in out
    assert db.is_file()


def test_relative_db_path(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ok(runner, "init", "p", "--task", "pairwise", "--db", "rel.db")
    assert (tmp_path / "rel.db").is_file()
    ok(runner, "init", "q", "--task", "rating", "--scale", "0-10")
    assert (tmp_path / "veritag.db").is_file(), "the default database is ./veritag.db"


def test_database_url_env_var(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "from-env.db"
    monkeypatch.setenv("VERITAG_DATABASE_URL", f"sqlite:///{target}")
    out = ok(runner, "init", "envproj", "--task", "rating", "--scale", "1-3")
    assert "Created project envproj (rating)" in out
    assert target.is_file()
    assert not (tmp_path / "veritag.db").exists()
    status = json.loads(runner.invoke(cli.app, ["status", "--json"]).stdout)
    assert [p["project"] for p in status["projects"]] == ["envproj"]
    # --db beats the environment
    other = tmp_path / "other.db"
    ok(runner, "init", "--db", str(other))
    assert json.loads(runner.invoke(cli.app, ["status", "--json", "--db", str(other)]).stdout) == {
        "projects": []
    }


def test_init_with_schema_file(runner: CliRunner, tmp_path: Path) -> None:
    db = str(tmp_path / "v.db")
    schema = tmp_path / "schema.json"
    schema.write_text(
        json.dumps({"type": "multilabel", "labels": ["a", "b"], "max_labels": 1}), encoding="utf-8"
    )
    assert "(multilabel)" in ok(runner, "init", "m", "--schema", str(schema), "--db", db)
    assert "(fact_check)" in ok(
        runner, "init", "f", "--task", "fact_check", "--labels", "yes,no", "--db", db
    )
    status = json.loads(runner.invoke(cli.app, ["status", "--json", "--db", db]).stdout)
    assert [(p["project"], p["task"]) for p in status["projects"]] == [
        ("m", "multilabel"),
        ("f", "fact_check"),
    ]


def test_import_options(runner: CliRunner, tmp_path: Path) -> None:
    db = ("--db", str(tmp_path / "v.db"))
    ok(runner, "init", "p", "--task", "classification", "--labels", "neg,pos", *db)
    data = tmp_path / "data.txt"
    data.write_text(
        "key\tbody\tgt\tp\n1\thi\tpos\t[0.2,0.8]\n2\tyo\t\t[0.9,0.1]\n", encoding="utf-8"
    )
    out = ok(
        runner,
        "import",
        "p",
        str(data),
        "--format",
        "tsv",
        "--id",
        "key",
        "--text",
        "body",
        "--gold",
        "gt",
        "--probs",
        "p",
        "--model",
        "clf",
        *db,
    )
    assert "2 rows, 2 new items, 2 new claims, 1 new gold labels" in out
    out_file = tmp_path / "o.jsonl"
    ok(runner, "export", "p", str(out_file), *db)
    records = {r["id"]: r for r in read_jsonl(out_file)}
    assert (records["1"]["label"], records["1"]["label_source"]) == ("pos", "gold")
    assert (records["2"]["label"], records["2"]["label_source"]) == ("neg", "model")


def test_skip_invalid_from_the_cli(runner: CliRunner, tmp_path: Path) -> None:
    db = ("--db", str(tmp_path / "v.db"))
    ok(runner, "init", "p", "--task", "classification", "--labels", "0,1", *db)
    data = tmp_path / "l.csv"
    data.write_text("task,worker,label\n1,w,1\n2,w,9\n", encoding="utf-8")
    report = tmp_path / "report.csv"
    result = runner.invoke(
        cli.app, ["import", "p", str(data), "--skip-invalid", "--report", str(report), *db]
    )
    assert result.exit_code == 0
    assert "1 new claims" in plain(result.stdout)
    assert "Skipped 1 bad row(s)" in plain(result.stderr)
    assert report.is_file()
    assert "'9' is not one of the allowed values" in report.read_text(encoding="utf-8")


def test_quickstart(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "qs"
    out = ok(runner, "quickstart", "--dir", str(folder), "--no-serve")
    rows = read_jsonl(folder / "snow_rte.jsonl")
    assert len(rows) == 800
    assert all(r["label"] in ("0", "1") for r in rows)
    assert (folder / "snow_rte.parquet").is_file()
    assert (folder / "veritag.db").is_file()
    match = re.search(r"accuracy against the sample's ground truth: ([0-9.]+) on (\d+) items", out)
    assert match, out
    assert float(match.group(1)) >= 0.85
    assert int(match.group(2)) == 800
    assert "Wrote 800 resolved items" in out
    # the bundled model labels the sample, and automation refuses what the audit cannot prove
    model = re.search(
        r"Labeler (minilm-logreg@\S+): trained on 800 items \(out-of-fold accuracy ([0-9.]+)", out
    )
    assert model, out
    assert (
        0.4 <= float(model.group(2)) <= 0.7
    )  # entailment is beyond a sentence-embedding classifier
    assert "0 of 800 items automated" in " ".join(out.split()) and "Nothing automated" in out
    page = (folder / "automation_audit.html").read_text(encoding="utf-8")
    assert 'id="calibration"' in page and "<svg" in page
    accounts = dict(
        line.split(" ", 1) for line in (folder / "demo-accounts.txt").read_text().splitlines()
    )
    assert set(accounts) == {"admin", "reviewer", "tutor"} and all(
        p in out for p in accounts.values()
    )
    assert (folder / "demo-accounts.txt").stat().st_mode & 0o077 == 0
    assert re.search(r"\d+ uncertain items are routed to tutors", out)
    # a second run reuses the database and adds nothing, then serves the UI: the demo tutor labels
    # at once
    served: list[tuple[Any, str, int]] = []
    monkeypatch.setattr(
        cli.serve,  # the module of quickstart and serve
        "_run_server",
        lambda store, host, port, log_level="warning": served.append(
            (_demo_tutor_labels(store, accounts["tutor"]), host, port)
        ),
    )
    again = ok(runner, "quickstart", "--dir", str(folder), "--port", "8765")
    assert again.count("Nothing new") == 2
    assert match.group(1) in again
    assert "Added 0 new model claims" in again and "still covers every claim" in again
    assert all(p in again for p in accounts.values())  # the same passwords
    assert served == [(200, "127.0.0.1", 8765)] and "http://127.0.0.1:8765/login" in again


def _demo_tutor_labels(store: Any, password: str) -> int:
    """Log in as the demo tutor through the UI's login API and answer the first routed item."""
    from fastapi.testclient import TestClient

    from veritag.server import create_app

    with TestClient(create_app(store)) as client:
        login = client.post("/api/v1/login", json={"username": "tutor", "password": password})
        headers = {"X-CSRF-Token": login.json()["csrf_token"]}
        lease = client.post("/api/v1/projects/snow_rte/work", headers=headers)
        assert lease.status_code == 200, lease.text
        done = client.post(
            f"/api/v1/projects/snow_rte/work/{lease.json()['lease']}/submit",
            headers=headers,
            json={"value": "1", "seconds": 5},
        )
        return done.status_code


def test_version(runner: CliRunner) -> None:
    from veritag import __version__

    assert ok(runner, "--version") == f"veritag {__version__}"


# --- user mistakes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "error", "named"),
    [
        (("--task", "nope"), SchemaError, "nope"),
        (("--task", "classification", "--labels", "only"), SchemaError, "at least two labels"),
        (("--task", "classification", "--labels", "a,a"), SchemaError, "unique"),
        (("--task", "rating", "--scale", "5-1"), SchemaError, "must be above min"),
        (("--task", "rating", "--scale", "one-five"), VeritagError, "--scale must look like 1-5"),
        (("--task", "rating", "--labels", "a,b"), SchemaError, "labels"),
        ((), VeritagError, "a project needs a task type"),
    ],
)
def test_init_with_bad_schema(
    runner: CliRunner, tmp_path: Path, args: tuple[str, ...], error: type, named: str
) -> None:
    db = str(tmp_path / "v.db")
    result = fails(runner, "init", "p", *args, "--db", db)
    assert isinstance(result.exception, error)
    assert named in str(result.exception)
    assert json.loads(runner.invoke(cli.app, ["status", "--json", "--db", db]).stdout) == {
        "projects": []
    }


def test_init_schema_file_mistakes(runner: CliRunner, tmp_path: Path) -> None:
    db = str(tmp_path / "v.db")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    assert "cannot read schema file" in str(
        fails(runner, "init", "p", "--schema", str(bad), "--db", db).exception
    )
    assert "cannot read schema file" in str(
        fails(runner, "init", "p", "--schema", str(tmp_path / "missing.json"), "--db", db).exception
    )
    good = tmp_path / "good.json"
    good.write_text('{"type": "rating"}', encoding="utf-8")
    assert "not both" in str(
        fails(runner, "init", "p", "--schema", str(good), "--task", "rating", "--db", db).exception
    )


def test_other_mistakes(runner: CliRunner, tmp_path: Path) -> None:
    db = ("--db", str(tmp_path / "v.db"))
    ok(runner, "init", "p", "--task", "classification", "--labels", "0,1", *db)
    assert isinstance(fails(runner, "init", "p", "--task", "rating", *db).exception, AlreadyExists)
    assert isinstance(fails(runner, "import", "nope", str(LABELS), *db).exception, NotFound)
    assert isinstance(
        fails(runner, "export", "nope", str(tmp_path / "o.jsonl"), *db).exception, NotFound
    )
    assert isinstance(fails(runner, "status", "nope", *db).exception, NotFound)
    assert isinstance(
        fails(runner, "import", "p", str(tmp_path / "missing.csv"), *db).exception, InputError
    )
    result = fails(runner, "export", "p", str(tmp_path / "o.xlsx"), *db)
    assert "--format" in str(result.exception)
    result = fails(runner, "export", "p", str(tmp_path / "o.jsonl"), "--format", "dpo", *db)
    assert "pairwise" in str(result.exception)
    result = fails(runner, "init", "--db", str(tmp_path / "no" / "dir" / "v.db"))
    assert "does not exist" in str(result.exception)


def test_main_prints_one_error_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = str(tmp_path / "v.db")
    code, out, _ = run_main(
        monkeypatch, capsys, "init", "p", "--task", "classification", "--labels", "0,1", "--db", db
    )
    assert code == 0 and "Created project p" in out

    code, _, err = run_main(
        monkeypatch, capsys, "import", "p", str(tmp_path / "missing.csv"), "--db", db
    )
    assert code == 1
    assert "missing.csv: no such file" in one_error_line(err)

    code, _, err = run_main(
        monkeypatch, capsys, "init", "q", "--task", "classification", "--labels", "x", "--db", db
    )
    assert code == 1
    assert "invalid task schema" in one_error_line(err)

    code, _, err = run_main(monkeypatch, capsys, "status", "nope", "--db", db)
    assert code == 1
    assert one_error_line(err).startswith("Error: no project named 'nope'; projects here: p")


def _import_bad_labels(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, rows: str
) -> tuple[Path, int, str]:
    """Import ``rows`` (a task,worker,label body) into a fresh 0/1 project through ``main``."""
    db = str(tmp_path / "v.db")
    run_main(
        monkeypatch, capsys, "init", "p", "--task", "classification", "--labels", "0,1", "--db", db
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("task,worker,label\n" + rows, encoding="utf-8")
    code, _, err = run_main(monkeypatch, capsys, "import", "p", str(bad), "--db", db)
    return bad, code, err


def test_main_lists_each_bad_row(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad, code, err = _import_bad_labels(monkeypatch, capsys, tmp_path, "a,w1,7\na,w2,1\nb,w1,8\n")
    assert code == 1
    assert "2 bad row(s); nothing was written" in one_error_line(err)
    assert f"{bad}:2: field 'label': '7' is not one of the allowed values ['0', '1']" in err
    assert f"{bad}:4: field 'label': '8'" in err


def test_error_messages_with_brackets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _, code, err = _import_bad_labels(monkeypatch, capsys, tmp_path, "a,w1,[/x]\n")
    assert code == 1
    assert "'[/x]' is not one of the allowed values" in one_error_line(err) + err


def test_bad_setting_is_one_error_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("VERITAG_IMPORT_BATCH_ROWS", "0")
    code, _, err = run_main(monkeypatch, capsys, "status", "--db", str(tmp_path / "v.db"))
    assert code == 1
    assert "VERITAG_IMPORT_BATCH_ROWS" in one_error_line(err).upper()


@pytest.mark.parametrize("case", ["export-to-folder", "hf-to-file", "report-in-missing-folder"])
def test_unwritable_outputs_are_one_error_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, case: str
) -> None:
    db = str(tmp_path / "v.db")
    run_main(
        monkeypatch, capsys, "init", "p", "--task", "classification", "--labels", "0,1", "--db", db
    )
    run_main(monkeypatch, capsys, "import", "p", str(LABELS), "--db", db)
    if case == "export-to-folder":
        (tmp_path / "out.jsonl").mkdir()
        args = ["export", "p", str(tmp_path / "out.jsonl")]
    elif case == "hf-to-file":
        (tmp_path / "hf").write_text("a file")
        args = ["export", "p", str(tmp_path / "hf"), "--format", "hf"]
    else:
        bad = tmp_path / "bad.csv"
        bad.write_text("task,worker,label\na,w,9\n", encoding="utf-8")
        args = [
            "import",
            "p",
            str(bad),
            "--skip-invalid",
            "--report",
            str(tmp_path / "no" / "r.csv"),
        ]
    code, _, err = run_main(monkeypatch, capsys, *args, "--db", db)
    assert code == 1
    one_error_line(err)


def test_all_rows_skipped_is_not_reported_as_already_imported(
    runner: CliRunner, tmp_path: Path
) -> None:
    db = ("--db", str(tmp_path / "v.db"))
    ok(runner, "init", "p", "--task", "classification", "--labels", "0,1", *db)
    bad = tmp_path / "bad.csv"
    bad.write_text("task,worker,label\na,w,9\nb,w,8\n", encoding="utf-8")
    out = ok(
        runner, "import", "p", str(bad), "--skip-invalid", "--report", str(tmp_path / "r.csv"), *db
    )
    assert "already imported" not in out


def test_project_name_with_brackets(runner: CliRunner, tmp_path: Path) -> None:
    out = ok(runner, "init", "q[b]", "--task", "rating", "--db", str(tmp_path / "v.db"))
    assert "Created project q[b]" in out


# --- the real console script ------------------------------------------------------------------


def _script(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    assert VERITAG.is_file(), f"console script not installed at {VERITAG}"
    full_env = {k: v for k, v in os.environ.items() if k != "VERITAG_DATABASE_URL"}
    full_env.update(env or {})
    return subprocess.run(
        [str(VERITAG), *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120
    )


def test_console_script_user_mistakes(tmp_path: Path) -> None:
    db = str(tmp_path / "v.db")
    created = _script(
        "init", "p", "--task", "classification", "--labels", "0,1", "--db", db, cwd=tmp_path
    )
    assert created.returncode == 0, created.stderr
    assert "Created project p (classification)" in created.stdout

    bad = tmp_path / "answers.csv"
    bad.write_text("task,label\n1,0\n", encoding="utf-8")
    result = _script("import", "p", str(bad), "--db", db, cwd=tmp_path)
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert "ambiguous" in line and "--gold label" in line
    assert result.stdout == ""

    result = _script(
        "init", "q", "--task", "classification", "--labels", "only", "--db", db, cwd=tmp_path
    )
    assert result.returncode == 1
    assert "invalid task schema" in one_error_line(result.stderr)


def test_console_script_honours_env_database_url(tmp_path: Path) -> None:
    target = tmp_path / "env.db"
    result = _script(
        "init",
        "e",
        "--task",
        "pairwise",
        cwd=tmp_path,
        env={"VERITAG_DATABASE_URL": f"sqlite:///{target}"},
    )
    assert result.returncode == 0, result.stderr
    assert target.is_file()
    assert not (tmp_path / "veritag.db").exists()


def test_console_script_is_quiet_on_success(tmp_path: Path) -> None:
    db = str(tmp_path / "v.db")
    _script("init", "p", "--task", "classification", "--labels", "0,1", "--db", db, cwd=tmp_path)
    result = _script("import", "p", str(LABELS), "--db", db, cwd=tmp_path)
    assert result.returncode == 0
    assert "8000 new claims" in result.stdout
    assert result.stderr == ""


# --- veritag resolve --------------------------------------------------------------------------


def _small_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Three tasks labeled by three workers (w3 always wrong), gold for one, a model for a
    fourth."""
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "task,worker,label\n"
        + "".join(
            f"{t},{w},{v}\n"
            for t, truth in (("t1", "1"), ("t2", "0"), ("t3", "1"))
            for w, v in (("w1", truth), ("w2", truth), ("w3", "0" if truth == "1" else "1"))
        ),
        encoding="utf-8",
    )
    gold = tmp_path / "gold.csv"
    gold.write_text("task,label\nt2,0\n", encoding="utf-8")
    probs = tmp_path / "probs.csv"
    probs.write_text("task,model,0,1\nt4,clf,0.2,0.8\n", encoding="utf-8")
    return labels, gold, probs


def test_resolve_file_mode(runner: CliRunner, tmp_path: Path) -> None:
    labels, gold, probs = _small_files(tmp_path)
    out, table = tmp_path / "out.csv", tmp_path / "workers.csv"
    text = ok(
        runner,
        "resolve",
        str(labels),
        "--gold",
        str(gold),
        "--model-probs",
        str(probs),
        "--method",
        "mv",
        "-o",
        str(out),
        "--workers",
        "--workers-out",
        str(table),
    )
    assert (
        "Resolved 4 tasks from 9 labels by 3 workers, 1 model rows, 1 gold labels with mv" in text
    )
    rows = read_csv(out)
    assert [(r["task"], r["label"]) for r in rows] == [
        ("t1", "1"),
        ("t2", "0"),
        ("t3", "1"),
        ("t4", "1"),
    ]
    assert [float(r["confidence"]) for r in rows] == pytest.approx([2 / 3, 1.0, 2 / 3, 0.8])
    assert "Workers by estimated accuracy" in text
    assert text.index("w1") < text.index("w3") and "clf" in text
    workers = read_csv(table)
    assert list(workers[0]) == ["worker", "kind", "n_claims", "accuracy"]
    assert [(w["worker"], w["kind"], w["n_claims"]) for w in workers][-1] == ("clf", "model", "1")
    assert workers[-1]["accuracy"] == ""  # nothing checked the model
    assert float(workers[0]["accuracy"]) > float(
        next(w for w in workers if w["worker"] == "w3")["accuracy"]
    )
    # ds by default, and without --workers no table
    text = ok(runner, "resolve", str(labels), "-o", str(out))
    assert "with ds" in text and "Workers by" not in text


def test_resolve_auto_says_what_it_chose(runner: CliRunner, tmp_path: Path) -> None:
    text = ok(runner, "resolve", str(LABELS), "--method", "auto", "-o", str(tmp_path / "out.csv"))
    chosen = re.search(r"with auto \(chose ([\w-]+)\)", text)
    assert chosen is not None and chosen.group(1) in METHODS and chosen.group(1) != "auto"
    db = ("--db", str(tmp_path / "v.db"))
    ok(runner, "init", "rte", "--task", "classification", "--labels", "0,1", *db)
    ok(runner, "import", "rte", str(LABELS), *db)
    text = ok(runner, "resolve", "--project", "rte", "--method", "auto", *db)
    assert f"with auto (chose {chosen.group(1)}) (veritag-truth/2)" in text


def test_resolve_project_mode_and_export_status(runner: CliRunner, tmp_path: Path) -> None:
    db = ("--db", str(tmp_path / "v.db"))
    ok(runner, "init", "rte", "--task", "classification", "--labels", "0,1", *db)
    ok(runner, "import", "rte", str(LABELS), *db)
    assert "Not resolved yet" in ok(runner, "status", "rte", *db)
    text = ok(runner, "resolve", "--project", "rte", *db)
    assert "Resolved 800 items of rte with ds (veritag-truth/2)" in text and "converged" in text
    assert "Stored as run 1" in text and "From human claims: 800" in text
    assert "Most accurate sources" in text and "Least accurate sources" in text
    detail = json.loads(runner.invoke(cli.app, ["status", "rte", "--json", *db]).stdout)
    assert {k: detail["resolution"][k] for k in ("run", "method", "items", "stale")} == {
        "run": 1,
        "method": "ds",
        "items": 800,
        "stale": False,
    }
    out = ok(runner, "export", "rte", str(tmp_path / "a.jsonl"), *db)
    assert "resolved" not in out and "Wrote 800 rows" in out
    more = tmp_path / "more.csv"
    more.write_text("task,worker,label\n266,newcomer,0\n", encoding="utf-8")
    ok(runner, "import", "rte", str(more), *db)
    assert "stale" in ok(runner, "status", "rte", *db)
    out = ok(runner, "export", "rte", str(tmp_path / "b.jsonl"), *db)
    assert "resolved 800 items with ds and stored it as run 2" in out
    assert {r["label_source"] for r in read_jsonl(tmp_path / "b.jsonl")} == {"ds@veritag-truth/2"}
    text = ok(
        runner,
        "resolve",
        "--project",
        "rte",
        "--method",
        "mv",
        "--workers",
        "--workers-out",
        str(tmp_path / "w.csv"),
        *db,
    )
    assert (
        "with mv" in text and "Stored as run 3" in text and "Sources by estimated accuracy" in text
    )
    assert len(read_csv(tmp_path / "w.csv")) == 165


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ((), "either a labels file"),
        (("LABELS", "--project", "p"), "not both or neither"),
        (("LABELS",), "needs -o OUT.csv"),
        (("LABELS", "-o", "out.csv", "--method", "em"), "unknown method 'em'"),
        (("LABELS", "-o", "out.csv", "--db", "x.db"), "file mode uses no database"),
        (("--project", "p", "--gold", "g.csv"), "--gold is for file mode"),
        (("--project", "nope"), "no project named 'nope'"),
    ],
)
def test_resolve_mistakes_are_one_error_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    args: tuple[str, ...],
    named: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VERITAG_DATABASE_URL", raising=False)
    labels, _, _ = _small_files(tmp_path)
    code, _, err = run_main(
        monkeypatch, capsys, "resolve", *(str(labels) if a == "LABELS" else a for a in args)
    )
    assert code == 1
    assert named in one_error_line(err)
    assert not (tmp_path / "out.csv").exists()


def test_resolve_bad_rows_name_file_and_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    labels, _, _ = _small_files(tmp_path)
    gold = tmp_path / "bad-gold.csv"
    gold.write_text("task,label\nt1,1\nt2,maybe\n", encoding="utf-8")
    broken = tmp_path / "broken.csv"
    broken.write_text("task,worker,label\nt1,w1,1\nt2,w2\n", encoding="utf-8")
    code, _, err = run_main(
        monkeypatch,
        capsys,
        "resolve",
        str(labels),
        "--gold",
        str(gold),
        "-o",
        str(tmp_path / "o.csv"),
    )
    assert code == 1 and "1 bad row(s); nothing was resolved" in one_error_line(err)
    assert f"{gold}:3: field 'label': 'maybe' is not among the labels" in err
    code, _, err = run_main(
        monkeypatch, capsys, "resolve", str(broken), "-o", str(tmp_path / "o.csv")
    )
    assert code == 1 and f"{broken}:3: expected 3 columns, found 2" in err
    assert not (tmp_path / "o.csv").exists()


# --- report -----------------------------------------------------------------------------------


def _sample_db(runner: CliRunner, tmp_path: Path) -> list[str]:
    db = ["--db", str(tmp_path / "r.db")]
    ok(runner, "init", "rte", "--task", "classification", "--labels", "0,1", *db)
    ok(runner, "import", "rte", str(TEXTS), "--meta", "rte_subtask", *db)
    ok(runner, "import", "rte", str(LABELS), *db)
    return db


def test_report_prints_sources_agreement_and_suspects_and_writes_html_and_json(
    runner: CliRunner, tmp_path: Path
) -> None:
    db = _sample_db(runner, tmp_path)
    page, data = tmp_path / "report.html", tmp_path / "report.json"
    out = ok(
        runner,
        "report",
        "rte",
        "--domain",
        "rte_subtask",
        "--top",
        "7",
        "--html",
        str(page),
        "--json",
        str(data),
        *db,
    )
    assert "Fleiss' kappa" in out and "Human claims most likely wrong" in out
    assert "ds, " in out and "converged" in out
    report = json.loads(data.read_text(encoding="utf-8"))
    assert report["summary"]["items"] == 800 and report["summary"]["claims"] == 8000
    assert len(report["suspect_claims"]) == 7 and len(report["uncertain_items"]) == 7
    # The workers who most often contradict the resolved label are at the bottom of the table.
    worst = min(report["sources"], key=lambda s: s["accuracy"])
    assert worst["accuracy"] < 0.6
    assert report["domains"] is not None and report["domains"]["field"] == "rte_subtask"
    text = page.read_text(encoding="utf-8")
    assert text.count("<svg") >= 3 and "rte_subtask" in text


def test_report_with_mv_and_bad_options(runner: CliRunner, tmp_path: Path) -> None:
    db = _sample_db(runner, tmp_path)
    assert "mv" in ok(runner, "report", "rte", "--method", "mv", *db)
    assert "unknown method" in str(fails(runner, "report", "rte", "--method", "em", *db).exception)
    assert "--top" in str(fails(runner, "report", "rte", "--top", "0", *db).exception)
    ok(runner, "init", "notes", "--task", "free_text", *db)
    assert "no fixed classes" in str(fails(runner, "report", "notes", *db).exception)


def test_import_of_unstorable_text_is_one_error_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = str(tmp_path / "v.db")
    run_main(monkeypatch, capsys, "init", "p", "--task", "free_text", "--db", db)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"id": "n0", "text": "fine"}\n{"id": "n1", "text": "a\\u0000b"}\n'
        '{"id": "n2", "text": "\\ud800"}\n',
        encoding="utf-8",
    )
    code, _, err = run_main(monkeypatch, capsys, "import", "p", str(bad), "--db", db)
    assert code == 1
    assert "Traceback" not in err
    assert "Error:" in err
    assert f"{bad}:2: field 'text'" in plain(err) and f"{bad}:3: field 'text'" in plain(err)
    code, _, err = run_main(monkeypatch, capsys, "init", "a/b", "--task", "free_text", "--db", db)
    assert code == 1
    assert "project name" in one_error_line(err)


def test_worker_once_runs_the_queued_jobs(runner: CliRunner, tmp_path: Path) -> None:
    from veritag.jobs import queue
    from veritag.store import open_store
    from veritag.store.queries import create_user

    db = ["--db", str(tmp_path / "v.db")]
    ok(runner, "init", "rte", "--task", "classification", "--labels", "0,1", *db)
    ok(runner, "import", "rte", str(TEXTS), *db)
    ok(runner, "import", "rte", str(LABELS), *db)
    store = open_store(f"sqlite:///{tmp_path / 'v.db'}")
    try:
        with store.session() as session:
            owner = create_user(session, username="a", password="pw-for-tests-1", role="admin").id
        params = {"labeler": "tfidf", "fields": [], "folds": 3, "seed": 0}
        good = queue.enqueue(store, kind="autolabel", project="rte", owner=owner, params=params)
        gone = queue.enqueue(store, kind="autolabel", project="nope", owner=owner, params=params)
        assert "veritag worker" in ok(runner, "worker", "--once", *db)
        done, failed = queue.get(store, good.id), queue.get(store, gone.id)
        assert done is not None and failed is not None
        assert done.state == "done" and done.result["claims_added"] > 0
        assert (failed.state, failed.attempts) == ("failed", 1) and "nope" in (failed.error or "")
    finally:
        store.close()
