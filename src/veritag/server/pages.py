"""The server-rendered web UI: login, the project list, the tutor's labeling page, a dashboard.

Pages are Jinja2 templates with autoescaping on; item text reaches the page only through the JSON
API and is set with ``textContent``, so HTML in an item is shown as text and never runs. Every
page is sent with a Content-Security-Policy that allows only this server's own script and style
files (no inline script or style at all).

Sessions are the API's (``auth.start_login``): the labeling page carries the session's CSRF token
in ``<meta name="csrf-token">`` for the ``X-CSRF-Token`` header of its API calls, and the HTML
forms that post with the cookie (``/logout``) carry it in a hidden ``csrf_token`` field. The login
form is protected against login CSRF with a double-submit cookie, and throttled like
``POST /api/v1/login`` (see ``throttle``): a locked account or address gets the form back with 429.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa
from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader

from ..errors import Forbidden, VeritagError
from ..limits import text_problem
from ..routing import service as routing
from ..schema import ArenaSchema, PairwiseSchema, parse_schema
from ..store import audit
from ..store.engine import Store
from ..store.models import Claim, LoginSession, Membership, Project, Source, User
from ..store.queries import list_projects, standing_claims
from . import throttle
from .auth import (
    COOKIE,
    Principal,
    authenticate,
    end_login,
    hash_secret,
    set_session_cookie,
    start_login,
)
from .common import request_store
from .deps import READERS, project_and_role

__all__ = [
    "CSP",
    "STATIC_DIR",
    "ProjectPage",
    "admin_page",
    "project_page",
    "render_page",
    "router",
]

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
#: The policy of every page: this server's own files only; no inline script or style, no frames.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
#: The double-submit cookie of the login form.
LOGIN_CSRF_COOKIE = "veritag_login_csrf"

_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)

router = APIRouter(include_in_schema=False)


def render_page(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    out = HTMLResponse(_env.get_template(name).render(**context), status_code=status_code)
    out.headers["Content-Security-Policy"] = CSP
    out.headers["Cache-Control"] = "no-store"
    return out


def _to_login() -> RedirectResponse:
    return RedirectResponse("/login", status_code=303)


def _session_user(request: Request) -> tuple[Principal, str] | None:
    """The cookie's user and their session's CSRF token, or None when not logged in."""
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return None
    digest = hash_secret(cookie)
    with request_store(request).session() as session:
        row = session.execute(
            sa.select(LoginSession, User)
            .join(User, User.id == LoginSession.user_id)
            .where(LoginSession.id == digest, LoginSession.expires_at > datetime.now(UTC))
        ).first()
    if row is None or not hmac.compare_digest(row[0].id, digest):
        return None
    login, user = row
    return Principal(user.id, user.username, user.role, "session"), login.csrf_token


def _check_form_csrf(sent: str, expected: str) -> None:
    if not hmac.compare_digest(sent.encode("utf-8"), expected.encode("utf-8")):
        raise HTTPException(
            status_code=403, detail="missing or wrong csrf_token form field (CSRF check)"
        )


def _error(user: Principal, csrf: str, exc: VeritagError) -> HTMLResponse:
    return render_page("error.html", exc.status, user=user, csrf=csrf, message=str(exc))


class ProjectPage(NamedTuple):
    """What a project page starts with: who asks, their session's CSRF token, the store, the
    project and the caller's role in it."""

    user: Principal
    csrf: str
    store: Store
    project: Project
    role: str


def project_page(request: Request, name: str, roles: tuple[str, ...]) -> Response | ProjectPage:
    """The ``ProjectPage`` of a request for project ``name`` by a holder of one of ``roles``, or
    the response that ends the request (to the login page, or a 403/404 page)."""
    who = _session_user(request)
    if who is None:
        return _to_login()
    user, csrf = who
    store = request_store(request)
    try:
        proj, role = project_and_role(store, name, user, roles)
    except VeritagError as exc:  # the project is unknown (404) or not the caller's (403)
        return _error(user, csrf, exc)
    return ProjectPage(user, csrf, store, proj, role)


def admin_page(request: Request) -> Response | tuple[Principal, str]:
    """What a global admin's page starts with: the user and their CSRF token, or the response
    that ends the request (to the login page, or a 403 page for anyone but a global admin)."""
    who = _session_user(request)
    if who is None:
        return _to_login()
    user, csrf = who
    if user.role != "admin":
        return _error(user, csrf, Forbidden("this page is for global admins"))
    return user, csrf


# --- login and logout ----------------------------------------------------------------------------


def _login_form(
    request: Request, error: str = "", username: str = "", status_code: int = 200
) -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    out = render_page("login.html", status_code, error=error, username=username, login_csrf=token)
    out.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        path="/login",
        secure=request.url.scheme == "https",
    )
    return out


@router.get("/login", response_model=None)
def login_page(request: Request) -> Response:
    if _session_user(request) is not None:
        return RedirectResponse("/", status_code=303)
    return _login_form(request)


@router.post("/login", response_model=None)
def login_submit(
    request: Request, username: str = Form(""), password: str = Form(""), login_csrf: str = Form("")
) -> Response:
    """Check the password; set the session cookie (as ``POST /api/v1/login`` does) and go to
    ``/``."""
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(
        login_csrf.encode("utf-8"), expected.encode("utf-8")
    ):
        return _login_form(request, "The form expired; please try again.", username, 403)
    if text_problem(username) or text_problem(password):
        return _login_form(
            request, "The username or password holds a character that is not allowed.", "", 422
        )
    store, address = request_store(request), throttle.client_address(request)
    with store.session() as session:
        try:
            throttle.check(session, username, address)
        except throttle.Throttled as exc:
            throttle.locked_out(store, username, address, exc)
            out = _login_form(
                request,
                f"Too many failed logins; try again in {exc.retry_after} seconds.",
                username,
                429,
            )
            out.headers["Retry-After"] = str(exc.retry_after)
            return out
        user = authenticate(session, username, password)
        if user is not None:
            throttle.record_success(session, username)
            secret, _csrf, expires = start_login(session, user, client=address)
    if user is None:
        throttle.failed(store, username, address)
        return _login_form(request, "Wrong username or password.", username, 401)
    out = RedirectResponse("/", status_code=303)
    set_session_cookie(out, request, secret, expires)
    out.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return out


@router.post("/logout", response_model=None)
def logout_submit(request: Request, csrf_token: str = Form("")) -> Response:
    who = _session_user(request)
    if who is not None:
        _check_form_csrf(csrf_token, who[1])
        with request_store(request).session() as session:
            end_login(
                session,
                request.cookies.get(COOKIE),
                audit.Actor(who[0].username, who[0].id, throttle.client_address(request)),
            )
    out = _to_login()
    out.delete_cookie(COOKIE, path="/")
    return out


# --- pages ---------------------------------------------------------------------------------------


@router.get("/", response_model=None)
def home(request: Request) -> Response:
    """The projects the user can see, with links by role."""
    who = _session_user(request)
    if who is None:
        return _to_login()
    user, csrf = who
    with request_store(request).session() as session:
        if user.role == "admin":
            rows = [(p, "admin") for p in list_projects(session)]
        else:
            rows = [
                (p, role)
                for p, role in session.execute(
                    sa.select(Project, Membership.role)
                    .join(Membership, Membership.project_id == Project.id)
                    .where(Membership.user_id == user.id)
                    .order_by(Project.name)
                )
            ]
        projects = [
            {
                "name": p.name,
                "description": p.description,
                "type": (p.task_schema or {}).get("type", ""),
                "role": role,
            }
            for p, role in rows
        ]
    return render_page("home.html", user=user, csrf=csrf, projects=projects)


def _progress(store: Store, project: Project, username: str) -> dict[str, int]:
    """Labels the tutor has given in the project: today (UTC) and in all."""
    start = datetime.combine(datetime.now(UTC).date(), time(0), tzinfo=UTC)
    mine = (
        sa.select(sa.func.count())
        .select_from(Claim)
        .join(Source, Source.id == Claim.source_id)
        .where(
            Claim.project_id == project.id,
            Source.kind == "human",
            Source.name == username,
            standing_claims(),
        )
    )
    with store.engine.connect() as conn:
        total = conn.scalar(mine) or 0
        today = conn.scalar(mine.where(Claim.created_at >= start)) or 0
    return {"today": int(today), "total": int(total)}


@router.get("/p/{name}/label", response_model=None)
def label_page(name: str, request: Request) -> Response:
    """The tutor's labeling page; the item itself is leased and submitted by static/label.js.

    The page's buttons are rendered here, one per choice (``value`` is what the page submits);
    the whole schema goes to the script as JSON in ``data-schema`` (autoescaped attribute).
    """
    entry = project_page(request, name, ("tutor",))
    if isinstance(entry, Response):
        return entry
    user, csrf, store, proj, _ = entry
    schema = parse_schema(proj.task_schema)
    choices: list[dict[str, str]]
    if isinstance(
        schema, PairwiseSchema
    ):  # the server hides which response is A: the page says left and right
        choices = [
            {"value": "left", "text": "Left is better"},
            {"value": "right", "text": "Right is better"},
            {"value": "tie", "text": "Tie"},
        ]
        if isinstance(schema, ArenaSchema):
            choices.append({"value": "both_bad", "text": "Both bad"})
    else:  # free text has neither classes nor labels: no buttons
        choices = [
            {"value": c, "text": c} for c in (schema.classes() or getattr(schema, "labels", []))
        ]
    return render_page(
        "label.html",
        user=user,
        csrf=csrf,
        project=proj.name,
        schema_type=schema.type,
        choices=choices,
        schema=schema,
        instructions=schema.instructions,
        schema_json=schema.model_dump_json(),
        progress=_progress(store, proj, user.username),
    )


@router.get("/p/{name}/dashboard", response_model=None)
def dashboard(name: str, request: Request) -> Response:
    """Where a project stands (reviewer, admin): progress, automation and its guarantee, tutor
    scorecards, plots; admins also manage members, import and export (static/admin.js)."""
    from . import dashboard_data

    entry = project_page(request, name, READERS)
    if isinstance(entry, Response):
        return entry
    user, csrf, store, proj, role = entry
    note = None
    try:
        status = routing.routing_status(store, proj, refit="never")
    except (
        VeritagError
    ) as exc:  # e.g. a task type that routing does not handle: the rest still shows
        status, note = None, str(exc)
    data = dashboard_data.gather(
        store, proj, with_members=role == "admin", status=status, routing_note=note
    )
    schema = parse_schema(proj.task_schema)
    return render_page(
        "dashboard.html",
        user=user,
        csrf=csrf,
        project=proj.name,
        role=role,
        data=data,
        is_admin=role == "admin",
        global_admin=user.role == "admin",
        plots=dashboard_data.PLOTS,
        quality_plots=bool(schema.classes())
        and schema.type != "multilabel"
        and data.progress.labeled > 0,
    )
