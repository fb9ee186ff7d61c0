"""Scale-out acceptance (issue 17): two ``veritag serve`` processes and two ``veritag worker``
processes on one PostgreSQL database, 32 tutors labeling at once, one worker killed mid-job.

Each tutor is a thread with its own API token that sends its requests to the two servers in turn
(it asks for work on one and submits to the other, and so on), answers every lease and stops at
its first 204: the budget is far below what 32 tutors would spend unchecked, so it is the budget
that stops them. Meanwhile a watcher reads the project's leases from the database many times,
each read one snapshot, and the test queues jobs (two of the test-only ``sleep`` kind through the
store, which the API cannot start, and two autolabel jobs through the API of each server) and
SIGKILLs the worker that is running a sleep job.

What must hold: no snapshot shows an item leased to two tutors at once (``min_labels`` is 1, so
routing leases an item undone by its target to one tutor at a time) or more labels and leases on
an item than ``max_labels``, and none shows labels spent plus leases running above the budget; at
the end the budget is spent exactly, no tutor was leased one item twice, every acknowledged submit
is stored as that tutor's claim with that value (and every stored claim was acknowledged), no
server answered a 5xx, and every job is done by the surviving worker, the killed one's job on its
second attempt.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import server_helpers
from server_helpers import PASSWORD, SCHEMA, VERITAG, free_port, start_serve, wait_until_serving
from test_api_ops import _csv
from vt_helpers import spam_corpus

from veritag.jobs import queue
from veritag.routing import service as routing
from veritag.server.auth import new_token
from veritag.server.routes.data import RESOLVE_JOB_HEADER
from veritag.store import Store, open_store
from veritag.store.models import Assignment, Claim, Item, Membership, Source, User
from veritag.store.models import Tutor as TutorRow
from veritag.store.queries import create_project, create_user

SEED = 17
N_ITEMS = 200
MAX_LABELS = 2
#: Cost units (every tutor costs 1 a label): 32 tutors unchecked would spend N_ITEMS * MAX_LABELS.
BUDGET = 150
TUTORS = tuple(f"tutor{i:02d}" for i in range(32))
SIDE_ITEMS, SIDE_LABELED = 60, 40
SIDE_SCHEMA = {"type": "classification", "labels": ["ham", "spam"]}
#: Seconds a sleep job runs: long enough that the kill lands while it runs.
SLEEP_S = 5
#: A worker's job is taken again after this long without a heartbeat; the live worker beats every
#: quarter of it, so a slow machine does not make a live worker look dead.
HEARTBEAT_TIMEOUT_S = 6
#: How long anything may take before the test gives up (the machine may be busy).
PATIENCE_S = 180.0


def _truth(item: int) -> str:
    return "yes" if item % 3 else "no"


def _setup(url: str) -> tuple[int, str, dict[str, str]]:
    """Project ``s`` (``N_ITEMS`` items, routing with a budget, the 32 tutors) and admin ``ana``;
    (ana's user id, ana's token, each tutor's token). Only ana's password is hashed: the tutors
    share her hash, as they log in with tokens only."""
    store = open_store(url)
    try:
        with store.session() as session:
            ana = create_user(session, username="ana", password=PASSWORD, role="admin")
            users = [
                User(username=n, password_hash=ana.password_hash, role="tutor") for n in TUTORS
            ]
            session.add_all(users)
            session.flush()
            tokens = {u.username: new_token(session, u, "scale")[1] for u in users}
            admin_token = new_token(session, ana, "scale")[1]
            project = create_project(session, name="s", schema=SCHEMA)
            server_helpers.add_items(session, project.id, N_ITEMS)
            session.add_all(
                [Membership(project_id=project.id, user_id=u.id, role="tutor") for u in users]
            )
            owner = int(ana.id)
        routing.configure(
            store, project, gold_rate=0.0, min_labels=1, max_labels=MAX_LABELS, budget=BUDGET
        )
        for name in TUTORS:
            routing.add_tutor(store, project, name)
    finally:
        store.close()
    return owner, admin_token, tokens


def _side_project(api: httpx.Client) -> None:
    """Project ``side``, made through the API: texts, some labeled, for autolabel jobs; returns
    once the resolve job its labels queued is done, so no job but the test's is left queued."""
    assert api.post("/projects", json={"name": "side", "schema": SIDE_SCHEMA}).status_code == 201
    texts, labels = spam_corpus(SIDE_ITEMS, seed=1)
    uploads = (
        ("items.csv", _csv(["id", "text"], [(f"t{i}", t) for i, t in enumerate(texts)])),
        (
            "labels.csv",
            _csv(
                ["task", "worker", "label"],
                [(f"t{i}", "ann", labels[i]) for i in range(SIDE_LABELED)],
            ),
        ),
    )
    for name, content in uploads:
        r = api.post("/projects/side/import", files={"file": (name, content, "text/csv")})
        assert r.status_code == 200, r.text
    job = r.headers[RESOLVE_JOB_HEADER].removeprefix("/api/v1")
    _until("the import's resolve job is done", lambda: api.get(job).json()["state"] == "done")


@dataclass
class Ack:
    """A submit a server answered 2xx, and when (monotonic) the tutor held the lease: from the
    answer that leased it to the sending of the submit, a span inside the lease's life."""

    tutor: str
    item_id: int
    claim_id: int
    value: str
    held_from: float
    held_to: float


@dataclass
class Tally(server_helpers.Tally):
    """What the tutors saw; ``acks`` holds ``Ack``s."""

    served: Counter[str] = field(default_factory=Counter)


class Tutor(threading.Thread):
    """Ask, answer, again, on the two servers in turn, until a 204."""

    def __init__(self, index: int, token: str, urls: list[str], tally: Tally) -> None:
        super().__init__(name=TUTORS[index], daemon=True)
        self.who, self.tally, self.turn = TUTORS[index], tally, index
        self.rng = random.Random(f"{SEED}:{self.who}")
        headers = {"Authorization": f"Bearer {token}"}
        self.clients = [
            httpx.Client(base_url=f"{u}/api/v1/projects/s", headers=headers, timeout=PATIENCE_S)
            for u in urls
        ]
        self.failure: BaseException | None = None

    def post(self, path: str, **kw: Any) -> httpx.Response:
        client = self.clients[self.turn % len(self.clients)]
        self.turn += 1
        r = client.post(path, **kw)
        with self.tally.lock:
            self.tally.served[str(client.base_url.port)] += 1
            if r.status_code >= 500:
                self.tally.server_errors.append(f"{self.who} POST {path}: {r.status_code} {r.text}")
        return r

    def run(self) -> None:
        try:
            self.work()
        except BaseException as exc:  # reported by the test
            self.failure = exc
        finally:
            for client in self.clients:
                client.close()

    def work(self) -> None:
        t = self.tally
        deadline = time.monotonic() + PATIENCE_S
        while time.monotonic() < deadline:
            r = self.post("/work")
            if r.status_code == 204:
                return
            if r.status_code != 200:
                with t.lock:
                    t.unexpected.append(f"{self.who} work: {r.status_code} {r.text[:300]}")
                return
            held_from = time.monotonic()
            lease = r.json()
            time.sleep(self.rng.uniform(0, 0.005))  # "reading" the item
            truth = _truth(int(lease["external_id"][1:]))
            value = truth if self.rng.random() < 0.9 else ("no" if truth == "yes" else "yes")
            held_to = time.monotonic()
            r = self.post(f"/work/{lease['lease']}/submit", json={"value": value})
            if r.status_code != 200:
                with t.lock:
                    t.unexpected.append(
                        f"{self.who} submit {lease['lease']}: {r.status_code} {r.text[:300]}"
                    )
                return
            ack = Ack(self.who, lease["item_id"], r.json()["claim_id"], value, held_from, held_to)
            with t.lock:
                t.acks.append(ack)
        with t.lock:
            t.unexpected.append(f"{self.who}: no 204 within {PATIENCE_S:.0f} s")


class Watcher(threading.Thread):
    """Reads the project's leases again and again, each time in one statement (one snapshot on
    PostgreSQL), and keeps what broke a rule in that snapshot."""

    def __init__(self, store: Store, project_id: int) -> None:
        super().__init__(name="watcher", daemon=True)
        self.store, self.project_id = store, project_id
        self.stop = threading.Event()
        self.snapshots = 0
        self.most_running = 0
        self.broken: list[str] = []
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.wait(0.02):
                self.look()
        except BaseException as exc:  # reported by the test
            self.failure = exc

    def look(self) -> None:
        """Leases never expire here (``lease_seconds`` is 30 minutes), so ``leased`` is
        running."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                sa.select(Assignment.item_id, Assignment.state, Assignment.cost).where(
                    Assignment.project_id == self.project_id,
                    Assignment.state.in_(("leased", "submitted")),
                )
            ).all()
        self.snapshots += 1
        running = Counter(r.item_id for r in rows if r.state == "leased")
        taken = Counter(r.item_id for r in rows)
        self.most_running = max(self.most_running, sum(running.values()))
        if twice := {i: n for i, n in running.items() if n > 1}:
            self.broken.append(f"snapshot {self.snapshots}: items leased at once {twice}")
        if over := {i: n for i, n in taken.items() if n > MAX_LABELS}:
            self.broken.append(f"snapshot {self.snapshots}: labels + leases above cap {over}")
        if (cost := sum(r.cost for r in rows)) > BUDGET + 1e-9:
            self.broken.append(f"snapshot {self.snapshots}: spent + reserved {cost} > {BUDGET}")


def _worker(url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "VERITAG_DATABASE_URL"}
    env |= {
        "VERITAG_TEST_JOB_KINDS": "1",
        "VERITAG_JOB_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S),
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(VERITAG), "worker", "--db", url, "--poll", "0.1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _until(what: str, check: Any, timeout: float = PATIENCE_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def _pid(runner: str) -> int:
    """The process id in a job's ``runner`` (``host:pid:tag``)."""
    return int(runner.split(":")[1])


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Server and worker processes the test starts, each leading a process group of its own,
    which is killed after the test."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
def test_two_servers_two_workers_32_tutors(
    migrated_url: str, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    began = time.monotonic()
    owner, admin_token, tokens = _setup(migrated_url)
    marks = {"set up": time.monotonic() - began}
    store = open_store(migrated_url)
    try:
        ports = [free_port() for _ in range(2)]
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for port in ports:
            processes.append(
                start_serve(
                    migrated_url,
                    port,
                    env={"VERITAG_EMBEDDED_WORKER": "false"},
                    log=tmp_path / f"serve-{port}.log",
                )
            )
        workers = [_worker(migrated_url, tmp_path / f"worker-{i}.log") for i in range(2)]
        processes.extend(workers)
        for proc, url in zip(processes, urls, strict=False):
            wait_until_serving(proc, url)
        admin = [
            httpx.Client(
                base_url=f"{url}/api/v1",
                headers={"Authorization": f"Bearer {admin_token}"},
                timeout=PATIENCE_S,
            )
            for url in urls
        ]
        marks["servers up"] = time.monotonic() - began
        _side_project(admin[0])
        # Queued once the servers are up (the workers start faster): the first one seen running
        # is its worker's first job, as the sleep jobs are the only ones queued yet.
        sleepers = [
            queue.enqueue(
                store, kind="sleep", project="s", owner=owner, params={"seconds": SLEEP_S}
            )
            for _ in range(2)
        ]
        with store.engine.connect() as conn:
            project_id = conn.scalar(sa.select(Item.project_id).where(Item.external_id == "i0"))
        watcher = Watcher(store, int(project_id))
        tally = Tally()
        tutors = [Tutor(i, tokens[name], urls, tally) for i, name in enumerate(TUTORS)]
        watcher.start()
        for t in tutors:
            t.start()

        def running() -> list[queue.Job]:
            jobs = [queue.get(store, job.id) for job in sleepers]
            return [j for j in jobs if j is not None and j.state == "running"]

        _until("a worker runs a sleep job", running, timeout=SLEEP_S * 10)
        victim = next(w for w in workers if w.pid == _pid(running()[0].runner))
        killed = {j.id for j in running() if _pid(j.runner) == victim.pid}
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)
        survivor = next(w for w in workers if w is not victim)
        started = [
            client.post("/projects/side/autolabel", json={"labeler": "tfidf"}) for client in admin
        ]
        for r in started:
            if r.status_code >= 500:
                tally.server_errors.append(f"POST autolabel: {r.status_code} {r.text}")
        queued = [(i, r) for i, r in enumerate(started) if r.status_code == 202]
        for t in tutors:
            t.join(PATIENCE_S)
        marks["tutors done"] = time.monotonic() - began
        watcher.stop.set()
        watcher.join(30)

        def poll(i: int, r: httpx.Response) -> dict[str, Any]:
            """The job as the server that did not queue it tells it."""
            got = admin[1 - i].get(r.json()["status_url"].removeprefix("/api/v1"))
            assert got.status_code == 200, got.text
            return got.json()  # type: ignore[no-any-return]

        _until(
            "every job is done or failed",
            lambda: (
                all(poll(i, r)["state"] in ("done", "failed") for i, r in queued)
                and all(
                    (j := queue.get(store, s.id)) is not None and j.state in ("done", "failed")
                    for s in sleepers
                )
            ),
        )
        autolabels = [poll(i, r) for i, r in queued]
        marks["jobs done"] = time.monotonic() - began
        for client in admin:
            client.close()
        jobs = {s.id: queue.get(store, s.id) for s in sleepers}
        runners = {r.json()["job"]: queue.get(store, r.json()["job"]) for _, r in queued}
        alive = [w.poll() is None for w in (*processes[:2], survivor)]
        with store.engine.connect() as conn:
            claims = {
                r.id: r
                for r in conn.execute(
                    sa.select(Claim.id, Claim.item_id, Claim.value, Source.name)
                    .join(Source, Source.id == Claim.source_id)
                    .where(Claim.project_id == project_id, Source.kind == "human")
                )
            }
            leases = conn.execute(
                sa.select(Assignment.item_id, Assignment.state, Assignment.cost, Source.name)
                .join(TutorRow, TutorRow.id == Assignment.tutor_id)
                .join(Source, Source.id == TutorRow.source_id)
                .where(Assignment.project_id == project_id)
            ).all()
    finally:
        store.close()
    logs = "".join(
        f"\n--- {p.name} ---\n{p.read_text(errors='replace')[-3000:]}"
        for p in sorted(tmp_path.glob("*.log"))
    )
    print(
        f"\n{time.monotonic() - began:.1f} s, {len(tally.acks)} labels acknowledged, "
        f"{watcher.snapshots} snapshots (at most {watcher.most_running} leases at once), "
        f"requests per server port {dict(tally.served)}; "
        + ", ".join(f"{what} at {t:.1f} s" for what, t in marks.items())
    )

    failures = [f"{t.who}: {t.failure!r}" for t in tutors if t.failure is not None]
    assert not failures and watcher.failure is None, f"{failures} {watcher.failure!r}{logs}"
    assert not [t.who for t in tutors if t.is_alive()], "tutors still running" + logs
    assert not tally.server_errors, "\n".join(tally.server_errors) + logs
    assert not tally.unexpected, "\n".join(tally.unexpected) + logs
    assert all(alive), f"a server or the surviving worker died: {alive}{logs}"
    assert len(tally.served) == 2 and min(tally.served.values()) > len(TUTORS)

    # No double lease, no overspend, seen while the tutors worked ...
    assert watcher.snapshots >= 5 and watcher.most_running >= 2, (
        f"the watcher saw too little: {watcher.snapshots} snapshots, "
        f"at most {watcher.most_running} leases at once"
    )
    assert not watcher.broken, "\n".join(watcher.broken[:20])
    spans: defaultdict[int, list[tuple[float, float, str]]] = defaultdict(list)
    for a in tally.acks:
        spans[a.item_id].append((a.held_from, a.held_to, a.tutor))
    overlapping = [
        (item, first, second)
        for item, held in spans.items()
        for first, second in zip(sorted(held), sorted(held)[1:], strict=False)
        if second[0] < first[1]
    ]
    assert not overlapping, f"two tutors held one item at once: {overlapping[:10]}"
    # ... and at the end.
    assert not [r for r in leases if r.state != "submitted"], "every lease was answered"
    spent = sum(r.cost for r in leases)
    assert spent == BUDGET, f"spent {spent} of a budget of {BUDGET}: it must stop the tutors"
    per_item = Counter(r.item_id for r in leases)
    assert max(per_item.values()) <= MAX_LABELS
    twice = [k for k, n in Counter((r.name, r.item_id) for r in leases).items() if n > 1]
    assert not twice, f"(tutor, item) leased twice: {twice[:10]}"

    # Nothing acknowledged lost, nothing stored that was not acknowledged.
    lost = server_helpers.lost_acks(tally.acks, claims)
    assert not lost, f"{len(lost)} acknowledged labels missing or changed: {lost[:10]}"
    assert len(tally.acks) == len(claims) == BUDGET

    # Every job done by the surviving worker; the killed worker's job on its second attempt.
    assert [r.status_code for r in started] == [202, 202], [r.text for r in started]
    assert killed, "the killed worker ran no sleep job"
    for job_id, job in jobs.items():
        assert job is not None and job.state == "done", f"{job}{logs}"
        assert _pid(job.runner) == survivor.pid and job.result == {"slept": SLEEP_S}, job
        assert job.attempts == (2 if job_id in killed else 1), job
    for job in autolabels:
        assert (job["state"], job["kind"], job["attempts"]) == ("done", "autolabel", 1), job
        assert job["result"]["trained"] == SIDE_LABELED, job
        stored = runners[job["job"]]
        assert stored is not None and _pid(stored.runner) == survivor.pid, stored
    added = sorted(job["result"]["claims_added"] for job in autolabels)
    assert added == [0, SIDE_ITEMS], "the second autolabel adds no claim"
