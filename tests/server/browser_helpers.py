"""What the browser tests share: the app under uvicorn in a thread, Chromium profiles, logging in.

Debian's ``/usr/bin/chromium`` driven by Playwright (its own browser downloads are never used);
tests that need it are marked ``needs_chromium`` and skipped without it. Screenshots go to
``ARTIFACTS`` (``tests/artifacts/``, gitignored).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from server_helpers import PASSWORD, serve_app

from veritag.server import create_app
from veritag.store import Store

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} is missing: apt-get install chromium (scripts/test does)",
)


@dataclass
class Live:
    store: Store
    url: str


@contextmanager
def serve(store: Store) -> Iterator[Live]:
    """The app over ``store`` under uvicorn in a background thread on a free local port."""
    with serve_app(create_app(store), lifespan="off") as url:
        yield Live(store, url)


@contextmanager
def chromium() -> Iterator[Callable[[], Any]]:
    """A factory of fresh Chromium profiles (each its own cookie jar), all closed afterwards."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install '.[test]')"
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dirs: list[str] = []
    contexts: list[Any] = []
    with sync_api.sync_playwright() as pw:

        def profile() -> Any:
            dirs.append(tempfile.mkdtemp(prefix="veritag-chromium-"))
            context = pw.chromium.launch_persistent_context(
                dirs[-1],
                executable_path=str(CHROMIUM),
                headless=True,
                args=ARGS,
                viewport={"width": 1200, "height": 800},
            )
            context.set_default_timeout(15_000)
            contexts.append(context)
            return context.pages[0] if context.pages else context.new_page()

        try:
            yield profile
        finally:
            for context in contexts:
                context.close()
            for d in dirs:
                shutil.rmtree(d, ignore_errors=True)


def login(page: Any, live: Live, who: str) -> None:
    """Log in through the form; ends on the project list."""
    page.goto(live.url + "/")
    assert page.url.endswith("/login")
    page.fill("#username", who)
    page.fill("#password", PASSWORD)
    page.press("#password", "Enter")
    page.wait_for_url(live.url + "/")
