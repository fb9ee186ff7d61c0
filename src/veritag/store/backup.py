"""Backing up a store and restoring it, while a server may be writing to it.

SQLite is copied with its online backup API: one step under one read transaction, so the copy
is the database as of one moment, and WAL mode lets writers carry on meanwhile. PostgreSQL is
dumped with ``pg_dump -Fc`` inside a snapshot that this module exports, and restored with
``pg_restore``.

Beside each backup lies a small JSON sidecar (``<backup>.meta.json``) with the backup's
high-water marks: the largest id of each append-only table (claims, items, gold, ...), read in
the same snapshot as the copy. A database is *newer* than a backup when any of those tables
holds an id beyond the backup's mark, that is when it holds work the backup lacks; ``restore``
refuses to overwrite such a database unless forced, since that work would be lost. The audit log
counts too: a restore that would silently drop its newer entries (a login, a token revoked since
the backup) is refused like one that would drop claims.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import sqlite3
import subprocess
from contextlib import closing
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, OperationalError

from ..errors import ConfigError, InputError, NotFound, VeritagError

__all__ = [
    "MARK_TABLES",
    "BackupInfo",
    "NewerDatabase",
    "backup",
    "describe",
    "find_pg_tool",
    "high_water_marks",
    "meta_path",
    "read_meta",
    "restore",
]

#: Tables that only ever grow, with an integer id: their largest ids say how far a database got.
MARK_TABLES = (
    "projects",
    "items",
    "sources",
    "claims",
    "gold",
    "imports",
    "truth_runs",
    "automation_runs",
    "reviews",
    "users",
    "audit_log",
)
#: Where Debian and Ubuntu install PostgreSQL's client programs, one folder per major version.
PG_BIN_GLOBS = ("/usr/lib/postgresql/*/bin",)
FORMAT = "veritag-backup"
FORMAT_VERSION = 1
_PG_TIMEOUT = 3600  # seconds for one pg_dump or pg_restore run


class NewerDatabase(VeritagError):
    """The database to restore into holds data the backup lacks."""


@dataclass
class BackupInfo:
    """What a backup holds: the sidecar's content, and where the backup file is."""

    path: Path
    dialect: str
    marks: dict[str, int]
    revision: str | None = None
    created_at: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )

    def to_json(self) -> str:
        data = asdict(self)
        del data["path"]
        return json.dumps({"format": FORMAT, "version": FORMAT_VERSION, **data}, indent=2) + "\n"


def meta_path(backup_file: Path) -> Path:
    """The sidecar of ``backup_file``: same folder, name plus ``.meta.json``."""
    return backup_file.with_name(backup_file.name + ".meta.json")


def read_meta(backup_file: Path) -> BackupInfo | None:
    """The sidecar of ``backup_file``, or None where there is none."""
    path = meta_path(backup_file)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        marks = {str(k): int(v) for k, v in data["marks"].items()}
        return BackupInfo(
            backup_file, str(data["dialect"]), marks, data.get("revision"), str(data["created_at"])
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"cannot read the backup's metadata {path}: {exc}") from None


def high_water_marks(conn: sa.Connection) -> dict[str, int]:
    """The largest id of each of ``MARK_TABLES`` present (0 for an empty table)."""
    present = set(sa.inspect(conn).get_table_names())
    return {
        name: int(conn.scalar(sa.text(f"SELECT COALESCE(MAX(id), 0) FROM {name}")) or 0)
        for name in MARK_TABLES
        if name in present
    }


def _revision(conn: sa.Connection) -> str | None:
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    return conn.scalar(sa.text("SELECT version_num FROM alembic_version"))  # type: ignore[no-any-return]


def _url(url: str) -> URL:
    try:
        return sa.make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"invalid database URL {url!r}: {exc}") from None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _check_out(out: Path) -> None:
    if out.is_dir():
        raise InputError(f"{out} is a folder; name the backup file to write")
    if not out.parent.is_dir():
        raise InputError(f"cannot write {out}: folder {out.parent} does not exist")


def backup(url: str, out: Path) -> BackupInfo:
    """Copy the database at ``url`` to the file ``out`` and write its sidecar.

    The copy is consistent while other connections write: everything committed before the
    backup began is in it. The file replaces ``out`` only once complete.
    """
    out = Path(out)
    _check_out(out)
    parsed = _url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        info = _backup_sqlite(_sqlite_path(parsed), out)
    elif backend == "postgresql":
        info = _backup_postgres(parsed, out)
    else:
        raise ConfigError(
            f"cannot back up a {backend} database; veritag backs up SQLite and PostgreSQL"
        )
    _write_atomic(meta_path(out), info.to_json())
    return info


def restore(url: str, backup_file: Path, *, force: bool = False) -> BackupInfo:
    """Replace the database at ``url`` with ``backup_file``.

    Refuses (``NewerDatabase``) when the database holds ids beyond the backup's high-water
    marks, unless ``force``. Both must be of the same kind (SQLite or PostgreSQL).
    """
    backup_file = Path(backup_file)
    if not backup_file.is_file():
        raise NotFound(f"no backup file {backup_file}")
    parsed = _url(url)
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"cannot restore into a {backend} database; veritag restores SQLite and PostgreSQL"
        )
    info = read_meta(backup_file)
    if info is not None and info.dialect != backend:
        raise InputError(
            f"{backup_file} is a {info.dialect} backup; "
            f"it cannot be restored into a {backend} database"
        )
    if backend == "sqlite":
        # A SQLite backup is itself a database: its own marks are the truth, sidecar or not.
        meta, info = info, _sqlite_meta(backup_file)
        if meta is not None:
            info.created_at = meta.created_at
        _restore_sqlite(_sqlite_path(parsed), backup_file, info, force)
        return info
    if info is None and not force:
        raise InputError(
            f"{backup_file} has no metadata file {meta_path(backup_file).name}, so there is no "
            "telling whether the database is newer; pass --force to restore anyway"
        )
    _restore_postgres(parsed, backup_file, info, force)
    return info or BackupInfo(backup_file, backend, {})


def _refuse_newer(
    current: dict[str, int], info: BackupInfo | None, force: bool, where: str
) -> None:
    """Raise ``NewerDatabase`` when ``current`` marks pass the backup's (unless forced)."""
    if force or info is None:
        return
    ahead = [
        f"{table} up to id {n} (the backup up to {info.marks.get(table, 0)})"
        for table, n in current.items()
        if n > info.marks.get(table, 0)
    ]
    if ahead:
        raise NewerDatabase(
            f"{where} is newer than the backup of {info.created_at}: it holds {'; '.join(ahead)}. "
            "Restoring would lose that data; pass --force to restore anyway"
        )


# --- SQLite ---------------------------------------------------------------------------------------


def _sqlite_path(parsed: URL) -> Path:
    if parsed.database in (None, "", ":memory:"):
        raise ConfigError("an in-memory SQLite database has nothing to back up or restore into")
    return Path(str(parsed.database))


def _backup_sqlite(source: Path, out: Path) -> BackupInfo:
    if not source.is_file():
        raise NotFound(f"no database file {source}")
    if out.resolve() == source.resolve():
        raise InputError(f"{out} is the database itself; write the backup to another file")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        try:
            with (
                closing(sqlite3.connect(source, timeout=30)) as src,
                closing(sqlite3.connect(tmp)) as dst,
            ):
                # pages=-1: one step, so one read transaction sees one moment of the source.
                src.backup(dst, pages=-1)
                # A single self-contained file: no -wal or -shm beside it.
                dst.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.Error as exc:
            raise VeritagError(f"cannot back up {source}: {exc}") from None
        info = _sqlite_meta(tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    info.path = out
    return info


def _sqlite_meta(path: Path) -> BackupInfo:
    """Marks and revision read from a SQLite file, which is checked to be intact and veritag's."""
    uri = Path(path).resolve().as_uri() + "?mode=ro"

    def read_only() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True)

    try:
        with closing(read_only()) as conn:
            check = conn.execute("PRAGMA integrity_check").fetchone()
            if check is None or check[0] != "ok":
                raise InputError(
                    f"{path} is damaged: integrity check says {check[0] if check else 'nothing'}"
                )
    except sqlite3.DatabaseError as exc:
        raise InputError(f"{path} is not a SQLite database: {exc}") from None
    engine = sa.create_engine("sqlite://", creator=read_only)
    try:
        with engine.connect() as conn:
            revision = _revision(conn)
            if revision is None:
                raise InputError(
                    f"{path} is not a veritag database (it has no alembic_version table)"
                )
            return BackupInfo(path, "sqlite", high_water_marks(conn), revision)
    finally:
        engine.dispose()


def _restore_sqlite(target: Path, backup_file: Path, info: BackupInfo, force: bool) -> None:
    if not target.parent.is_dir():
        raise ConfigError(f"cannot restore into {target}: folder {target.parent} does not exist")
    if target.resolve() == backup_file.resolve():
        raise InputError(f"{backup_file} is the database itself; there is nothing to restore")
    if target.is_file():
        engine = sa.create_engine(f"sqlite:///{target}")
        try:
            with engine.connect() as conn:
                _refuse_newer(high_water_marks(conn), info, force, str(target))
        finally:
            engine.dispose()
    # The backup API writes the pages under SQLite's own locks, so a server holding the file open
    # sees the restored database on its next transaction instead of a file swapped underneath it.
    try:
        with (
            closing(sqlite3.connect(backup_file)) as src,
            closing(sqlite3.connect(target, timeout=30)) as dst,
        ):
            src.backup(dst, pages=-1)
    except sqlite3.Error as exc:
        raise VeritagError(f"cannot restore {backup_file} into {target}: {exc}") from None


# --- PostgreSQL -----------------------------------------------------------------------------------


def find_pg_tool(name: str) -> str:
    """Path of PostgreSQL's ``name`` (pg_dump, pg_restore): on PATH, else the newest Debian one."""
    found = shutil.which(name)
    if found:
        return found

    def version(folder: str) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", Path(folder).parent.name))

    folders = sorted(
        (f for pattern in PG_BIN_GLOBS for f in glob.glob(pattern)), key=version, reverse=True
    )
    for folder in folders:
        candidate = Path(folder) / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    where = ", ".join(PG_BIN_GLOBS)
    raise ConfigError(
        f"{name} was not found on PATH or in {where}; it comes with PostgreSQL's client "
        f"programs (Debian/Ubuntu: apt-get install postgresql-client)"
    )


def _libpq(parsed: URL) -> tuple[str, dict[str, str]]:
    """A libpq connection URI for the pg tools, and an environment carrying the password."""
    env = dict(os.environ)
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    uri = parsed.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    return uri, env


def _run_pg(cmd: list[str], env: dict[str, str], what: str) -> str:
    """Run a PostgreSQL tool; its standard output, or a ``VeritagError`` with what it printed."""
    try:
        result = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=_PG_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise VeritagError(f"{what} took longer than {_PG_TIMEOUT} s and was stopped") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise VeritagError(f"{what} failed (exit code {result.returncode}): {detail}")
    return result.stdout


def _pg_engine(parsed: URL) -> sa.Engine:
    try:
        return sa.create_engine(parsed)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"the PostgreSQL driver is not installed ({exc.name}); pip install 'veritag[postgres]'"
        ) from None


def _backup_postgres(parsed: URL, out: Path) -> BackupInfo:
    pg_dump = find_pg_tool("pg_dump")
    uri, env = _libpq(parsed)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    engine = _pg_engine(parsed)
    try:
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            # pg_dump reads in the snapshot this transaction exports, so the marks and the dump
            # describe the same moment however many writes land meanwhile.
            snapshot = conn.scalar(sa.text("SELECT pg_export_snapshot()"))
            revision = _revision(conn)
            if revision is None:
                raise InputError(
                    f"{parsed.render_as_string()} is not a veritag database "
                    "(it has no alembic_version table)"
                )
            info = BackupInfo(out, "postgresql", high_water_marks(conn), revision)
            _run_pg(
                [
                    pg_dump,
                    "--format=custom",
                    f"--snapshot={snapshot}",
                    f"--file={tmp}",
                    f"--dbname={uri}",
                ],
                env,
                "pg_dump",
            )
        os.replace(tmp, out)
    except OperationalError as exc:
        raise ConfigError(f"cannot open database {parsed.render_as_string()}: {exc.orig}") from None
    finally:
        engine.dispose()
        tmp.unlink(missing_ok=True)
    return info


def _restore_postgres(parsed: URL, backup_file: Path, info: BackupInfo | None, force: bool) -> None:
    pg_restore = find_pg_tool("pg_restore")
    uri, env = _libpq(parsed)
    engine = _pg_engine(parsed)
    try:
        with engine.connect() as conn:
            _refuse_newer(high_water_marks(conn), info, force, parsed.render_as_string())
    except OperationalError as exc:
        raise ConfigError(f"cannot open database {parsed.render_as_string()}: {exc.orig}") from None
    finally:
        engine.dispose()
    # One transaction: a failed restore leaves the database as it was.
    _run_pg(
        [
            pg_restore,
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            f"--dbname={uri}",
            str(backup_file),
        ],
        env,
        "pg_restore",
    )
    _drop_newer_objects(
        parsed, _run_pg([pg_restore, "--list", str(backup_file)], env, "pg_restore --list")
    )


#: A table or function of schema public in ``pg_restore --list``:
#: ``215; 1259 16386 TABLE public claims owner``.
_TOC_ENTRY = re.compile(r"^\d+; \d+ \d+ (TABLE|FUNCTION) public (\w+)", re.MULTILINE)


def _drop_newer_objects(parsed: URL, toc: str) -> None:
    """Drop the tables and veritag functions that a newer schema added and the backup does not hold.

    ``pg_restore --clean`` replaces only what the dump holds: restoring an older backup would
    otherwise leave, say, a newer migration's table and trigger function behind, and the next
    ``alembic upgrade`` would fail creating them again. Runs after the restore committed, so a
    failed restore never loses them."""
    dumped = {(kind, name) for kind, name in _TOC_ENTRY.findall(toc)}
    engine = _pg_engine(parsed)
    try:
        with engine.begin() as conn:
            tables = conn.execute(
                sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            ).scalars()
            functions = conn.execute(
                sa.text(
                    "SELECT p.proname, p.oid::regprocedure::text "
                    "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                    "WHERE n.nspname = 'public' AND p.proname LIKE 'veritag\\_%'"
                )
            ).all()
            for table in [t for t in tables if ("TABLE", t) not in dumped]:
                conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}" CASCADE'))
            for name, signature in functions:
                if ("FUNCTION", name) not in dumped:
                    conn.execute(sa.text(f"DROP FUNCTION IF EXISTS {signature} CASCADE"))
    finally:
        engine.dispose()


def describe(info: BackupInfo) -> str:
    """A one-line summary of a backup's marks, for the command line."""
    return (
        ", ".join(
            f"{t} up to id {info.marks[t]}"
            for t in ("projects", "items", "claims")
            if t in info.marks
        )
        or "no veritag tables"
    )
