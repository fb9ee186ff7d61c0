"""Truth inference: veritag's engine against crowd-kit 1.4.2 and cleanlab 2.9.0, in the same run.

    python benchmarks/truth.py [--quick] [--no-peer] [--parts 1,2,3] [--items N] [--json PATH]

1. Accuracy on every real dataset in <shared>/data/crowd: veritag's majority vote (MV), weighted
   vote (WMV), one-coin Dawid-Skene and full Dawid-Skene (DS), against crowd-kit's MajorityVote and
   DawidSkene(n_iter=100) on the same claims.
2. Speed on a synthetic crowd (10^6 items x 5 claims, 5 classes, 1,000 workers of mixed quality;
   --quick: 10^5 items): veritag DS and crowd-kit DS each in a child process of its own, fed the
   same claims (veritag: the integer arrays from an .npz; crowd-kit: the same codes as a CSV).
   Fit time is the clock around the fit alone (veritag: ``Claims.from_arrays`` + ``fit_truth``;
   crowd-kit: ``fit_predict``); peak RSS is each child's whole-life ru_maxrss.
3. Models as sources on snow_rte and product, with k = 1 and k = 3 human labels per item (a
   seeded random subsample): (a) humans alone, veritag DS; (b) the text model alone (argmax of its
   out-of-fold probabilities); (c) veritag DS with the model as one more source; (d) cleanlab's
   CROWDLAB on the same labels and probabilities. The model (TF-IDF + logistic regression,
   benchmarks/truth_data.py) is trained, fold by fold, on the majority vote of the scenario's k
   human labels of the other folds, never on the ground truth.

Peers run from their own venvs under benchmarks/out/ (created on first use: crowd-kit takes a few
minutes, cleanlab less). If a peer cannot be installed or fails, that is printed and veritag's
numbers stand. Every number printed also goes to benchmarks/out/truth.json (--quick:
truth-quick.json). Tables are Markdown, ready for RESULTS.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
sys.path.insert(0, str(HERE))
import truth_data as td

VERITAG_METHODS = ("mv", "wmv", "onecoin", "ds", "ds-shrunk", "auto")
CROWDKIT_METHODS = ("mv", "onecoin", "ds", "glad", "mace")
METHOD_NAMES = {"mv": "MV", "wmv": "WMV", "onecoin": "one-coin DS", "ds": "DS"}


# --------------------------------------------------------------------------- helpers


def _peer(name: str):
    """benchmarks/peers/<name>.py, privately named (``crowdkit``/``cleanlab`` are real packages)."""
    mod_name = f"_veritag_bench_peer_{name}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, HERE / "peers" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    spec.loader.exec_module(module)
    return module


def _veritag():
    from veritag.truth import Claims, fit_truth

    return Claims, fit_truth


def _why(err: BaseException) -> str:
    first, _, rest = f"{type(err).__name__}: {err}".strip().partition("\n")
    return first + ("\n    " + rest.strip().replace("\n", "\n    ") if rest.strip() else "")


def table(headers: list[str], rows: list[list], align: str | None = None) -> str:
    """A Markdown table; ``align`` is one of l/r per column (default: first l, rest r)."""
    align = align or "l" + "r" * (len(headers) - 1)
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    width = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r):
        return (
            "| "
            + " | ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(r, width, align))
            + " |"
        )

    sep = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if a == "r" else ("-" * (w + 2)) for w, a in zip(width, align)
        )
        + "|"
    )
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def acc4(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def fit_truth_posterior(claims, method: str):
    _, fit_truth = _veritag()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_truth(claims, method=method).posterior


def acc(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def fit_veritag(claims, method: str, **kw) -> dict:
    """One ``fit_truth`` call: labels, seconds, iterations, and any warnings it raised."""
    _, fit_truth = _veritag()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = time.perf_counter()
        res = fit_truth(claims, method=method, **kw)
        seconds = time.perf_counter() - t
    return {
        "pred": res.labels(),
        "seconds": seconds,
        "n_iter": int(res.n_iter),
        "converged": bool(getattr(res, "converged", True)),
        "chosen": res.method,
        "scores": {m: round(v, 5) for m, v in getattr(res, "scores", {}).items()},
        "warnings": sorted({f"{w.category.__name__}: {w.message}" for w in caught}),
    }


def _strip(d: dict) -> dict:
    """A result dict without its prediction arrays (for the JSON)."""
    return {
        k: (_strip(v) if isinstance(v, dict) else v)
        for k, v in d.items()
        if k not in ("pred", "proba")
    }


# --------------------------------------------------------------------------- part 1


def part_accuracy(peer: bool, scratch: Path) -> dict:
    Claims, _ = _veritag()
    print(
        "\n## 1. Accuracy on the real crowd datasets (same claims for every engine)\n", flush=True
    )
    ck, ck_python, ck_why = None, None, ""
    if peer:
        try:
            ck = _peer("crowdkit")
            print(f"crowd-kit {ck.VERSION}: preparing its venv ({ck.DEFAULT_VENV}) ...", flush=True)
            ck_python = ck.ensure_crowdkit()
        except Exception as err:  # noqa: BLE001  (a failing peer must not fail veritag's benchmark)
            ck_why = _why(err)
    results = {}
    for name in td.crowd_names():
        data = td.load_crowd(name)
        claims = Claims.from_arrays(
            data.item,
            data.worker,
            data.label,
            n_items=data.n_items,
            n_sources=data.n_workers,
            n_classes=data.n_classes,
        )
        votes = np.bincount(
            data.item * data.n_classes + data.label, minlength=data.n_items * data.n_classes
        )
        votes = votes.reshape(data.n_items, data.n_classes)
        ties = int(((votes == votes.max(axis=1, keepdims=True)).sum(axis=1) > 1).sum())
        r = {
            "claims": data.n_claims,
            "items": data.n_items,
            "workers": data.n_workers,
            "classes": data.classes,
            "mv_ties": ties,
            "veritag": {},
            "crowdkit": None,
        }
        for m in VERITAG_METHODS:
            fit = fit_veritag(claims, m)
            fit["accuracy"] = data.accuracy(fit["pred"])
            r["veritag"][m] = fit
        if ck_python is not None:
            try:
                csv_path = td.write_claims_csv(
                    scratch / f"{name}.csv", data.item, data.worker, data.label
                )
                got = ck.run_crowdkit(
                    csv_path, CROWDKIT_METHODS, n_iter=100, n_items=data.n_items, python=ck_python
                )
                for m, mr in got["methods"].items():
                    mr["accuracy"] = data.accuracy(mr["pred"])
                    mr["unlabeled"] = int((mr["pred"] < 0).sum())
                r["crowdkit"] = got
                if "proba" in got["methods"].get("ds", {}):
                    r["ds_max_posterior_diff"] = float(
                        np.abs(
                            got["methods"]["ds"]["proba"] - fit_truth_posterior(claims, "ds")
                        ).max()
                    )
            except Exception as err:  # noqa: BLE001
                r["crowdkit_error"] = _why(err)
        results[name] = r

    headers = [
        "dataset",
        "claims",
        "items",
        "workers",
        "K",
        "MV ties",
        "veritag MV",
        "WMV",
        "one-coin",
        "DS",
        "DS shrunk",
        "auto (chose)",
        *(f"crowd-kit {m}" for m in CROWDKIT_METHODS),
        "DS diff",
        "|DS post diff|",
        "veritag DS s",
        "crowd-kit DS s",
    ]
    rows = []
    for name, r in results.items():
        v = r["veritag"]
        c = r["crowdkit"]["methods"] if r["crowdkit"] else None
        diff = f"{v['ds']['accuracy'] - c['ds']['accuracy']:+.4f}" if c else "n/a"
        rows.append(
            [
                name,
                f"{r['claims']:,}",
                f"{r['items']:,}",
                r["workers"],
                len(r["classes"]),
                r["mv_ties"],
                *(acc4(v[m]["accuracy"]) for m in VERITAG_METHODS[:-1]),
                f"{acc4(v['auto']['accuracy'])} ({v['auto']['chosen']})",
                *(acc4(c[m]["accuracy"]) if c and m in c else "n/a" for m in CROWDKIT_METHODS),
                diff,
                f"{r['ds_max_posterior_diff']:.1e}"
                if r.get("ds_max_posterior_diff") is not None
                else "n/a",
                f"{v['ds']['seconds']:.3f}",
                f"{c['ds']['fit_seconds']:.3f}" if c else "n/a",
            ]
        )
    mean = lambda xs: sum(xs) / len(xs)
    v_mean = {
        m: mean([r["veritag"][m]["accuracy"] for r in results.values()]) for m in VERITAG_METHODS
    }
    c_ok = all(
        r["crowdkit"] and set(CROWDKIT_METHODS) <= set(r["crowdkit"]["methods"])
        for r in results.values()
    )
    c_mean = (
        {
            m: mean([r["crowdkit"]["methods"][m]["accuracy"] for r in results.values()])
            for m in CROWDKIT_METHODS
        }
        if c_ok
        else None
    )
    oracle = (
        mean(
            [
                max(r["crowdkit"]["methods"][m]["accuracy"] for m in CROWDKIT_METHODS)
                for r in results.values()
            ]
        )
        if c_ok
        else None
    )
    rows.append(
        [
            "**mean**",
            "",
            "",
            "",
            "",
            "",
            *(acc4(v_mean[m]) for m in VERITAG_METHODS),
            *(acc4(c_mean[m]) if c_mean else "n/a" for m in CROWDKIT_METHODS),
            f"{v_mean['ds'] - c_mean['ds']:+.4f}" if c_mean else "n/a",
            "",
            "",
            "",
        ]
    )
    print(table(headers, rows))
    print(
        "(accuracy against gt.csv; DS diff = veritag DS - crowd-kit DS; |DS post diff| = largest "
        "absolute difference of any posterior; seconds = the fit call alone; crowd-kit from its "
        "own venv, same integer-coded claims, n_iter=100, MACE with its defaults; MV ties = items "
        "whose top vote count is shared)"
    )
    if oracle is not None:
        print(
            f"\nauto: mean {v_mean['auto']:.4f}; the best crowd-kit method per dataset in "
            f"hindsight (an oracle): mean {oracle:.4f}; difference {v_mean['auto'] - oracle:+.4f}."
        )
    print(
        "Leave-one-dataset-out: auto's rule (5 folds over claims, seed 0, one pseudo-claim in the "
        "shared confusion) has no constant fitted on any of these sets, so each row above is "
        "already the accuracy of a choice in which that set played no part but its own claims."
    )
    for name, r in results.items():
        for m, fit in r["veritag"].items():
            for w in fit["warnings"]:
                print(f"note: veritag {m} on {name}: {w}")
        if r.get("crowdkit_error"):
            print(f"crowd-kit on {name}: FAILED: {r['crowdkit_error']}")
        elif r["crowdkit"]:
            for m, mr in r["crowdkit"]["methods"].items():
                if mr["unlabeled"]:
                    print(
                        f"note: crowd-kit {m} on {name} left {mr['unlabeled']} items without a "
                        "label"
                    )
    if peer and ck_python is None:
        print(f"crowd-kit: NOT MEASURED: {ck_why}")
    return {
        "datasets": _strip(results),
        "mean": {"veritag": v_mean, "crowdkit": c_mean, "oracle": oracle},
    }


# --------------------------------------------------------------------------- part 2


def _veritag_child(npz: Path, out_dir: Path, method: str) -> None:
    """Child process: load claims, time ``Claims.from_arrays`` + ``fit_truth``, write results."""
    t = time.perf_counter()
    Claims, fit_truth = _veritag()
    import_s = time.perf_counter() - t
    z = np.load(npz)
    item, worker, label = z["item"], z["worker"], z["label"]
    n_items, n_sources, n_classes = (int(z[k]) for k in ("n_items", "n_sources", "n_classes"))
    with open("/proc/self/statm") as fh:
        rss0 = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        claims = Claims.from_arrays(
            item, worker, label, n_items=n_items, n_sources=n_sources, n_classes=n_classes
        )
        t1 = time.perf_counter()
        res = fit_truth(claims, method=method)
        t2 = time.perf_counter()
    np.save(out_dir / "pred.npy", res.labels())
    (out_dir / "result.json").write_text(
        json.dumps(
            {
                "import_seconds": import_s,
                "build_seconds": t1 - t0,
                "fit_seconds": t2 - t0,  # build + fit: what a caller with arrays waits for
                "fit_only_seconds": t2 - t1,
                "n_iter": int(res.n_iter),
                "converged": bool(getattr(res, "converged", True)),
                "chosen": res.method,
                "scores": {m: round(v, 5) for m, v in getattr(res, "scores", {}).items()},
                "rss_before_fit_mb": rss0,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "warnings": sorted({f"{w.category.__name__}: {w.message}" for w in caught}),
            },
            indent=2,
        )
    )


def _run_veritag_child(npz: Path, workdir: Path, method: str = "ds") -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    proc = subprocess.run(  # noqa: PLW1510  (the return code is checked below)
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--veritag-child",
            str(npz),
            str(workdir),
            method,
        ],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(
            "veritag child failed "
            f"({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    result = json.loads((workdir / "result.json").read_text())
    result["process_seconds"] = wall
    result["pred"] = np.load(workdir / "pred.npy")
    return result


def _median_of(repeat: int, run: Callable[[int], dict]) -> dict:
    """Run a timed child ``repeat`` times; keep the run with the median fit time, and all times.

    This machine is shared and its timings wander by tens of percent from one process to the
    next, so one run of each engine would compare noise as much as speed.
    """
    runs = [run(i) for i in range(repeat)]
    runs.sort(key=lambda r: r["fit_seconds"])
    chosen = dict(runs[len(runs) // 2])
    chosen["fit_seconds_all"] = [r["fit_seconds"] for r in runs]
    return chosen


def part_speed(peer: bool, n_items: int, scratch: Path, repeat: int = 3) -> dict:
    print(
        f"\n## 2. Speed: Dawid-Skene on a synthetic crowd of {n_items:,} items x 5 claims\n",
        flush=True,
    )
    t = time.perf_counter()
    data = td.synthetic(n_items=n_items, claims_per_item=5, n_classes=5, n_workers=1000, seed=0)
    gen_s = time.perf_counter() - t
    kinds = {k: int((data.worker_kind == k).sum()) for k in ("spammer", "good", "confuser")}
    claim_acc = float(np.mean(data.label == data.truth[data.item]))
    print(
        f"generated {data.n_claims:,} claims in {gen_s:.1f} s: {data.n_workers:,} workers "
        f"({kinds['spammer']} near-random, {kinds['good']} good, {kinds['confuser']} "
        f"class-confusers), {data.n_classes} classes, {claim_acc:.3f} of claims correct",
        flush=True,
    )
    npz = scratch / "synth.npz"
    np.savez(
        npz,
        item=data.item,
        worker=data.worker,
        label=data.label,
        n_items=data.n_items,
        n_sources=data.n_workers,
        n_classes=data.n_classes,
    )
    mv = td.majority_labels(data.item, data.label, data.n_items, data.n_classes, seed=0)
    out = {
        "items": data.n_items,
        "claims": data.n_claims,
        "workers": data.n_workers,
        "classes": data.n_classes,
        "worker_kinds": kinds,
        "claim_accuracy": claim_acc,
        "generate_seconds": gen_s,
        "mv_random_ties_accuracy": data.accuracy(mv),
    }

    vt = _median_of(repeat, lambda i: _run_veritag_child(npz, scratch / f"veritag-ds-{i}"))
    vt["accuracy"] = data.accuracy(vt["pred"])
    out["veritag"] = vt
    ck, ck_why = None, ""
    if peer:
        try:
            peer_mod = _peer("crowdkit")
            python = peer_mod.ensure_crowdkit()
            csv_path = td.write_claims_csv(
                scratch / "synth.csv", data.item, data.worker, data.label
            )
            print(f"crowd-kit {peer_mod.VERSION}: fitting DawidSkene(n_iter=100) ...", flush=True)

            def crowdkit_once(i: int) -> dict:
                got = peer_mod.run_crowdkit(
                    csv_path,
                    ("ds",),
                    n_iter=100,
                    n_items=data.n_items,
                    python=python,
                    workdir=scratch / f"crowdkit-ds-{i}",
                )
                return {
                    **got["methods"]["ds"],
                    "process_seconds": got["process_seconds"],
                    "read_seconds": got["read_seconds"],
                    "import_seconds": got["import_seconds"],
                    "version": got["crowdkit_version"],
                }

            ck = _median_of(repeat, crowdkit_once)
            ck["accuracy"] = data.accuracy(ck["pred"])
            out["crowdkit"] = ck
        except Exception as err:  # noqa: BLE001
            ck_why = _why(err)
            out["crowdkit_error"] = ck_why

    headers = [
        "engine",
        "fit s",
        "iterations",
        "whole process s",
        "peak RSS MB",
        "accuracy vs truth",
    ]
    rows = [
        [
            "veritag DS",
            f"{vt['fit_seconds']:.2f}",
            vt["n_iter"],
            f"{vt['process_seconds']:.1f}",
            f"{vt['peak_rss_mb']:.0f}",
            acc(vt["accuracy"]),
        ]
    ]
    if ck:
        rows.append(
            [
                "crowd-kit DS",
                f"{ck['fit_seconds']:.2f}",
                ck["n_iter"],
                f"{ck['process_seconds']:.1f}",
                f"{ck['peak_rss_mb']:.0f}",
                acc(ck["accuracy"]),
            ]
        )
    rows.append(
        ["(majority vote, random ties)", "", "", "", "", acc(out["mv_random_ties_accuracy"])]
    )
    print(table(headers, rows))
    print(
        f"(veritag fit s = Claims.from_arrays {vt['build_seconds']:.2f} s + fit_truth "
        f"{vt['fit_only_seconds']:.2f} s; crowd-kit fit s = fit_predict on a DataFrame already "
        "read; whole process = interpreter start, imports and reading the input included; peak "
        "RSS = each child's own)"
    )
    for w in vt["warnings"]:
        print(f"note: veritag: {w}")
    if ck:
        out["speedup"] = ck["fit_seconds"] / vt["fit_seconds"]
        out["rss_ratio"] = ck["peak_rss_mb"] / vt["peak_rss_mb"]
        print(
            f"**veritag DS vs crowd-kit DS on the same claims: fit {out['speedup']:.1f}x faster, "
            f"peak RSS {out['rss_ratio']:.1f}x smaller (crowd-kit / veritag), accuracy "
            f"{vt['accuracy'] - ck['accuracy']:+.3f} (veritag - crowd-kit)**"
        )
    elif peer:
        print(f"crowd-kit: NOT MEASURED: {ck_why}")
    return _strip(out)


# --------------------------------------------------------------------------- part 3


def part_models(peer: bool) -> dict:
    Claims, _ = _veritag()
    print("\n## 3. A text model as one more source (k human labels per item)\n", flush=True)
    cl, cl_python, cl_why = None, None, ""
    if peer:
        try:
            cl = _peer("cleanlab")
            print(f"cleanlab {cl.VERSION}: preparing its venv ({cl.DEFAULT_VENV}) ...", flush=True)
            cl_python = cl.ensure_cleanlab()
        except Exception as err:  # noqa: BLE001
            cl_why = _why(err)
    results = {}
    for name in td.TEXT_DATASETS:
        data = td.load_crowd(name)
        for k in (1, 3):
            key = f"{name} k={k}"
            idx = td.subsample_per_item(data.item, k, seed=0)
            item, worker, label = data.item[idx], data.worker[idx], data.label[idx]
            train = td.majority_labels(item, label, data.n_items, data.n_classes, seed=0)
            t = time.perf_counter()
            probs = td.oof_text_probs(data, train, folds=5, seed=0)
            model_s = time.perf_counter() - t
            n, s, kk = data.n_items, data.n_workers, data.n_classes
            humans = Claims.from_arrays(item, worker, label, n_items=n, n_sources=s, n_classes=kk)
            both = Claims.from_arrays(
                item,
                worker,
                label,
                n_items=n,
                n_sources=s + 1,
                n_classes=kk,
                prob_item=np.arange(n),
                prob_source=np.full(n, s),
                probs=probs,
            )
            r = {
                "human_labels": int(idx.size),
                "model_seconds": model_s,
                "train_label_accuracy": data.accuracy(train),
            }
            r["humans_mv"] = fit_veritag(humans, "mv")
            r["humans_ds"] = fit_veritag(humans, "ds")
            r["model"] = {"pred": probs.argmax(axis=1)}
            r["ds_model"] = fit_veritag(both, "ds")
            for part in ("humans_mv", "humans_ds", "model", "ds_model"):
                r[part]["accuracy"] = data.accuracy(r[part]["pred"])
            if cl_python is not None:
                try:
                    got = cl.run_cleanlab(item, worker, label, probs, python=cl_python)
                    got["accuracy"] = data.accuracy(got["pred"])
                    r["crowdlab"] = got
                except Exception as err:  # noqa: BLE001
                    r["crowdlab_error"] = _why(err)
            results[key] = r
            print(f"  {key}: done (text model {model_s:.1f} s)", flush=True)

    headers = [
        "dataset, labels per item",
        "humans MV",
        "(a) humans DS",
        "(b) model alone",
        "(c) DS + model",
        "(d) cleanlab",
        "(c) - (d)",
    ]
    rows = []
    for key, r in results.items():
        c = r.get("crowdlab")
        rows.append(
            [
                key,
                acc(r["humans_mv"]["accuracy"]),
                acc(r["humans_ds"]["accuracy"]),
                acc(r["model"]["accuracy"]),
                acc(r["ds_model"]["accuracy"]),
                (acc(c["accuracy"]) + ("*" if c.get("mode") == "find_label_issues" else ""))
                if c
                else "n/a",
                f"{r['ds_model']['accuracy'] - c['accuracy']:+.3f}" if c else "n/a",
            ]
        )
    print(table(headers, rows))
    print(
        "(accuracy against gt.csv; the k labels per item are a seeded random subsample; the model "
        "is TF-IDF + logistic regression, out-of-fold (5 folds), trained on the majority vote of "
        "the k labels of the other folds; (c) = veritag DS with the model's probability rows as "
        "one more source (engine defaults)" + "; (d) = cleanlab CROWDLAB, "
        "get_label_quality_multiannotator's consensus_label; * = CROWDLAB refuses one label per "
        "item, so cleanlab's single-label workflow: find_label_issues, the model's class where it "
        "flags)"
    )
    for key, r in results.items():
        for part in ("humans_ds", "ds_model"):
            for w in r.get(part, {}).get("warnings", ()):
                print(f"note: veritag {part} on {key}: {w}")
        if r.get("crowdlab_error"):
            print(f"CROWDLAB on {key}: FAILED: {r['crowdlab_error']}")
        elif r.get("crowdlab"):
            for w in r["crowdlab"]["warnings"]:
                print(f"note: CROWDLAB on {key}: {w}")
    if peer and cl_python is None:
        print(f"cleanlab: NOT MEASURED: {cl_why}")
    return _strip(results)


# --------------------------------------------------------------------------- main


def _versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("veritag", "numpy", "scipy", "scikit-learn"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="synthetic part on 10^5 items instead of 10^6"
    )
    parser.add_argument(
        "--no-peer", action="store_true", help="veritag only: skip crowd-kit and cleanlab"
    )
    parser.add_argument("--parts", default="1,2,3", help="which parts to run, e.g. 1,3")
    parser.add_argument(
        "--items", type=int, default=None, help="synthetic items (default 10^6, --quick 10^5)"
    )
    parser.add_argument("--json", type=Path, default=None, help="where to write the numbers")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed runs per engine in part 2 (median kept)"
    )
    parser.add_argument(
        "--veritag-child", nargs=3, metavar=("NPZ", "DIR", "METHOD"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.veritag_child:
        npz, out_dir, method = args.veritag_child
        _veritag_child(Path(npz), Path(out_dir), method)
        return

    parts = {int(p) for p in args.parts.split(",") if p.strip()}
    n_items = args.items or (10**5 if args.quick else 10**6)
    json_path = args.json or OUT / ("truth-quick.json" if args.quick else "truth.json")
    OUT.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="truth-bench-", dir=OUT))
    peer = not args.no_peer
    start = time.perf_counter()
    report: dict = {
        "argv": sys.argv[1:],
        "versions": _versions(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
    print(
        f"# Truth inference benchmark ({'quick' if args.quick else 'full'}; peers "
        f"{'on' if peer else 'off'})"
    )
    try:
        if 1 in parts:
            report["accuracy"] = part_accuracy(peer, scratch)
        if 2 in parts:
            report["speed"] = part_speed(peer, n_items, scratch, args.repeat)
        if 3 in parts:
            report["models"] = part_models(peer)
    finally:
        report["total_seconds"] = time.perf_counter() - start
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2, default=float))
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"\ntotal {report['total_seconds']:.0f} s; numbers in {json_path}")


if __name__ == "__main__":
    main()
