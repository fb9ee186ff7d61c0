"""`veritag resolve` end to end against crowd-kit 1.4.2's whole process, in the same run (issue 14).

    python benchmarks/resolve_e2e.py [--items N] [--repeat 3] [--methods ds] [--no-peer]
                                     [--crowdkit-python PATH] [--json PATH]

Generates a synthetic crowd (seeded: 10^6 items x 5 claims, 5 classes, 1,000 workers of mixed
quality, ``truth_data.synthetic``) as a ``task,worker,label`` CSV, and a Parquet copy, then times
whole processes, each from start to exit:

* ``veritag resolve FILE --method ds -o OUT.csv``, the console script, on the CSV and on the
  Parquet copy (python start-up, imports, reading, coding, EM, writing);
* crowd-kit's whole process in its own venv: ``benchmarks/peers/crowdkit_runner.py``, which
  imports pandas and crowd-kit, ``pandas.read_csv``, ``DawidSkene(n_iter=100).fit_predict`` and
  writes the labels with ``to_csv``.

Each is run once untimed (so every interpreter has its bytecode cached: this machine sets
PYTHONDONTWRITEBYTECODE, and a fresh uv venv has no .pyc; the children get a cache of their own
under benchmarks/out/pycache), then ``--repeat`` times, interleaved; the median is kept. Peak RSS
is each child's own ``ru_maxrss`` (``os.wait4``). A second process per veritag method splits its
time into imports, reading and coding, fitting and writing. Accuracy is against the generated
truth. Tables are Markdown, ready for RESULTS.md; the numbers also go to benchmarks/out/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "peers"))
import truth_data as td  # noqa: E402
from _venv import OUT  # noqa: E402
from truth import table  # noqa: E402

VERITAG = Path(sys.executable).with_name("veritag")
RUNNER = HERE / "peers" / "crowdkit_runner.py"

#: One child that splits veritag's file mode into its phases (the same calls the command makes).
PHASES = """
import sys, time
t0 = time.perf_counter()
from pathlib import Path
from veritag.io import labels as files
from veritag.resolve.files import resolve_files
import veritag.truth
t1 = time.perf_counter()
read = files.read_long_labels
spent = []
def timed(*args):
    t = time.perf_counter()
    out = read(*args)
    spent.append(time.perf_counter() - t)
    return out
files.read_long_labels = timed
result = resolve_files(files.read_label_files(Path(sys.argv[1])), method=sys.argv[2])
t2 = time.perf_counter()
files.write_labels(result, Path(sys.argv[3]))
t3 = time.perf_counter()
print(t1 - t0, spent[0], t2 - t1 - spent[0], t3 - t2)
"""


def child_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH", "PYTHONHOME")
    }
    env["PYTHONPYCACHEPREFIX"] = str(OUT / "pycache")
    return env


def run(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> dict:
    """One whole process: wall seconds from start to exit, and its own peak RSS."""
    start = time.perf_counter()
    with (cwd or OUT).joinpath("child.log").open("w") as log:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env or child_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {proc.returncode}:\n"
            + (cwd or OUT).joinpath("child.log").read_text(errors="replace")[-3000:]
        )
    return {"seconds": wall, "peak_rss_mb": usage.ru_maxrss / 1024}


def median_run(runs: list[dict]) -> dict:
    ordered = sorted(runs, key=lambda r: r["seconds"])
    return {**ordered[len(ordered) // 2], "all_seconds": [round(r["seconds"], 2) for r in runs]}


def accuracy(pred_csv: Path, truth: np.ndarray) -> float:
    """Share of items whose label in ``pred_csv`` (``task,label`` as integer codes) is the truth."""
    import pyarrow.csv as pcsv

    t = pcsv.read_csv(pred_csv)
    task = np.asarray(t.column("task").to_numpy(), dtype=np.int64)
    label = np.asarray(t.column(t.column_names[1]).to_numpy(), dtype=np.int64)
    pred = np.full(truth.size, -1, dtype=np.int64)
    pred[task] = label
    return float(np.mean(pred == truth))


def crowdkit_python(given: Path | None) -> Path:
    if given is not None:
        return given
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_veritag_bench_peer_crowdkit", HERE / "peers" / "crowdkit.py"
    )
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.ensure_crowdkit()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=10**6, help="synthetic items (5 claims each)")
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed runs of each process (median kept)"
    )
    parser.add_argument("--methods", default="ds", help="veritag methods to time, comma-separated")
    parser.add_argument("--no-peer", action="store_true", help="veritag only")
    parser.add_argument(
        "--crowdkit-python",
        type=Path,
        default=None,
        help="python of a venv with crowd-kit 1.4.2 [default: benchmarks/out/crowdkit-venv, made "
        "if missing]",
    )
    parser.add_argument("--json", type=Path, default=None, help="where to write the numbers")
    args = parser.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    OUT.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="resolve-e2e-", dir=OUT))
    report: dict = {"items": args.items, "repeat": args.repeat, "cpus": os.cpu_count()}
    try:
        t = time.perf_counter()
        data = td.synthetic(
            n_items=args.items, claims_per_item=5, n_classes=5, n_workers=1000, seed=0
        )
        labels_csv = td.write_claims_csv(scratch / "labels.csv", data.item, data.worker, data.label)
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        labels_parquet = scratch / "labels.parquet"
        pq.write_table(pcsv.read_csv(labels_csv), labels_parquet)
        print(
            f"# Resolve end to end: {data.n_items:,} items x 5 claims, {data.n_workers:,} workers, "
            f"{data.n_classes} classes ({labels_csv.stat().st_size / 2**20:.0f} MB CSV, "
            f"{labels_parquet.stat().st_size / 2**20:.0f} MB Parquet; generated in "
            f"{time.perf_counter() - t:.0f} s)\n",
            flush=True,
        )

        jobs: dict[str, tuple[list[str], Path, Path | None]] = {}
        for m in methods:
            for kind, path in (("CSV", labels_csv), ("Parquet", labels_parquet)):
                out = scratch / f"veritag-{m}-{kind}.csv"
                jobs[f"veritag resolve --method {m} ({kind})"] = (
                    [str(VERITAG), "resolve", str(path), "--method", m, "-o", str(out)],
                    out,
                    None,
                )
        ck_key = None
        if not args.no_peer:
            try:
                python = crowdkit_python(args.crowdkit_python)
                ck_dir = scratch / "crowdkit"
                ck_dir.mkdir()
                ck_key = "crowd-kit 1.4.2 DawidSkene(n_iter=100) (CSV)"
                jobs[ck_key] = (
                    [
                        str(python),
                        "-I",
                        str(RUNNER),
                        "--labels",
                        str(labels_csv),
                        "--methods",
                        "ds",
                        "--n-iter",
                        "100",
                        "--out",
                        str(ck_dir),
                    ],
                    ck_dir / "pred_ds.csv",
                    ck_dir,
                )
            except Exception as err:  # noqa: BLE001
                report["crowdkit_error"] = f"{type(err).__name__}: {err}"
                print(f"crowd-kit: NOT MEASURED: {report['crowdkit_error']}", flush=True)

        runs: dict[str, list[dict]] = {k: [] for k in jobs}
        for key, (argv, _, cwd) in jobs.items():  # untimed: bytecode caches, page cache
            run(argv, cwd=cwd)
        for i in range(args.repeat):
            for key, (argv, _, cwd) in jobs.items():
                runs[key].append(run(argv, cwd=cwd))
                print(
                    f"run {i + 1}/{args.repeat} {key}: {runs[key][-1]['seconds']:.2f} s, "
                    f"{runs[key][-1]['peak_rss_mb']:.0f} MB",
                    flush=True,
                )
        results = {
            k: {**median_run(r), "accuracy": accuracy(jobs[k][1], data.truth)}
            for k, r in runs.items()
        }
        phases = {}
        for m in methods:
            done = subprocess.run(
                [sys.executable, "-c", PHASES, str(labels_csv), m, str(scratch / "phases.csv")],
                env=child_env(),
                capture_output=True,
                text=True,
                check=True,
            )
            phases[m] = dict(
                zip(
                    ("imports", "read_and_code", "fit", "write"),
                    map(float, done.stdout.split()[-4:]),
                )
            )
        report.update(results=results, phases=phases)

        ck = results.get(ck_key) if ck_key else None
        headers = [
            "process",
            "whole process s (median)",
            "runs s",
            "peak RSS MB",
            "accuracy",
            "crowd-kit / this (time)",
        ]
        rows = [
            [
                k,
                f"{r['seconds']:.2f}",
                " / ".join(f"{s:.2f}" for s in r["all_seconds"]),
                f"{r['peak_rss_mb']:.0f}",
                f"{r['accuracy']:.4f}",
                f"{ck['seconds'] / r['seconds']:.1f}x" if ck and k != ck_key else "",
            ]
            for k, r in results.items()
        ]
        print()
        print(table(headers, rows))
        print(
            "\nveritag's file mode by phase (one more process per method, the same calls the "
            "command makes):\n"
        )
        print(
            table(
                ["method", "imports s", "read + code s", "fit s", "write s"],
                [
                    [m, *(f"{p[k]:.2f}" for k in ("imports", "read_and_code", "fit", "write"))]
                    for m, p in phases.items()
                ],
            )
        )
    finally:
        path = args.json or OUT / "resolve_e2e.json"
        path.write_text(json.dumps(report, indent=2, default=float))
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"\nnumbers in {path}")


if __name__ == "__main__":
    main()
