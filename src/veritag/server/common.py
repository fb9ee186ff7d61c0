"""What every router of the server shares: the request's store, and answers made JSON-ready."""

from __future__ import annotations

import math
import os
import secrets
import socket
from typing import Annotated, Any

from fastapi import Path, Query, Request

from ..errors import InputError
from ..limits import MAX_ID
from ..resolve import METHODS
from ..schema import json_ready
from ..store.engine import Store

__all__ = [
    "Id",
    "OptionalId",
    "check_method",
    "encodable",
    "json_ready",
    "pid_alive",
    "process_name",
    "request_store",
]

#: An integer id in a path, within what an id column holds (``limits.MAX_ID``): a 422, never a 500.
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
#: An optional integer id in the query string, bounded as ``Id``.
OptionalId = Annotated[
    int | None, Query(ge=1, le=MAX_ID, description="Automation run id [default: the newest]")
]
#: Which stored truth run a GET reads (a GET never fits, so it never picks the method to fit).
StoredMethod = Annotated[
    str | None,
    Query(description="Labels of the newest stored run of this method [default: the newest run]"),
]


_names: dict[int, str] = {}


def process_name() -> str:
    """``host:pid:tag`` of this server process (the tag tells apart a later process that reuses
    the pid): what leases and jobs record so a process starting after a crash finds the orphans."""
    pid = os.getpid()
    if pid not in _names:
        _names[pid] = f"{socket.gethostname()}:{pid}:{secrets.token_hex(4)}"
    return _names[pid]


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host (one we may not signal counts as running;
    a zombie, dead but not yet reaped by its parent, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):  # no /proc (macOS) or the process just ended
        return True


def check_method(method: str) -> None:
    """Refuse a truth method the engine does not know as bad input (422) before any work; the
    library's own check answers 400, as for a typo on the command line."""
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")


def request_store(request: Request) -> Store:
    """The store the app serves (``create_app(store)`` puts it on ``app.state``)."""
    return request.app.state.store  # type: ignore[no-any-return]


def encodable(value: Any) -> Any:
    """``value`` made safe to send as strict UTF-8 JSON: non-finite numbers become their repr and
    text that is not valid Unicode (lone surrogates) has them escaped, so an error answer that
    echoes bad input can always be written."""
    if isinstance(value, dict):
        return {encodable(k): encodable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encodable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, str) and not value.isascii():
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value
