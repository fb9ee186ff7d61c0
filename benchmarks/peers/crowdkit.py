"""crowd-kit 1.4.2 (Toloka's truth-inference library) as a peer in the truth benchmark.

crowd-kit is installed into its own venv, benchmarks/out/crowdkit-venv (never into veritag's; it
pulls transformers and nltk), and its aggregators run there in a child process,
``crowdkit_runner.py``. Data goes through files in a scratch folder: a ``task,worker,label`` CSV
in; one ``task,label`` CSV of predictions per method and a result.json out.

    ensure_crowdkit()                               -> the venv's python
    run_crowdkit(labels_csv, methods=("mv", "ds"))  -> {"methods": {m: {"fit_seconds", ...}}, ...}

Only ``fit_predict`` is timed (the runner's clock); ``process_seconds`` is the whole child,
interpreter start, imports and CSV parsing included. Peak RSS is the child's own ru_maxrss.

Versions: crowd-kit 1.4.2 with the pandas/scikit-learn pip resolves today (pandas 3.1, scikit-learn
1.9 when this was written). With those, Wawa, ZeroBasedSkill and GoldMajorityVote raise
``AttributeError ... __sklearn_tags__`` (see ../../../shared/PEERS.md); MajorityVote, DawidSkene,
OneCoinDawidSkene and GLAD run, and they are all this benchmark uses, so nothing older is pinned.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _venv import OUT, ensure_venv, run_script

VERSION = "1.4.2"
DEFAULT_VENV = OUT / "crowdkit-venv"
REQUIREMENTS = [f"crowd-kit=={VERSION}"]
RUNNER = Path(__file__).resolve().parent / "crowdkit_runner.py"
METHODS = ("mv", "ds", "onecoin", "glad", "mace")


def ensure_crowdkit(venv: Path = DEFAULT_VENV) -> Path:
    """Install crowd-kit==VERSION into ``venv`` unless it is there; return that venv's python."""
    return ensure_venv(venv, REQUIREMENTS, "crowd-kit", VERSION)


def run_crowdkit(
    labels_csv: Path,
    methods: Sequence[str] = ("mv", "ds"),
    *,
    n_iter: int = 100,
    n_items: int | None = None,
    python: Path | None = None,
    workdir: Path | None = None,
    timeout: float = 3600,
) -> dict:
    """Run crowd-kit's ``methods`` on ``labels_csv`` (header ``task,worker,label``).

    Returns the runner's result.json plus ``process_seconds`` and, per method, ``pred``: with
    ``n_items`` given (tasks and labels must then be integer codes ``0..n_items-1``), an int64 array
    of length ``n_items`` with -1 for tasks crowd-kit gave no label; otherwise a pandas Series
    indexed by task.
    """
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown crowd-kit methods {sorted(unknown)}; known: {METHODS}")
    python = Path(python) if python is not None else ensure_crowdkit()
    own_tmp = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="crowdkit-")) if own_tmp else Path(workdir)
    try:
        args = [
            "--labels",
            str(Path(labels_csv).resolve()),
            "--methods",
            ",".join(methods),
            "--n-iter",
            str(n_iter),
        ]
        wall, result = run_script(python, RUNNER, args, workdir, timeout=timeout)
        result["process_seconds"] = wall
        for name in methods:
            result["methods"][name]["pred"] = _read_pred(workdir / f"pred_{name}.csv", n_items)
            if (workdir / f"proba_{name}.npy").is_file():
                result["methods"][name]["proba"] = np.load(workdir / f"proba_{name}.npy")
    finally:
        if own_tmp:
            shutil.rmtree(workdir, ignore_errors=True)
    return result


def _read_pred(path: Path, n_items: int | None):
    import pandas as pd

    if n_items is None:
        return pd.read_csv(path, dtype={"task": str, "label": str}).set_index("task")["label"]
    df = pd.read_csv(path, dtype={"task": np.int64, "label": np.int64})
    pred = np.full(n_items, -1, dtype=np.int64)
    pred[df["task"].to_numpy()] = df["label"].to_numpy()
    return pred


if __name__ == "__main__":  # quick manual check: python crowdkit.py LABELS.csv [mv,ds]
    res = run_crowdkit(
        Path(sys.argv[1]), sys.argv[2].split(",") if len(sys.argv) > 2 else ("mv", "ds")
    )
    for m, r in res["methods"].items():
        print(m, {k: v for k, v in r.items() if k != "pred"}, "predictions:", len(r["pred"]))
    print({k: v for k, v in res.items() if k != "methods"})
