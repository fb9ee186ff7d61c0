"""Shared plumbing for peers that run as a script inside their own venv (crowd-kit, cleanlab).

    ensure_venv(venv, requirements, dist, version) -> path of the venv's python
    run_script(python, script, args, workdir, timeout) -> (wall seconds, the script's result.json)

Each peer gets its own venv under benchmarks/out/ (they pin conflicting versions and must never
touch veritag's). The runner scripts are started with ``python -I`` (isolated mode: the script's
folder is not put on sys.path, so a wrapper named like the peer's package, e.g. ``crowdkit.py``,
cannot shadow the real one) in a scratch folder, and talk to us only through files there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "out"


def installed_version(python: Path, dist: str) -> str | None:
    if not python.exists():
        return None
    proc = subprocess.run(  # noqa: PLW1510  (the return code is checked below)
        [str(python), "-I", "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
        capture_output=True,
        text=True,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def ensure_venv(
    venv: Path, requirements: list[str], dist: str, version: str, *, timeout: float = 1800
) -> Path:
    """Create ``venv`` and ``pip install`` ``requirements`` unless ``dist==version`` is there."""
    venv = Path(venv).resolve()
    if venv == Path(sys.prefix).resolve():
        raise RuntimeError(f"refusing to install {dist} into the running interpreter's venv {venv}")
    python = venv / "bin" / "python"
    if installed_version(python, dist) == version:
        return python
    if not python.exists():
        base = getattr(sys, "_base_executable", None) or sys.executable
        proc = subprocess.run(
            [base, "-m", "venv", str(venv)], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"could not create {venv}: {proc.stderr.strip()[-2000:]}")
    log = venv / "pip-install.log"
    with log.open("w") as fh:
        proc = subprocess.run(  # noqa: PLW1510  (the return code is checked below)
            [str(python), "-m", "pip", "install", "--disable-pip-version-check", *requirements],
            stdout=fh,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
    got = installed_version(python, dist)
    if proc.returncode != 0 or got != version:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(
            f"pip install {' '.join(requirements)} failed (exit {proc.returncode}, {dist} "
            f"{got}):\n{tail}"
        )
    return python


def run_script(
    python: Path, script: Path, args: list[str], workdir: Path, *, timeout: float = 3600
) -> tuple[float, dict]:
    """Run ``python -I script args`` in ``workdir``; return (wall seconds, workdir/result.json).

    The script must write ``result.json`` into its --out folder (``workdir``); its stdout/stderr go
    to ``workdir/runner.log`` and are quoted when it fails.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }
    env["VIRTUAL_ENV"] = str(Path(python).parents[1])
    log = workdir / "runner.log"
    start = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.run(  # noqa: PLW1510  (the return code is checked below)
            [str(python), "-I", str(script), *args, "--out", str(workdir)],
            cwd=str(workdir),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
    wall = time.perf_counter() - start
    result_path = workdir / "result.json"
    if proc.returncode != 0 or not result_path.exists():
        tail = log.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"{script.name} exited with code {proc.returncode}:\n{tail}")
    return wall, json.loads(result_path.read_text())
