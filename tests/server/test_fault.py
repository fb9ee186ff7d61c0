"""Crash faults: ``veritag serve`` killed with SIGKILL while tutors label, on SQLite and PostgreSQL.

Tutors are threads in a closed loop (ask for work, answer it) against a real server subprocess;
at random moments (a fixed seed) the whole server process group gets SIGKILL and is started
again on the same port, and the tutors carry on: a request that died with the server is sent
again once it is back (half the tutors send a submit that died again, the others ask for work
again, as a page reload would). A tutor counts a label as *acknowledged* only when its submit
answered 2xx. At the end every acknowledged label must be stored as that tutor's claim on that item,
nobody has two standing claims on one item, every item got its labels, no lease is left leased
(each tutor got 204 while holding nothing) and the server never answered a 5xx.

SQLite runs one process with ``VERITAG_ORPHAN_LEASE_SECONDS=0`` (a restart expires the dead
process's leases at once: a request that died with it gets a new item); PostgreSQL runs two
workers with a grace of 60 s (a tutor who asks again within it gets their lease back, renewed,
and a submit that died before it committed goes through when sent again).

``test_restart_cuts_leases_of_dead_processes`` checks the start-up release directly, on both stores.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
import server_helpers
from server_helpers import PASSWORD, SCHEMA, free_port, start_serve, wait_until_serving

from veritag.routing import service as routing
from veritag.server import create_app
from veritag.server.auth import new_token
from veritag.store import Store, open_store
from veritag.store.models import Assignment, Claim, Item, Membership, Source
from veritag.store.queries import create_project, create_user, standing_claims

SEED = 20261203
N_ITEMS = 120
LABELS_PER_ITEM = 2
TUTORS = tuple(f"tutor{i}" for i in range(8))
KILLS = 3
#: How long the tutors may take to finish after the last kill before the test gives up.
FINISH_S = 180.0
#: Per store: server processes and the grace of a dead process's leases after a restart.
SERVE = {"sqlite": (1, 0), "postgresql": (2, 60)}


def _truth(item: int) -> str:
    return "yes" if item % 3 else "no"


def _fault_project(url: str) -> dict[str, str]:
    """Project ``f``: ``N_ITEMS`` items that each want exactly two human labels; the tutors'
    tokens."""
    store = open_store(url)
    try:
        with store.session() as session:
            users = [
                create_user(session, username=name, password=PASSWORD, role="tutor")
                for name in TUTORS
            ]
            tokens = {u.username: new_token(session, u, "fault")[1] for u in users}
            project = create_project(session, name="f", schema=SCHEMA)
            server_helpers.add_items(session, project.id, N_ITEMS, truth=_truth)
            session.add_all(
                [Membership(project_id=project.id, user_id=u.id, role="tutor") for u in users]
            )
        routing.configure(
            store, project, gold_rate=0.0, min_labels=LABELS_PER_ITEM, max_labels=LABELS_PER_ITEM
        )
        for name in TUTORS:
            routing.add_tutor(store, project, name)
    finally:
        store.close()
    return tokens


def _group(pgid: int) -> list[int]:
    """Pids of the live (not zombie) processes in process group ``pgid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields_ = stat[stat.rindex(")") + 2 :].split()  # state ppid pgrp ...
        if int(fields_[2]) == pgid and fields_[0] != "Z":
            found.append(int(entry))
    return found


class Server:
    """``veritag serve`` over ``db``, killed and started again on the same port."""

    def __init__(self, db: str, log: Path, workers: int, grace: int) -> None:
        self.db, self.log, self.port = db, log, free_port()
        self.args = ("--workers", str(workers))
        self.env = {"VERITAG_ORPHAN_LEASE_SECONDS": str(grace)}
        self.url = f"http://127.0.0.1:{self.port}"
        self.up = threading.Event()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts: list[float] = []

    def start(self) -> None:
        began = time.monotonic()
        self.proc = start_serve(self.db, self.port, *self.args, env=self.env, log=self.log)
        wait_until_serving(self.proc, self.url)
        self.starts.append(time.monotonic() - began)
        self.up.set()

    def kill(self) -> None:
        """SIGKILL to every process of the server, and wait until none runs (the pids they leave
        in ``served_by`` must be dead when the next one starts)."""
        assert self.proc is not None
        self.up.clear()
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while left := _group(self.proc.pid):
            assert time.monotonic() < deadline, f"server processes {left} outlived SIGKILL"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


@dataclass
class Ack:
    tutor: str
    lease: int
    item_id: int
    claim_id: int
    value: str


@dataclass
class Tally(server_helpers.Tally):
    """What the tutors saw; ``acks`` holds ``Ack``s."""

    idle: set[str] = field(default_factory=set)
    done: threading.Event = field(default_factory=threading.Event)
    refused_retries: list[str] = field(default_factory=list)
    resumed: int = 0
    retried: int = 0


class Tutor(threading.Thread):
    def __init__(
        self, name: str, token: str, server: Server, tally: Tally, stop_at: list[float]
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.who, self.server, self.tally, self.stop_at = name, server, tally, stop_at
        self.rng = random.Random(f"{SEED}:{name}")
        self.client = httpx.Client(
            base_url=f"{server.url}/api/v1/projects/f",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        self.failure: BaseException | None = None

    def call(
        self, path: str, *, again: bool = True, **kw: Any
    ) -> tuple[httpx.Response | None, bool]:
        """POST ``path`` until a server answers (once, unless ``again``); (response, whether it
        failed on the way). None once time is up, or when it failed and not ``again``."""
        retried = False
        while time.monotonic() < self.stop_at[0]:
            try:
                r = self.client.post(path, **kw)
            except httpx.TransportError:
                retried = True
                self.server.up.wait(timeout=5)  # cleared while the server is down
                time.sleep(0.02)
                if not again:
                    return None, True
                continue
            if r.status_code >= 500:
                with self.tally.lock:
                    self.tally.server_errors.append(
                        f"{self.who} POST {path}: {r.status_code} {r.text[:300]}"
                    )
            return r, retried
        return None, retried

    def run(self) -> None:
        try:
            self.work()
        except BaseException as exc:  # reported by the test
            self.failure = exc
        finally:
            self.client.close()

    def work(self) -> None:
        """Ask, answer, again. Half the tutors send a submit that died with the server again; the
        others ask for work again (a page reload), which hands back the lease if it still runs."""
        t = self.tally
        reloads = TUTORS.index(self.who) % 2 == 1
        held: int | None = (
            None  # a lease whose submit died with the server, for a tutor who reloads
        )
        while not t.done.is_set() and time.monotonic() < self.stop_at[0]:
            with t.lock:
                t.idle.discard(self.who)
            r, retried = self.call("/work")
            if r is None:
                return
            if r.status_code == 204:
                with t.lock:
                    t.idle.add(self.who)
                    if len(t.idle) == len(
                        TUTORS
                    ):  # nobody holds or is asking for a lease: nothing can change
                        t.done.set()
                t.done.wait(0.1)
                continue
            if r.status_code != 200:
                with t.lock:
                    t.unexpected.append(f"{self.who} work: {r.status_code} {r.text[:300]}")
                time.sleep(0.1)
                continue
            lease = r.json()
            with t.lock:
                t.resumed += bool(lease.get("resumed"))
                t.retried += retried
                if lease.get("resumed") and lease["lease"] != held and not retried:
                    t.unexpected.append(
                        f"{self.who} got lease {lease['lease']} back, but held {held}"
                    )
            held = None
            time.sleep(self.rng.uniform(0, 0.01))  # "reading" the item: kills land with leases held
            truth = _truth(int(lease["external_id"][1:]))
            value = truth if self.rng.random() < 0.9 else ("no" if truth == "yes" else "yes")
            r, retried = self.call(
                f"/work/{lease['lease']}/submit", json={"value": value}, again=not reloads
            )
            if r is None:
                held = lease["lease"]
                continue
            if r.is_success:
                body = r.json()
                with t.lock:
                    t.acks.append(
                        Ack(self.who, lease["lease"], lease["item_id"], body["claim_id"], value)
                    )
            elif retried and r.status_code < 500:
                # sent again after a crash: it committed before (the lease is submitted), or the
                # restart expired the lease (grace 0); either way it is not acknowledged
                with t.lock:
                    t.refused_retries.append(
                        f"{self.who} lease {lease['lease']}: {r.status_code} {r.text[:200]}"
                    )
            else:
                with t.lock:
                    t.unexpected.append(
                        f"{self.who} submit {lease['lease']}: {r.status_code} {r.text[:300]}"
                    )


def test_kill_9_under_concurrent_tutors(migrated_url: str, backend: str, tmp_path: Path) -> None:
    began = time.monotonic()
    fault_db = migrated_url
    tokens = _fault_project(fault_db)
    workers, grace = SERVE[backend]
    server = Server(fault_db, tmp_path / "serve.log", workers, grace)
    rng = random.Random(SEED)
    total = N_ITEMS * LABELS_PER_ITEM
    marks = sorted(rng.sample(range(total // 8, total * 3 // 4), KILLS))
    tally = Tally()
    stop_at = [time.monotonic() + 10 * FINISH_S]  # moved closer after the last kill
    tutors = [Tutor(name, tokens[name], server, tally, stop_at) for name in TUTORS]
    kills = 0
    try:
        server.start()
        for t in tutors:
            t.start()
        for mark in marks:
            while (
                len(tally.acks) < mark
                and not tally.done.is_set()
                and all(t.is_alive() for t in tutors)
            ):
                time.sleep(0.005)
            if tally.done.is_set() or not all(t.is_alive() for t in tutors):
                break
            time.sleep(rng.uniform(0, 0.05))  # mid-request, mostly
            server.kill()
            kills += 1
            server.start()
        stop_at[0] = time.monotonic() + FINISH_S
        tally.done.wait(timeout=FINISH_S)
        for t in tutors:
            t.join(timeout=30)
    finally:
        stop_at[0] = 0.0
        server.stop()
    took = time.monotonic() - began
    print(
        f"\n{backend}: {took:.1f} s, {kills} kills, {len(tally.acks)} acknowledged labels, "
        f"{tally.retried} work requests sent again, {tally.resumed} leases resumed, "
        f"{len(tally.refused_retries)} submits refused when sent again, starts "
        f"{', '.join(f'{s:.1f}' for s in server.starts)} s"
    )
    log = f"\n--- server output ---\n{server.tail()}"

    failures = [f"{t.who}: {t.failure!r}" for t in tutors if t.failure is not None]
    assert not failures, "\n".join(failures) + log
    assert not tally.server_errors, "\n".join(tally.server_errors) + log
    assert not tally.unexpected, "\n".join(tally.unexpected) + log
    assert kills == KILLS, f"only {kills} kills: the tutors finished first" + log
    assert tally.done.is_set(), (
        f"tutors still busy {FINISH_S:.0f} s after the last kill (idle: {sorted(tally.idle)})"
    ) + log

    store = open_store(fault_db)
    try:
        with store.engine.connect() as conn:
            claims = {
                r.id: r
                for r in conn.execute(
                    sa.select(Claim.id, Claim.item_id, Claim.value, Source.name)
                    .join(Source, Source.id == Claim.source_id)
                    .where(Source.kind == "human", Claim.value.is_not(None), standing_claims())
                )
            }
            leases = conn.execute(
                sa.select(
                    Assignment.id,
                    Assignment.tutor_id,
                    Assignment.item_id,
                    Assignment.state,
                    Assignment.claim_id,
                    Assignment.expires_at,
                )
            ).all()
            items = conn.execute(sa.select(sa.func.count()).select_from(Item)).scalar_one()
    finally:
        store.close()
    lost = server_helpers.lost_acks(tally.acks, claims)
    assert not lost, f"{len(lost)} acknowledged labels missing or changed: {lost[:10]}"
    twice = [k for k, n in Counter((c.name, c.item_id) for c in claims.values()).items() if n > 1]
    assert not twice, f"(tutor, item) with two standing claims: {twice[:10]}"
    stuck = [r for r in leases if r.state == "leased"]
    assert not stuck, f"every tutor got 204, but {len(stuck)} leases are still leased: {stuck[:10]}"
    per_item = Counter(c.item_id for c in claims.values())
    short = {i: n for i, n in per_item.items() if n != LABELS_PER_ITEM}
    assert len(per_item) == items == N_ITEMS and not short, (
        f"every tutor got 204, but {N_ITEMS - len(per_item)} items have no label and these "
        f"{len(short)} the wrong number (item id: labels): {dict(list(short.items())[:10])}"
    )
    submitted = {r.claim_id for r in leases if r.state == "submitted"}
    assert submitted == set(claims), "claims and submitted leases differ"


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def test_restart_cuts_leases_of_dead_processes(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At start a server cuts short the running leases that a process of this host handed out and
    that no longer runs (``served_by`` is ``host:pid:tag``); live processes' and other hosts'
    stay."""
    with store.session() as session:
        project = create_project(session, name="r", schema=SCHEMA)
        server_helpers.add_items(session, project.id, 3)
    routing.configure(store, project, gold_rate=0.0, max_labels=1)
    for name in ("dead", "alive", "elsewhere", "next"):
        routing.add_tutor(store, project, name)
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()  # reaped: its pid runs nothing now
    host = socket.gethostname()
    served = {
        "dead": f"{host}:{gone.pid}:a1",
        "alive": f"{host}:{os.getpid()}:b2",
        "elsewhere": f"not-{host}:{gone.pid}:c3",
    }
    leased = {
        name: routing.request_work(store, project, name, served_by=by)
        for name, by in served.items()
    }
    assert (
        all(leased.values()) and routing.request_work(store, project, "next") is None
    )  # every item is taken

    def expiry() -> dict[str, datetime]:
        with store.engine.connect() as conn:
            rows = dict(conn.execute(sa.select(Assignment.id, Assignment.expires_at)).all())
        return {name: _utc(rows[lease.id]) for name, lease in leased.items() if lease is not None}

    monkeypatch.setenv("VERITAG_ORPHAN_LEASE_SECONDS", "120")
    before = datetime.now(UTC)
    with TestClient(create_app(store)):
        pass
    after = expiry()
    assert (
        before + timedelta(seconds=119)
        <= after["dead"]
        <= datetime.now(UTC) + timedelta(seconds=120)
    )
    for name in ("alive", "elsewhere"):
        assert after[name] == _utc(leased[name].expires_at)  # type: ignore[union-attr]

    monkeypatch.setenv("VERITAG_ORPHAN_LEASE_SECONDS", "0")
    with TestClient(create_app(store)):
        pass
    after = expiry()
    assert after["dead"] <= datetime.now(UTC)
    for name in ("alive", "elsewhere"):
        assert after[name] == _utc(leased[name].expires_at)  # type: ignore[union-attr]
    again = routing.request_work(
        store, project, "next"
    )  # the dead request's item is back in the pool
    assert again is not None and again.item_id == leased["dead"].item_id  # type: ignore[union-attr]
    assert routing.request_work(store, project, "dead") is None  # not for the tutor who had it
