"""The reviewer's side of the server: the queue of suspected errors, accept or correct, and the
dashboard's data.

The queue and the verdicts are ``veritag.review`` (``review_queue``, ``review_item``); this router
checks the caller's role, calls them and serialises what they return.

Routes: ``GET /api/v1/projects/{name}/review/queue``,
``POST /api/v1/projects/{name}/review/{item_id}``, ``GET /api/v1/projects/{name}/dashboard``
(reviewer or admin of the project); the page ``/p/{name}/review`` and the dashboard's plots
``/p/{name}/plots/{plot}.svg``.
"""

from __future__ import annotations

import html
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from ..errors import NotFound, VeritagError
from ..limits import SafeJson
from ..review import Action, review_item, review_queue
from ..store.queries import project_schema
from . import dashboard_data
from .auth import current_user
from .common import Id, json_ready, request_store
from .deps import READERS, Me, project_and_role, project_for
from .openapi import errors
from .pages import project_page, render_page
from .responses import DashboardOut, ReviewOut, ReviewQueueOut

__all__ = ["pages_router", "router"]

router = APIRouter(prefix="/api/v1")
pages_router = APIRouter(include_in_schema=False)

# --- the JSON API --------------------------------------------------------------------------------


@router.get(
    "/projects/{name}/review/queue",
    response_model=ReviewQueueOut,
    responses=errors(400, 401, 403, 404, 422),
)
def queue(
    name: str,
    user: Me,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=500, description="How many items to return")] = 20,
) -> dict[str, Any]:
    """Suspected errors and disagreements, most suspicious first (reviewer or admin)."""
    store = request_store(request)
    proj = project_for(store, name, user, READERS)
    entries, total, truth = review_queue(store, proj, limit=limit)
    return {
        "project": proj.name,
        "total": total,
        "items": json_ready(entries),
        "truth": truth.to_json(),
    }


class ReviewBody(BaseModel):
    action: Action
    value: SafeJson = None


@router.post(
    "/projects/{name}/review/{item_id}",
    status_code=201,
    response_model=ReviewOut,
    responses=errors(400, 401, 403, 404, 422),
)
def review(name: str, item_id: Id, body: ReviewBody, user: Me, request: Request) -> dict[str, Any]:
    """Accept the resolved label or correct it: a new claim by the reviewer and a review row."""
    store = request_store(request)
    proj = project_for(store, name, user, READERS)
    done = review_item(store, proj, item_id, user, body.action, body.value)
    return json_ready(done)  # type: ignore[no-any-return]


@router.get(
    "/projects/{name}/dashboard", response_model=DashboardOut, responses=errors(400, 401, 403, 404)
)
def dashboard(name: str, user: Me, request: Request) -> dict[str, Any]:
    """What the dashboard page shows, as data (reviewers get no members list)."""
    store = request_store(request)
    proj, role = project_and_role(store, name, user, READERS)
    data = dashboard_data.gather(store, proj, with_members=role == "admin")
    return json_ready(data)  # type: ignore[no-any-return]


# --- pages ---------------------------------------------------------------------------------------


@pages_router.get("/p/{name}/review", response_model=None)
def review_page(name: str, request: Request) -> Response:
    """One suspected error at a time; static/review.js fetches the queue and posts the verdicts."""
    entry = project_page(request, name, READERS)
    if isinstance(entry, Response):
        return entry
    user, csrf, _, proj, _ = entry
    schema = project_schema(proj)
    single = bool(schema.classes()) and schema.type != "multilabel"
    return render_page(
        "review.html",
        user=user,
        csrf=csrf,
        project=proj.name,
        schema_type=schema.type,
        labels=schema.classes() if single else [],
        instructions=schema.instructions,
        needs_evidence=bool(getattr(schema, "require_evidence", False)),
    )


_NOTHING = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="420" height="60" viewBox="0 0 420 60">'
    '<rect width="420" height="60" fill="#f5f6f8"/><text x="210" y="35" text-anchor="middle" '
    'font-family="sans-serif" font-size="14" fill="#6b7385">{}</text></svg>'
)


@pages_router.get("/p/{name}/plots/{plot}.svg", response_model=None)
def plot_image(name: str, plot: str, request: Request) -> Response:
    """One dashboard plot as an SVG file, so the page can show it with ``<img>`` under its CSP.

    The SVG is served with its own policy that runs nothing; a plot with nothing to draw yet is
    a small image saying so.
    """
    if plot not in dashboard_data.PLOTS:
        raise NotFound(f"no plot named {plot!r}")
    user = current_user(request)
    store = request_store(request)
    proj = project_for(store, name, user, READERS)
    try:
        svg = dashboard_data.plot_svg(store, proj, plot)
    except VeritagError as exc:
        svg = None
        note = str(exc)
    else:
        note = "nothing to draw yet"
    if svg is None:
        svg = _NOTHING.format(html.escape(note[:70]))
    return Response(
        svg,
        media_type="image/svg+xml",
        headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
            "Cache-Control": "no-store",
        },
    )
