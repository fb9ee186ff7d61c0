"""Every cap on names and sizes, and the one check of text that a store can keep.

The API's models (as pydantic ``Annotated`` types), the store functions that create projects and
users, and the importer all call these checks, so bad text is refused where it enters and never
breaks a later export, review or dashboard. README.md lists the caps under "Limits".

Text is refused when it holds a NUL (U+0000: PostgreSQL cannot store it in text or JSON) or a
lone surrogate (U+D800..U+DFFF alone: not encodable as UTF-8, so every later answer that shows
it would fail).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, Field

from .errors import InputError

_T = TypeVar("_T")

__all__ = [
    "MAX_DESCRIPTION_LENGTH",
    "MAX_DOMAINS",
    "MAX_DOMAIN_LENGTH",
    "MAX_EXTERNAL_ID_LENGTH",
    "MAX_ID",
    "MAX_ITEM_TEXT_LENGTH",
    "MAX_LABELS",
    "MAX_LABEL_LENGTH",
    "MAX_PROJECT_NAME_LENGTH",
    "MAX_SEED",
    "MAX_SOURCE_NAME_LENGTH",
    "MAX_USERNAME_LENGTH",
    "PROJECT_NAME_PATTERN",
    "Description",
    "Domain",
    "ProjectName",
    "SafeJson",
    "SafeText",
    "Seed",
    "Username",
    "check_description",
    "check_domains",
    "check_json",
    "check_labels",
    "check_project_name",
    "check_schema",
    "check_text",
    "check_username",
    "json_problem",
    "refuse",
    "text_problem",
]

#: Project names: printable, no whitespace, none of ``/ \ ? # %``, not starting with ``.`` (so
#: never ``.`` or ``..``): every name is one URL path segment and can name a file.
PROJECT_NAME_PATTERN = r"[^\s/\\?#%.][^\s/\\?#%]*"
MAX_PROJECT_NAME_LENGTH = 100
#: Characters in a project's description, and in its task schema's instructions.
MAX_DESCRIPTION_LENGTH = 10_000
#: Characters in one label (or verdict) of a task schema, and labels in one schema.
MAX_LABEL_LENGTH = 200
MAX_LABELS = 1_000
#: Characters in a username (users log in with it, tutors label under it).
MAX_USERNAME_LENGTH = 100
#: Characters in the name of a label source (a worker or model column of an import); the
#: ``sources.name`` column holds 200.
MAX_SOURCE_NAME_LENGTH = 200
#: Characters in an item's id as imported; the ``items.external_id`` column holds 500.
MAX_EXTERNAL_ID_LENGTH = 500
#: Characters in an item's text, and in any one text value of its fields or metadata.
MAX_ITEM_TEXT_LENGTH = 1_000_000
#: The largest row id: ids are INTEGER columns, 32-bit signed on PostgreSQL, so an id in a path or
#: query above it can name no row and is refused (422) before any query (PostgreSQL and SQLite's
#: 64-bit limit would answer a larger one with an error, not "not found").
MAX_ID = 2**31 - 1
#: Characters in a routing domain's name (the ``item_domains.domain`` column holds 100), and domains
#: in one project's routing settings or one tutor's declared list.
MAX_DOMAIN_LENGTH = 100
MAX_DOMAINS = 100
#: The largest random seed: numpy's generators take any non-negative integer, and 32 bits is what
#: every seeded step (folds, audit draws, battle coins) needs to be reproducible.
MAX_SEED = 2**32 - 1

_NAME = re.compile(PROJECT_NAME_PATTERN)
_SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(value: str, max_length: int | None = None) -> str | None:
    """Why ``value`` cannot be stored (NUL, lone surrogate, too long), or None when it can.

    The message never repeats the text itself, which may not be printable."""
    if max_length is not None and len(value) > max_length:
        return f"is {len(value):,} characters long; at most {max_length:,} are allowed"
    if "\x00" in value:
        return f"contains a NUL character (U+0000) at position {value.index(chr(0))}"
    if not value.isascii():
        found = _SURROGATE.search(value)
        if found is not None:
            return (
                f"contains a lone surrogate (U+{ord(found.group()):04X}) at position "
                f"{found.start()}, not valid Unicode text"
            )
    return None


def json_problem(value: Any, max_length: int | None = None, *, finite: bool = True) -> str | None:
    """``text_problem`` of every string (keys too) inside a JSON-like value; with ``finite``,
    NaN and infinities are refused too (strict JSON cannot carry them)."""
    if isinstance(value, str):
        return text_problem(value, max_length)
    if finite and isinstance(value, float) and not math.isfinite(value):
        return f"holds the number {value!r}; only finite numbers are allowed"
    if isinstance(value, dict):
        for key, inner in value.items():
            problem = json_problem(key, max_length) if isinstance(key, str) else None
            problem = problem or json_problem(inner, max_length, finite=finite)
            if problem:
                return problem
    elif isinstance(value, list | tuple):
        for inner in value:
            problem = json_problem(inner, max_length, finite=finite)
            if problem:
                return problem
    return None


def check_text(value: str) -> str:
    """``value`` if it can be stored, else ``ValueError`` (pydantic names the field)."""
    problem = text_problem(value)
    if problem:
        raise ValueError(f"the text {problem}")
    return value


def check_json(value: Any) -> Any:
    """``value`` if every text and number in it can be stored, else ``ValueError``."""
    problem = json_problem(value)
    if problem:
        raise ValueError(f"the value {problem}")
    return value


def check_project_name(name: str) -> str:
    """A project name that fits one URL path segment; ``ValueError`` says what is wrong."""
    problem = text_problem(name, MAX_PROJECT_NAME_LENGTH)
    if problem:
        raise ValueError(f"the project name {problem}")
    if not (_NAME.fullmatch(name) and name.isprintable()):
        raise ValueError(
            f"the project name {name!r} must be printable characters without spaces or any of "
            "/ \\ ? # %, and must not start with '.'"
        )
    return name


def check_username(name: str) -> str:
    """A username that can be stored and shown; ``ValueError`` says what is wrong."""
    problem = text_problem(name, MAX_USERNAME_LENGTH)
    if problem:
        raise ValueError(f"the username {problem}")
    if not name.strip():
        raise ValueError("the username is empty")
    return name


def check_description(text: str) -> str:
    """A project description of bounded length; ``ValueError`` says what is wrong."""
    problem = text_problem(text, MAX_DESCRIPTION_LENGTH)
    if problem:
        raise ValueError(f"the description {problem}")
    return text


def check_labels(labels: list[str], field: str = "labels") -> list[str]:
    """A schema's list of labels within the caps on count and length; ``ValueError`` otherwise."""
    if len(labels) > MAX_LABELS:
        raise ValueError(f"{field}: {len(labels):,} labels; at most {MAX_LABELS:,} are allowed")
    for i, label in enumerate(labels):
        problem = text_problem(label, MAX_LABEL_LENGTH) if isinstance(label, str) else None
        if problem:
            raise ValueError(f"{field}[{i}]: the label {problem}")
    return labels


def check_domains(domains: list[str]) -> list[str]:
    """Routing domain names within the caps on count and length; ``ValueError`` otherwise."""
    if len(domains) > MAX_DOMAINS:
        raise ValueError(f"{len(domains):,} domains; at most {MAX_DOMAINS:,} are allowed")
    for i, domain in enumerate(domains):
        problem = text_problem(domain, MAX_DOMAIN_LENGTH)
        if problem:
            raise ValueError(f"domains[{i}]: the domain name {problem}")
    return domains


def check_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A task schema (as a dict) whose labels and instructions are within the caps and whose text
    can be stored."""
    for key in ("labels", "verdicts"):
        if isinstance(schema.get(key), list):
            check_labels(schema[key], key)
    instructions = schema.get("instructions")
    if isinstance(instructions, str) and len(instructions) > MAX_DESCRIPTION_LENGTH:
        raise ValueError(
            f"instructions: {len(instructions):,} characters; at most {MAX_DESCRIPTION_LENGTH:,} "
            "are allowed"
        )
    problem = json_problem(schema)
    if problem:
        raise ValueError(f"the task schema {problem}")
    return schema


def refuse(check: Callable[[_T], _T], value: _T) -> _T:
    """``check(value)`` for code outside pydantic: its ``ValueError`` becomes an ``InputError``
    (a 422 on the server, one ``Error:`` line on the command line)."""
    try:
        return check(value)
    except ValueError as exc:
        raise InputError(str(exc)) from None


SafeText = Annotated[str, AfterValidator(check_text)]
SafeJson = Annotated[Any, AfterValidator(check_json)]
#: The caps also appear as ``maxLength`` in the API's OpenAPI schema.
ProjectName = Annotated[
    str, Field(max_length=MAX_PROJECT_NAME_LENGTH), AfterValidator(check_project_name)
]
Username = Annotated[str, Field(max_length=MAX_USERNAME_LENGTH), AfterValidator(check_username)]
Description = Annotated[
    str, Field(max_length=MAX_DESCRIPTION_LENGTH), AfterValidator(check_description)
]
Domain = Annotated[str, Field(max_length=MAX_DOMAIN_LENGTH), AfterValidator(check_text)]
Seed = Annotated[
    int,
    Field(ge=0, le=MAX_SEED, description="Seed of the random draws: the same seed, the same run"),
]
