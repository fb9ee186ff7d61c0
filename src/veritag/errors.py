"""The exceptions veritag raises on purpose.

Every error a user can cause is a ``VeritagError``: the CLI prints its message on one line
and exits non-zero, the server (later) turns ``status`` into the HTTP code. Anything else is a
bug and keeps its traceback.

    VeritagError
    ├── ConfigError            bad settings or database URL
    ├── NotFound               a project, item or user that does not exist
    ├── AlreadyExists          a name that is taken
    ├── SchemaError            a task schema that makes no sense
    ├── LabelError             a claim that does not fit its project's schema
    └── InputError             a file that cannot be read as asked
        └── RowErrors          one or more bad rows, each with file, line and field
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AlreadyExists",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "InputError",
    "LabelError",
    "NotFound",
    "RowError",
    "RowErrors",
    "SchemaError",
    "VeritagError",
]


class VeritagError(Exception):
    """A mistake in what the user asked for, with a message meant for them. ``status`` is the
    HTTP status the server answers it with (the command line prints the message instead)."""

    status: int = 400


class ConfigError(VeritagError):
    status = 500


class NotFound(VeritagError):
    status = 404


class AlreadyExists(VeritagError):
    status = 409


class Conflict(VeritagError):
    """The request is fine, the state it meets is not (a lease no longer held, nothing resolved)."""

    status = 409


class Forbidden(VeritagError):
    """The caller may not do this (a role or a membership is missing)."""

    status = 403


class SchemaError(VeritagError):
    status = 422


class LabelError(VeritagError):
    """A value refused by a task schema; ``field`` names the part of the claim at fault."""

    status = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"field '{field}': {message}")
        self.field = field
        self.reason = message


class InputError(VeritagError):
    status = 422


@dataclass(frozen=True)
class RowError:
    """One bad row: where it is and what is wrong with it."""

    file: str
    line: int
    field: str | None
    message: str
    unit: str = "line"

    def __str__(self) -> str:
        where = (
            f"{self.file}:{self.line}"
            if self.unit == "line"
            else f"{self.file} {self.unit} {self.line}"
        )
        return (
            f"{where}: field '{self.field}': {self.message}"
            if self.field
            else f"{where}: {self.message}"
        )


class RowErrors(InputError):
    """A file refused because of bad rows; ``errors`` holds the first ``shown`` of ``total``."""

    def __init__(self, errors: list[RowError], total: int) -> None:
        self.errors = errors
        self.total = total
        lines = [str(e) for e in errors]
        more = total - len(errors)
        if more > 0:
            lines.append(f"... and {more} more bad row(s)")
        super().__init__(
            f"{total} bad row(s); nothing was written (use --skip-invalid to import the good "
            "rows):\n" + "\n".join(lines)
        )
