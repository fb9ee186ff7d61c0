"""uv.lock pins the whole dependency tree: it must say what pyproject.toml asks for, and the
environment the tests run in must hold exactly its versions (scripts/test installs them)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCK = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))


def uv() -> str:
    beside = Path(sys.executable).with_name("uv")
    found = str(beside) if beside.exists() else shutil.which("uv")
    assert found, "uv is not installed: pip install 'veritag[test]' (scripts/test does)"
    return found


def run_uv(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [uv(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def locked_version(name: str) -> str:
    versions = {p["version"] for p in LOCK["package"] if p["name"] == name}
    assert len(versions) == 1, f"uv.lock holds {name} at {sorted(versions)}"
    return versions.pop()


def test_the_lock_matches_pyproject() -> None:
    result = run_uv("lock", "--check", "--offline")
    assert result.returncode == 0, (
        f"uv.lock is stale (run `uv lock`, or scripts/upgrade):\n{result.stderr}"
    )


def test_a_changed_requirement_fails_the_check(tmp_path: Path) -> None:
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    pyproject = tmp_path / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    assert '"rich>=13"' in text
    pyproject.write_text(text.replace('"rich>=13"', '"rich>=13.1"'), encoding="utf-8")
    assert run_uv("lock", "--check", "--offline", cwd=tmp_path).returncode != 0


@pytest.mark.skipif(
    not Path(sys.prefix, "bin", "uv").exists() or sys.prefix != str(ROOT / ".venv"),
    reason="the tests do not run in the repository's .venv that scripts/test syncs",
)
def test_this_environment_holds_exactly_the_locked_versions() -> None:
    result = run_uv(
        "sync",
        "--frozen",
        "--inexact",
        "--extra",
        "test",
        "--group",
        "model",
        "--group",
        "docs",
        "--check",
        "--offline",
    )
    assert result.returncode == 0, (
        f".venv differs from uv.lock (run scripts/test):\n{result.stderr}"
    )


def test_every_install_command_pins_the_locked_uv() -> None:
    pinned = locked_version("uv")
    script = (ROOT / "scripts" / "uv.sh").read_text(encoding="utf-8")
    assert re.search(rf"^UV_VERSION={re.escape(pinned)}$", script, re.MULTILINE)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quickstart = next(line for line in readme.splitlines() if line.endswith("veritag quickstart"))
    assert f"uv=={pinned}" in quickstart and "sync" in quickstart and "--frozen" in quickstart
    assert "bash scripts/test" in readme
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "scripts/test" in ci
