"""Plain helpers of the server tests (the fixture is in this folder's conftest.py)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from veritag.store import Store

SCHEMA = {"type": "classification", "labels": ["yes", "no"]}
PASSWORD = "correct horse battery"
HTML = '<script>alert("x")</script><b>bold</b> & "quotes"'


@dataclass
class World:
    store: Store
    client: TestClient
    tokens: dict[str, str]
    items: dict[str, int]

    def as_(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def call(self, who: str | None, method: str, path: str, **kw: Any) -> Any:
        headers = {**(self.as_(who) if who else {}), **kw.pop("headers", {})}
        return self.client.request(method, "/api/v1" + path, headers=headers, **kw)

    def wait(self, who: str, started: Any, timeout: float = 120) -> dict[str, Any]:
        """The job a 202 answer (``started``) queued, polled as ``who`` until it is done or
        failed."""
        assert started.status_code == 202, started.text
        url = started.json()["status_url"]
        assert started.headers["location"] == url
        return self.poll(who, url, timeout)

    def poll(self, who: str, url: str, timeout: float = 120) -> dict[str, Any]:
        """The job at status ``url``, polled as ``who`` until it is done or failed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.client.get(url, headers=self.as_(who))
            assert got.status_code == 200, got.text
            if got.json()["state"] in ("done", "failed"):
                return got.json()  # type: ignore[no-any-return]
            time.sleep(0.05)
        raise AssertionError(f"job {url} still not finished after {timeout} s")

    def resolve(self, who: str, project: str = "p", **body: Any) -> dict[str, Any]:
        """``POST .../resolve`` as ``who`` and wait for its job: the stored run it answers."""
        job = self.wait(who, self.call(who, "POST", f"/projects/{project}/resolve", json=body))
        assert job["state"] == "done" and job["kind"] == "resolve", job
        return job["result"]  # type: ignore[no-any-return]


def post_login_form(client: TestClient, who: str, password: str = PASSWORD) -> Any:
    """Submit the login page's form as ``who`` (with the page's CSRF token); the answer."""
    page = client.get("/login")
    token = re.search(r'name="login_csrf" value="([^"]+)"', page.text)
    assert token
    return client.post(
        "/login",
        data={"username": who, "password": password, "login_csrf": token.group(1)},
        follow_redirects=False,
    )


def form_login(client: TestClient, who: str) -> None:
    """Log ``client`` in as ``who`` through the login page's form (its cookie then rides along)."""
    assert post_login_form(client, who).status_code == 303


@contextmanager
def serve_app(app: Any, *, lifespan: str = "on") -> Iterator[str]:
    """``app`` under uvicorn in a background thread on a free loopback port; its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


# --- ``veritag serve`` as a subprocess (test_serve.py, test_fault.py) ---------------------------

VERITAG = Path(sys.executable).with_name("veritag")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_serve(
    db: str, port: int, *args: str, env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """``veritag serve --db DB --port PORT ARGS`` in its own process group (``os.killpg`` ends it
    and its workers), with our environment less ``VERITAG_DATABASE_URL`` plus ``env``; its output
    is appended to ``log`` (else a pipe)."""
    environ = {k: v for k, v in os.environ.items() if k != "VERITAG_DATABASE_URL"} | (env or {})
    out = log.open("ab") if log is not None else subprocess.PIPE
    try:
        return subprocess.Popen(
            [
                str(VERITAG),
                "serve",
                "--db",
                db,
                "--port",
                str(port),
                "--log-level",
                "warning",
                *args,
            ],
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        if log is not None:
            out.close()  # type: ignore[union-attr]


def wait_until_serving(proc: subprocess.Popen[bytes], url: str, timeout: float = 150) -> None:
    """Wait until ``url``/login answers 200. Each uvicorn worker imports the whole app (seconds of
    CPU); with the suite on two xdist workers they share two cores with the other worker's tests,
    so the default gives them time."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/login", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
        time.sleep(0.1)


@dataclass
class Tally:
    """What closed-loop tutor threads saw against live servers, shared by the threads (``lock``
    guards it): the acknowledged answers (each test's own record type), 5xx answers and
    anything else the test did not expect. Tests add their own counters by subclassing."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    acks: list[Any] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


def add_items(session: Any, project_id: int, n: int, **meta: Any) -> None:
    """``n`` plain items ``i0`` … of the general domain (what the live-server tests label);
    ``meta`` adds fields, a callable being called with the item's index."""
    from veritag.store.models import Item

    session.add_all(
        Item(
            project_id=project_id,
            external_id=f"i{i}",
            text=f"item {i}",
            meta={"domain": "general"} | {k: v(i) if callable(v) else v for k, v in meta.items()},
        )
        for i in range(n)
    )


def lost_acks(acks: list[Any], claims: dict[int, Any]) -> list[Any]:
    """The acknowledged answers (``tutor``, ``item_id``, ``claim_id``, ``value``) that are not
    stored as acknowledged: ``claims`` maps a claim id to its row (``item_id``, ``name``,
    ``value``)."""
    return [
        a
        for a in acks
        if a.claim_id not in claims
        or (claims[a.claim_id].item_id, claims[a.claim_id].name, claims[a.claim_id].value)
        != (a.item_id, a.tutor, a.value)
    ]
