"""The replay simulator and `veritag simulate`, on the bundled snow_rte sample (real crowd
answers)."""

from __future__ import annotations

import dataclasses
import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from veritag import cli
from veritag.errors import InputError
from veritag.routing import ReplayPool, RoutingConfig, read_crowd, simulate_crowd, simulate_routing

SAMPLE = Path(str(resources.files("veritag") / "data" / "snow_rte"))
LABELS, GT, TEXTS = SAMPLE / "labels.csv", SAMPLE / "gt.csv", SAMPLE / "texts.csv"


@pytest.fixture(scope="module")
def crowd():
    return read_crowd(LABELS, GT)


@pytest.fixture(scope="module")
def adaptive(crowd):
    return simulate_crowd(crowd, config=RoutingConfig(target=0.99, max_labels=10), seed=3)


def recorded_rows(crowd) -> set[tuple[int, int, int]]:
    return set(zip(crowd.item.tolist(), crowd.worker.tolist(), crowd.label.tolist()))


def test_every_simulated_answer_is_a_recorded_row(crowd, adaptive) -> None:
    item, worker, label = adaptive.claims
    rows = set(zip(item.tolist(), worker.tolist(), label.tolist()))
    assert rows <= recorded_rows(crowd)
    # No worker labels an item twice.
    assert len(rows) == item.size == np.unique(item * len(crowd.workers) + worker).size
    assert adaptive.human_labels == item.size < crowd.item.size
    np.testing.assert_array_equal(
        adaptive.labels_per_item, np.bincount(item, minlength=crowd.n_items)
    )


def test_the_pool_refuses_to_invent_an_answer() -> None:
    pool = ReplayPool.from_rows([0, 0, 1], [0, 1, 1], [1, 0, 1], n_items=2, n_workers=3)
    assert pool.ask([1, 0], [1, 0]).tolist() == [1, 1]
    assert pool.recorded().tolist() == [[True, True, False], [False, True, False]]
    with pytest.raises(ValueError, match="never answered"):
        pool.ask([1], [0])
    # A worker who answered an item twice is replayed with their first answer.
    twice = ReplayPool.from_rows([0, 0], [2, 2], [1, 0], n_items=1, n_workers=3)
    assert twice.ask([0], [2]).tolist() == [1]


def test_adaptive_routing_saves_labels_and_stops_at_target_or_cap(crowd, adaptive) -> None:
    assert adaptive.accuracy >= adaptive.baselines["mv_all"]["accuracy"] - 0.03
    assert adaptive.human_labels < 0.6 * adaptive.baselines["ds_all"]["human_labels"]
    assert adaptive.labels_per_item.max() <= 10
    capped = simulate_crowd(crowd, config=RoutingConfig(target=1.0, max_labels=2), seed=0)
    assert capped.labels_per_item.max() == 2 and capped.labels_per_item.min() >= 1
    # The curve only moves forward in labels spent and ends at the result.
    xs = [n for n, _ in adaptive.curve]
    assert xs == sorted(xs) and adaptive.curve[-1] == (adaptive.human_labels, adaptive.accuracy)


@pytest.mark.parametrize("policy", ["adaptive", "fixed"])
def test_the_budget_is_never_exceeded(crowd, policy) -> None:
    for budget in (500, 1234):
        r = simulate_crowd(
            crowd,
            policy=policy,
            config=RoutingConfig(target=0.999, budget=budget, max_labels=10),
            seed=1,
        )
        assert r.human_labels <= budget
        assert set(zip(*(a.tolist() for a in r.claims))) <= recorded_rows(crowd)
    fixed = simulate_crowd(
        crowd, policy="fixed", config=RoutingConfig(budget=2400, max_labels=10), seed=0
    )
    assert fixed.human_labels == 2400 and (fixed.labels_per_item == 3).all()


def test_the_same_seed_gives_the_same_run(crowd, adaptive) -> None:
    again = simulate_crowd(crowd, config=RoutingConfig(target=0.99, max_labels=10), seed=3)
    assert again.curve == adaptive.curve
    for a, b in zip(again.claims, adaptive.claims):
        np.testing.assert_array_equal(a, b)
    other = simulate_crowd(crowd, config=RoutingConfig(target=0.99, max_labels=10), seed=4)
    assert not np.array_equal(other.claims[1], adaptive.claims[1])


def test_model_claims_come_from_labels_not_truth(crowd) -> None:
    data = read_crowd(LABELS, GT, TEXTS)
    assert data.texts is not None and all(
        " | " in t for t in data.texts
    )  # text | hypothesis | subtask
    r = simulate_crowd(
        data, config=RoutingConfig(target=0.95, max_labels=10), labeler="tfidf", seed=0, retrains=0
    )
    assert r.model_claims == data.n_items and r.labeler == "tfidf"
    assert set(zip(*(a.tolist() for a in r.claims))) <= recorded_rows(crowd)
    # The truth never reaches the labeler: scrambling it changes the score, not the run.
    scrambled = dataclasses.replace(data, gt=np.roll(data.gt, 1))
    again = simulate_crowd(
        scrambled,
        config=RoutingConfig(target=0.95, max_labels=10),
        labeler="tfidf",
        seed=0,
        retrains=0,
    )
    for a, b in zip(again.claims, r.claims):
        np.testing.assert_array_equal(a, b)


def test_gold_items_are_not_scored(crowd) -> None:
    r = simulate_crowd(
        crowd, config=RoutingConfig(target=0.95, gold_share=0.1, max_labels=10), seed=0
    )
    assert r.settings["gold_items"] == 80 and r.scored_items == 720


def test_cli_json_has_the_named_keys(tmp_path: Path) -> None:
    png = tmp_path / "curve.png"
    result = CliRunner().invoke(
        cli.app,
        [
            "simulate",
            str(LABELS),
            str(GT),
            "--target",
            "0.9",
            "--max-labels",
            "4",
            "--json",
            "--plot",
            str(png),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"accuracy", "human_labels", "baselines"} <= set(data)
    assert set(data["baselines"]) == {"mv_all", "ds_all"}
    for b in data["baselines"].values():
        assert set(b) == {"accuracy", "human_labels"} and b["human_labels"] == 8000
    assert 0.5 < data["accuracy"] <= 1 and data["human_labels"] <= 4 * 800
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_text_output_and_fixed_policy() -> None:
    result = CliRunner().invoke(
        cli.app,
        ["simulate", str(LABELS), str(GT), "--policy", "fixed", "--budget", "1600", "--seed", "2"],
    )
    assert result.exit_code == 0, result.output
    assert "fixed routing" in result.stdout and "1600 human labels" in result.stdout
    assert "Dawid-Skene over all 8000" in result.stdout


def test_a_bad_row_is_named_by_file_and_line(tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text(LABELS.read_text() + "266,,1\n")
    with pytest.raises(InputError, match=r"labels.csv:8002: field 'worker'"):
        simulate_routing(labels, GT)
    result = CliRunner().invoke(cli.app, ["simulate", str(labels), str(GT)])
    assert result.exit_code == 1 and "labels.csv:8002" in str(result.exception)
    bad_policy = CliRunner().invoke(
        cli.app, ["simulate", str(LABELS), str(GT), "--policy", "smart"]
    )
    assert bad_policy.exit_code == 1 and "unknown policy" in str(bad_policy.exception)
