"""Arena leaderboards on the server: the JSON board, the page and its interval plot.

==============================================  ==============================================
route                                           who
==============================================  ==============================================
GET /api/v1/projects/{name}/arena/leaderboard   reviewer or admin of the project
GET /p/{name}/arena, /p/{name}/plots/arena.svg  reviewer or admin of the project
==============================================  ==============================================

Tutors never see a board: it names the models, which their labeling page hides. The board is
fitted by ``veritag.arena.project_leaderboard`` (cached per claims watermark); a project that is
not an arena project, or has no votes yet, is a 422 with the reason.
"""

from __future__ import annotations

import html
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from ..errors import VeritagError
from ..store.models import Project
from .auth import current_user
from .common import json_ready, request_store
from .deps import READERS, Me, project_for
from .openapi import errors
from .pages import project_page, render_page
from .responses import LeaderboardOut

__all__ = ["interval_svg", "pages_router", "router"]

router = APIRouter(prefix="/api/v1")
pages_router = APIRouter(include_in_schema=False)

Ties = Literal["half", "davidson"]
Interval = Literal["bootstrap", "sandwich", "none"]


def _board(
    request: Request,
    proj: Project,
    domain: str | None,
    ties: str,
    interval: str,
    rounds: int,
    weighted: bool,
) -> dict[str, Any]:
    from ..arena import project_domains, project_leaderboard

    store = request_store(request)
    domain = domain or None
    board = project_leaderboard(
        store,
        proj,
        domain=domain,
        ties=ties,
        interval=interval,
        rounds=rounds,
        weighted=weighted,
        refit="never",
    )  # a GET weighs by the stored run, never fits
    return {
        "project": proj.name,
        "domain": domain,
        "domains": project_domains(store, proj),
        "ties": board.ties,
        "interval": board.interval,
        "weighted": weighted,
        "tie_param": board.tie_param,
        "models": board.rows(),
    }


@router.get(
    "/projects/{name}/arena/leaderboard",
    response_model=LeaderboardOut,
    responses=errors(400, 401, 403, 404, 422),
)
def leaderboard(
    name: str,
    user: Me,
    request: Request,
    domain: str | None = None,
    ties: Ties = "half",
    interval: Interval = "bootstrap",
    rounds: Annotated[int, Query(ge=2, le=2000)] = 100,
    weighted: bool = True,
) -> dict[str, Any]:
    """The project's models ranked (Bradley-Terry, 95% intervals), over every domain or one;
    ``weighted`` weighs each vote by its tutor's reliability."""
    proj = project_for(request_store(request), name, user, READERS)
    board = _board(request, proj, domain, ties, interval, rounds, weighted)
    return json_ready(board)  # type: ignore[no-any-return]


# --- the page and its plot -----------------------------------------------------------------------


def interval_svg(rows: list[dict[str, Any]], width: int = 640) -> str:
    """The board as a forest plot: one line per model, its interval as a bar and its rating as a
    dot."""
    row_h, left, right, top = 26, 150, 30, 30
    height = top + row_h * len(rows) + 30
    values = [v for r in rows for v in (r["lower"], r["upper"], r["rating"]) if v is not None]
    lo, hi = min(values), max(values)
    pad = max((hi - lo) * 0.05, 1.0)
    lo, hi = lo - pad, hi + pad

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * (width - left - right)

    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">'
        ),
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{left}" y="18" fill="#333">rating with its 95% interval</text>',
    ]
    for k in range(5):
        v = lo + (hi - lo) * (k + 0.5) / 5
        parts.append(
            f'<line x1="{x(v):.1f}" y1="{top - 4}" x2="{x(v):.1f}" y2="{height - 24}" '
            'stroke="#e3e6ec"/>'
            f'<text x="{x(v):.1f}" y="{height - 8}" text-anchor="middle" '
            f'fill="#6b7385">{v:.0f}</text>'
        )
    for i, r in enumerate(rows):
        y = top + row_h * i + row_h / 2
        parts.append(
            f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end" fill="#222">'
            f"{r['rank']}. {html.escape(str(r['model']))}</text>"
        )
        if r["lower"] is not None and r["upper"] is not None:
            parts.append(
                f'<line x1="{x(r["lower"]):.1f}" y1="{y:.1f}" '
                f'x2="{x(r["upper"]):.1f}" y2="{y:.1f}" '
                'stroke="#3b6fd8" stroke-width="4" stroke-linecap="round" opacity="0.45"/>'
            )
        parts.append(
            f'<circle cx="{x(r["rating"]):.1f}" cy="{y:.1f}" r="5" fill="#1d3f8f">'
            f"<title>{html.escape(str(r['model']))}: {r['rating']:.0f}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


_NOTHING = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="420" height="60" viewBox="0 0 420 60">'
    '<rect width="420" height="60" fill="#f5f6f8"/><text x="210" y="35" text-anchor="middle" '
    'font-family="sans-serif" font-size="13" fill="#6b7385">{}</text></svg>'
)


@pages_router.get("/p/{name}/plots/arena.svg", response_model=None)
def arena_plot(name: str, request: Request, domain: str | None = None) -> Response:
    """The board's intervals as an SVG file, for ``<img>`` under the page's CSP (it runs
    nothing)."""
    proj = project_for(request_store(request), name, current_user(request), READERS)
    try:
        svg = interval_svg(_board(request, proj, domain, "half", "bootstrap", 100, True)["models"])
    except VeritagError as exc:
        svg = _NOTHING.format(html.escape(str(exc)[:70]))
    return Response(
        svg,
        media_type="image/svg+xml",
        headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
            "Cache-Control": "no-store",
        },
    )


@pages_router.get("/p/{name}/arena", response_model=None)
def arena_page(name: str, request: Request, domain: str | None = None) -> Response:
    """The leaderboard page (reviewer, admin): a table per the chosen domain and the interval
    plot."""
    entry = project_page(request, name, READERS)
    if isinstance(entry, Response):
        return entry
    user, csrf, _, proj, _ = entry
    board, note = None, None
    try:
        board = _board(request, proj, domain, "half", "bootstrap", 100, True)
    except VeritagError as exc:
        note = str(exc)
    domains: list[str] = board["domains"] if board else []
    if board is None:
        from ..arena import project_domains

        try:
            domains = project_domains(request_store(request), proj)
        except VeritagError:
            domains = []
    return render_page(
        "arena.html",
        status_code=200,
        user=user,
        csrf=csrf,
        project=proj.name,
        board=board,
        note=note,
        domain=domain or "",
        domains=domains,
    )
