"""Label Studio 1.23.2 as a peer in the import/export benchmark.

Label Studio is installed into its own venv (never into veritag's), started on 127.0.0.1 only with
its telemetry, error reporting and update check switched off, and driven over its REST API with the
standard library's urllib. See ../../../shared/PEERS.md for the flags used here.

    ensure_label_studio()                     -> path of the ``label-studio`` executable
    running_label_studio(exe, data_dir, port) -> context manager yielding a ``LabelStudio`` client
    measure(exe, n_items, claims_per_item, workdir) -> timings of one import and one JSON export

``measure`` reads the same items.csv/claims.csv as veritag when given them (``items_csv=``,
``claims_csv=``); otherwise it generates data of the same shape in memory.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

VERSION = "1.23.2"
DEFAULT_VENV = Path(__file__).resolve().parents[1] / "out" / "ls-venv"
TOKEN = "veritagbench0123456789abcdef0123456789ab"  # fixed, 40 characters like a real LS token
USERNAME = "bench@veritag.invalid"
PASSWORD = "veritag-bench-pass"
CLASSES = ["negative", "neutral", "positive", "mixed", "other"]
START_TIMEOUT_S = 180.0
assert len(TOKEN) == 40

# Everything PEERS.md lists as phoning home, off. Label Studio reads each setting X from
# LABEL_STUDIO_X, HEARTEX_X or X (first found wins), so all three spellings are pinned.
_QUIET = {
    "COLLECT_ANALYTICS": "false",
    "SENTRY_DSN": "",
    "FRONTEND_SENTRY_DSN": "",
    "LATEST_VERSION_CHECK": "false",
    "FEATURE_FLAGS_OFFLINE": "true",
    "ENABLE_LEGACY_API_TOKEN": "true",
}


def _ls_env(venv_bin: Path, data_dir: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    }
    # Without this, settings import creates ~/.local/share/label-studio before --data-dir is read.
    quiet = {**_QUIET, "BASE_DATA_DIR": str(data_dir)}
    for key, value in quiet.items():
        for prefix in ("LABEL_STUDIO_", "HEARTEX_", ""):
            env[prefix + key] = value
    env["VIRTUAL_ENV"] = str(venv_bin.parent)
    env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
    return env


def _installed_version(venv: Path) -> str | None:
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    proc = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('label-studio'))"],
        capture_output=True,
        text=True,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def ensure_label_studio(venv: Path = DEFAULT_VENV) -> Path:
    """Install label-studio==VERSION into its own ``venv`` unless there; return the CLI path."""
    venv = Path(venv).resolve()
    if venv == Path(sys.prefix).resolve():
        raise RuntimeError(
            f"refusing to install Label Studio into the running interpreter's venv {venv}"
        )
    exe = venv / "bin" / "label-studio"
    if exe.exists() and _installed_version(venv) == VERSION:
        return exe
    if not (venv / "bin" / "python").exists():
        base = getattr(sys, "_base_executable", None) or sys.executable
        proc = subprocess.run([base, "-m", "venv", str(venv)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"could not create {venv}: {proc.stderr.strip()[-2000:]}")
    log = venv / "pip-install.log"
    with log.open("w") as fh:
        proc = subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                f"label-studio=={VERSION}",
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
            timeout=1800,
        )
    if proc.returncode != 0 or not exe.exists():
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(
            f"pip install label-studio=={VERSION} failed (exit {proc.returncode}):\n{tail}"
        )
    return exe


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabelStudio:
    """A tiny urllib client for one running server."""

    def __init__(self, port: int, proc: subprocess.Popen, log: Path):
        self.base = f"http://127.0.0.1:{port}"
        self.proc = proc
        self.log = log

    def request(
        self, method: str, path: str, body=None, timeout: float = 900.0
    ) -> tuple[int, bytes]:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Token {TOKEN}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def call(self, method: str, path: str, body=None, expect=(200, 201), timeout: float = 900.0):
        status, raw = self.request(method, path, body, timeout)
        if status not in expect:
            raise RuntimeError(
                f"{method} {path} -> HTTP {status}: {raw[:1000].decode(errors='replace')}"
            )
        return json.loads(raw) if raw else None

    def tree_rss_mb(self) -> float | None:
        try:
            import psutil
        except ImportError:
            return None
        try:
            root = psutil.Process(self.proc.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return None
        total = 0
        for p in procs:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total / 2**20


def _log_tail(log: Path, chars: int = 4000) -> str:
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no server log)"


def _stop(proc: subprocess.Popen) -> None:
    """Terminate the server and every process it started (by pid), then reap."""
    pids = [proc.pid]
    try:
        import psutil

        with contextlib.suppress(psutil.Error):
            pids += [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    except ImportError:
        pass
    for pid in reversed(pids):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pass
    # Anything still alive (the server or a child that ignored SIGTERM) is killed.
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


@contextlib.contextmanager
def running_label_studio(exe: Path, data_dir: Path, port: int) -> Iterator[LabelStudio]:
    """Label Studio on 127.0.0.1:``port``: yield a client once its API answers, stop it at exit."""
    exe = Path(exe)
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir.parent / f"{data_dir.name}.server.log"
    cmd = [
        str(exe), "start", "--no-browser",
        "--internal-host", "127.0.0.1", "--port", str(port),
        "--data-dir", str(data_dir),
        "--username", USERNAME, "--password", PASSWORD,
        "--user-token", TOKEN, "--enable-legacy-api-token",
    ]  # fmt: skip
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            cmd,
            env=_ls_env(exe.parent, data_dir),
            cwd=str(data_dir),
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the benchmark reaches us, and we stop it ourselves
        )
    client = LabelStudio(port, proc, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"Label Studio exited with code {proc.returncode} while starting; "
                    f"log:\n{_log_tail(log)}"
                )
            try:
                status, _ = client.request("GET", "/api/projects?page_size=1", timeout=5)
                if status == 200:
                    break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Label Studio did not answer on port {port} within {START_TIMEOUT_S:.0f} s; "
                    f"log:\n{_log_tail(log)}"
                )
            time.sleep(1)
        yield client
    finally:
        _stop(proc)


class _PeakRss:
    """Sample the server tree's RSS in a thread; ``peak`` is the largest sum seen."""

    def __init__(self, client: LabelStudio, every: float = 0.2):
        self.client, self.every, self.peak = client, every, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = self.client.tree_rss_mb()
            if rss is not None:
                self.peak = rss if self.peak is None else max(self.peak, rss)
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _rows_from_csv(
    items_csv: Path, claims_csv: Path
) -> Iterator[tuple[dict, list[tuple[str, str]]]]:
    """(item row, [(worker, label), ...]) per item; claims.csv lists an item's claims together."""
    with Path(items_csv).open(newline="") as fi, Path(claims_csv).open(newline="") as fc:
        claims = csv.DictReader(fc)
        pending = next(claims, None)
        for item in csv.DictReader(fi):
            mine = []
            while pending is not None and pending["task"] == item["id"]:
                mine.append((pending["worker"], pending["label"]))
                pending = next(claims, None)
            yield item, mine
        if pending is not None:
            raise ValueError(
                f"claim for unknown or out-of-order item {pending['task']!r} in {claims_csv}"
            )


def _rows_generated(
    n_items: int, per_item: int, seed: int = 0
) -> Iterator[tuple[dict, list[tuple[str, str]]]]:
    """Same recipe as benchmarks/import_export.py's generate(), in memory."""
    words = (
        "the model labels what it is sure of and specialists label the rest with measured quality"
    ).split()
    domains = ["stem", "finance", "medicine", "security", "child_safety", "general"]
    rng = random.Random(seed)
    workers = [f"w{i:04d}" for i in range(2000)]
    for i in range(n_items):
        item = {
            "id": f"item-{i}",
            "text": " ".join(rng.choices(words, k=12)),
            "domain": rng.choice(domains),
        }
        truth = rng.randrange(len(CLASSES))
        mine = []
        for w in rng.sample(workers, per_item):
            label = truth if rng.random() < 0.8 else rng.randrange(len(CLASSES))
            mine.append((w, CLASSES[label]))
        yield item, mine


def _label_config(classes: list[str]) -> str:
    choices = "".join(f'<Choice value="{c}"/>' for c in classes)
    return (
        '<View><Text name="text" value="$text"/>'
        f'<Choices name="label" toName="text" choice="single">{choices}</Choices></View>'
    )


def measure(
    exe: Path,
    n_items: int,
    claims_per_item: int,
    workdir: Path,
    *,
    items_csv: Path | None = None,
    claims_csv: Path | None = None,
    chunk: int = 5000,
    port: int | None = None,
    classes: list[str] = CLASSES,
) -> dict:
    """Import ``n_items`` tasks of ``claims_per_item`` annotations into a new Label Studio; export.

    Only the import POSTs and the export GET (to the last byte) are timed. Annotators are real Label
    Studio users (one per distinct worker), created before the timer starts, so each annotation
    keeps its author as it does in veritag.
    """
    workdir = Path(workdir)
    data_dir = workdir / "ls-data"
    shutil.rmtree(data_dir, ignore_errors=True)
    if items_csv is not None and claims_csv is not None:
        rows = lambda: _rows_from_csv(items_csv, claims_csv)  # noqa: E731
    else:
        rows = lambda: _rows_generated(n_items, claims_per_item)  # noqa: E731

    workers = sorted({w for _, mine in rows() for w, _ in mine})
    result: dict = {"items": n_items, "claims": n_items * claims_per_item}
    t0 = time.perf_counter()
    with running_label_studio(exe, data_dir, port or free_port()) as ls:
        result["start_seconds"] = time.perf_counter() - t0
        project = ls.call(
            "POST",
            "/api/projects",
            {"title": "veritag-bench", "label_config": _label_config(classes)},
        )
        pid = project["id"]

        t = time.perf_counter()
        user_ids = {}
        for w in workers:
            user = ls.call(
                "POST",
                "/api/users/",
                {"email": f"{w}@bench.invalid", "username": w, "first_name": w},
            )
            user_ids[w] = user["id"]
        result["users"] = len(user_ids)
        result["users_seconds"] = time.perf_counter() - t

        def payloads() -> Iterator[tuple[bytes, int, int]]:
            batch, n_ann = [], 0
            for item, mine in rows():
                if len(mine) != claims_per_item:
                    raise ValueError(
                        f"{item['id']} has {len(mine)} claims, expected {claims_per_item}"
                    )
                anns = [
                    {
                        "result": [
                            {
                                "from_name": "label",
                                "to_name": "text",
                                "type": "choices",
                                "value": {"choices": [label]},
                            }
                        ],
                        "completed_by": user_ids[w],
                    }
                    for w, label in mine
                ]
                batch.append(
                    {
                        "data": {
                            "text": item["text"],
                            "item_id": item["id"],
                            "domain": item["domain"],
                        },
                        "annotations": anns,
                    }
                )
                n_ann += len(anns)
                if len(batch) == chunk:
                    yield json.dumps(batch).encode(), len(batch), n_ann
                    batch, n_ann = [], 0
            if batch:
                yield json.dumps(batch).encode(), len(batch), n_ann

        with _PeakRss(ls) as rss:
            import_s, got_tasks, got_anns, requests = 0.0, 0, 0, 0
            for body, n_tasks, n_ann in payloads():
                t = time.perf_counter()
                resp = ls.call("POST", f"/api/projects/{pid}/import", body, expect=(201,))
                import_s += time.perf_counter() - t
                requests += 1
                if resp.get("task_count") != n_tasks or resp.get("annotation_count") != n_ann:
                    raise RuntimeError(
                        f"import chunk of {n_tasks} tasks/{n_ann} annotations answered {resp}"
                    )
                got_tasks += n_tasks
                got_anns += n_ann
            if got_tasks != n_items:
                raise RuntimeError(f"imported {got_tasks} tasks, expected {n_items}")

            t = time.perf_counter()
            status, raw = ls.request(
                "GET", f"/api/projects/{pid}/export?exportType=JSON&download_all_tasks=true"
            )
            export_s = time.perf_counter() - t
            if status != 200:
                raise RuntimeError(
                    f"export -> HTTP {status}: {raw[:1000].decode(errors='replace')}"
                )

        exported = json.loads(raw)
        n_exp_tasks = len(exported)
        n_exp_anns = sum(len(task.get("annotations", [])) for task in exported)
        if n_exp_tasks != n_items or n_exp_anns != n_items * claims_per_item:
            raise RuntimeError(
                f"export has {n_exp_tasks} tasks/{n_exp_anns} annotations, "
                f"imported {n_items}/{n_items * claims_per_item}"
            )
        result.update(
            import_seconds=import_s,
            import_requests=requests,
            export_seconds=export_s,
            export_mb=len(raw) / 2**20,
            server_rss_mb=rss.peak,
        )
    return result


if __name__ == "__main__":  # quick manual check: python label_studio.py N K
    import tempfile

    n, k = (int(a) for a in (sys.argv[1:3] if len(sys.argv) > 2 else ("200", "3")))
    with tempfile.TemporaryDirectory(prefix="ls-bench-") as tmp:
        print(measure(ensure_label_studio(), n, k, Path(tmp)))
