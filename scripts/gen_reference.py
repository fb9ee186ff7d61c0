#!/usr/bin/env python3
"""Generate the docs pages derived from the code (or from README.md), which must never go stale:

  docs/reference/cli.md        every command, argument and option of the `veritag` typer app
  docs/reference/settings.md   every VERITAG_* setting (veritag.config.Settings)
  docs/reference/http-api.md   every route of the JSON API (the app's OpenAPI document)
  docs/index.md                the site's home page: README.md with its links made relative to docs/

    .venv/bin/python scripts/gen_reference.py           # (re)write the pages
    .venv/bin/python scripts/gen_reference.py --check   # exit 1 if a committed page differs

tests/test_docs.py runs --check, so changing a command, a setting or a route without running this
script fails the suite. Only veritag's public objects are read; nothing in veritag is changed.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
REGENERATE = "`.venv/bin/python scripts/gen_reference.py`"


def _banner(source: str) -> str:
    return (
        f"<!-- Generated from {source} by scripts/gen_reference.py; do not edit by hand: "
        f"run {REGENERATE}. -->\n"
    )


def _cell(text: object) -> str:
    """Text safe inside one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


# ---------------------------------------------------------------------------------------------- CLI

_TYPE_NAMES = {str: "TEXT", int: "INTEGER", float: "FLOAT", bool: "BOOLEAN", Path: "PATH"}


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in typing.get_args(annotation) if a is not type(None)]
        return " | ".join(names)
    if origin in (list, tuple, set):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return " ".join(_type_name(a) for a in args) if args else "TEXT"
    if annotation in _TYPE_NAMES:
        return _TYPE_NAMES[annotation]
    return getattr(annotation, "__name__", str(annotation)).upper()


def _default(value: Any) -> str:
    if value is None or value == () or value == []:
        return ""
    if value == "":
        return '`""`'
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, Path):
        value = str(value)
    return f"`{value}`"


def _fill(text: str | None) -> str:
    """Option help with the CLI's ``{CHOICES}`` placeholders filled in, as ``--help`` shows it."""
    from veritag import cli

    text = (text or "").strip()
    fill: Callable[[str], str] | None = getattr(cli, "fill_choices", None)
    if fill is not None and "{" in text:
        try:
            text = fill(text)
        except Exception:  # noqa: BLE001 - a placeholder the CLI does not know: keep the text as is
            pass
    return text


def _command_section(path: list[str], command: Any, lines: list[str]) -> None:
    import typer._click as click

    name = " ".join(path)
    lines += [f"## `{name}`", ""]
    help_text = _fill(command.help)
    if help_text:
        lines += [help_text, ""]
    ctx = click.Context(command, info_name=name)
    usage = command.get_usage(ctx).removeprefix("Usage: ")
    lines += ["```", usage, "```", ""]
    subcommands = getattr(command, "commands", None)
    if subcommands:
        lines += ["| command | does |", "| --- | --- |"]
        for sub_name in sorted(subcommands):
            sub = subcommands[sub_name]
            first = _fill(sub.help).split("\n\n")[0]
            lines.append(
                f"| [`{name} {sub_name}`](#{_slug(name + ' ' + sub_name)}) | {_cell(first)} |"
            )
        lines.append("")
    params = [p for p in command.params if not getattr(p, "hidden", False)]
    if params:
        lines += ["| argument or option | type | default | meaning |", "| --- | --- | --- | --- |"]
        for param in params:
            is_option = bool(param.opts and param.opts[0].startswith("-"))
            names = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
            if not is_option:
                names = f"`{param.name.upper()}` (argument{'' if param.required else ', optional'})"
            annotation = param.type_descriptor.annotation
            kind = "flag" if getattr(param, "is_flag", False) else _type_name(annotation)
            if getattr(param, "multiple", False):
                kind += ", repeatable"
            default = "required" if param.required and is_option else _default(param.default)
            lines.append(
                f"| {names} | {kind} | {default} | {_cell(_fill(getattr(param, 'help', '')))} |"
            )
        lines.append("")
    for sub_name in sorted(subcommands or {}):
        _command_section([*path, sub_name], subcommands[sub_name], lines)


def _slug(heading: str) -> str:
    """The anchor GitHub and the site (pymdownx.slugs, lower case) give a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def cli_reference() -> str:
    import typer.main

    from veritag.cli import app

    group = typer.main.get_command(app)
    lines = [_banner("the typer app `veritag.cli.app`"), "# Command-line reference", ""]
    lines += [
        _fill(group.help),
        "",
        "Every command that opens a database takes `--db PATH_OR_URL` (default: "
        "`$VERITAG_DATABASE_URL`, else `./veritag.db`). A user mistake prints one `Error:` line "
        "and exits with code 1. The guides explain each command with examples; this page lists "
        "what `--help` says.",
        "",
        "| command | does |",
        "| --- | --- |",
    ]
    commands = group.commands  # type: ignore[attr-defined]
    for name in commands:
        first = _fill(commands[name].help).split("\n\n")[0]
        lines.append(f"| [`veritag {name}`](#{_slug('veritag ' + name)}) | {_cell(first)} |")
    lines.append("")
    for name in commands:
        _command_section(["veritag", name], commands[name], lines)
    return "\n".join(lines).rstrip("\n") + "\n"


# ----------------------------------------------------------------------------------------- settings


def settings_reference() -> str:
    from veritag.config import Settings

    prefix = Settings.model_config.get("env_prefix", "")
    lines = [
        _banner("`veritag.config.Settings`"),
        "# Settings reference",
        "",
        _cell(Settings.__doc__ or ""),
        "",
        "| variable | type | default | constraints | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, field in Settings.model_fields.items():
        constraints = []
        for item in field.metadata:
            for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
                if getattr(item, attr, None) is not None:
                    constraints.append(f"{sign} {getattr(item, attr)}")
        lines.append(
            f"| `{prefix}{name.upper()}` | {_type_name(field.annotation)} | "
            f"{_default(field.default) or 'none'} | {', '.join(constraints)} | "
            f"{_cell(field.description or '')} |"
        )
    return "\n".join(lines).rstrip("\n") + "\n"


# ----------------------------------------------------------------------------------------- HTTP API


def _schema_name(schema: dict[str, Any] | None) -> str:
    if not schema:
        return ""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if schema.get("type") == "array":
        return f"list of {_schema_name(schema.get('items')) or 'items'}"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(n for n in (_schema_name(s) for s in schema[key]) if n)
    return str(schema.get("type", ""))


def http_api_reference() -> str:
    from veritag.server.app import create_app

    document = create_app(None).openapi()  # type: ignore[arg-type]  # the schema needs no store
    lines = [
        _banner("the server's OpenAPI document (`veritag.server.app.create_app`)"),
        "# HTTP API reference",
        "",
        "Every route of the JSON API, with the statuses the OpenAPI document says it answers. "
        "The live document is served at `/api/v1/openapi.json` and browsable at `/api/v1/docs`; "
        "every error body is an `ApiError` (see [the server guide](../guide/server.md)).",
        "",
        "| method | path | summary | parameters | body | statuses |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            params = [f"`{p['name']}`" for p in op.get("parameters", []) if p.get("in") == "query"]
            body = ""
            content = op.get("requestBody", {}).get("content", {})
            for media, spec in content.items():
                name = _schema_name(spec.get("schema"))
                body = f"{name} ({media})" if name else media
                break
            statuses = ", ".join(sorted(op.get("responses", {})))
            lines.append(
                f"| {method.upper()} | `{path}` | {_cell(op.get('summary', ''))} | "
                f"{' '.join(params)} | {_cell(body)} | {statuses} |"
            )
    lines.append("")
    schemas = document.get("components", {}).get("schemas", {})
    if schemas:
        lines += ["## Models", "", "| model | fields |", "| --- | --- |"]
        for name, schema in schemas.items():
            props = schema.get("properties", {})
            required = set(schema.get("required", []))
            fields = ", ".join(f"`{p}`{'' if p in required else '?'}" for p in props)
            lines.append(f"| `{name}` | {fields} |")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


# -------------------------------------------------------------------------------------------- index


def index_page() -> str:
    """README.md as the site's home page: links into docs/ lose their ``docs/`` prefix, other
    relative links point one folder up (the site build turns those into plain text, see
    scripts/mkdocs_hooks.py)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")

    def relink(match: re.Match[str]) -> str:
        text, target = match.group(1), match.group(2)
        if target.startswith("#") or re.match(r"^[a-z][a-z0-9+.-]*:", target):
            return match.group(0)
        if target.startswith("docs/"):
            return f"{text}({target[len('docs/') :]})"
        return f"{text}(../{target})"

    body = re.sub(r"(!?\[[^\]]*\])\(([^)\s]+)\)", relink, readme)
    return _banner("README.md") + "\n" + body


PAGES: dict[str, Callable[[], str]] = {
    "reference/cli.md": cli_reference,
    "reference/settings.md": settings_reference,
    "reference/http-api.md": http_api_reference,
    "index.md": index_page,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if a committed page differs")
    args = parser.parse_args(argv)
    stale = []
    for rel, generate in PAGES.items():
        path = DOCS / rel
        text = generate()
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current == text:
            continue
        if args.check:
            stale.append(rel)
            diff = difflib.unified_diff(
                current.splitlines(),
                text.splitlines(),
                f"docs/{rel} (committed)",
                f"docs/{rel} (from the code)",
                lineterm="",
                n=1,
            )
            print("\n".join(list(diff)[:40]), file=sys.stderr)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote docs/{rel}")
    if stale:
        print(
            f"stale: {', '.join('docs/' + s for s in stale)}; regenerate with {REGENERATE}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
