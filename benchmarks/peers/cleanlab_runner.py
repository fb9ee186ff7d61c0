"""Runs inside benchmarks/out/cleanlab-venv (started by cleanlab.py with ``python -I``): CROWDLAB,
``cleanlab.multiannotator.get_label_quality_multiannotator``, on one set of crowd labels plus a
model's out-of-sample probabilities.

    python -I cleanlab_runner.py --labels labels.csv --pred-probs probs.npy --out DIR

``labels.csv`` is ``task,worker,label`` with integer codes (task in 0..n-1, label in 0..K-1);
``probs.npy`` is the (n, K) pred_probs matrix, row i for task i. The runner lays the labels out as
the dense items x annotators matrix cleanlab wants (NaN where an annotator did not label an item;
only annotators who labeled something get a column), then times the CROWDLAB call alone.
Writes DIR/pred.csv (``task,label``: the consensus label) and DIR/result.json.

When every item has exactly one label, CROWDLAB refuses the input (ValueError "Each example only
has one label ..."); then cleanlab's single-label workflow runs instead,
``cleanlab.filter.find_label_issues(labels, pred_probs)``, and each flagged label is replaced by the
model's class. result.json's ``mode`` says which ran (``crowdlab`` or ``find_label_issues``).
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--labels", required=True)
    ap.add_argument("--pred-probs", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)

    t = time.perf_counter()
    import cleanlab
    import numpy as np
    import pandas as pd
    from cleanlab.filter import find_label_issues
    from cleanlab.multiannotator import get_label_quality_multiannotator

    import_s = time.perf_counter() - t
    df = pd.read_csv(args.labels)
    pred_probs = np.load(args.pred_probs)
    n = pred_probs.shape[0]
    workers, col = np.unique(df["worker"].to_numpy(), return_inverse=True)
    dense = np.full((n, workers.size), np.nan)
    dense[df["task"].to_numpy(), col] = df["label"].to_numpy()
    single = int(np.isfinite(dense).sum(axis=1).max()) == 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rss0 = rss_mb()
        t = time.perf_counter()
        if single:
            # CROWDLAB refuses data where every item has one label ("collapse the labels into a 1-D
            # array"); cleanlab's single-label workflow is find_label_issues, then the model's class
            # replaces each label it flags.
            given = np.nanmax(dense, axis=1).astype(int)
            issues = find_label_issues(given, pred_probs)
            consensus = np.where(issues, pred_probs.argmax(axis=1), given)
            mode = "find_label_issues"
        else:
            res = get_label_quality_multiannotator(dense, pred_probs, verbose=False)
            consensus = res["label_quality"]["consensus_label"].to_numpy()
            mode = "crowdlab"
        fit_s = time.perf_counter() - t
    pd.DataFrame({"task": np.arange(n), "label": consensus}).to_csv(out / "pred.csv", index=False)
    result = {
        "cleanlab_version": cleanlab.__version__,
        "mode": mode,
        "import_seconds": import_s,
        "items": int(n),
        "annotators": int(workers.size),
        "labels": len(df),
        "fit_seconds": fit_s,
        "rss_before_fit_mb": rss0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "warnings": sorted(
            {f"{w.category.__name__}: {str(w.message).splitlines()[0][:200]}" for w in caught}
        ),
    }
    (out / "result.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
