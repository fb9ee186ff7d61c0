"""``veritag serve --workers 2``: two processes over one SQLite file answer the same users."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from veritag.server.auth import new_token
from veritag.store import open_store
from veritag.store.queries import create_user

VERITAG = Path(sys.executable).with_name("veritag")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_with_two_workers(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'serve.db'}"
    store = open_store(db)
    with store.session() as session:
        token = new_token(session, create_user(session, username="ana", password="long enough pw", role="admin"),
                          "t")[1]
    store.close()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "VERITAG_DATABASE_URL"}
    proc = subprocess.Popen([str(VERITAG), "serve", "--db", db, "--port", str(port), "--workers", "2",
                             "--log-level", "warning"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        # Each uvicorn worker imports the whole app (seconds of CPU); with the suite on two xdist
        # workers they share two cores with the other worker's tests, so give them time.
        deadline = time.monotonic() + 150
        while True:
            try:
                if httpx.get(f"{url}/login", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.3)
        auth = {"Authorization": f"Bearer {token}"}
        made = httpx.post(f"{url}/api/v1/projects", headers=auth, timeout=10,
                          json={"name": "w", "schema": {"type": "classification", "labels": ["a", "b"]}})
        assert made.status_code == 201, made.text
        with httpx.Client(headers=auth, timeout=10) as client:  # new connections land on either worker
            seen = [client.get(f"{url}/api/v1/projects/w", headers={"Connection": "close"}).status_code
                    for _ in range(10)]
        assert seen == [200] * 10
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
