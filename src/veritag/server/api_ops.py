"""The project operations of the command line as API calls under ``/api/v1``.

Each route calls the library function its ``veritag`` command calls; who may call it:

===========================================  =========================================  ================
route                                        does what ``veritag ...`` does             who (in project)
===========================================  =========================================  ================
POST /projects/{name}/import                 ``import`` of an uploaded file             admin
GET  /projects/{name}/export?format=         ``export``, as a download                  reviewer, admin
GET  /projects/{name}/status                 ``status NAME --json``                     any member
POST /projects/{name}/resolve                ``resolve --project``: stores a run        reviewer, admin
POST /projects/{name}/autolabel              ``autolabel``, as a job (202)              admin
POST /projects/{name}/automate               ``automate``, as a job (202)               admin
GET  /projects/{name}/queue                  ``automate --queue-out``                   reviewer, admin
GET  /projects/{name}/reports/quality        ``report`` (HTML page or JSON)             reviewer, admin
GET  /projects/{name}/reports/automation     ``audit`` (HTML page or JSON)              reviewer, admin
GET  /jobs/{job_id}                          where a job stands                         who started it
===========================================  =========================================  ================

A global admin is admin of every project and sees every job. Jobs run one at a time per
server process; their records are kept in the database, so any process answers a poll and a
restart keeps them (see ``jobs``).
"""

from __future__ import annotations

import csv
import dataclasses
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile

from ..errors import RowErrors, VeritagError
from ..io import EXPORT_FORMATS, FORMATS, ColumnMap, export_project, import_file
from ..labelers.registry import LABELER_NAMES
from ..limits import SafeText, Seed
from ..resolve import (
    DEFAULT_METHOD,
    METHODS,
    OPEN_METHOD,
    current_truth,
    project_source_rows,
    resolve_and_store,
)
from ..status import project_status
from ..store import audit
from ..store.engine import Store
from ..store.models import ImportRecord, Project
from ..store.queries import (
    source_names,
)
from . import jobs
from .audit import request_actor
from .auth import project_access
from .common import OptionalId, json_ready, request_store
from .deps import READERS, Me, project_for
from .openapi import error_body, errors
from .responses import (
    AutomationReportOut,
    ImportOut,
    JobOut,
    JobStartedOut,
    QualityReportOut,
    QueueOut,
    ResolveOut,
    StatusOut,
)

__all__ = ["MAX_UPLOAD_BYTES", "REPORT_CSP", "router"]

router = APIRouter(prefix="/api/v1", lifespan=jobs.lifespan)

#: The largest file ``POST .../import`` takes.
MAX_UPLOAD_BYTES = 200 * 1024 * 1024
#: Room for the multipart framing and form fields around the file in a request's Content-Length.
_FORM_OVERHEAD = 64 * 1024
#: Bad rows an import with ``skip_invalid`` lists in its answer (all of them are counted).
SHOWN_BAD_ROWS = 1000
#: Report pages are self-contained: inline CSS and SVG, never a script or anything fetched.
REPORT_CSP = (
    "default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "font-src 'none'; connect-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
STALE_AUDIT = (
    "claims or gold labels were added since this run; the audit replays the run's thresholds on the "
    "current labels (automate again to decide anew)"
)
#: Download name suffix and media type per export format (``hf`` is a folder, sent zipped).
_EXPORT_FILES = {
    "jsonl": (".jsonl", "application/x-ndjson"),
    "csv": (".csv", "text/csv; charset=utf-8"),
    "parquet": (".parquet", "application/vnd.apache.parquet"),
    "hf": ("-hf.zip", "application/zip"),
    "long": ("-long.csv", "text/csv; charset=utf-8"),
    "dpo": ("-dpo.jsonl", "application/x-ndjson"),
}


#: The OpenAPI of a 200 that is a report page or, with ``format=json``, its data.
_HTML_DOC = {
    "description": "The report: a self-contained HTML page, or its data (format=json)",
    "content": {"text/html": {"schema": {"type": "string"}}},
}
#: The OpenAPI of a 202 that started a job.
_STARTED_DOC = {
    "description": "Started; poll the job at Location",
    "headers": {"Location": {"description": "The job's status URL", "schema": {"type": "string"}}},
}


def _download_doc() -> dict[str, Any]:
    """The OpenAPI of an export: one file, of the media type of its format."""
    media = sorted(
        {m.split(";")[0] for _, m in _EXPORT_FILES.values()} | {"application/octet-stream"}
    )
    integer = {"schema": {"type": "integer"}}
    return {
        "description": "The export as a file download",
        "content": {m: {"schema": {"type": "string", "format": "binary"}} for m in media},
        "headers": {
            "X-Veritag-Rows": {"description": "Rows written", **integer},
            "X-Veritag-Run": {
                "description": "The stored truth run the labels come from",
                **integer,
            },
            "X-Veritag-Claims-Since": {
                "description": "Claims added after that run (0: it covers "
                "them all; POST .../resolve to fit again)",
                **integer,
            },
        },
    }


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise HTTPException(
            status_code=422, detail=f"unknown method {method!r}; choose one of {', '.join(METHODS)}"
        )


def _safe_name(name: str, default: str) -> str:
    """A file name that is only a name: no folders, no odd characters, not too long."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base)[-200:].lstrip(".")
    return base or default


# --- import --------------------------------------------------------------------------------------


class ImportOptions(BaseModel):
    """The form fields of an upload besides ``file``: the options of ``veritag import``."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["csv", "tsv", "jsonl", "parquet"] | None = Field(
        default=None, description=f"One of {', '.join(FORMATS)} [default: from the file name]"
    )
    id: SafeText | None = Field(
        default=None, description="Column with the item id [default: id, else task]"
    )
    text: SafeText | None = Field(
        default=None, description="Column with the item text [default: text]"
    )
    field: list[SafeText] | None = Field(
        default=None, description="Item field columns (repeat) [default: every unmapped column]"
    )
    meta: list[SafeText] = Field(
        default=[], description="Metadata columns for slices, e.g. domain (repeat)"
    )
    gold: SafeText | None = Field(
        default=None, description="Column with known-correct (gold) labels"
    )
    label: SafeText | None = Field(
        default=None, description="Column with human labels [default: label, with a worker column]"
    )
    worker: SafeText | None = Field(
        default=None, description="Column naming who gave each label [default: worker]"
    )
    source: SafeText | None = Field(
        default=None, description="Annotator name for labels when there is no worker column"
    )
    probs: SafeText | None = Field(
        default=None, description="Column with model probabilities (JSON list or object)"
    )
    model: SafeText = Field(
        default="model", description="Name of the model that produced the probabilities"
    )
    encoding: SafeText = Field(default="utf-8", description="Text encoding of CSV/JSONL files")
    skip_invalid: bool = Field(
        default=False, description="Import the good rows and list the bad ones"
    )

    def columns(self) -> ColumnMap:
        return ColumnMap(
            id=self.id,
            text=self.text,
            fields=self.field,
            meta=self.meta,
            gold=self.gold,
            label=self.label,
            worker=self.worker,
            source=self.source,
            probs=self.probs,
            model=self.model,
        )


_REPEATED = ("field", "meta")


def _upload_schema() -> dict[str, Any]:
    schema = ImportOptions.model_json_schema()
    schema["properties"] = {"file": {"type": "string", "format": "binary"}, **schema["properties"]}
    schema["required"] = ["file"]
    return schema


def _bad_options(exc: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'form'}: {e['msg']}" for e in exc.errors()]
    return "bad import option(s): " + "; ".join(parts)


def _save_upload(upload: UploadFile, target: Path, limit: int) -> int:
    """Copy the upload to ``target``; 413 once it passes ``limit`` bytes."""
    size = 0
    upload.file.seek(0)
    with target.open("wb") as fh:
        while chunk := upload.file.read(1 << 20):
            size += len(chunk)
            if size > limit:
                raise HTTPException(
                    status_code=413, detail=f"the upload is larger than {limit:,} bytes"
                )
            fh.write(chunk)
    return size


def _bad_rows(report: Path, tmp: str, filename: str) -> list[dict[str, Any]]:
    """The first bad rows of a ``skip_invalid`` import, read back from the importer's report."""
    if not report.is_file():
        return []
    with report.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        unit = header[1] if len(header) > 1 else "line"
        rows = []
        for row in reader:
            if len(rows) >= SHOWN_BAD_ROWS:
                break
            file, line, field, message = row
            rows.append(
                {
                    "file": filename if file == tmp else file,
                    unit: int(line),
                    "field": field or None,
                    "message": message,
                }
            )
    return rows


def _run_import(
    store: Store, proj: Project, upload: UploadFile, filename: str, options: ImportOptions
) -> dict[str, Any]:
    """Write the upload to a temporary folder under its own name, import it, and speak of it by that name."""
    with tempfile.TemporaryDirectory(prefix="veritag-upload-") as folder:
        path = Path(folder) / filename
        size = _save_upload(upload, path, MAX_UPLOAD_BYTES)
        report = Path(folder) / "bad-rows.csv"
        tmp = str(path)
        try:
            result = import_file(
                store,
                proj,
                path,
                options.columns(),
                fmt=options.format,
                encoding=options.encoding,
                skip_invalid=options.skip_invalid,
                report=report,
            )
        except RowErrors as exc:
            message = str(exc).replace(tmp, filename).replace("--skip-invalid", "skip_invalid=true")
            errors = [{**dataclasses.asdict(e), "file": filename} for e in exc.errors]
            raise _RowErrorsResponse(message, errors, exc.total) from None
        except VeritagError as exc:
            raise HTTPException(
                status_code=exc.status, detail=str(exc).replace(tmp, filename)
            ) from None
        with store.engine.begin() as conn:  # the record names the upload, not the temporary file
            conn.execute(
                sa.update(ImportRecord)
                .where(ImportRecord.project_id == proj.id, ImportRecord.path == tmp)
                .values(path=filename)
            )
        bad = _bad_rows(report, tmp, filename) if result.rows_skipped else []
    if (
        result.claims_added or result.gold_added
    ):  # a write: fit again once due, so GETs read fresh labels
        current_truth(store, proj, refit="due")
    return {
        "file": filename,
        "bytes": size,
        "rows": result.rows,
        "items_added": result.items_added,
        "items_filled": result.items_filled,
        "claims_added": result.claims_added,
        "gold_added": result.gold_added,
        "rows_skipped": result.rows_skipped,
        "errors": bad,
        "imported_before": None
        if result.imported_before is None
        else result.imported_before.isoformat(),
    }


class _RowErrorsResponse(Exception):
    """Bad rows of an upload: answered as 422 with the message and each row's file and line."""

    def __init__(self, message: str, rows: list[dict[str, Any]], total: int) -> None:
        super().__init__(message)
        self.body = error_body(message, errors=rows, total=total)


@router.post(
    "/projects/{name}/import",
    response_model=ImportOut,
    responses=errors(400, 401, 403, 404, 413, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": _upload_schema()}},
        }
    },
)
async def import_upload(name: str, user: Me, request: Request) -> Any:
    """Import one uploaded file (``multipart/form-data``: ``file`` plus the options of ``veritag import``).
    Labels or gold imported past the refit threshold (``resolve.current``) resolve the project
    again before the answer, so the GETs that follow read labels that include them.

    The caller is checked before the body is read, and a Content-Length over the limit is refused
    unread (413). A file with bad rows is refused whole (422, each row's file and line) unless
    ``skip_invalid`` keeps the good ones and lists the bad.
    """
    store = request_store(request)
    proj = await run_in_threadpool(project_for, store, name, user, ("admin",))
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES + _FORM_OVERHEAD:
        raise HTTPException(
            status_code=413, detail=f"the upload is larger than {MAX_UPLOAD_BYTES:,} bytes"
        )
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise HTTPException(
            status_code=422, detail="send the file as multipart/form-data in a field named 'file'"
        )
    async with request.form(max_files=1, max_fields=100) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPException(
                status_code=422, detail="no file: send it in a multipart field named 'file'"
            )
        given: dict[str, Any] = {}
        for key in form:
            if key == "file":
                continue
            values = [v for v in form.getlist(key) if isinstance(v, str) and v != ""]
            if values:
                given[key] = values if key in _REPEATED else values[-1]
        try:
            options = ImportOptions.model_validate(given)
        except ValidationError as exc:
            raise HTTPException(status_code=422, detail=_bad_options(exc)) from None
        filename = _safe_name(upload.filename or "", "upload")
        try:
            return await run_in_threadpool(_run_import, store, proj, upload, filename, options)
        except _RowErrorsResponse as exc:
            return JSONResponse(exc.body, status_code=422)


# --- export and status ---------------------------------------------------------------------------


@router.get(
    "/projects/{name}/export",
    response_class=FileResponse,
    responses={200: _download_doc(), **errors(400, 401, 403, 404, 409, 422)},
)
def export(
    name: str,
    user: Me,
    request: Request,
    format: Annotated[str, Query(description=f"One of {', '.join(EXPORT_FORMATS)}")] = "jsonl",
    method: Annotated[
        str | None,
        Query(
            description="Labels of the newest stored run of this method [default: the newest run]"
        ),
    ] = None,
    csv_raw: Annotated[
        bool,
        Query(
            description="CSV: keep cells starting with = + - @ as they are, "
            "not prefixed with ' against formula injection"
        ),
    ] = False,
) -> FileResponse:
    """The project as a file download, as ``veritag export`` writes it (``hf``: the folder, zipped),
    with the labels of the newest stored truth run: a GET never fits, so 409 before the project
    was first resolved, and ``X-Veritag-Claims-Since`` says how many claims came after the run."""
    store = request_store(request)
    proj = project_for(store, name, user, READERS)
    if format not in EXPORT_FORMATS:
        raise HTTPException(
            status_code=422,
            detail=f"unknown export format {format!r}; choose one of {', '.join(EXPORT_FORMATS)}",
        )
    if method is not None:
        _check_method(method)
    suffix, media = _EXPORT_FILES.get(format, (f".{format}", "application/octet-stream"))
    download = _safe_name(proj.name, "project") + suffix
    folder = Path(tempfile.mkdtemp(prefix="veritag-export-"))
    try:
        out = folder / ("hf" if format == "hf" else download)
        result = export_project(
            store, proj, out, format, method=method, csv_raw=csv_raw, refit="never"
        )
        if format == "hf":
            out = Path(shutil.make_archive(str(folder / "hf-zip"), "zip", root_dir=out))
        audit.record(
            store,
            "export",
            actor=request_actor(request, user),
            project=proj.name,
            target=format,
            detail={"rows": result.rows, "run_id": result.run_id},
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    headers = {"X-Veritag-Rows": str(result.rows)}
    if result.run_id is not None:
        headers["X-Veritag-Run"] = str(result.run_id)
        headers["X-Veritag-Claims-Since"] = str(result.claims_since)
    return FileResponse(
        out,
        media_type=media,
        filename=download,
        headers=headers,
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )


@router.get("/projects/{name}/status", response_model=StatusOut, responses=errors(401, 403, 404))
def status(name: str, user: Me, request: Request) -> dict[str, Any]:
    """What ``veritag status NAME --json`` prints: counts, imports, the latest resolution and automation."""
    with request_store(request).session() as session:
        proj, role = project_access(session, name, user)
        detail = project_status(session, proj)
    return json_ready(
        {
            "project": detail.row,
            "role": role,
            "imports": detail.imports,  # type: ignore[no-any-return]
            "resolution": detail.resolution,
            "automation": detail.automation,
        }
    )


# --- resolve -------------------------------------------------------------------------------------


class ResolveBody(BaseModel):
    method: str = Field(
        default=DEFAULT_METHOD, description=f"One of {', '.join(METHODS)} (ds: Dawid-Skene)"
    )


@router.post(
    "/projects/{name}/resolve",
    status_code=201,
    response_model=ResolveOut,
    responses=errors(400, 401, 403, 404, 422),
)
def resolve(
    name: str, user: Me, request: Request, body: ResolveBody | None = None
) -> dict[str, Any]:
    """Resolve one label per item from all claims and store the run (``veritag resolve --project``)."""
    method = (body or ResolveBody()).method
    _check_method(method)
    store = request_store(request)
    proj = project_for(store, name, user, READERS)
    resolution = resolve_and_store(store, proj, method)
    with store.engine.connect() as conn:
        rows = project_source_rows(resolution, source_names(conn, ids=resolution.source_ids()))
    run = resolution.run
    assert run is not None
    counts = resolution.basis_counts()
    sources = [
        {"source": n, "kind": kind, "claims": claims, "accuracy": acc}
        for n, kind, claims, acc in rows
    ]
    return json_ready(
        {  # type: ignore[no-any-return]
            "run": run.run_id,
            "method": run.method,
            "requested_method": method,
            "engine_version": run.engine_version,
            "open_ended": run.method == OPEN_METHOD,
            "iterations": run.n_iter,
            "converged": run.converged,
            "items": int(resolution.item_ids.size),
            "from": counts,
            "sources": sources,
        }
    )


# --- jobs: autolabel and automate ----------------------------------------------------------------


def _started(response: Response, job: jobs.Job) -> dict[str, Any]:
    url = f"/api/v1/jobs/{job.id}"
    response.headers["Location"] = url
    return {"job": job.id, "kind": job.kind, "state": job.state, "status_url": url}


class AutolabelBody(BaseModel):
    labeler: str = Field(default="minilm", description=f"One of {', '.join(LABELER_NAMES)}")
    fields: list[SafeText] = Field(
        default=[], description="Item fields appended to the text, e.g. a hypothesis"
    )
    folds: int = Field(
        default=5, ge=2, le=50, description="Folds for the out-of-fold probabilities"
    )
    seed: Seed = 0


@router.post(
    "/projects/{name}/autolabel",
    status_code=202,
    response_model=JobStartedOut,
    responses={202: _STARTED_DOC, **errors(400, 401, 403, 404, 422)},
)
def autolabel(
    name: str, body: AutolabelBody, user: Me, request: Request, response: Response
) -> dict[str, Any]:
    """Train a labeler on the human labels and store its probabilities for every item (a job)."""
    from ..automation.autolabel import autolabel_project

    if body.labeler not in LABELER_NAMES:
        raise HTTPException(
            status_code=422,
            detail=f"unknown labeler {body.labeler!r}; choose one of {', '.join(LABELER_NAMES)}",
        )
    store = request_store(request)
    proj = project_for(store, name, user, ("admin",))

    def work() -> Any:
        return json_ready(
            autolabel_project(
                store,
                proj,
                labeler=body.labeler,
                fields=body.fields,
                folds=body.folds,
                seed=body.seed,
            )
        )

    job = jobs.job_runner(request.app).submit(
        work, owner=user.id, kind="autolabel", project=proj.name
    )
    return _started(response, job)


class AutomateBody(BaseModel):
    target: float = Field(
        default=0.98, gt=0, lt=1, description="Accuracy the auto-accepted labels must reach"
    )
    delta: float = Field(
        default=0.05, gt=0, lt=1, description="Allowed probability that they do not"
    )
    model: SafeText | None = Field(
        default=None, description="Model source whose labels to accept [default: the newest]"
    )
    slice: SafeText | None = Field(
        default=None, description="Item metadata field: one threshold per value"
    )
    audit_rate: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Share of items in the human audit "
        "[default: the project's last rate, else 10% and at least 200 items]",
    )
    min_audit: int = Field(default=0, ge=0, description="Fewest audited items above a threshold")
    simultaneous: bool = Field(default=False, description="Split delta over the slices")
    seed: Seed = 0


@router.post(
    "/projects/{name}/automate",
    status_code=202,
    response_model=JobStartedOut,
    responses={202: _STARTED_DOC, **errors(400, 401, 403, 404, 422)},
)
def automate(
    name: str, body: AutomateBody, user: Me, request: Request, response: Response
) -> dict[str, Any]:
    """Decide which model labels to accept on audit evidence and store the run (a job; result as
    ``veritag automate --json``)."""
    from ..automation.project import automate_project

    store = request_store(request)
    proj = project_for(store, name, user, ("admin",))

    def work() -> Any:
        result = automate_project(
            store,
            proj,
            target=body.target,
            delta=body.delta,
            model=body.model,
            slice_field=body.slice,
            audit_rate=body.audit_rate,
            min_audit=body.min_audit,
            simultaneous=body.simultaneous,
            seed=body.seed,
        )
        return json_ready({**dataclasses.asdict(result), "automation_rate": result.automation_rate})

    job = jobs.job_runner(request.app).submit(
        work, owner=user.id, kind="automate", project=proj.name
    )
    return _started(response, job)


@router.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    response_model_exclude_unset=True,
    responses=errors(401, 404),
)
def job(job_id: str, user: Me, request: Request) -> dict[str, Any]:
    """Where a job stands; only its starter (or a global admin) may see it, others get 404."""
    found = jobs.job_runner(request.app).get(job_id)
    if found is None or (found.owner != user.id and user.role != "admin"):
        raise HTTPException(
            status_code=404,
            detail=f"no job {job_id!r} of yours: the id is unknown or the "
            "job was started by another user",
        )
    return found.to_json()


@router.get(
    "/projects/{name}/queue", response_model=QueueOut, responses=errors(400, 401, 403, 404, 422)
)
def queue(
    name: str,
    user: Me,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100_000, description="Most items to list")] = 1000,
    run: OptionalId = None,
) -> dict[str, Any]:
    """The items that still need a human after an automation run, audit first (``--queue-out``)."""
    from ..automation.project import latest_automation_run, queue_rows

    store = request_store(request)
    proj = project_for(store, name, user, READERS)
    if run is None:
        with store.engine.connect() as conn:
            latest = latest_automation_run(conn, proj.id)
        if latest is None:
            raise HTTPException(
                status_code=404,
                detail=f"project {name!r} has no automation run yet; "
                f"POST /api/v1/projects/{name}/automate first",
            )
        run = int(latest.id)
    rows = queue_rows(store, proj, run)
    return {
        "run": run,
        "total": len(rows),
        "items": [
            {"id": i, "reason": reason, "model_confidence": conf, "slice": s}
            for i, reason, conf, s in rows[:limit]
        ],
    }


# --- reports -------------------------------------------------------------------------------------


def render_page(html: str) -> HTMLResponse:
    out = HTMLResponse(html)
    out.headers["Content-Security-Policy"] = REPORT_CSP
    return out


Format = Annotated[
    Literal["html", "json"], Query(description="html: the self-contained page; json: its data")
]


@router.get(
    "/projects/{name}/reports/quality",
    response_model=QualityReportOut,
    responses={200: _HTML_DOC, **errors(400, 401, 403, 404, 422)},
)
def quality_report(
    name: str,
    user: Me,
    request: Request,
    format: Format = "html",
    method: str = DEFAULT_METHOD,
    domain: Annotated[
        SafeText | None, Query(description="Item metadata field to break reliability down by")
    ] = None,
    top: Annotated[
        int, Query(ge=1, le=10_000, description="How many suspected errors to list")
    ] = 20,
) -> HTMLResponse | dict[str, Any]:
    """Per-source reliability, agreement and the labels most likely wrong (``veritag report``)."""
    from ..report import render_html
    from ..report.project import project_report

    _check_method(method)
    store = request_store(request)
    proj = project_for(store, name, user, READERS)
    built, warned = project_report(store, proj, method=method, domain=domain, top=top)
    if format == "json":
        return {"report": built.to_dict(), "warnings": warned}
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
    """The audit of an automation run: calibration, rate against accuracy, bias per slice (``veritag audit``)."""
    from ..report.automation import build_automation_report, render_automation_html
    from ..report.project import automation_audit_data

    store = request_store(request)
    proj = project_for(store, name, user, READERS)
    data, current = automation_audit_data(store, proj, run_id=run)
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # scikit-learn chatter while cross-fitting calibrators on few items
        built = build_automation_report(data)
    if format == "json":
        stale = [] if current else [STALE_AUDIT]
        return {"report": built.to_dict(), "current": current, "warnings": stale}
    return render_page(
        render_automation_html(built, title=f"veritag automation audit: {proj.name}")
    )
