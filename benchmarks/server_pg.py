"""veritag serve on PostgreSQL: throughput with 1, 2 and 4 server processes, and 500 tutors who
think between labels.

    python benchmarks/server_pg.py                   # both scenarios, 60 s a run (~8 min)
    python benchmarks/server_pg.py --servers 1,2,4   # scale-out only (3 runs)
    python benchmarks/server_pg.py --think 500       # the realistic load only
    python benchmarks/server_pg.py --servers 1 --think 20 --think-time 1,3 --seconds 10  # a try

Needs the Debian ``postgresql`` package (``apt-get install -y postgresql``, as for the tests)
and psutil for the CPU figures. Each run also costs its setup (the items, the tutors: about
10 s for 500, as only one password is hashed) and the warm-up (2 cycles per tutor, untimed).

A throwaway PostgreSQL server is started as in the test suite (tests/postgres_server.py: the
Debian ``postgresql`` binaries, run as the ``postgres`` user when we are root, fsync off); each
run gets a fresh database on it. The project, its tutors and the load generator are
benchmarks/server_load.py's: ``--items`` sms_spam texts (synthetic sentences if ../shared/data
is missing), ``min_labels = max_labels = --labels``, gold_rate 0, tutors pulling
``POST .../work`` once and then answering ``POST .../work/{lease}/submit`` with ``"next": true``
(the answer brings the next lease: one request a label; ``--two-requests`` asks apart), 2
untimed warm-up cycles per tutor, then ``--seconds`` timed. Every run has N
``veritag serve --db URL --port P_i`` processes (separate processes, each on its own port:
not ``--workers``) started with ``VERITAG_EMBEDDED_WORKER=false``, and ONE
``veritag worker --db URL``; the tutors are spread over the servers in turn (a load balancer's
effect). Server CPU is summed over the serve
processes; the worker's is shown apart. PostgreSQL's own CPU is not counted.

Scenarios:

- ``--servers 1,2,4`` (default 1,2,4): ``--tutors`` (16) closed-loop tutors (no think time)
  against N servers, for each N. A routing budget is set (every tutor costs 1 a label) and made
  to bind near the end of the window whatever the machine's speed: it starts as the whole pool
  (``--items`` x ``--labels``, so it cannot bind, but leasing takes the budget's path, the
  settings row locked, all along); 60% into the window it is lowered to what is spent and
  reserved then plus 20% of the window's labels at the rate so far (``routing.configure``, as an
  admin would). From there the 16 tutors race for the last units and each stops at its first
  204; labels/s counts up to the last tutor's stop (about 80% of ``--seconds``). So "budget never
  exceeded" is checked where it can fail. ``--no-budget``: no budget at all.
- ``--think N`` (default 500): N tutors on ``--think-servers`` (2) servers, each reading an item
  for 3-10 s (uniform, ``--think-time``) between the lease and the submit, for ``--seconds``;
  no budget. Each tutor starts at a random point of its cycle, and does not send an answer
  that would land after the window (the lease is left running), so labels/s is the rate of a
  steady state. Target: p99 < 100 ms per request.

After each run the database is checked: no tutor was leased one item twice, no item has more
standing human labels (or leases submitted and running) than ``max_labels``, the cost of the
submitted leases (plus those still running) is within the budget, and every submit answered 200
(the load generator keeps each answer's claim id) is stored: that claim, with that value, as
that lease's claim. A 204 (nothing left) before the budget is lowered, with most of the pool
still open, is counted and flagged as premature: tutors told there is no work while there is.

Results go to benchmarks/out/server_pg.json; the servers' logs to benchmarks/out/server_pg/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import sqlalchemy as sa
from server_load import (
    OUT,
    PROJECT,
    TARGET_P99_MS,
    Ack,
    Peer,
    _stop,
    build_project,
    drive,
    load_items,
    p99_verdict,
    start_serve,
    start_worker,
    table,
    veritag_calls,
    wait_serving,
)

# The test suite's PostgreSQL launcher; benchmarks/peers is on the path by server_load.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from label_studio import free_port  # noqa: E402
from postgres_server import fresh_database, running_postgres  # noqa: E402

LOGS = OUT / "server_pg"
#: The budget is lowered this far into the window, to bind about TIGHTEN_TAIL later.
TIGHTEN_AT = 0.6
TIGHTEN_TAIL = 0.2


@contextlib.contextmanager
def serving(
    url: str, n: int, token: str, tag: str
) -> Iterator[tuple[list[subprocess.Popen], subprocess.Popen, list[str]]]:
    """``n`` ``veritag serve`` processes on their own ports and one ``veritag worker``, all on
    ``url``; yields (servers, worker, base URLs) once every server answers."""
    LOGS.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        worker = start_worker(url, LOGS / f"{tag}-worker.log")
        stack.callback(_stop, worker)
        servers: list[subprocess.Popen] = []
        ports: list[int] = []
        for i in range(n):
            port = free_port()
            proc = start_serve(url, port, LOGS / f"{tag}-serve{i}.log")
            stack.callback(_stop, proc)
            servers.append(proc)
            ports.append(port)
        for i, (proc, port) in enumerate(zip(servers, ports, strict=True)):
            wait_serving(proc, port, token, LOGS / f"{tag}-serve{i}.log")
        yield servers, worker, [f"http://127.0.0.1:{p}" for p in ports]


class Tightener:
    """Lowers the budget mid-run so that it binds near the end of the window on any machine:
    ``at`` of the window in, to what is spent and reserved then plus ``tail`` of the window's
    labels at the rate so far. Until then the budget is the whole pool (it cannot bind), but it
    is set, so leasing takes the budget's path (the settings row locked) all along.

    The margin is long (``tail`` of the window) because a request that read the settings just
    before the change leases against the old budget; those requests end within a second."""

    def __init__(self, url: str, seconds: float, acked: list[Ack], at: float, tail: float):
        self.url, self.seconds, self.acked, self.at, self.tail = url, seconds, acked, at, tail
        self.budget: float | None = None
        self.set_at_s: float | None = None
        self.error: str | None = None
        self.timer: threading.Timer | None = None
        self.t0, self.n0 = 0.0, 0

    def start(self) -> None:
        """``drive``'s ``on_start``: the window opens now."""
        self.t0, self.n0 = time.perf_counter(), len(self.acked)
        self.timer = threading.Timer(self.at * self.seconds, self._tighten)
        self.timer.daemon = True
        self.timer.start()

    def join(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer.join()

    def _tighten(self) -> None:
        from veritag.routing import service as routing
        from veritag.routing.queue import spending
        from veritag.store import open_store
        from veritag.store.queries import get_project

        try:
            elapsed = time.perf_counter() - self.t0
            rate = (len(self.acked) - self.n0) / elapsed
            store = open_store(self.url, migrate=False)
            try:
                with store.session() as session:
                    project = get_project(session, name=PROJECT)
                with store.engine.connect() as conn:
                    spent, reserved = spending(conn, project, datetime.now(UTC))
                budget = spent + reserved + max(1, round(rate * self.tail * self.seconds))
                routing.configure(store, project, budget=budget)
            finally:
                store.close()
            self.budget, self.set_at_s = budget, elapsed
        except Exception as exc:  # noqa: BLE001  (reported with the run; the run goes on)
            self.error = f"{type(exc).__name__}: {exc}"


def check(url: str, acked: list[Ack], budget: float | None, max_labels: int) -> dict:
    """What the run left in the database, and whether it kept routing's promises."""
    from veritag.store.models import Assignment, Claim, Project, TruthRun
    from veritag.store.queries import standing_human_labels

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            pid = conn.scalar(sa.select(Project.id).where(Project.name == PROJECT))
            leases = conn.execute(
                sa.select(
                    Assignment.id,
                    Assignment.tutor_id,
                    Assignment.item_id,
                    Assignment.state,
                    Assignment.cost,
                    Assignment.claim_id,
                ).where(Assignment.project_id == pid)
            ).all()
            claims = dict(
                conn.execute(
                    sa.select(Claim.id, Claim.value).where(standing_human_labels(pid))
                ).all()
            )
            labels_per_item = Counter(
                conn.scalars(sa.select(Claim.item_id).where(standing_human_labels(pid)))
            )
            truth_runs = conn.scalar(
                sa.select(sa.func.count()).select_from(TruthRun).where(TruthRun.project_id == pid)
            )
    finally:
        engine.dispose()
    pairs = Counter((row.tutor_id, row.item_id) for row in leases)
    held = Counter(row.item_id for row in leases if row.state in ("leased", "submitted"))
    spent = sum(row.cost for row in leases if row.state == "submitted")
    running = sum(row.cost for row in leases if row.state == "leased")
    by_lease = {row.id: row for row in leases}
    lost = [
        (lease, claim)
        for lease, claim, label in acked
        if claims.get(claim) != label
        or by_lease.get(lease) is None
        or by_lease[lease].state != "submitted"
        or by_lease[lease].claim_id != claim
    ]
    res = {
        "stored_claims": len(claims),
        "truth_runs": truth_runs,
        "items_over_cap": sum(n > max_labels for n in labels_per_item.values()),
        "leases": len(leases),
        "double_leases": sum(n > 1 for n in pairs.values()),
        "items_over_cap_leases": sum(n > max_labels for n in held.values()),
        "budget": budget,
        "spent": spent,
        "running_cost": running,
        "acknowledged": len(acked),
        "acknowledged_missing": len(lost),
        "missing_samples": lost[:5],
        "unacknowledged_claims": len(set(claims) - {claim for _, claim, _ in acked}),
    }
    res["budget_kept"] = budget is None or spent + running <= budget + 1e-9
    res["budget_bound"] = budget is not None and spent + running + 1 > budget + 1e-9
    res["checks_passed"] = (
        not res["double_leases"]
        and not res["items_over_cap"]
        and not res["items_over_cap_leases"]
        and res["budget_kept"]
        and not lost
    )
    return res


def run(
    server_url: str,
    n: int,
    tutors: int,
    texts: list[str],
    labels: list[str],
    args: argparse.Namespace,
    budget: float | None = None,
    think: tuple[float, float] | None = None,
) -> dict:
    """One run on a fresh database: ``n`` servers, ``tutors`` tutors; the figures and checks."""
    tag = f"think{tutors}" if think else f"servers{n}"
    with fresh_database(server_url, prefix="server_pg") as url:
        t = time.perf_counter()
        tokens = build_project(url, texts, labels, tutors, args.labels, 0.0, budget=budget)
        setup = time.perf_counter() - t
        truth = {f"item-{i}": label for i, label in enumerate(labels)}
        acked: list[Ack] = []
        ask, submit = veritag_calls(truth, acked, combined=not args.two_requests)
        nothing_left: list[float] = []  # when each 204 came

        def next_item(client: httpx.Client) -> tuple[int, object, str | None, str]:
            answer = ask(client)
            if answer[0] == 204:
                nothing_left.append(time.perf_counter())
            return answer

        tightener = Tightener(url, args.seconds, acked, TIGHTEN_AT, TIGHTEN_TAIL)
        with serving(url, n, next(iter(tokens.values())), tag) as (servers, worker, bases):
            peer = Peer(
                f"veritag PG x{n}" + (f" {tutors}t" if think else ""),
                bases[0],
                [{"Authorization": f"Bearer {tok}"} for tok in tokens.values()],
                next_item,
                submit,
                sorted(set(labels)),
                lambda: [p.pid for p in servers],
                lambda: [worker.pid],
                bases=tuple(bases),
            )
            try:
                res = drive(peer, tutors, args.seconds, think, tightener.start if budget else None)
            finally:
                tightener.join()
        res.update(check(url, acked, tightener.budget or budget, args.labels))
        lowered = tightener.t0 + tightener.set_at_s if tightener.set_at_s else math.inf
        res["premature_204"] = sum(t < lowered for t in nothing_left)
        res["requests_per_label"] = 2 if args.two_requests else 1
        res["budget_set_at_s"] = tightener.set_at_s
        res["budget_error"] = tightener.error
    res["servers"] = n
    res["setup_s"] = setup
    res["think_s"] = list(think) if think else None
    res["server"] = f"{n} x veritag serve (1 process each) + 1 veritag worker, PostgreSQL"
    return res


def print_checks(r: dict) -> None:
    """The database checks of one run, one line."""
    budget = (
        "no budget"
        if r["budget"] is None
        else f"spent {r['spent']:,.0f} + running {r['running_cost']:,.0f} of budget "
        f"{r['budget']:,.0f} ({'bound' if r['budget_bound'] else 'not reached'}"
        + (f", lowered at {r['budget_set_at_s']:.1f} s" if r.get("budget_set_at_s") else "")
        + (f", lowering failed: {r['budget_error']}" if r.get("budget_error") else "")
        + ")"
    )
    print(
        f"  {r['system']}: {'PASS' if r['checks_passed'] else 'FAIL'}: "
        f"{r['double_leases']} double leases, {r['items_over_cap']} items over the cap "
        f"({r['items_over_cap_leases']} by leases), {budget}, "
        f"{r['acknowledged'] - r['acknowledged_missing']:,} of {r['acknowledged']:,} "
        f"acknowledged labels stored ({r['unacknowledged_claims']} stored unacknowledged), "
        f"{r['seconds']:.1f} s timed, server CPU {r['server_cpu_s'] or 0:.1f} s, "
        f"worker CPU {r['worker_cpu_s'] or 0:.1f} s"
    )
    if r["premature_204"]:
        when = " (before the budget was lowered)" if r["budget"] is not None else ""
        print(
            f"    WARNING: {r['premature_204']} answers 204 (nothing left) while the pool and "
            f"the budget had work left{when}; a tutor stops at its first 204 in the window"
        )


def _counts(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--servers", type=_counts, help="server process counts to run, e.g. 1,2,4 (default)"
    )
    ap.add_argument("--think", type=int, metavar="TUTORS", help="tutors of the think-time load")
    ap.add_argument("--seconds", type=float, default=60.0, help="timed seconds per run")
    ap.add_argument("--tutors", type=int, default=16, help="closed-loop tutors (--servers runs)")
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--labels", type=int, default=3, help="labels each item takes")
    ap.add_argument(
        "--no-budget", action="store_true", help="no routing budget in the --servers runs"
    )
    ap.add_argument("--think-servers", type=int, default=2)
    ap.add_argument(
        "--two-requests",
        action="store_true",
        help="ask for work and submit in two requests a label (default: each submit brings "
        "the next lease)",
    )
    ap.add_argument(
        "--think-time",
        type=lambda s: tuple(float(x) for x in s.split(",")),
        default=(3.0, 10.0),
        help="seconds a thinking tutor reads an item: LOW,HIGH (uniform)",
    )
    ap.add_argument("--json", type=Path, default=OUT / "server_pg.json")
    args = ap.parse_args()
    if args.servers is None and args.think is None:
        args.servers, args.think = [1, 2, 4], 500

    texts, labels, source = load_items(args.items)
    res: dict = {
        "items": len(texts),
        "data": source,
        "labels_per_item": args.labels,
        "seconds": args.seconds,
        "cores": os.cpu_count(),
        "load_avg_before": os.getloadavg()[0],
    }
    print(
        f"{len(texts):,} {source} items x {args.labels} labels, {args.seconds:.0f} s per run, "
        f"load average {res['load_avg_before']:.2f}; starting PostgreSQL ...",
        flush=True,
    )
    with running_postgres() as server_url:
        if args.servers:
            budget = None if args.no_budget else float(len(texts) * args.labels)
            rows = []
            for n in args.servers:
                print(f"{n} server(s), {args.tutors} tutors ...", flush=True)
                rows.append(run(server_url, n, args.tutors, texts, labels, args, budget))
                print(f"  {rows[-1]['cycles_per_s']:.1f} labels/s", flush=True)
            res["scale_out"] = {"tutors": args.tutors, "budget": budget, "results": rows}
        if args.think:
            print(
                f"{args.think} tutors thinking {args.think_time[0]:g}-{args.think_time[1]:g} s "
                f"on {args.think_servers} servers ...",
                flush=True,
            )
            think = run(
                server_url,
                args.think_servers,
                args.think,
                texts,
                labels,
                args,
                think=args.think_time,
            )
            res["think"] = think
    res["load_avg_after"] = os.getloadavg()[0]

    if args.servers:
        rows = res["scale_out"]["results"]
        print("\nscale-out on PostgreSQL (ratio: over the first run; a cycle is one label):")
        table(rows, len(texts), args.labels, rows[0]["cycles_per_s"] or None)
        print("\ndatabase checks:")
        for r in rows:
            print_checks(r)
        for r in rows:
            r["verdict"] = p99_verdict(r, r["system"])
    if args.think:
        r = res["think"]
        print(f"\n{args.think} tutors with think time (cycle latency leaves the thinking out):")
        table([r], len(texts), args.labels, None)
        print("\ndatabase checks:")
        print_checks(r)
        r["verdict"] = p99_verdict(r, r["system"])
        print(
            f"target: p99 < {TARGET_P99_MS:.0f} ms with {args.think} tutors thinking "
            f"{args.think_time[0]:g}-{args.think_time[1]:g} s on {args.think_servers} servers"
        )
    print(
        f"load average before / after: {res['load_avg_before']:.2f} / {res['load_avg_after']:.2f}"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
