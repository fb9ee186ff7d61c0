"""cleanlab 2.9.0 (CROWDLAB) as a peer in the truth benchmark's "models as sources" part.

cleanlab is installed into its own venv, benchmarks/out/cleanlab-venv, and CROWDLAB
(``cleanlab.multiannotator.get_label_quality_multiannotator(labels_multiannotator, pred_probs)``)
runs there in a child process, ``cleanlab_runner.py``. Data goes through files in a scratch
folder: a ``task,worker,label`` CSV and a ``pred_probs`` .npy in; the consensus labels (CSV) and a
result.json out.

    ensure_cleanlab()                              -> the venv's python
    run_cleanlab(item, worker, label, pred_probs)  -> {"pred": consensus labels, "fit_seconds", ...}

Only the CROWDLAB call is timed; ``process_seconds`` is the whole child. CROWDLAB's input is a
dense items x annotators matrix, so it is built inside the runner from the same claims the other
engines get. With one label per item CROWDLAB refuses the input, and the runner uses
cleanlab's single-label workflow instead (find_label_issues, then the model's class for each flagged
label); the result's ``mode`` says which ran.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _venv import OUT, ensure_venv, run_script

VERSION = "2.9.0"
DEFAULT_VENV = OUT / "cleanlab-venv"
REQUIREMENTS = [f"cleanlab=={VERSION}"]
RUNNER = Path(__file__).resolve().parent / "cleanlab_runner.py"


def ensure_cleanlab(venv: Path = DEFAULT_VENV) -> Path:
    """Install cleanlab==VERSION into ``venv`` unless it is there; return that venv's python."""
    return ensure_venv(venv, REQUIREMENTS, "cleanlab", VERSION)


def run_cleanlab(
    item: ArrayLike,
    worker: ArrayLike,
    label: ArrayLike,
    pred_probs: ArrayLike,
    *,
    python: Path | None = None,
    workdir: Path | None = None,
    timeout: float = 3600,
) -> dict:
    """CROWDLAB on hard labels ``(item, worker, label)`` (integer codes, items ``0..n-1`` where
    ``n = len(pred_probs)``, labels ``0..K-1``) and out-of-sample ``pred_probs`` of shape (n, K).

    Returns the runner's result.json plus ``process_seconds`` and ``pred`` (int64 consensus label
    per item).
    """
    item, worker, label = (np.asarray(a, dtype=np.int64) for a in (item, worker, label))
    pred_probs = np.asarray(pred_probs, dtype=np.float64)
    if not (item.shape == worker.shape == label.shape) or pred_probs.ndim != 2:
        raise ValueError("item, worker, label must be 1-d of one length; pred_probs 2-d")
    n = pred_probs.shape[0]
    if item.size and (item.min() < 0 or item.max() >= n):
        raise ValueError("item codes must lie in [0, len(pred_probs))")
    if np.bincount(item, minlength=n).min() == 0:
        raise ValueError("CROWDLAB needs at least one label for every item")
    python = Path(python) if python is not None else ensure_cleanlab()
    own_tmp = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="cleanlab-")) if own_tmp else Path(workdir)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        labels_csv, probs_npy = workdir / "labels.csv", workdir / "pred_probs.npy"
        np.savetxt(
            labels_csv,
            np.column_stack([item, worker, label]),
            fmt="%d",
            delimiter=",",
            header="task,worker,label",
            comments="",
        )
        np.save(probs_npy, pred_probs)
        args = ["--labels", str(labels_csv), "--pred-probs", str(probs_npy)]
        wall, result = run_script(python, RUNNER, args, workdir, timeout=timeout)
        result["process_seconds"] = wall
        pred = np.loadtxt(workdir / "pred.csv", delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
        out = np.full(n, -1, dtype=np.int64)
        out[pred[:, 0]] = pred[:, 1]
        result["pred"] = out
    finally:
        if own_tmp:
            shutil.rmtree(workdir, ignore_errors=True)
    return result


if __name__ == "__main__":  # quick manual check on random data
    rng = np.random.default_rng(0)
    n, k = 500, 3
    truth = rng.integers(0, k, n)
    it = np.repeat(np.arange(n), 3)
    wk = rng.integers(0, 20, it.size)
    lab = np.where(rng.random(it.size) < 0.7, truth[it], rng.integers(0, k, it.size))
    pp = rng.dirichlet(np.ones(k), n) * 0.5 + np.eye(k)[truth] * 0.5
    res = run_cleanlab(it, wk, lab, pp)
    print(
        {k_: v for k_, v in res.items() if k_ != "pred"}, "accuracy", (res["pred"] == truth).mean()
    )
