"""The docs: a short README for newcomers, guides under docs/guide/, a reference under
docs/reference/ generated from the code (scripts/gen_reference.py), all built as a site with
mkdocs-material (mkdocs.yml)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main

from veritag.cli import app
from veritag.config import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
GUIDES = {
    path.name: path.read_text(encoding="utf-8")
    for path in sorted((ROOT / "docs" / "guide").glob("*.md"))
}
CLI_REFERENCE = (ROOT / "docs" / "reference" / "cli.md").read_text(encoding="utf-8")
SETTINGS_REFERENCE = (ROOT / "docs" / "reference" / "settings.md").read_text(encoding="utf-8")
REGENERATE = "run `.venv/bin/python scripts/gen_reference.py`"


def _commands() -> dict[str, Any]:
    return dict(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def test_the_readme_is_short_and_links_every_guide_and_reference_page() -> None:
    assert len(README.splitlines()) <= 250, (
        "the README is for newcomers: move details to docs/guide/"
    )
    for page in [
        *(f"docs/guide/{name}" for name in GUIDES),
        "docs/reference/cli.md",
        "docs/reference/settings.md",
        "docs/reference/http-api.md",
    ]:
        assert f"]({page}" in README, f"README does not link {page}"
    assert "mkdocs serve" in README and "mkdocs build" in README


def test_relative_links_of_readme_and_guides_point_at_files() -> None:
    pages = {ROOT / "README.md": README} | {
        ROOT / "docs" / "guide" / name: text for name, text in GUIDES.items()
    }
    for page, text in pages.items():
        for target in re.findall(r"\]\(([^)\s#]+)(?:#[^)\s]*)?\)", text):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue
            assert (page.parent / target).exists(), (
                f"{page.relative_to(ROOT)} links to a missing {target}"
            )


def test_the_two_commands_read_the_same_in_readme_and_getting_started() -> None:
    guide = GUIDES["getting-started.md"]
    commands = [
        line
        for line in README.splitlines()
        if line.endswith("veritag quickstart") or line == "bash scripts/test"
    ]
    assert len(commands) == 2, commands
    for line in commands:
        assert line in guide.splitlines(), f"docs/guide/getting-started.md lacks {line!r}"


def test_every_command_has_a_section_and_an_example_in_the_guides() -> None:
    commands = _commands()
    assert {"init", "import", "export", "status", "quickstart"} <= set(commands)
    guides = "\n".join(GUIDES.values())
    for name in commands:
        assert f"### `veritag {name}`" in guides, f"no guide has a section for veritag {name}"
        assert re.search(rf"^veritag {name}\b", guides, re.MULTILINE), (
            f"no guide has an example of veritag {name}"
        )


def test_every_option_is_in_the_cli_reference() -> None:
    for name, command in _commands().items():
        for sub_name, sub in [("", command), *getattr(command, "commands", {}).items()]:
            for param in sub.params:
                for opt in [*getattr(param, "opts", []), *getattr(param, "secondary_opts", [])]:
                    if opt.startswith("--") and opt != "--help":
                        assert f"`{opt}`" in CLI_REFERENCE, (
                            f"docs/reference/cli.md lacks {opt} of veritag {name} {sub_name}: "
                            f"{REGENERATE}"
                        )


def test_every_setting_is_in_the_settings_reference() -> None:
    for field in Settings.model_fields:
        assert f"`VERITAG_{field.upper()}`" in SETTINGS_REFERENCE, (
            f"setting VERITAG_{field.upper()} is undocumented: {REGENERATE}"
        )


def test_the_generated_pages_match_the_code() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_reference.py"), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, (
        f"docs/reference or docs/index.md is stale ({REGENERATE}):\n{result.stderr}"
    )


def _mkdocs() -> str | None:
    beside = Path(sys.executable).with_name("mkdocs")
    return str(beside) if beside.exists() else shutil.which("mkdocs")


@pytest.mark.skipif(
    _mkdocs() is None,
    reason="mkdocs is not installed (the lock's docs group; scripts/test installs it)",
)
def test_the_site_builds_strictly_and_offline(tmp_path: Path) -> None:
    env = os.environ | {"NO_MKDOCS_2_WARNING": "1"}
    site = tmp_path / "site"
    result = subprocess.run(
        [_mkdocs(), "build", "--strict", "--site-dir", str(site)],  # type: ignore[list-item]
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr[-4000:]}"
    assert (site / "index.html").is_file() and (site / "reference" / "cli.html").is_file()
    assert "fonts.googleapis.com" not in (site / "index.html").read_text(encoding="utf-8")
