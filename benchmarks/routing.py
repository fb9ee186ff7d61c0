"""Routing: accuracy against human labels spent, replayed on each real crowd in <shared>/data/crowd.

    python benchmarks/routing.py [--no-peer] [--seeds 3] [--json PATH]

Per dataset, on the same recorded answers:

(a) majority vote over all labels (veritag's);
(b) crowd-kit 1.4.2 DawidSkene(n_iter=100) over all labels, in its own venv (peers/crowdkit.py);
(c) veritag adaptive routing without a model: ``simulate_crowd`` (gain per cost, Dawid-Skene
    refit as labels arrive, every answer a worker's recorded one);
(d) the same with model claims where texts exist (snow_rte: text + hypothesis; product: both
    products' fields), a TF-IDF labeler trained on the labels collected so far, never on the truth.

One policy setting for every dataset (``DEFAULTS``), chosen once. Curves are averaged over seeds
on a common grid (each run's accuracy held between its checkpoints and after it stops); "labels
to reach (b)" is the first grid point where the mean curve reaches (b)'s accuracy, as a share of
(b)'s labels. Curves go to benchmarks/out/routing/<dataset>.png, numbers to
benchmarks/out/routing.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import truth_data as td
from truth import _peer, _why, table

from veritag.routing import RoutingConfig, read_crowd, simulate_crowd
from veritag.routing.plot import plot_curves

OUT = HERE / "out" / "routing"
#: The one setting used everywhere: stop at a 0.999 posterior, never more than 10 labels an item.
DEFAULTS = RoutingConfig(target=0.999, max_labels=10)
MODEL_SEEDS = {
    "product": 1
}  # its TF-IDF retraining costs ~50 s a run; one seed keeps the total short


def mean_curve(curves: list[list[tuple[int, float]]], step: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeds' curves on one grid: each run's accuracy at x is its last checkpoint at or below x."""
    top = max(c[-1][0] for c in curves)
    grid = np.arange(max(c[0][0] for c in curves), top + step, step)
    rows = []
    for c in curves:
        xs = np.array([x for x, _ in c])
        ys = np.array([y for _, y in c])
        at = np.searchsorted(xs, grid, side="right") - 1
        rows.append(np.where(at >= 0, ys[np.maximum(at, 0)], np.nan))
    return grid, np.nanmean(np.array(rows), axis=0)


def at(grid: list, acc: list, spend: float) -> float | None:
    """The mean curve's accuracy once ``spend`` labels are spent (None before its first point)."""
    i = int(np.searchsorted(np.asarray(grid), spend, side="right")) - 1
    return None if i < 0 else float(acc[i])


def reach(grid: np.ndarray, acc: np.ndarray, goal: float) -> int | None:
    hit = np.flatnonzero(acc >= goal - 1e-12)
    return int(grid[hit[0]]) if hit.size else None


def run_policy(data, seeds: int, labeler: str | None) -> dict:
    runs = [simulate_crowd(data, config=DEFAULTS, labeler=labeler, seed=s) for s in range(seeds)]
    step = max(1, data.item.size // 400)
    grid, acc = mean_curve([r.curve for r in runs], step)
    return {
        "accuracy": float(np.mean([r.accuracy for r in runs])),
        "human_labels": float(np.mean([r.human_labels for r in runs])),
        "seeds": seeds,
        "grid": grid.tolist(),
        "curve": acc.tolist(),
        "runs": runs,
    }


def crowdkit_ds(data, scratch: Path, python) -> dict:
    ck = _peer("crowdkit")
    csv_path = td.write_claims_csv(scratch / "claims.csv", data.item, data.worker, data.label)
    got = ck.run_crowdkit(csv_path, ("mv", "ds"), n_iter=100, n_items=data.n_items, python=python)
    known = data.gt >= 0
    return {
        m: {
            "accuracy": float(np.mean(r["pred"][known] == data.gt[known])),
            "human_labels": int(data.item.size),
            "fit_seconds": r["fit_seconds"],
        }
        for m, r in got["methods"].items()
    }


def fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def pct(n: float | None, of: int) -> str:
    return "not reached" if n is None else f"{n:,.0f} ({100 * n / of:.0f}%)"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--no-peer", action="store_true", help="skip crowd-kit: (b) is veritag's own DS"
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds averaged per policy")
    parser.add_argument("--json", type=Path, default=HERE / "out" / "routing.json")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    python, why = None, ""
    if not args.no_peer:
        try:
            python = _peer("crowdkit").ensure_crowdkit()
        except Exception as err:  # noqa: BLE001  (a failing peer must not fail veritag's benchmark)
            why = _why(err)
            print(f"crowd-kit unavailable, (b) falls back to veritag DS: {why}")
    report: dict = {"settings": dataclasses.asdict(DEFAULTS), "seeds": args.seeds, "datasets": {}}
    rows = []
    for name in td.crowd_names():
        t0 = time.perf_counter()
        folder = td.CROWD_DIR / name
        texts = folder / "texts.csv"
        data = read_crowd(
            folder / "labels.csv", folder / "gt.csv", texts if texts.exists() else None
        )
        plain = dataclasses.replace(data, texts=None)
        r: dict = {
            "items": data.n_items,
            "labels": int(data.item.size),
            "workers": len(data.workers),
        }
        c = run_policy(plain, args.seeds, None)
        r["veritag_all"] = c["runs"][0].baselines
        if python is not None:
            with tempfile.TemporaryDirectory(prefix="routing-ck-", dir=HERE / "out") as tmp:
                try:
                    r["crowdkit"] = crowdkit_ds(plain, Path(tmp), python)
                except Exception as err:  # noqa: BLE001
                    r["crowdkit_error"] = _why(err)
        a = r["veritag_all"]["mv_all"]
        b = r.get("crowdkit", {}).get("ds") or r["veritag_all"]["ds_all"]
        r["b_source"] = "crowd-kit DS" if "crowdkit" in r else "veritag DS"
        d = (
            run_policy(data, MODEL_SEEDS.get(name, args.seeds), "tfidf")
            if data.texts is not None
            else None
        )
        n_b = b["human_labels"]
        c_reach = reach(np.array(c["grid"]), np.array(c["curve"]), b["accuracy"])
        d_reach = (
            None if d is None else reach(np.array(d["grid"]), np.array(d["curve"]), b["accuracy"])
        )
        curves = {"(c) adaptive routing": list(zip(c["grid"], c["curve"]))}
        if d is not None:
            curves["(d) adaptive + model claims"] = list(zip(d["grid"], d["curve"]))
        plot_curves(
            OUT / f"{name}.png",
            curves,
            {
                "(a) MV, all labels": (a["human_labels"], a["accuracy"]),
                f"(b) {r['b_source']}, all labels": (n_b, b["accuracy"]),
            },
            title=f"{name}: accuracy against human labels spent",
        )
        for key, res, hit in (("adaptive", c, c_reach), ("adaptive_model", d, d_reach)):
            if res is not None:
                r[key] = {k: v for k, v in res.items() if k != "runs"} | {"labels_to_reach_b": hit}
        c_half = at(c["grid"], c["curve"], 0.5 * n_b)
        c_mv = reach(np.array(c["grid"]), np.array(c["curve"]), a["accuracy"])
        r["adaptive"]["labels_to_reach_a"] = c_mv
        d_30 = None if d is None else at(d["grid"], d["curve"], 0.3 * n_b)
        r["seconds"] = time.perf_counter() - t0
        report["datasets"][name] = r
        rows.append(
            [
                name,
                f"{a['accuracy']:.3f}",
                f"{b['accuracy']:.3f} / {n_b:,}",
                f"{c['accuracy']:.3f} / {c['human_labels']:,.0f} "
                f"({100 * c['human_labels'] / n_b:.0f}%)",
                pct(c_reach, n_b)
                + (" ✓" if c_reach is not None and c_reach <= 0.5 * n_b else " ✗"),
                fmt(c_half),
                pct(c_mv, n_b),
                "-" if d is None else f"{d['accuracy']:.3f} / {d['human_labels']:,.0f}",
                "-"
                if d is None
                else pct(d_reach, n_b)
                + (" ✓" if d_reach is not None and d_reach <= 0.3 * n_b else " ✗"),
                "-" if d is None else fmt(d_30),
            ]
        )
        print(f"{name}: done in {r['seconds']:.0f} s", flush=True)
    print()
    print(
        table(
            [
                "dataset",
                "(a) MV all",
                "(b) DS all: acc / labels",
                "(c) routing: acc / labels at its stop",
                "(c) labels to reach (b) (target ≤50%)",
                "(c) acc at 50% of (b)'s labels",
                "(c) labels to reach (a)",
                "(d) + model: acc / labels",
                "(d) labels to reach (b) (target ≤30%)",
                "(d) acc at 30%",
            ],
            rows,
        )
    )
    report["total_seconds"] = time.perf_counter() - start
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=float))
    print(f"\ntotal {report['total_seconds']:.0f} s; curves in {OUT}, numbers in {args.json}")


if __name__ == "__main__":
    main()
