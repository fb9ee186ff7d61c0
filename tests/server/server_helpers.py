"""Plain helpers of the server tests (the fixture is in this folder's conftest.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

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


def form_login(client: TestClient, who: str) -> None:
    """Log ``client`` in as ``who`` through the login page's form (its cookie then rides along)."""
    page = client.get("/login")
    token = re.search(r'name="login_csrf" value="([^"]+)"', page.text)
    assert token
    r = client.post("/login", data={"username": who, "password": PASSWORD, "login_csrf": token.group(1)},
                    follow_redirects=False)
    assert r.status_code == 303
