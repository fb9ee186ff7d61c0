"""Import 1,000,000 generated items and 3,000,000 claims into SQLite, then export them.

Prints rows/s for each step and the peak RSS of the process doing the work. Each step runs as
the real ``veritag`` command in a child process, so the figures are what a user gets and the
peak memory is that of veritag alone, not of the data generator.

    python benchmarks/import_export.py [--items 1000000] [--claims-per-item 3]
                                       [--peer-items 20000 | --no-peer]

Targets (issue 2): >= 50,000 items/s imported; peak RSS under 500 MB.

The partitioned steps (issue 17): the project exported as a Parquet dataset (``--format
parquet-dataset``, files of --partition-rows rows) and that folder imported into a second
project, its resolved labels as gold; their peak RSS is each child's own.

Then, unless --no-peer, the same shape with --peer-items items goes through veritag again and
through Label Studio 1.23.2 (benchmarks/peers/label_studio.py: its own venv under
benchmarks/out/ls-venv, a server on 127.0.0.1 only, telemetry off), and a side-by-side table is
printed. If Label Studio cannot be installed or started, that is said and veritag's part stands.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLASSES = ["negative", "neutral", "positive", "mixed", "other"]
DOMAINS = ["stem", "finance", "medicine", "security", "child_safety", "general"]
WORDS = (
    "the model labels what it is sure of and specialists label the rest with measured quality"
).split()


def generate(folder: Path, n_items: int, per_item: int, seed: int = 0) -> tuple[Path, Path]:
    """Stream the two CSV files to disk (flat memory)."""
    rng = random.Random(seed)
    items, claims = folder / "items.csv", folder / "claims.csv"
    workers = [f"w{i:04d}" for i in range(2000)]
    with items.open("w", newline="") as fi, claims.open("w", newline="") as fc:
        wi, wc = csv.writer(fi), csv.writer(fc)
        wi.writerow(["id", "text", "domain"])
        wc.writerow(["task", "worker", "label"])
        for i in range(n_items):
            wi.writerow([f"item-{i}", " ".join(rng.choices(WORDS, k=12)), rng.choice(DOMAINS)])
            truth = rng.randrange(len(CLASSES))
            for w in rng.sample(workers, per_item):
                label = truth if rng.random() < 0.8 else rng.randrange(len(CLASSES))
                wc.writerow([f"item-{i}", w, CLASSES[label]])
    return items, claims


def run_step(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run one veritag command; return (seconds, peak RSS in MB of that child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "veritag", *args], env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"step {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the max over all children so far; steps grow: report it if it rose.
    return seconds, max(peak, before) / 1024


def run_step_own(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """run_step, but the peak RSS is the child's own (os.wait4), not the max over all children."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "veritag", *args], env=env, stdout=out, stderr=subprocess.STDOUT
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            out.seek(0)
            sys.exit(f"step {' '.join(args)} failed:\n{out.read().decode(errors='replace')}")
    return seconds, usage.ru_maxrss / 1024


def compare_with_label_studio(folder: Path, n_items: int, per_item: int) -> None:
    """veritag and Label Studio on the same generated files of ``n_items`` items, in one table."""
    folder.mkdir()
    items, claims = generate(folder, n_items, per_item)
    n_claims = n_items * per_item
    print(
        f"\n== peer comparison: {n_items:,} items, {n_claims:,} claims ({per_item} per item), same "
        "files =="
    )

    env = {**os.environ, "VERITAG_DATABASE_URL": f"sqlite:///{folder / 'peer.db'}"}
    run_step_own(["init", "bench", "--task", "classification", "--labels", ",".join(CLASSES)], env)
    s_items, m_items = run_step_own(["import", "bench", str(items), "--meta", "domain"], env)
    s_claims, m_claims = run_step_own(["import", "bench", str(claims)], env)
    s_export, m_export = run_step_own(["export", "bench", str(folder / "out.jsonl")], env)
    rows = [("veritag", s_items + s_claims, s_export, max(m_items, m_claims, m_export), "")]

    ls, why = None, ""
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
        import label_studio  # noqa: PLC0415  (a plain module next to this file)

        print(
            f"Label Studio {label_studio.VERSION}: preparing its venv "
            f"({label_studio.DEFAULT_VENV}) ...",
            flush=True,
        )
        exe = label_studio.ensure_label_studio()
        print("Label Studio: starting on 127.0.0.1 and measuring ...", flush=True)
        ls = label_studio.measure(
            exe, n_items, per_item, folder, items_csv=items, claims_csv=claims
        )
    except Exception as err:  # noqa: BLE001  (any failure of the peer must not fail veritag's benchmark)
        why = f"{type(err).__name__}: {err}"
    if ls is not None:
        rss = ls.get("server_rss_mb")
        note = (
            f"{ls['import_requests']} import POSTs; {ls['users']:,} annotator accounts made first "
            f"({ls['users_seconds']:.1f} s, untimed); server start {ls['start_seconds']:.1f} s "
            "(untimed)"
        )
        rows.append(("Label Studio", ls["import_seconds"], ls["export_seconds"], rss, note))

    import_rows = n_items + n_claims
    print(
        f"{'system':<14}{'items':>9}{'claims':>9}{'import s':>10}{'import rows/s':>15}"
        f"{'export s':>10}{'export items/s':>16}{'peak RSS MB':>13}"
    )
    for name, imp, exp, rss, _ in rows:
        rss_s = f"{rss:.0f}" if rss is not None else "n/a"
        print(
            f"{name:<14}{n_items:>9,}{n_claims:>9,}{imp:>10.2f}{import_rows / imp:>15,.0f}"
            f"{exp:>10.2f}{n_items / exp:>16,.0f}{rss_s:>13}"
        )
    print(
        "(import rows = items + claims; veritag times whole CLI processes, Label Studio only its "
        "HTTP requests;"
    )
    print(
        " veritag RSS = its largest step, Label Studio RSS = server process tree during import "
        "and export)"
    )
    if ls is None:
        first, _, rest = why.strip().partition("\n")
        print(f"Label Studio: NOT MEASURED: {first}")
        if rest:
            print("    " + rest.replace("\n", "\n    "))
        return
    print(f"Label Studio: {rows[1][4]}")
    vt_imp, vt_exp = rows[0][1], rows[0][2]
    print(
        f"speedup veritag vs Label Studio: import x{ls['import_seconds'] / vt_imp:.1f}, "
        f"export x{ls['export_seconds'] / vt_exp:.1f} (Label Studio seconds / veritag seconds)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--claims-per-item", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument(
        "--peer-items", type=int, default=20_000, help="items in the Label Studio comparison"
    )
    parser.add_argument("--no-peer", action="store_true", help="skip the Label Studio comparison")
    parser.add_argument(
        "--partition-rows", type=int, default=250_000, help="rows per file of the dataset export"
    )
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="veritag-bench-"))
    env = {**os.environ, "VERITAG_DATABASE_URL": f"sqlite:///{folder / 'bench.db'}"}
    try:
        t = time.perf_counter()
        items, claims = generate(folder, args.items, args.claims_per_item)
        n_claims = args.items * args.claims_per_item
        print(
            f"generated {args.items:,} items and {n_claims:,} claims in "
            f"{time.perf_counter() - t:.1f} s"
        )
        steps = [
            (
                "init",
                ["init", "bench", "--task", "classification", "--labels", ",".join(CLASSES)],
                0,
            ),
            ("import items", ["import", "bench", str(items), "--meta", "domain"], args.items),
            ("import claims", ["import", "bench", str(claims)], n_claims),
            ("export jsonl", ["export", "bench", str(folder / "out.jsonl")], args.items),
            ("export parquet", ["export", "bench", str(folder / "out.parquet")], args.items),
            (
                "export long",
                ["export", "bench", str(folder / "out.csv"), "--format", "long"],
                n_claims,
            ),
        ]
        dataset = str(folder / "dataset")
        own_steps = [
            (
                "export dataset",
                ["export", "bench", dataset, "--format", "parquet-dataset"]
                + ["--partition-rows", str(args.partition_rows)],
                args.items,
            ),
            (
                "init copy",
                ["init", "copy", "--task", "classification", "--labels", ",".join(CLASSES)],
                0,
            ),
            (
                "import dataset",
                ["import", "copy", dataset, "--meta", "domain", "--gold", "label"]
                + ["--field", "confidence"],
                args.items,
            ),
        ]
        print(f"{'step':<16}{'rows':>12}{'seconds':>10}{'rows/s':>12}{'peak RSS MB':>14}")
        results = {}
        for (name, cli, rows), own in [(s, False) for s in steps] + [(s, True) for s in own_steps]:
            seconds, peak = (run_step_own if own else run_step)(cli, env)
            results[name] = (rows, seconds, peak)
            rate = f"{rows / seconds:,.0f}" if rows else "-"
            print(f"{name:<16}{rows:>12,}{seconds:>10.1f}{rate:>12}{peak:>14.0f}")
        items_rate = args.items / results["import items"][1]
        peak = max(r[2] for r in results.values())
        print(
            f"\nitems imported/s: {items_rate:,.0f} (target >= 50,000: "
            f"{'met' if items_rate >= 50_000 else 'MISSED'})"
        )
        print(f"peak RSS: {peak:.0f} MB (target < 500 MB: {'met' if peak < 500 else 'MISSED'})")
        if not args.no_peer and args.peer_items > 0:
            compare_with_label_studio(folder / "peer", args.peer_items, args.claims_per_item)
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
