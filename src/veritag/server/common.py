"""What every router of the server shares: the request's store, and answers made JSON-ready."""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime
from typing import Any

from fastapi import Request

from ..store.engine import Store

__all__ = ["json_ready", "request_store"]


def request_store(request: Request) -> Store:
    """The store the app serves (``create_app(store)`` puts it on ``app.state``)."""
    return request.app.state.store  # type: ignore[no-any-return]


def json_ready(value: Any) -> Any:
    """JSON-ready: dataclasses and tuples become dicts and lists, NaN and infinities become null."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return value
