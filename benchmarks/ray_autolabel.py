"""Ray autolabel (issue 17 §3): ``autolabel --engine ray`` against the local path, in items/s.

    python benchmarks/ray_autolabel.py [--items 5000] [--labeled 0.1] [--cpus 2] [--two-node]
                                       [--json PATH]

The project has ``--items`` texts: the bundled sample's 800 premise/hypothesis texts, cycled,
each made unique by its number so no vector is reused. Its first ``--labeled`` share carries
the sample's gold label as a human claim. Each engine gets a fresh SQLite database, so neither
finds the other's vectors. Both train the bundled MiniLM labeler on the driver. Then the local
path labels the rest in this process (ONNX on every core), and the Ray path in an actor pool of
``--cpus`` actors on a local cluster this script starts. Times are for the whole run, claims
written included. The cluster's start is printed on its own line. ``--two-node`` labels a third
fresh database on a two-node cluster on loopback (``ray start --head`` and a second ``ray start
--address``, one CPU each, as ``veritag autolabel --engine ray:127.0.0.1:PORT`` would join it;
``ray_cluster.py``), its start not counted either. Every run must store the same claims
(probabilities within 1e-6).

Every number printed also goes to benchmarks/out/ray_autolabel.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from ray_cluster import two_node_cluster

from veritag.automation.autolabel import AutolabelResult, autolabel_project
from veritag.io import import_file
from veritag.quickstart import sample_dir
from veritag.scale import autolabel_on_ray, ray_session
from veritag.store import Store, open_store
from veritag.store.models import Claim, Project, Source
from veritag.store.queries import create_project

OUT = Path(__file__).resolve().parent / "out" / "ray_autolabel.json"


def write_files(folder: Path, n: int, labeled: float) -> tuple[Path, Path]:
    """``n`` unique texts cycled from the sample, and gold labels on the first ``labeled``."""
    with (sample_dir() / "texts.csv").open(encoding="utf-8", newline="") as fh:
        texts = [r["text"] for r in csv.DictReader(fh)]
    with (sample_dir() / "gt.csv").open(encoding="utf-8", newline="") as fh:
        gold = [r["label"] for r in csv.DictReader(fh)]
    items, labels = folder / "texts.csv", folder / "labels.csv"
    with items.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "text"])
        out.writerows((f"t{i}", f"{texts[i % len(texts)]} ({i})") for i in range(n))
    with labels.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["task", "worker", "label"])
        out.writerows((f"t{i}", "expert", gold[i % len(gold)]) for i in range(int(n * labeled)))
    return items, labels


def project(path: Path, files: tuple[Path, Path]) -> tuple[Store, Project]:
    store = open_store(f"sqlite:///{path}")
    with store.session() as session:
        proj = create_project(
            session, name="bench", schema={"type": "classification", "labels": ["0", "1"]}
        )
    for file in files:
        import_file(store, proj, file)
    return store, proj


def claims(store: Store) -> dict[int, tuple[str, list[float]]]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(Claim.item_id, Claim.dedup_key, Claim.probs)
            .join(Source, Source.id == Claim.source_id)
            .where(Source.kind == "model")
        ).all()
    return {i: (k, p if isinstance(p, list) else json.loads(p)) for i, k, p in rows}


def same_claims(
    here: dict[int, tuple[str, list[float]]], there: dict[int, tuple[str, list[float]]], n: int
) -> float:
    """The largest probability difference between two runs' claims, which must be on the same
    ``n`` items under the same dedup keys."""
    assert here.keys() == there.keys() and len(here) == n
    assert all(here[i][0] == there[i][0] for i in here)
    diff = max(float(np.abs(np.subtract(here[i][1], there[i][1])).max()) for i in here)
    assert diff < 1e-6, diff
    return diff


def timed(run: object) -> tuple[AutolabelResult, float]:
    start = time.perf_counter()
    result = run()  # type: ignore[operator]
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--labeled", type=float, default=0.1)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--two-node", action="store_true")
    parser.add_argument("--json", type=Path, default=OUT)
    args = parser.parse_args()
    import ray

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = write_files(folder, args.items, args.labeled)
        store, proj = project(folder / "local.db", files)
        local, local_s = timed(lambda: autolabel_project(store, proj))
        here = claims(store)
        store.close()

        store, proj = project(folder / "ray.db", files)
        start = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        cluster_s = time.perf_counter() - start
        with ray_session() as joined:
            distributed, ray_s = timed(lambda: autolabel_on_ray(store, proj, joined))
            again, again_s = timed(lambda: autolabel_on_ray(store, proj, joined))
        ray.shutdown()
        there = claims(store)
        store.close()
        two: dict[str, float] = {}
        if args.two_node:
            store, proj = project(folder / "two.db", files)
            start = time.perf_counter()
            with two_node_cluster() as address, ray_session(address) as joined:
                two["start_seconds"] = time.perf_counter() - start
                _, two["seconds"] = timed(lambda: autolabel_on_ray(store, proj, joined))
            two["max_prob_diff"] = same_claims(here, claims(store), args.items)
            store.close()

    diff = same_claims(here, there, args.items)
    assert again.claims_added == 0, again
    results = {
        "items": args.items,
        "trained": local.trained,
        "cpus": args.cpus,
        "cluster_start_seconds": cluster_s,
        "local_seconds": local_s,
        "ray_seconds": ray_s,
        "local_items_per_s": args.items / local_s,
        "ray_items_per_s": args.items / ray_s,
        "ray_over_local": local_s / ray_s,
        "second_ray_run_seconds": again_s,
        "max_prob_diff": diff,
        "accuracy": distributed.accuracy,
    }
    if two:
        results["two_node"] = {
            "cluster_start_seconds": two["start_seconds"],
            "seconds": two["seconds"],
            "items_per_s": args.items / two["seconds"],
            "over_local": local_s / two["seconds"],
            "max_prob_diff": two["max_prob_diff"],
        }
    print(f"local Ray cluster of {args.cpus} CPUs started in {cluster_s:.1f} s")
    print(
        f"{args.items:,} items ({local.trained:,} trained on the driver): "
        f"local {local_s:.1f} s ({results['local_items_per_s']:.0f} items/s), "
        f"Ray {ray_s:.1f} s ({results['ray_items_per_s']:.0f} items/s), "
        f"Ray/local throughput {results['ray_over_local']:.2f}x; second Ray run "
        f"{again_s:.1f} s, 0 claims added; same claims, max |prob diff| {diff:.1e}"
    )
    if two:
        print(
            f"two-node loopback cluster (1 CPU each, started in {two['start_seconds']:.1f} s): "
            f"{two['seconds']:.1f} s ({args.items / two['seconds']:.0f} items/s), "
            f"{local_s / two['seconds']:.2f}x local; same claims, "
            f"max |prob diff| {two['max_prob_diff']:.1e}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
