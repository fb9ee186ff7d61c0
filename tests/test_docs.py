"""The README documents every command, every option and every setting (datasette's habit)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer.main

from veritag.cli import app
from veritag.config import Settings

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")


def _commands() -> dict[str, Any]:
    return dict(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def test_every_command_has_a_section_and_an_example() -> None:
    commands = _commands()
    assert {"init", "import", "export", "status", "quickstart"} <= set(commands)
    for name in commands:
        assert f"### `veritag {name}`" in README, f"README lacks a section for veritag {name}"
        assert re.search(rf"^veritag {name}\b", README, re.MULTILINE), f"README lacks an example of veritag {name}"


def test_every_option_is_mentioned() -> None:
    for name, command in _commands().items():
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--") and opt not in ("--help",):
                    assert opt in README, f"README does not mention {opt} of veritag {name}"


def test_every_setting_is_documented() -> None:
    for field in Settings.model_fields:
        assert f"VERITAG_{field.upper()}" in README, f"setting VERITAG_{field.upper()} is undocumented"
