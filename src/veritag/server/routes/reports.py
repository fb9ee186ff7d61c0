"""A project's reports, as a self-contained HTML page or its data: ``GET .../reports/quality``
(``veritag report``) and ``GET .../reports/automation`` (``veritag audit``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from ...limits import SafeText
from ..common import OptionalId, StoredMethod, check_method, request_store
from ..deps import READERS, Me, project_for
from ..openapi import errors
from ..responses import AutomationReportOut, QualityReportOut

__all__ = ["REPORT_CSP", "router"]

router = APIRouter(prefix="/api/v1")

#: Report pages are self-contained: inline CSS and SVG, never a script or anything fetched.
REPORT_CSP = (
    "default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "font-src 'none'; connect-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
STALE_AUDIT = (
    "claims or gold labels were added since this run; the audit replays the run's thresholds on "
    "the current labels (automate again to decide anew)"
)
#: The OpenAPI of a 200 that is a report page or, with ``format=json``, its data.
_HTML_DOC = {
    "description": "The report: a self-contained HTML page, or its data (format=json)",
    "content": {"text/html": {"schema": {"type": "string"}}},
}

Format = Annotated[
    Literal["html", "json"], Query(description="html: the self-contained page; json: its data")
]


def render_page(html: str) -> HTMLResponse:
    out = HTMLResponse(html)
    out.headers["Content-Security-Policy"] = REPORT_CSP
    return out


@router.get(
    "/projects/{name}/reports/quality",
    response_model=QualityReportOut,
    responses={200: _HTML_DOC, **errors(400, 401, 403, 404, 409, 422)},
)
def quality_report(
    name: str,
    user: Me,
    request: Request,
    format: Format = "html",
    method: StoredMethod = None,
    domain: Annotated[
        SafeText | None, Query(description="Item metadata field to break reliability down by")
    ] = None,
    top: Annotated[
        int, Query(ge=1, le=10_000, description="How many suspected errors to list")
    ] = 20,
) -> HTMLResponse | dict[str, Any]:
    """Per-source reliability, agreement and the labels most likely wrong (``veritag report``),
    from the newest stored truth run: a GET never fits, so 409 before the project was first
    resolved, and ``truth`` says how many claims came after the run."""
    from ...report import render_html
    from ...report.project import project_report

    if method is not None:
        check_method(method)
    store = request_store(request)
    proj = project_for(store, name, user, READERS)
    built, warned = project_report(store, proj, method=method, domain=domain, top=top)
    if format == "json":
        return {"report": built.to_dict(), "truth": built.truth, "warnings": warned}
    return render_page(render_html(built, title=f"veritag report: {proj.name}"))


@router.get(
    "/projects/{name}/reports/automation",
    response_model=AutomationReportOut,
    responses={200: _HTML_DOC, **errors(400, 401, 403, 404, 422)},
)
def automation_report(
    name: str,
    user: Me,
    request: Request,
    format: Format = "html",
    run: OptionalId = None,
) -> HTMLResponse | dict[str, Any]:
    """The audit of an automation run: calibration, rate against accuracy, bias per slice
    (``veritag audit``)."""
    from ...report.automation import build_automation_report, render_automation_html
    from ...report.project import automation_audit_data

    store = request_store(request)
    proj = project_for(store, name, user, READERS)
    data, current = automation_audit_data(store, proj, run_id=run)
    built = build_automation_report(data)
    if format == "json":
        stale = [] if current else [STALE_AUDIT]
        return {"report": built.to_dict(), "current": current, "warnings": stale}
    return render_page(
        render_automation_html(built, title=f"veritag automation audit: {proj.name}")
    )
