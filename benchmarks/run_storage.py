"""Storing and reading a truth run at 10^4 to 10^6 items: time, bytes, and the write lock held.

    python benchmarks/run_storage.py [--items 1000000] [--classes 5] [--runs 4] [--db URL]

A refit stores a run: the answer for every item, written in one transaction, which on SQLite
holds the database's only writer lock, so every tutor's submit waits until it commits. This
times that transaction (``save_resolution`` plus the retention rule, as ``resolve_and_store``
runs them), the size the run adds to the database, and reading the run back with its class
probabilities (``load_resolution``, what routing and reports read).

The run is synthetic but shaped like a real one: a Dirichlet posterior per item over
``--classes`` classes, the label its top class, three claims an item. The items are inserted
first (not timed). Run it against another checkout (``PYTHONPATH=OTHER/src``) to compare
storage layouts: it uses only ``save_resolution``, ``load_resolution`` and the retention rule,
whose signatures did not change. Results go to benchmarks/out/run_storage.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

import veritag
from veritag.resolve.core import RunInfo, _resolution
from veritag.resolve.runs import load_resolution, save_resolution
from veritag.store import open_store
from veritag.store.models import Item, TruthRun
from veritag.store.queries import create_project, latest_truth_run, prune_truth_runs

OUT = Path(__file__).resolve().parent / "out"


def _items(store, project_id: int, n: int) -> np.ndarray:
    with store.engine.begin() as conn:
        for start in range(0, n, 50_000):
            conn.execute(
                sa.insert(Item),
                [
                    {"project_id": project_id, "external_id": str(i), "text": f"item {i}"}
                    for i in range(start, min(n, start + 50_000))
                ],
            )
        return np.array(
            conn.scalars(
                sa.select(Item.id).where(Item.project_id == project_id).order_by(Item.id)
            ).all(),
            np.int64,
        )


def _run(ids: np.ndarray, classes: list[str], seed: int):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(len(classes), 0.3), ids.size)
    top = probs.argmax(axis=1)
    labels = np.empty(ids.size, object)
    labels[:] = [classes[c] for c in top]
    info = RunInfo("ds", "bench/1", {}, -1.0, 10, True)
    three = np.full(ids.size, 3, np.int64)
    return _resolution(
        ids,
        labels,
        probs.max(axis=1),
        three,
        three,
        np.zeros(ids.size, np.int8),
        info,
        probs=probs,
    )


def _db_bytes(url: str, store) -> int:
    if url.startswith("sqlite"):
        path = Path(sa.make_url(url).database)
        with store.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return path.stat().st_size
    with store.engine.connect() as conn:
        return int(conn.scalar(sa.text("SELECT pg_database_size(current_database())")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--classes", type=int, default=5)
    ap.add_argument("--runs", type=int, default=4, help="runs stored (the 4th prunes the 1st)")
    ap.add_argument("--db", help="a store URL (default: a fresh SQLite file)")
    ap.add_argument("--json", type=Path, default=OUT / "run_storage.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="run-storage-") as tmp:
        url = args.db or f"sqlite:///{tmp}/veritag.db"
        store = open_store(url)
        classes = [f"c{j}" for j in range(args.classes)]
        with store.session() as session:
            project = create_project(
                session,
                name="bench",
                schema={"type": "classification", "labels": classes},
            )
            session.flush()
            session.expunge(project)
        ids = _items(store, project.id, args.items)
        base = _db_bytes(url, store)
        writes, reads, sizes = [], [], []
        for r in range(args.runs):
            resolution = _run(ids, classes, r)
            started = time.perf_counter()
            with store.engine.begin() as conn:  # the transaction that holds the write lock
                save_resolution(conn, project, resolution)
                prune_truth_runs(conn, project_id=project.id, method="ds")
            writes.append(time.perf_counter() - started)
            size = _db_bytes(url, store)
            sizes.append(size - base)
            base = size
            with store.engine.connect() as conn:
                run = latest_truth_run(conn, project_id=project.id)
                started = time.perf_counter()
                loaded = load_resolution(conn, run, with_probs=True)
                reads.append(time.perf_counter() - started)
                assert np.allclose(loaded.probs, resolution.probs)
            print(
                f"run {r + 1}: stored in {writes[-1]:.2f} s (one transaction), "
                f"+{sizes[-1] / 2**20:.1f} MiB, read back in {reads[-1]:.2f} s",
                flush=True,
            )
        with store.engine.connect() as conn:
            pruned = conn.scalar(sa.select(sa.func.count()).where(TruthRun.pruned))
        store.close()
    res = {
        "veritag": str(Path(veritag.__file__).parent),
        "db": "sqlite" if url.startswith("sqlite") else "postgresql",
        "items": args.items,
        "classes": args.classes,
        "write_s_median": statistics.median(writes),
        "read_s_median": statistics.median(reads),
        "bytes_per_run_median": statistics.median(sizes[:3]),
        "writes_s": writes,
        "reads_s": reads,
        "runs_pruned": pruned,
        "load_avg": os.getloadavg()[0],
    }
    print(
        f"{args.items:,} items x {args.classes} classes ({res['db']}, {res['veritag']}): "
        f"store {res['write_s_median']:.2f} s, read {res['read_s_median']:.2f} s, "
        f"{res['bytes_per_run_median'] / args.items:.1f} bytes an item, {pruned} run(s) pruned"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
