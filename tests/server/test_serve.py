"""``veritag serve --workers 2``: two processes over one SQLite file answer the same users."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
from server_helpers import free_port, start_serve, wait_until_serving

from veritag.server.auth import new_token
from veritag.store import open_store
from veritag.store.queries import create_user


def test_serve_with_two_workers(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'serve.db'}"
    store = open_store(db)
    with store.session() as session:
        token = new_token(
            session,
            create_user(session, username="ana", password="long enough pw", role="admin"),
            "t",
        )[1]
    store.close()
    port = free_port()
    proc = start_serve(db, port, "--workers", "2")
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(proc, url)
        auth = {"Authorization": f"Bearer {token}"}
        made = httpx.post(
            f"{url}/api/v1/projects",
            headers=auth,
            timeout=10,
            json={"name": "w", "schema": {"type": "classification", "labels": ["a", "b"]}},
        )
        assert made.status_code == 201, made.text
        with httpx.Client(
            headers=auth, timeout=10
        ) as client:  # new connections land on either worker
            seen = [
                client.get(f"{url}/api/v1/projects/w", headers={"Connection": "close"}).status_code
                for _ in range(10)
            ]
        assert seen == [200] * 10
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
