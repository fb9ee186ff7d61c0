"""The web stays at the edge (issue 16): only ``veritag.server`` knows FastAPI, and its routers
refuse requests for domain reasons with our errors (``NotFound``, ``Conflict``, ``Forbidden``,
``InputError``, ...), which ``app.py`` turns into statuses, never with ``HTTPException``.

``HTTPException`` is kept for what only HTTP has: authentication headers, CSRF checks, a login
lockout's ``Retry-After``, the size and the content type of a request body. ``ALLOWED`` lists
each of those places; a new one is either such a concern (add it here) or a domain error in the
wrong clothes.
"""

from __future__ import annotations

import ast
from pathlib import Path

from veritag.server import create_app
from veritag.store import Store

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "veritag"
SERVER = PACKAGE / "server"
WEB = ("fastapi", "starlette")

#: Each ``HTTPException(...)`` the server may build: (module, enclosing function, status).
ALLOWED = {
    ("auth", "_unauthorized", 401),  # no, or a bad, token or session: WWW-Authenticate
    ("auth", "_cookie", 403),  # the X-CSRF-Token header of a cookie session
    ("pages", "_check_form_csrf", 403),  # the csrf_token field of a page's form
    ("throttle", "http", 429),  # a login lockout, with Retry-After
    ("routes.auth", "login", 401),  # a wrong password at POST /login
    ("routes.data", "_too_large", 413),  # an upload over the size limit
    ("routes.data", "import_upload", 422),  # an upload that is not multipart/form-data
}


def _modules(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "migrations" not in p.parts)


def _web_imports(path: Path) -> list[str]:
    """Every import of FastAPI or Starlette in ``path``, at module level or inside a function."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names = [node.module]
        else:
            continue
        found += [f"{path.name}:{node.lineno} {n}" for n in names if n.split(".")[0] in WEB]
    return found


def _http_exceptions(source: str, module: str) -> set[tuple[str, str, int | None]]:
    """``(module, function, status)`` of each ``HTTPException(...)`` call in ``source``."""
    found: set[tuple[str, str, int | None]] = set()

    def visit(node: ast.AST, function: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node.name
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else None
            name = node.func.id if isinstance(node.func, ast.Name) else name
            if name == "HTTPException":
                status = next(
                    (k.value for k in node.keywords if k.arg == "status_code"),
                    node.args[0] if node.args else None,
                )
                code = status.value if isinstance(status, ast.Constant) else None
                found.add((module, function, code))
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(ast.parse(source), "<module>")
    return found


def test_only_the_server_imports_the_web_framework() -> None:
    outside = [p for p in _modules(PACKAGE) if SERVER not in p.parents]
    assert any(p.parent.name == "review" for p in outside)  # the reviewer's domain is looked at
    wrong = [hit for p in outside for hit in _web_imports(p)]
    assert not wrong, wrong


def test_http_exceptions_only_for_http_concerns() -> None:
    found = set().union(
        *(
            _http_exceptions(
                p.read_text(encoding="utf-8"),
                ".".join(p.relative_to(SERVER).with_suffix("").parts),
            )
            for p in _modules(SERVER)
        )
    )
    assert found - ALLOWED == set(), f"domain errors raised as HTTPException: {found - ALLOWED}"
    assert ALLOWED - found == set(), f"ALLOWED names places that are gone: {ALLOWED - found}"


def test_the_checks_see_what_they_look_for(tmp_path: Path) -> None:
    """The AST walks find a web import inside a function and an ``HTTPException`` by keyword,
    by position and through ``fastapi.``, so the tests above cannot pass by seeing nothing."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import fastapi\n"
        "def f():\n"
        "    from starlette.responses import Response\n"
        "    raise fastapi.HTTPException(404)\n"
        "def g():\n"
        "    raise HTTPException(status_code=409, detail='x')\n",
        encoding="utf-8",
    )
    assert [h.split(" ")[1] for h in _web_imports(bad)] == ["fastapi", "starlette.responses"]
    assert _http_exceptions(bad.read_text(encoding="utf-8"), "bad") == {
        ("bad", "f", 404),
        ("bad", "g", 409),
    }


def test_routers_get_the_project_from_deps() -> None:
    """One way to the current project and role: ``deps.project_for``/``project_and_role``, which
    wrap ``auth.project_access``; no router checks membership on its own."""
    users = [
        p.relative_to(SERVER).as_posix()
        for p in _modules(SERVER)
        if "project_access" in p.read_text(encoding="utf-8")
    ]
    assert sorted(users) == ["auth.py", "deps.py"]


def test_every_json_answer_has_a_model(store: Store) -> None:
    """Each success answer of the API that is JSON is a declared model (``response_model``),
    not an open ``{}``; the others are files, pages or empty (204)."""
    document = create_app(store).openapi()
    open_ended = [
        f"{method.upper()} {path} {code}"
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        for code, answer in operation["responses"].items()
        if code.startswith("2")
        and not (answer.get("content") or {}).get("application/json", {}).get("schema")
        and "application/json" in (answer.get("content") or {})
    ]
    assert not open_ended, open_ended
    assert len(document["paths"]) > 30
