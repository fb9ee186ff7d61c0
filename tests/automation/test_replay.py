"""`veritag automate --simulate`: automation replayed on a labeled text file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner
from vt_helpers import spam_corpus

from veritag import cli
from veritag.automation.replay import simulate_files
from veritag.errors import InputError


def write_files(tmp_path: Path, n: int = 1200, seed: int = 0) -> tuple[Path, Path]:
    texts, labels = spam_corpus(n, seed=seed, noise=0.15)
    t, g = tmp_path / "texts.csv", tmp_path / "gt.csv"
    with t.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["task", "text"])
        w.writerows([[f"t{i}", x] for i, x in enumerate(texts)])
    with g.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["task", "label"])
        w.writerows([[f"t{i}", y] for i, y in enumerate(labels)])
    return t, g


def test_simulation_meets_the_target_outside_the_audit(tmp_path: Path) -> None:
    texts, gt = write_files(tmp_path)
    r = simulate_files(texts, gt, target=0.95, delta=0.05, audit_size=400)
    assert r["items"] == 1200 and r["audit_drawn"] == 400
    assert r["threshold"] is not None and r["bound"] >= 0.95
    assert 0 < r["automation_rate"] <= 1 - 400 / 1200
    assert r["realized_accuracy"] >= 0.95
    # An unreachable target automates nothing.
    none = simulate_files(texts, gt, target=0.9999, delta=0.01, audit_size=100)
    assert (
        none["threshold"] is None
        and none["automation_rate"] == 0.0
        and none["realized_accuracy"] is None
    )


def test_cli_prints_the_json_the_issue_names(tmp_path: Path) -> None:
    texts, gt = write_files(tmp_path, n=800)
    result = CliRunner().invoke(
        cli.app,
        [
            "automate",
            "--simulate",
            str(texts),
            str(gt),
            "--target",
            "0.95",
            "--delta",
            "0.05",
            "--audit-size",
            "300",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"automation_rate", "threshold", "bound", "audit_size", "realized_accuracy"} <= set(data)
    text = CliRunner().invoke(
        cli.app,
        ["automate", "--simulate", str(texts), str(gt), "--target", "0.95", "--audit-size", "300"],
    )
    assert text.exit_code == 0 and "Realised accuracy" in text.stdout


def test_bad_files_name_their_line(tmp_path: Path) -> None:
    texts, gt = write_files(tmp_path, n=50)
    with gt.open("a") as f:
        f.write("t3,ham\n")
    with pytest.raises(InputError, match=r"gt.csv:52: field 'task': task 't3' appears twice"):
        simulate_files(texts, gt, target=0.9, delta=0.1)
    texts, gt = write_files(tmp_path, n=50)
    with pytest.raises(InputError, match="unknown labeler"):
        simulate_files(texts, gt, target=0.9, delta=0.1, labeler="gpt")
    result = CliRunner().invoke(
        cli.app, ["automate", "--simulate", str(texts), str(gt), "--target", "1.5"]
    )
    assert result.exit_code == 1 and "target" in str(result.exception)
    assert CliRunner().invoke(cli.app, ["automate"]).exit_code == 1
