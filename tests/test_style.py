"""The code style the project keeps: `ruff format` at line length 100 and no line over it.

Both rules come from pyproject.toml (``[tool.ruff]``, ``[tool.ruff.lint] select = ["E501"]``), and
the ruff is the one pinned in the test extra, run as ``python -m ruff`` from the interpreter
running the tests, so a local run and CI see the same thing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Every folder of Python the project keeps; benchmarks/out is excluded in pyproject.toml.
CHECKED = ["src", "tests", "benchmarks", "scripts"]
LIMIT = 100


def _ruff(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``ruff ARGS`` in ``cwd`` (whose pyproject.toml configures it), output captured."""
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _failure(proc: subprocess.CompletedProcess[str], fix: str) -> str:
    return f"{proc.stdout}{proc.stderr}\n{fix}"


def test_the_code_is_ruff_formatted() -> None:
    proc = _ruff("format", "--check", *CHECKED)
    assert proc.returncode == 0, _failure(proc, "run `.venv/bin/ruff format <files>`")


def test_no_line_is_over_the_limit() -> None:
    proc = _ruff("check", "--output-format", "concise", *CHECKED)
    assert proc.returncode == 0, _failure(
        proc,
        f"wrap the lines above (at most {LIMIT} characters): implicit concatenation for strings, "
        "more lines for comments and docstrings",
    )


@pytest.mark.parametrize(("length", "flagged"), [(LIMIT, False), (LIMIT + 1, True)])
def test_the_configuration_flags_one_character_over_the_limit(
    tmp_path: Path, length: int, flagged: bool
) -> None:
    """The checks above pass vacuously if the configuration stops selecting E501 or moves the
    limit; a file under the project's own configuration shows they bite at 101 characters."""
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text("utf-8"), "utf-8")
    # Words, not one long token: E501 lets a line that is a single word (a URL) run over.
    comment = "# " + "x" * (length - 4) + " y"
    assert len(comment) == length
    (tmp_path / "sample.py").write_text(comment + "\n", "utf-8")
    proc = _ruff("check", "--output-format", "concise", "sample.py", cwd=tmp_path)
    assert (proc.returncode != 0) is flagged, proc.stdout + proc.stderr
    assert ("E501" in proc.stdout) is flagged
