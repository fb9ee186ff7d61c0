"""Start a real, throwaway PostgreSQL server for the test suite.

``running_postgres()`` runs ``initdb`` into a fresh temporary directory,
starts the server with ``pg_ctl`` on a free TCP port bound to 127.0.0.1 only,
creates a ``veritag`` database owned by the ``veritag`` superuser (trust
authentication, no password), yields its SQLAlchemy URL and, on exit, stops
the server and deletes the directory.

It uses the server binaries of Debian's ``postgresql`` package
(``/usr/lib/postgresql/<version>/bin``) or ``pg_ctl``/``initdb`` found on
PATH.  PostgreSQL refuses to run as root, so when the tests run as root the
server commands run as the ``postgres`` system user that the Debian package
creates.

Durability is switched off (fsync, full_page_writes, synchronous_commit):
the data is thrown away after the run anyway.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

SUPERUSER = "veritag"
DATABASE = "veritag"
HOST = "127.0.0.1"
SYSTEM_USER = "postgres"  # who runs the server when we are root

INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) were not found under "
    "/usr/lib/postgresql/*/bin or on PATH. Install Debian's `postgresql` "
    "package, e.g. `apt-get install -y postgresql` (or run `scripts/test`, "
    "which installs it)."
)

_COMMAND_TIMEOUT = 120  # seconds, for each initdb / pg_ctl / createdb call


def find_bin_dir() -> Path:
    """Return the directory holding initdb and pg_ctl, newest version first."""

    def version_key(bin_dir: str) -> tuple[int, ...]:
        version = Path(bin_dir).parent.name  # /usr/lib/postgresql/15/bin
        return tuple(int(part) for part in re.findall(r"\d+", version))

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version_key, reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    for candidate in candidates:
        bin_dir = Path(candidate)
        if all(os.access(bin_dir / tool, os.X_OK) for tool in ("initdb", "pg_ctl")):
            return bin_dir
    raise RuntimeError(INSTALL_HINT)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _clean_env() -> dict[str, str]:
    # PG* variables of the caller (PGDATA, PGPORT, PGHOST, ...) must not leak
    # into the throwaway server or the client tools.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


class _Runner:
    """Runs server commands, as the ``postgres`` user when we are root."""

    def __init__(self) -> None:
        self.as_root = os.geteuid() == 0
        self.account: pwd.struct_passwd | None = None
        if self.as_root:
            try:
                self.account = pwd.getpwnam(SYSTEM_USER)
            except KeyError:
                raise RuntimeError(
                    f"Running as root, but there is no {SYSTEM_USER!r} system "
                    "user to run PostgreSQL as (PostgreSQL refuses to run as "
                    "root). Install Debian's `postgresql` package, which "
                    "creates it: `apt-get install -y postgresql`."
                ) from None

    def give_away(self, path: Path) -> None:
        """Make ``path`` owned by the user that runs the server."""
        if self.account is not None:
            os.chown(path, self.account.pw_uid, self.account.pw_gid)

    def wrap(self, cmd: Sequence[str]) -> list[str]:
        if self.account is None:
            return list(cmd)
        if shutil.which("runuser"):
            return ["runuser", "-u", SYSTEM_USER, "--", *cmd]
        return ["su", SYSTEM_USER, "-s", "/bin/sh", "-c", shlex.join(cmd)]

    def run(self, cmd: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
        # cwd: the postgres user may not be able to enter the caller's cwd.
        # stdin/stdout/stderr are never inherited pipes the server could
        # keep open (pg_ctl sends the server's output to its log file).
        return subprocess.run(
            self.wrap(cmd),
            cwd=cwd,
            env=_clean_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_COMMAND_TIMEOUT,
            check=False,
        )


def _describe(result: subprocess.CompletedProcess[str]) -> str:
    return (
        f"command {shlex.join(result.args)} exited with {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )


def _read_log(log_file: Path) -> str:
    try:
        return log_file.read_text(errors="replace")
    except OSError as exc:
        return f"(no server log: {exc})"


def _kill_leftover_server(data_dir: Path) -> None:
    """Last resort if ``pg_ctl stop`` failed: kill the postmaster directly."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((data_dir / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGQUIT)  # immediate shutdown
        for _ in range(100):
            os.kill(pid, 0)  # raises once the process is gone
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def running_postgres() -> Iterator[str]:
    """Run a throwaway PostgreSQL server; yield a SQLAlchemy URL to it.

    The URL is ``postgresql+psycopg://veritag@127.0.0.1:PORT/veritag``; the
    ``veritag`` role is a superuser, so it may create and drop databases.
    """
    bin_dir = find_bin_dir()
    runner = _Runner()
    base_dir = Path(
        tempfile.mkdtemp(prefix="veritag-pg-", dir="/tmp" if os.path.isdir("/tmp") else None)
    )
    data_dir = base_dir / "data"
    log_file = base_dir / "server.log"
    started = False
    try:
        # mkdtemp makes the directory 0700; hand it to the server's user.
        runner.give_away(base_dir)

        result = runner.run(
            [
                str(bin_dir / "initdb"),
                "--pgdata",
                str(data_dir),
                "--username",
                SUPERUSER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            cwd=base_dir,
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed: {_describe(result)}")

        settings = {
            "listen_addresses": HOST,
            "unix_socket_directories": str(base_dir),
            "fsync": "off",
            "full_page_writes": "off",
            "synchronous_commit": "off",
        }
        config = data_dir / "postgresql.conf"
        with config.open("a") as fh:
            fh.write("\n# veritag test server\n")
            for name, value in settings.items():
                fh.write(f"{name} = '{value}'\n")

        # Another process may grab the free port before the server binds it;
        # retry with a new port in that case.
        port = 0
        for attempt in range(3):
            port = _free_port()
            result = runner.run(
                [
                    str(bin_dir / "pg_ctl"),
                    "start",
                    "--pgdata",
                    str(data_dir),
                    "--log",
                    str(log_file),
                    "--wait",
                    "--timeout",
                    "60",
                    "-o",
                    f"-p {port}",
                ],
                cwd=base_dir,
            )
            started = result.returncode == 0
            if started:
                break
            # pg_ctl may give up while the server is still coming up.
            _kill_leftover_server(data_dir)
            if "could not bind" not in _read_log(log_file) or attempt == 2:
                raise RuntimeError(
                    f"PostgreSQL server failed to start: {_describe(result)}\n"
                    f"--- server log ({log_file}) ---\n{_read_log(log_file)}"
                )

        createdb = bin_dir / "createdb"
        if not os.access(createdb, os.X_OK):
            createdb = Path(shutil.which("createdb") or "createdb")
        result = runner.run(
            [
                str(createdb),
                "--host",
                HOST,
                "--port",
                str(port),
                "--username",
                SUPERUSER,
                DATABASE,
            ],
            cwd=base_dir,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"creating database {DATABASE!r} failed: {_describe(result)}\n"
                f"--- server log ({log_file}) ---\n{_read_log(log_file)}"
            )

        yield f"postgresql+psycopg://{SUPERUSER}@{HOST}:{port}/{DATABASE}"
    finally:
        try:
            if started:
                result = runner.run(
                    [
                        str(bin_dir / "pg_ctl"),
                        "stop",
                        "--pgdata",
                        str(data_dir),
                        "--mode",
                        "immediate",
                        "--wait",
                    ],
                    cwd=base_dir,
                )
                if result.returncode != 0:
                    _kill_leftover_server(data_dir)
        finally:
            shutil.rmtree(base_dir, ignore_errors=True)


@contextlib.contextmanager
def fresh_database(
    server_url: str, prefix: str = "veritag_test", template: str | None = None
) -> Iterator[str]:
    """Create a uniquely named database on the server; yield its URL; drop it.

    ``server_url`` must log in as a role allowed to create databases, such as
    the URL yielded by ``running_postgres()``. With ``template``, the new
    database is a copy of that one (which must have no open connections).
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            copy = f' TEMPLATE "{template}"' if template else ""
            conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
        try:
            url = make_url(server_url).set(database=name)
            yield url.render_as_string(hide_password=False)
        finally:
            # FORCE: the code under test may still hold pooled connections.
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
