"""Runs inside benchmarks/out/crowdkit-venv (started by crowdkit.py with ``python -I``): crowd-kit's
aggregators on one ``task,worker,label`` CSV.

    python -I crowdkit_runner.py --labels labels.csv --methods mv,ds --n-iter 100 --out DIR

Writes DIR/pred_<method>.csv (``task,label``) and DIR/result.json: per method the seconds spent in
``fit_predict`` alone, the iterations EM ran, and the process's peak RSS after it; plus the time
and RSS of reading the CSV. Methods run in the order given, each on a fresh estimator.
"""

import argparse
import json
import os
import resource
import time
import warnings
from pathlib import Path


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--labels", required=True)
    ap.add_argument("--methods", default="mv,ds")
    ap.add_argument("--n-iter", type=int, default=100)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)

    t = time.perf_counter()
    import crowdkit
    import numpy as np
    import pandas as pd
    from crowdkit.aggregation import GLAD, MACE, DawidSkene, MajorityVote, OneCoinDawidSkene

    import_s = time.perf_counter() - t
    factories = {
        "mv": lambda: MajorityVote(),
        "ds": lambda: DawidSkene(n_iter=args.n_iter),
        "onecoin": lambda: OneCoinDawidSkene(n_iter=args.n_iter),
        "glad": lambda: GLAD(n_iter=args.n_iter, silent=True),
        "mace": lambda: MACE(),
    }
    t = time.perf_counter()
    df = pd.read_csv(args.labels)
    result = {
        "crowdkit_version": getattr(crowdkit, "__version__", None),
        "pandas_version": pd.__version__,
        "import_seconds": import_s,
        "read_seconds": time.perf_counter() - t,
        "rows": len(df),
        "rss_after_read_mb": rss_mb(),
        "methods": {},
    }
    for name in args.methods.split(","):
        est = factories[name]()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rss0 = rss_mb()
            t = time.perf_counter()
            pred = est.fit_predict(df)
            fit_s = time.perf_counter() - t
        pred.rename("label").rename_axis("task").reset_index().to_csv(
            out / f"pred_{name}.csv", index=False
        )
        if name == "ds":  # the posteriors too, tasks and labels in code order, to compare to 1e-6
            probas = est.probas_.sort_index()
            np.save(out / "proba_ds.npy", probas.reindex(columns=sorted(probas.columns)).to_numpy())
        history = getattr(est, "loss_history_", None)
        result["methods"][name] = {
            "fit_seconds": fit_s,
            "n_iter": len(history) if history is not None else None,
            "rss_before_fit_mb": rss0,
            "peak_rss_mb": peak_mb(),
            "warnings": sorted(
                {f"{w.category.__name__}: {str(w.message).splitlines()[0][:200]}" for w in caught}
            ),
        }
    result["peak_rss_mb"] = peak_mb()
    (out / "result.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
