"""What the OpenAPI document of ``/api/v1`` says about answers: one error model, and the statuses
each route can answer.

Every error answer of the API is an ``ApiError``: ``detail`` is always one human-readable string
(a client can always show it); a request-validation 422 also lists each problem in ``errors``
(``loc`` names the field, e.g. ``["body", "name"]``), and a refused import lists its bad rows there
with ``total``. The input a problem came from is never echoed back. A route declares its errors
with ``responses=errors(401, 403, ...)``, so the document lists exactly what the server answers.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.json_schema import GetJsonSchemaHandler, JsonSchemaValue
from pydantic_core import CoreSchema

from ..schema import TaskSchema
from .common import encodable

__all__ = [
    "ApiError",
    "FieldProblem",
    "Out",
    "RowProblem",
    "TaskSchemaJson",
    "error_body",
    "errors",
    "install",
    "validation_body",
]

#: Field problems a validation 422 lists (a body of 10,000 bad values gets the first ones).
MAX_PROBLEMS = 50
#: Characters of one problem's message and of a ``detail``.
MAX_MESSAGE = 300
MAX_DETAIL = 2000

#: What each status means, as the OpenAPI document describes it.
MEANINGS = {
    400: "A request the server cannot act on: a body it cannot parse, or a refusal explained "
    "in ``detail``",
    401: "Not authenticated: no, an invalid or a revoked token or session",
    403: "Authenticated but not allowed: a role or membership is missing, or the CSRF header",
    404: "No such thing (or none the caller may see)",
    409: "Conflicts with what is there: a name taken, a lease no longer held",
    413: "The upload is too large",
    422: "The request is well-formed but refused: bad fields (listed in ``errors``), a label the "
    "schema refuses, bad rows of an upload",
    429: "Too many failed logins: try again after ``Retry-After`` seconds",
}


class Out(BaseModel):
    """Base of the response models: a key the model does not know is a bug, never silently
    dropped."""

    model_config = ConfigDict(extra="forbid")


class FieldProblem(BaseModel):
    """One problem of a request (validation 422): where (``loc``), what (``msg``), its kind
    (``type``)."""

    loc: list[str | int]
    msg: str
    type: str


class RowProblem(BaseModel):
    """One bad row of an uploaded file (import 422)."""

    file: str
    line: int
    field: str | None
    message: str
    unit: str = Field(description="What ``line`` counts: line (CSV, JSONL) or row (Parquet)")


class ApiError(BaseModel):
    """The body of every error answer under ``/api/v1``."""

    detail: str = Field(description="What went wrong, for a person to read")
    errors: list[FieldProblem] | list[RowProblem] | None = Field(
        default=None,
        description="Validation 422: each field problem; import 422: the first bad rows",
    )
    total: int | None = Field(default=None, description="Import 422: bad rows in all")


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route that can answer these error statuses, each an ``ApiError``."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ApiError, "description": MEANINGS[status]}
        if status == 429:
            entry["headers"] = {
                "Retry-After": {
                    "description": "Seconds until a login may be tried again",
                    "schema": {"type": "integer"},
                }
            }
        if status == 401:
            entry["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        out[status] = entry
    return out


def _capped(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_body(detail: Any, **more: Any) -> dict[str, Any]:
    """An ``ApiError`` as JSON: ``detail`` made one string, nothing null, safe to encode."""
    text = detail if isinstance(detail, str) else str(detail)
    body = ApiError(detail=_capped(text, MAX_DETAIL), **more).model_dump(exclude_none=True)
    return encodable(body)  # type: ignore[no-any-return]


def _where(loc: list[str | int]) -> str:
    """``["body", "tutors", 0]`` as ``tutors.0``: the field, without where in the request it was."""
    return ".".join(map(str, loc[1:])) or (str(loc[0]) if loc else "request")


def validation_body(exc: RequestValidationError) -> dict[str, Any]:
    """A validation 422: its problems without the echoed input (it may be huge, or a secret)."""
    found = exc.errors()
    problems = [
        FieldProblem(
            loc=[p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
            msg=_capped(str(e.get("msg", "")), MAX_MESSAGE),
            type=str(e.get("type", "")),
        )
        for e in found[:MAX_PROBLEMS]
    ]
    said = "; ".join(f"{_where(p.loc)}: {p.msg}" for p in problems)
    more = f" (and {len(found) - len(problems)} more)" if len(found) > len(problems) else ""
    return error_body(f"invalid request: {said}{more}", errors=problems)


class TaskSchemaJson:
    """Documents a ``dict`` field as a task schema (``veritag.schema.TaskSchema``); the route
    still checks it with ``parse_schema``, so its messages stay those of the command line."""

    @classmethod
    def __get_pydantic_json_schema__(
        cls, _core: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return handler(TypeAdapter(TaskSchema).core_schema)


def _drop_default_422(document: dict[str, Any]) -> None:
    """Take out the 422 FastAPI adds to every route with parameters (its own list-shaped model):
    a route lists 422 only where it declares it, as an ``ApiError``."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            answer = operation.get("responses", {}).get("422", {})
            if "HTTPValidationError" in str(answer.get("content", "")):
                del operation["responses"]["422"]
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


def install(app: FastAPI) -> None:
    """Make ``app``'s OpenAPI document say only what the routes declare (see
    ``_drop_default_422``)."""
    build = app.openapi

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            _drop_default_422(build())
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = document  # type: ignore[method-assign]
