"""Arena ratings (issue 7): veritag.truth.arena against FastChat-style fits and choix, same run.

    python benchmarks/arena.py [--parts 1,2,3] [--battles N] [--seeds K] [--choix-rounds R]
                               [--json PATH]

1. prd_vicuna80_human (<shared>/data/arena): our ratings against the README's reference (max abs
   difference; target <= 1 point), and our bootstrap and sandwich intervals beside a plain
   bootstrap (resample individual battles, refit with scipy's L-BFGS each round, as FastChat).
2. Speed: 10^6 synthetic battles among 100 models (Davidson-generated, so ties happen), 100
   bootstrap rounds, all from the same lists of strings:
   - veritag ``leaderboard(..., interval="bootstrap", rounds=100)``, end to end;
   - a FastChat-style fit, written here as FastChat's ``compute_bt`` /
     ``compute_bootstrap_bt`` (fastchat/serve/monitor/rating_systems.py) do it: factorize the
     names, ``np.unique`` the (model_a, model_b, outcome) rows into weighted matchups, minimise the
     Bradley-Terry log loss with ``scipy.optimize.minimize(method="L-BFGS-B", gtol=1e-6,
     maxiter=100)`` from zero, and bootstrap by drawing multinomial weights over the unique rows
     and refitting each round (FastChat uses a process pool; here one process, like ours);
   - choix 0.4.1 in its own venv (benchmarks/out/choix-venv): ``ilsr_pairwise`` on the list of
     (winner, loser) pairs, where choix has no ties: every decisive battle is given twice and
     every tie once each way, which is exactly "a tie is half a win" (all counts doubled). Its
     bootstrap (resample battles, refit) runs ``--choix-rounds`` rounds (default 5) and is
     scaled to 100; ``ilsr_pairwise_dense`` on the count matrix (same doubling) runs all 100.
3. Active selection: replay the real prd_vicuna80 battles. Start from 2 battles per pair, then
   take battles from the pool of remaining real battles, 20 at a time, either the pair with the
   highest ``pair_priority`` (one real battle of that pair; priorities recomputed with the
   updated counts between picks, the ratings refitted every 20) or uniformly at random; record
   the battles needed until Kendall's tau with the full-data ranking is >= 0.9 (first reached,
   and reached for good), over ``--seeds`` seeds.

Every number printed also goes to benchmarks/out/arena.json.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
SHARED = HERE.parents[1] / "shared" / "data" / "arena" / "prd_vicuna80_human" / "battles.jsonl"
REFERENCE = {
    "gpt4": 1134,
    "claude": 1129,
    "guanaco-65b": 994,
    "guanaco-33b": 992,
    "guanaco-7b": 986,
    "vicuna-13b": 972,
    "guanaco-13b": 964,
    "gpt35": 919,
    "bard": 909,
}
CHOIX_VERSION = "0.4.1"
SCALE, BASE = 400.0, 1000.0


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    width = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: list[str]) -> str:
        return (
            "| "
            + " | ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, width))
            )
            + " |"
        )

    sep = (
        "|"
        + "|".join(
            ("-" * (w + 2)) if i == 0 else ("-" * (w + 1) + ":") for i, w in enumerate(width)
        )
        + "|"
    )
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def load_prd() -> tuple[list[str], list[str], list[str]]:
    rows = [json.loads(line) for line in SHARED.read_text().splitlines() if line.strip()]
    return [r["model_a"] for r in rows], [r["model_b"] for r in rows], [r["winner"] for r in rows]


# --------------------------------------------------------------------------- FastChat-style fit


def fastchat_preprocess(model_a, model_b, outcome):
    """FastChat's preprocess_for_bt: factorize names, unique (a, b, outcome) rows with counts."""
    import pandas as pd

    n_rows = len(model_a)
    codes, models = pd.factorize(pd.Series(list(model_a) + list(model_b)))
    schedule = np.full((n_rows, 3), fill_value=1, dtype=np.int32)
    schedule[:, 0], schedule[:, 1] = codes[:n_rows], codes[n_rows:]
    o = np.asarray(outcome)
    schedule[(o == "model_a") | (o == "A"), 2] = 2
    schedule[(o == "model_b") | (o == "B"), 2] = 0
    matchups_outcomes, weights = np.unique(schedule, return_counts=True, axis=0)
    return (
        matchups_outcomes[:, [0, 1]],
        matchups_outcomes[:, 2].astype(np.float64) / 2.0,
        list(models),
        weights.astype(np.float64),
    )


def _bt_loss_and_grad(ratings, matchups, outcomes, weights, alpha):
    from scipy.special import expit

    matchup_ratings = ratings[matchups]
    logits = alpha * (matchup_ratings[:, 0] - matchup_ratings[:, 1])
    probs = expit(logits)
    loss = -((np.log(probs) * outcomes + np.log(1.0 - probs) * (1.0 - outcomes)) * weights).sum()
    matchups_grads = -alpha * (outcomes - probs) * weights
    model_grad = np.zeros_like(ratings)
    np.add.at(model_grad, matchups[:, [0, 1]], matchups_grads[:, None] * np.array([1.0, -1.0]))
    return loss, model_grad


def fastchat_fit(matchups, outcomes, weights, n_models, tol=1e-6):
    from scipy.optimize import minimize

    result = minimize(
        fun=_bt_loss_and_grad,
        x0=np.zeros(n_models),
        args=(matchups, outcomes, weights, math.log(10.0)),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 100, "gtol": tol},
    )
    return result["x"]


def to_elo(x: np.ndarray) -> np.ndarray:
    """FastChat's natural scale (alpha = ln 10) to mean-BASE ratings."""
    x = SCALE * np.asarray(x)
    return x - x.mean(axis=-1, keepdims=True) + BASE


def fastchat_bootstrap(model_a, model_b, outcome, rounds: int, seed: int = 0) -> dict:
    t0 = time.perf_counter()
    matchups, outcomes, models, weights = fastchat_preprocess(model_a, model_b, outcome)
    point = to_elo(fastchat_fit(matchups, outcomes, weights, len(models)))
    t1 = time.perf_counter()
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n=int(weights.sum()), pvals=weights / weights.sum(), size=rounds)
    boot = np.array(
        [to_elo(fastchat_fit(matchups, outcomes, d.astype(np.float64), len(models))) for d in draws]
    )
    t2 = time.perf_counter()
    lo, hi = np.quantile(boot, [0.025, 0.975], axis=0) if rounds else (point, point)
    return {
        "models": models,
        "rating": point,
        "lower": lo,
        "upper": hi,
        "fit_s": t1 - t0,
        "total_s": t2 - t0,
    }


# --------------------------------------------------------------------------- part 1


def part_reference(out: dict) -> None:
    from veritag.truth import leaderboard

    print(
        "\n## 1. prd_vicuna80_human: ratings against the reference, intervals side by side\n",
        flush=True,
    )
    if not SHARED.is_file():
        print(f"skipped: {SHARED} is not here")
        return
    a, b, o = load_prd()
    boards, times = {}, {}
    for interval in ("none", "sandwich", "bootstrap"):
        t = time.perf_counter()
        boards[interval] = leaderboard(a, b, o, interval=interval, rounds=100)
        times[interval] = time.perf_counter() - t
    # plain bootstrap: resample individual battles, refit with scipy each round
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    fit = fastchat_bootstrap(a, b, o, rounds=0)
    plain = []
    a_arr, b_arr, o_arr = np.array(a), np.array(b), np.array(o)
    for _ in range(100):
        idx = rng.integers(0, len(a), len(a))
        m, oc, models, w = fastchat_preprocess(a_arr[idx], b_arr[idx], o_arr[idx])
        r = dict(zip(models, to_elo(fastchat_fit(m, oc, w, len(models)))))
        plain.append([r[k] for k in fit["models"]])
    plain_s = time.perf_counter() - t
    plain_lo, plain_hi = np.quantile(np.array(plain), [0.025, 0.975], axis=0)
    plain_w = dict(zip(fit["models"], plain_hi - plain_lo))
    fc_rating = dict(zip(fit["models"], fit["rating"]))
    ours = boards["none"]
    rating = dict(zip(ours.models, ours.rating))
    width = {
        k: dict(zip(bd.models, bd.upper - bd.lower)) for k, bd in boards.items() if k != "none"
    }
    rows = []
    for m in ours.models:
        rows.append(
            [
                m,
                REFERENCE[m],
                f"{rating[m]:.1f}",
                f"{rating[m] - REFERENCE[m]:+.1f}",
                f"{fc_rating[m]:.1f}",
                f"{width['bootstrap'][m]:.1f}",
                f"{width['sandwich'][m]:.1f}",
                f"{plain_w[m]:.1f}",
                int(boards["bootstrap"].rank[boards["bootstrap"].models.index(m)]),
            ]
        )
    print(
        table(
            [
                "model",
                "reference",
                "veritag",
                "diff",
                "FastChat-style",
                "width: veritag bootstrap",
                "veritag sandwich",
                "plain bootstrap",
                "rank (bootstrap)",
            ],
            rows,
        )
    )
    max_diff = max(abs(rating[m] - REFERENCE[m]) for m in ours.models)
    print(
        f"\nmax |veritag - reference| = {max_diff:.2f} points (target <= 1); max |veritag - "
        f"FastChat-style| = {max(abs(rating[m] - fc_rating[m]) for m in ours.models):.2f}"
    )
    print(
        f"time: veritag point {times['none'] * 1e3:.1f} ms, sandwich {times['sandwich'] * 1e3:.1f} "
        f"ms, bootstrap (100) {times['bootstrap'] * 1e3:.1f} ms; plain bootstrap (100 scipy "
        f"refits) {plain_s:.2f} s"
    )
    out["reference"] = {
        "max_abs_diff": max_diff,
        "rows": rows,
        "times_s": times,
        "plain_bootstrap_s": plain_s,
    }


# --------------------------------------------------------------------------- part 2


def synthetic(
    n_battles: int, n_models: int = 100, seed: int = 0
) -> tuple[list[str], list[str], list[str]]:
    rng = np.random.default_rng(seed)
    theta = rng.normal(0.0, 1.0, n_models)
    names = np.array([f"model-{k:03d}" for k in range(n_models)])
    i = rng.integers(0, n_models, n_battles)
    j = (i + rng.integers(1, n_models, n_battles)) % n_models
    d = theta[i] - theta[j]
    nu = 0.5
    denom = np.exp(d / 2) + np.exp(-d / 2) + nu
    u = rng.random(n_battles)
    pa, pt = np.exp(d / 2) / denom, nu / denom
    outcome = np.where(u < pa, "model_a", np.where(u < pa + pt, "tie", "model_b"))
    return names[i].tolist(), names[j].tolist(), outcome.tolist()


def ensure_choix() -> Path:
    sys.path.insert(0, str(HERE / "peers"))
    from _venv import ensure_venv

    return ensure_venv(OUT / "choix-venv", [f"choix=={CHOIX_VERSION}"], "choix", CHOIX_VERSION)


def choix_runner(data: Path, rounds: int, out: Path) -> None:
    """Runs inside choix's venv (numpy + choix only): fits, times, writes result.json."""
    import choix

    z = np.load(data)
    i, j, o, n = z["i"], z["j"], z["o"], int(z["n"])
    rng = np.random.default_rng(0)

    def pairs(i, j, o):
        # choix has no ties: each decisive battle twice, each tie once each way (= half a win)
        win = np.concatenate([np.repeat(np.where(o == 0, i, j)[o < 2], 2), i[o == 2], j[o == 2]])
        lose = np.concatenate([np.repeat(np.where(o == 0, j, i)[o < 2], 2), j[o == 2], i[o == 2]])
        return list(zip(win.tolist(), lose.tolist()))

    def dense(i, j, o):
        mat = np.zeros((n, n))
        np.add.at(mat, (np.where(o == 0, i, j)[o < 2], np.where(o == 0, j, i)[o < 2]), 2.0)
        np.add.at(mat, (i[o == 2], j[o == 2]), 1.0)
        np.add.at(mat, (j[o == 2], i[o == 2]), 1.0)
        return mat

    res = {}
    t = time.perf_counter()
    res["list_params"] = choix.ilsr_pairwise(n, pairs(i, j, o), tol=1e-8).tolist()
    res["list_fit_s"] = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(rounds):
        idx = rng.integers(0, i.size, i.size)
        choix.ilsr_pairwise(n, pairs(i[idx], j[idx], o[idx]), tol=1e-8)
    res["list_boot_s"] = time.perf_counter() - t
    res["list_boot_rounds"] = rounds
    t = time.perf_counter()
    mat = dense(i, j, o)
    res["dense_params"] = choix.ilsr_pairwise_dense(mat, tol=1e-8).tolist()
    res["dense_fit_s"] = time.perf_counter() - t
    t = time.perf_counter()
    boots = []
    for _ in range(100):  # Poisson bootstrap of the count matrix, as veritag does
        boots.append(choix.ilsr_pairwise_dense(rng.poisson(mat / 2.0) * 2.0, tol=1e-8))
    res["dense_boot_s"] = time.perf_counter() - t
    res["dense_boot"] = np.array(boots).tolist()
    (out / "result.json").write_text(json.dumps(res))


def part_speed(out: dict, n_battles: int, choix_rounds: int) -> None:
    from veritag.truth import leaderboard

    print(
        f"\n## 2. Speed: {n_battles:,} synthetic battles, 100 models, 100 bootstrap rounds\n",
        flush=True,
    )
    a, b, o = synthetic(n_battles)

    def timed(**kw):  # median of 3: this shared machine's timings wander from run to run
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            board = leaderboard(a, b, o, **kw)
            runs.append(time.perf_counter() - t)
        return board, float(np.median(runs)), runs

    point, ours_point, _ = timed(interval="none")
    sandwich, ours_sandwich, _ = timed(interval="sandwich")
    boot, ours_boot, boot_runs = timed(interval="bootstrap", rounds=100)
    print(
        "veritag fit + 100 bootstrap rounds, 3 runs: " + ", ".join(f"{x:.2f} s" for x in boot_runs)
    )
    fc = fastchat_bootstrap(a, b, o, rounds=100)
    ours = dict(zip(point.models, point.rating))
    fc_diff = max(abs(ours[m] - r) for m, r in zip(fc["models"], fc["rating"]))
    width_ours = float(np.mean(boot.upper - boot.lower))
    width_fc = float(np.mean(fc["upper"] - fc["lower"]))
    width_sw = float(np.mean(sandwich.upper - sandwich.lower))
    rows = [
        [
            "veritag leaderboard",
            f"{ours_point:.2f}",
            f"{ours_boot:.2f}",
            "1.0x",
            "0",
            f"{width_ours:.1f}",
        ],
        ["veritag sandwich interval", f"{ours_sandwich:.2f}", "", "", "0", f"{width_sw:.1f}"],
        [
            "FastChat-style (L-BFGS, refit per round)",
            f"{fc['fit_s']:.2f}",
            f"{fc['total_s']:.2f}",
            f"{fc['total_s'] / ours_boot:.1f}x",
            f"{fc_diff:.2f}",
            f"{width_fc:.1f}",
        ],
    ]
    result = {
        "veritag_point_s": ours_point,
        "veritag_sandwich_s": ours_sandwich,
        "veritag_boot_s": ours_boot,
        "fastchat_fit_s": fc["fit_s"],
        "fastchat_total_s": fc["total_s"],
        "fastchat_max_diff": fc_diff,
        "ratio_fastchat": fc["total_s"] / ours_boot,
    }
    try:
        python = ensure_choix()
        names = {m: k for k, m in enumerate(point.models)}
        code = {"model_a": 0, "model_b": 1, "tie": 2}
        with tempfile.TemporaryDirectory(prefix="arena-choix-") as tmp:
            work = Path(tmp)
            np.savez(
                work / "data.npz",
                i=np.array([names[m] for m in a]),
                j=np.array([names[m] for m in b]),
                o=np.array([code[x] for x in o]),
                n=len(names),
            )
            t = time.perf_counter()
            proc = subprocess.run(
                [
                    str(python),
                    "-I",
                    str(Path(__file__).resolve()),
                    "--choix-runner",
                    str(work / "data.npz"),
                    "--choix-rounds",
                    str(choix_rounds),
                    "--out",
                    str(work),
                ],
                capture_output=True,
                text=True,
                timeout=1800,
                check=False,
            )
            wall = time.perf_counter() - t
            if proc.returncode != 0:
                raise RuntimeError(proc.stderr[-2000:])
            res = json.loads((work / "result.json").read_text())
        scale = SCALE / math.log(10.0)
        lst = scale * np.array(res["list_params"])
        dense = scale * np.array(res["dense_params"])
        order = np.array([ours[m] for m in point.models])
        list_diff = float(np.abs(lst - lst.mean() + BASE - order).max())
        dense_diff = float(np.abs(dense - dense.mean() + BASE - order).max())
        dboot = scale * np.array(res["dense_boot"])
        dboot = dboot - dboot.mean(axis=1, keepdims=True) + BASE
        dlo, dhi = np.quantile(dboot, [0.025, 0.975], axis=0)
        list_total = res["list_fit_s"] + res["list_boot_s"] * 100 / max(res["list_boot_rounds"], 1)
        dense_total = res["dense_fit_s"] + res["dense_boot_s"]
        label = (
            f"choix ilsr_pairwise (list; bootstrap: {res['list_boot_rounds']} rounds, "
            "scaled to 100)"
        )
        rows.append(
            [
                label,
                f"{res['list_fit_s']:.2f}",
                f"{list_total:.1f}",
                f"{list_total / ours_boot:.0f}x",
                f"{list_diff:.2f}",
                "",
            ]
        )
        rows.append(
            [
                "choix ilsr_pairwise_dense (count matrix)",
                f"{res['dense_fit_s']:.3f}",
                f"{dense_total:.2f}",
                f"{dense_total / ours_boot:.1f}x",
                f"{dense_diff:.2f}",
                f"{float(np.mean(dhi - dlo)):.1f}",
            ]
        )
        result.update(
            {
                "choix": {k: v for k, v in res.items() if not k.endswith(("params", "boot"))},
                "choix_wall_s": wall,
                "choix_list_total_s": list_total,
                "choix_dense_total_s": dense_total,
                "choix_list_max_diff": list_diff,
                "choix_dense_max_diff": dense_diff,
            }
        )
    except Exception as err:  # noqa: BLE001  (a failing peer must not fail veritag's benchmark)
        print(f"choix: not run ({type(err).__name__}: {str(err)[:500]})")
    print(
        table(
            [
                "engine",
                "point fit s",
                "fit + 100 bootstrap s",
                "vs veritag",
                "max |rating diff|",
                "mean 95% width",
            ],
            rows,
        )
    )
    print(f"\nveritag vs FastChat-style: {result['ratio_fastchat']:.1f}x faster (target >= 10x)")
    out["speed"] = result


# --------------------------------------------------------------------------- part 3


def part_active(
    out: dict, seeds: int, batch: int = 20, start: int = 2, target: float = 0.9
) -> None:
    from scipy.stats import kendalltau

    from veritag.truth import leaderboard, pair_priority

    print("\n## 3. Active selection: replaying prd_vicuna80 battles\n", flush=True)
    if not SHARED.is_file():
        print(f"skipped: {SHARED} is not here")
        return
    a, b, o = load_prd()
    full = leaderboard(a, b, o, interval="none")
    names = full.models
    idx = {m: k for k, m in enumerate(names)}
    full_rating = full.rating
    ia, ib = np.array([idx[m] for m in a]), np.array([idx[m] for m in b])
    pair = np.minimum(ia, ib) * len(names) + np.maximum(ia, ib)
    n = len(names)
    t0 = time.perf_counter()

    def tau(chosen: list[int]) -> float:
        bd = leaderboard(
            [a[k] for k in chosen], [b[k] for k in chosen], [o[k] for k in chosen], interval="none"
        )
        r = dict(zip(bd.models, bd.rating))
        got = [r.get(m, -np.inf) for m in names]
        return float(kendalltau(got, full_rating).statistic), bd

    def run(seed: int, active: bool) -> tuple[int | None, int | None]:
        rng = np.random.default_rng(seed)
        pool = {p: list(rng.permutation(np.flatnonzero(pair == p))) for p in np.unique(pair)}
        chosen = [pool[p].pop() for p in pool for _ in range(start) if pool[p]]
        rest = [k for p in pool for k in pool[p]]
        rest = list(rng.permutation(rest))  # uniform: the remaining battles in random order
        first = last_bad = None
        total = len(a)
        while True:
            t, bd = tau(chosen)
            if t >= target and first is None:
                first = len(chosen)
            if t < target:
                last_bad = len(chosen)
            if len(chosen) >= total:
                break
            if active:
                order = [idx[m] for m in bd.models]  # board position -> code in full-board order
                done = np.zeros((n, n))
                np.add.at(done, (ia[chosen], ib[chosen]), 1.0)
                left = np.zeros((n, n))
                for p, ks in pool.items():
                    left[p // n, p % n] = len(ks)
                counts = (done + done.T)[np.ix_(order, order)]
                left = (left + left.T)[np.ix_(order, order)]
                for _ in range(min(batch, total - len(chosen))):
                    prio = pair_priority(bd, counts)
                    prio[left <= 0] = -1.0
                    u, v = np.unravel_index(int(np.argmax(prio)), prio.shape)
                    gu, gv = order[u], order[v]
                    chosen.append(pool[min(gu, gv) * n + max(gu, gv)].pop())
                    for x, y in ((u, v), (v, u)):
                        left[x, y] -= 1
                        counts[x, y] += 1
            else:
                take = min(batch, total - len(chosen))
                chosen.extend(rest[:take])
                rest = rest[take:]
        stays = (last_bad + batch) if last_bad is not None else len(chosen)
        return first, min(stays, total)

    results = {"active": [], "uniform": []}
    for seed in range(seeds):
        for kind in ("active", "uniform"):
            results[kind].append(run(seed, kind == "active"))
    rows = []
    for kind in ("uniform", "active"):
        first = [r[0] for r in results[kind]]
        stay = [r[1] for r in results[kind]]
        rows.append(
            [
                kind,
                f"{np.median(first):.0f}",
                f"{np.mean(first):.0f}",
                f"{np.median(stay):.0f}",
                f"{np.mean(stay):.0f}",
            ]
        )
    print(
        table(
            [
                "selection",
                "battles to tau>=0.9 (median)",
                "(mean)",
                "to stay >= 0.9 (median)",
                "(mean)",
            ],
            rows,
        )
    )
    ratio_first = np.mean([r[0] for r in results["uniform"]]) / np.mean(
        [r[0] for r in results["active"]]
    )
    ratio_stay = np.mean([r[1] for r in results["uniform"]]) / np.mean(
        [r[1] for r in results["active"]]
    )
    print(
        f"\nuniform / active: {ratio_first:.2f} (first reached), {ratio_stay:.2f} (for good); "
        f"{seeds} seeds, {time.perf_counter() - t0:.0f} s"
    )
    out["active"] = {"results": results, "ratio_first": ratio_first, "ratio_stay": ratio_stay}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", default="1,2,3")
    parser.add_argument("--battles", type=int, default=10**6)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--choix-rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=OUT / "arena.json")
    parser.add_argument("--choix-runner", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.choix_runner:
        choix_runner(args.choix_runner, args.choix_rounds, args.out)
        return
    parts = {int(p) for p in args.parts.split(",")}
    out: dict = {}
    t = time.perf_counter()
    if 1 in parts:
        part_reference(out)
    if 2 in parts:
        part_speed(out, args.battles, args.choix_rounds)
    if 3 in parts:
        part_active(out, args.seeds)
    print(f"\nwhole run: {time.perf_counter() - t:.0f} s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(out, indent=1, default=lambda x: x.tolist() if hasattr(x, "tolist") else str(x))
    )


if __name__ == "__main__":
    main()
