"""``veritag resolve --engine ray``: crowd-kit's Dawid-Skene distributed over item partitions on a
local Ray cluster gives the local engine's labels, and posteriors within 1e-6.

The cluster is started once for the module (two CPUs, no dashboard) and shut down at the end;
``ray_partitions`` joins it rather than starting its own.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner
from vt_helpers import GT, LABELS

from veritag import cli
from veritag.errors import VeritagError
from veritag.scale import parse_engine, ray_partitions
from veritag.scale.ray_resolve import _cuts
from veritag.truth import Claims, fit_truth
from veritag.truth.crowdkit import from_long
from veritag.truth.faithful import FaithfulFit, fit_faithful

ray = pytest.importorskip("ray")

CROWD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "crowd"
SHARED = ("snow_rte", "product", "snow_temp", "bluebirds", "dog", "face")


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """A local Ray cluster of two CPUs for the module."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _assert_same(local: FaithfulFit, distributed: FaithfulFit) -> None:
    """The Ray engine's fit is the local one up to the order of partial sums."""
    assert distributed.n_iter == local.n_iter and distributed.converged == local.converged
    np.testing.assert_array_equal(
        distributed.posterior.argmax(axis=1), local.posterior.argmax(axis=1)
    )
    np.testing.assert_allclose(distributed.posterior, local.posterior, rtol=0, atol=1e-6)
    np.testing.assert_allclose(distributed.errors, local.errors, rtol=0, atol=1e-6)
    np.testing.assert_allclose(distributed.prior, local.prior, rtol=0, atol=1e-9)
    np.testing.assert_allclose(distributed.skills, local.skills, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(distributed.present, local.present)
    np.testing.assert_allclose(distributed.loss_history, local.loss_history, rtol=0, atol=1e-9)


def _both(claims: Claims, partitions: int, **kwargs: object) -> tuple[FaithfulFit, FaithfulFit]:
    local = fit_faithful(claims, **kwargs)  # type: ignore[arg-type]
    with ray_partitions(partitions=partitions) as run:
        distributed = fit_faithful(claims, **kwargs)  # type: ignore[arg-type]
    assert run.fits == 1 and 1 < run.partitions <= partitions
    return local, distributed


@pytest.mark.parametrize("name", SHARED)
def test_same_as_local_on_every_shared_dataset(cluster: None, name: str) -> None:
    folder = CROWD / name
    if not (folder / "labels.csv").is_file():
        pytest.skip(f"{folder} is not here (a clone without ../shared)")
    claims = from_long(pd.read_csv(folder / "labels.csv")).claims
    _assert_same(*_both(claims, partitions=3))


@pytest.mark.parametrize("one_coin", [False, True])
def test_same_as_local_on_the_bundled_sample_with_gold(cluster: None, one_coin: bool) -> None:
    coded = from_long(pd.read_csv(LABELS))
    gold = pd.read_csv(GT).set_index("task")["label"].iloc[::7]
    items = coded.tasks.get_indexer(gold.index)
    labels = coded.labels.get_indexer(gold.to_numpy())
    local, distributed = _both(
        coded.claims, partitions=4, one_coin=one_coin, gold_items=items, gold_labels=labels
    )
    _assert_same(local, distributed)
    assert (distributed.posterior[items].argmax(axis=1) == labels).all()


@pytest.mark.parametrize(("seed", "one_coin"), [(0, False), (1, True)])
def test_same_as_local_on_a_random_crowd(cluster: None, seed: int, one_coin: bool) -> None:
    """Three classes, sources of every quality, items without claims (some at partition edges,
    some gold), repeated answers, and more partitions than the cluster has CPUs."""
    rng = np.random.default_rng(seed)
    n, s, k = 3000, 40, 3
    truth = rng.integers(0, k, n)
    item = np.repeat(np.arange(n), rng.integers(0, 6, n))
    source = rng.integers(0, s, item.size)
    skill = rng.uniform(0.2, 0.95, s)[source]
    label = np.where(rng.random(item.size) < skill, truth[item], rng.integers(0, k, item.size))
    order = rng.permutation(item.size)  # claims need not come sorted by item
    claims = Claims.from_arrays(
        item[order], source[order], label[order], n_items=n + 4, n_sources=s + 1, n_classes=k
    )
    gold = np.array([0, 1, 1500, n + 2])
    kwargs = {"one_coin": one_coin, "gold_items": gold, "gold_labels": truth[:4]}
    _assert_same(*_both(claims, partitions=7, **kwargs))
    # crowd-kit's n_iter=0: the majority vote it starts from
    _assert_same(*_both(claims, partitions=3, n_iter=0, **kwargs))


def test_fit_truth_goes_to_ray_only_for_crowdkit_models(cluster: None) -> None:
    """``ds`` with model probabilities is the local engine's own EM: it stays local, and the
    block says so (the CLI tells the user)."""
    claims = Claims.from_arrays(
        [0, 0, 1, 1, 2],
        [0, 1, 0, 1, 0],
        [1, 1, 0, 1, 0],
        prob_item=[2],
        prob_source=[2],
        probs=[[0.3, 0.7]],
        n_classes=2,
    )
    with ray_partitions(partitions=2) as run:
        result = fit_truth(claims, "ds")
    assert run.fits == 0
    np.testing.assert_array_equal(result.posterior, fit_truth(claims, "ds").posterior)


def _exported(runner: CliRunner, db: tuple[str, ...], path: Path) -> dict[str, tuple[str, float]]:
    result = runner.invoke(cli.app, ["export", "rte", str(path), *db])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return {r["id"]: (r["label"], r["confidence"]) for r in rows}


def test_cli_file_and_project_mode(
    cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VERITAG_DATABASE_URL", raising=False)
    runner = CliRunner()
    gold = tmp_path / "gold.csv"
    pd.read_csv(GT).iloc[::50].to_csv(gold, index=False)
    outs = {}
    for engine in ("local", "ray"):
        outs[engine] = tmp_path / f"{engine}.csv"
        args = ["resolve", str(LABELS), "--gold", str(gold), "-o", str(outs[engine])]
        if engine == "ray":
            args += ["--engine", "ray", "--partitions", "3"]
        result = runner.invoke(cli.app, args)
        assert result.exit_code == 0, result.output
        assert ("Fitted on Ray in 3 partitions" in result.stdout) == (engine == "ray")
    local, distributed = (pd.read_csv(outs[e]) for e in ("local", "ray"))
    pd.testing.assert_frame_equal(
        distributed[["task", "label"]], local[["task", "label"]], check_exact=True
    )
    np.testing.assert_allclose(distributed["confidence"], local["confidence"], rtol=0, atol=1e-6)

    db = ("--db", str(tmp_path / "v.db"))
    for args in (
        ["init", "rte", "--task", "classification", "--labels", "0,1", *db],
        ["import", "rte", str(LABELS), *db],
    ):
        assert runner.invoke(cli.app, args).exit_code == 0
    result = runner.invoke(cli.app, ["resolve", "--project", "rte", "--engine", "ray", *db])
    assert result.exit_code == 0, result.output
    assert "Stored as run 1" in result.stdout and "Fitted on Ray in 4 partitions" in result.stdout
    on_ray = _exported(runner, db, tmp_path / "ray.jsonl")
    assert runner.invoke(cli.app, ["resolve", "--project", "rte", *db]).exit_code == 0
    here = _exported(runner, db, tmp_path / "local.jsonl")
    assert on_ray.keys() == here.keys() and len(here) == 800
    assert all(on_ray[t][0] == here[t][0] for t in here)
    assert max(abs(on_ray[t][1] - here[t][1]) for t in here) < 1e-6


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--engine", "ray", "--method", "mv"), "--engine ray fits ds and onecoin"),
        (("--engine", "ray", "--model-probs", "p.csv"), "drop --model-probs"),
        (("--engine", "spark"), "unknown engine 'spark'"),
        (("--engine", "local:x"), "unknown engine 'local:x'"),
        (("--engine", "ray:"), "ray:ADDRESS needs an address"),
        (("--partitions", "3"), "--partitions is for --engine ray"),
        (("--engine", "ray", "--partitions", "0"), "--partitions must be at least 1"),
    ],
)
def test_engine_mistakes_are_errors_before_any_work(
    tmp_path: Path, args: tuple[str, ...], named: str
) -> None:
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(cli.app, ["resolve", str(LABELS), "-o", str(out), *args])
    assert result.exit_code == 1 and isinstance(result.exception, VeritagError)
    assert named in str(result.exception)
    assert not out.exists()


def test_without_ray_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(VeritagError, match=r"install veritag\[scale\]"):
        with ray_partitions():
            pass


def test_parse_engine() -> None:
    assert parse_engine("local") == ("local", None)
    assert parse_engine("ray") == ("ray", None)
    assert parse_engine("ray:127.0.0.1:6379") == ("ray", "127.0.0.1:6379")


def test_partitions_cut_items_by_claims() -> None:
    per_item = np.array([5, 0, 0, 1, 1, 1, 1, 1, 0, 5])
    indptr = np.concatenate([[0], np.cumsum(per_item)])
    A = sp.csr_matrix((np.ones(indptr[-1]), np.zeros(indptr[-1], int), indptr), shape=(10, 1))
    cuts = _cuts(A, 2)
    assert cuts[0][0] == 0 and cuts[-1][1] == 10
    assert all(a < b for a, b in cuts) and all(x[1] == y[0] for x, y in zip(cuts, cuts[1:]))
    assert [int(per_item[a:b].sum()) for a, b in cuts] == [8, 7]
    many = _cuts(A, 50)  # at most one partition per item, none empty
    assert len(many) <= 10 and all(a < b for a, b in many) and many[-1][1] == 10
