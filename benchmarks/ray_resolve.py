"""Ray resolve (issue 17 §3): crowd-kit's Dawid-Skene on a Ray cluster against the local engine.

    python benchmarks/ray_resolve.py [--items 1000000,10000000] [--claims 5] [--cpus 2]
                                     [--two-node] [--json PATH]

For each size: a synthetic crowd (``--claims`` claims per item from 1,000 workers of accuracy
0.55-0.95, two classes) is fitted by ``fit_faithful`` here (two threads) and inside
``ray_partitions`` on a local Ray cluster of ``--cpus`` CPUs started by this script (partitions:
the default, twice the CPUs). The Ray time is the whole fit as a user waits for it, actors
started and claims shipped included, but not the cluster's own start (printed apart). Both fits
must give the same labels and posteriors within 1e-6. ``--two-node`` repeats the largest size on
a two-node cluster on loopback (``ray start --head`` and a second ``ray start --address``, one
CPU each), stopped at the end.

Every number printed also goes to benchmarks/out/ray_resolve.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from ray_cluster import two_node_cluster

from veritag.scale import ray_partitions
from veritag.truth import Claims
from veritag.truth.faithful import FaithfulFit, fit_faithful

OUT = Path(__file__).resolve().parent / "out" / "ray_resolve.json"


def crowd(n: int, per_item: int, seed: int = 0) -> Claims:
    """``per_item`` claims on each of ``n`` items from 1,000 workers, two classes."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n, dtype=np.int8)
    item = np.repeat(np.arange(n, dtype=np.int64), per_item)
    source = rng.integers(0, 1000, item.size)
    right = rng.random(item.size) < rng.uniform(0.55, 0.95, 1000)[source]
    label = np.where(right, truth[item], 1 - truth[item])
    return Claims.from_arrays(item, source, label, n_items=n, n_sources=1000, n_classes=2)


def timed_fit(claims: Claims) -> tuple[FaithfulFit, float]:
    start = time.perf_counter()
    fit = fit_faithful(claims)
    return fit, time.perf_counter() - start


def compare(local: FaithfulFit, distributed: FaithfulFit) -> dict[str, float | bool]:
    same = bool((local.posterior.argmax(1) == distributed.posterior.argmax(1)).all())
    diff = float(np.abs(local.posterior - distributed.posterior).max())
    assert same and diff < 1e-6 and local.n_iter == distributed.n_iter, (same, diff)
    return {"same_labels": same, "max_posterior_diff": diff, "n_iter": local.n_iter}


def on_ray(claims: Claims, address: str | None) -> tuple[FaithfulFit, float, int]:
    with ray_partitions(address) as run:
        fit, seconds = timed_fit(claims)
    return fit, seconds, run.partitions


def two_node(claims: Claims, local: FaithfulFit, port: int = 6391) -> dict[str, object]:
    """The same fit on a head node and a worker node started on loopback, one CPU each."""
    with two_node_cluster(port) as address:
        fit, seconds, parts = on_ray(claims, address)
    return {"seconds": seconds, "partitions": parts, **compare(local, fit)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", default="1000000,10000000")
    parser.add_argument("--claims", type=int, default=5)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--two-node", action="store_true")
    parser.add_argument("--json", type=Path, default=OUT)
    args = parser.parse_args()
    import ray

    results: dict[str, object] = {"claims_per_item": args.claims, "cpus": args.cpus, "sizes": {}}
    start = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    results["cluster_start_seconds"] = time.perf_counter() - start
    print(
        f"local Ray cluster of {args.cpus} CPUs started in {results['cluster_start_seconds']:.1f} s"
    )
    claims = local = None
    try:
        for n in (int(x) for x in args.items.split(",")):
            claims = crowd(n, args.claims)
            local, local_s = timed_fit(claims)
            fit, ray_s, parts = on_ray(claims, None)
            row = {"local_seconds": local_s, "ray_seconds": ray_s, "partitions": parts}
            row |= {"overhead": ray_s / local_s, **compare(local, fit)}
            results["sizes"][str(n)] = row  # type: ignore[index]
            print(
                f"{n:>11,} items x {args.claims}: local {local_s:7.2f} s, Ray {ray_s:7.2f} s "
                f"({parts} partitions, {row['overhead']:.2f}x), {local.n_iter} iterations, "
                f"same labels, max |posterior diff| {row['max_posterior_diff']:.1e}"
            )
    finally:
        ray.shutdown()
    if args.two_node and claims is not None and local is not None:
        results["two_node"] = row = two_node(claims, local)
        print(
            f"two-node loopback cluster (1 CPU each), {claims.n_items:,} items: "
            f"{row['seconds']:.2f} s ({row['partitions']} partitions), same labels"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
