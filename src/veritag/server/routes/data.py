"""A project's data in and out: ``POST .../import`` (an upload), ``GET .../export`` (a download),
``GET .../status`` and ``POST .../resolve`` (a job), each what its ``veritag`` command does.

No request here fits the truth model: ``resolve`` queues a job, an import whose labels make the
stored run due for a refit queues one (``jobs.queue.enqueue_once``: at most one waiting per
project), and ``export`` reads the newest stored run (``refit="never"``)."""

from __future__ import annotations

import csv
import dataclasses
import re
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile

from ...errors import InputError, RowErrors, VeritagError
from ...io import EXPORT_FORMATS, FOLDER_FORMATS, FORMATS, ColumnMap, export_project, import_file
from ...jobs import queue as job_queue
from ...limits import SafeText
from ...resolve import DEFAULT_METHOD, METHODS, current_truth
from ...status import project_status
from ...store import audit
from ...store.engine import Store
from ...store.models import ImportRecord, Project
from .. import jobs
from ..audit import request_actor
from ..common import StoredMethod, check_method, json_ready, request_store
from ..deps import READERS, Me, project_and_role, project_for
from ..openapi import error_body, errors
from ..responses import ImportOut, JobStartedOut, StatusOut

__all__ = ["MAX_UPLOAD_BYTES", "RESOLVE_JOB_HEADER", "router"]

router = APIRouter(prefix="/api/v1")

#: The largest file ``POST .../import`` takes.
MAX_UPLOAD_BYTES = 200 * 1024 * 1024
#: Room for the multipart framing and form fields around the file in a request's Content-Length.
_FORM_OVERHEAD = 64 * 1024
#: Bad rows an import with ``skip_invalid`` lists in its answer (all of them are counted).
SHOWN_BAD_ROWS = 1000
#: Download name suffix and media type per export format (a folder format is sent zipped).
_EXPORT_FILES = {
    "jsonl": (".jsonl", "application/x-ndjson"),
    "csv": (".csv", "text/csv; charset=utf-8"),
    "parquet": (".parquet", "application/vnd.apache.parquet"),
    "parquet-dataset": ("-parquet.zip", "application/zip"),
    "hf": ("-hf.zip", "application/zip"),
    "long": ("-long.csv", "text/csv; charset=utf-8"),
    "dpo": ("-dpo.jsonl", "application/x-ndjson"),
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


#: The OpenAPI of a 202 that started a job, as ``POST .../autolabel`` answers.
_STARTED_DOC = {
    "description": "Started; poll the job at Location",
    "headers": {"Location": {"description": "The job's status URL", "schema": {"type": "string"}}},
}
#: The header of an import's answer naming the resolve job its labels queued.
RESOLVE_JOB_HEADER = "X-Veritag-Resolve-Job"


def _status_url(job: job_queue.Job) -> str:
    return f"/api/v1/jobs/{job.id}"


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


def _too_large(limit: int) -> HTTPException:
    """413: the request body is larger than the server reads (an HTTP limit, not bad data)."""
    return HTTPException(status_code=413, detail=f"the upload is larger than {limit:,} bytes")


def _save_upload(upload: UploadFile, target: Path, limit: int) -> int:
    """Copy the upload to ``target``; 413 once it passes ``limit`` bytes."""
    size = 0
    upload.file.seek(0)
    with target.open("wb") as fh:
        while chunk := upload.file.read(1 << 20):
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
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


def _renamed(exc: VeritagError, tmp: str, filename: str) -> VeritagError:
    """``exc`` speaking of the upload by its own name rather than the temporary file's path, with
    the status it had."""
    out = VeritagError(str(exc).replace(tmp, filename))
    out.status = exc.status
    return out


def _resolve_soon(request: Request, proj: Project, owner: int) -> job_queue.Job | None:
    """The resolve job that folds an import's labels in, once they make the stored run due for a
    refit (``resolve.current``; fewer new claims are folded in by the readers themselves): queued
    by ``owner`` now (which wakes this process's embedded worker), or the one an earlier write
    queued that no worker took yet. None when no refit is due."""
    truth = current_truth(request_store(request), proj)
    if not truth.due(int(truth.run.n_items) if truth.run is not None else 0):
        return None
    job, _ = jobs.enqueue_once(
        request.app,
        kind="resolve",
        project=proj.name,
        owner=owner,
        params={"method": DEFAULT_METHOD},
    )
    return job


def _run_import(
    request: Request,
    proj: Project,
    upload: UploadFile,
    filename: str,
    options: ImportOptions,
    owner: int,
) -> tuple[dict[str, Any], job_queue.Job | None]:
    """Write the upload to a temporary folder under its own name, import it, and speak of it by
    that name; the resolve job its labels queued, if any."""
    store = request_store(request)
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
            raise _renamed(exc, tmp, filename) from None
        with store.engine.begin() as conn:  # the record names the upload, not the temporary file
            conn.execute(
                sa.update(ImportRecord)
                .where(ImportRecord.project_id == proj.id, ImportRecord.path == tmp)
                .values(path=filename)
            )
        bad = _bad_rows(report, tmp, filename) if result.rows_skipped else []
    added = result.claims_added or result.gold_added
    job = _resolve_soon(request, proj, owner) if added else None
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
    }, job


class _RowErrorsResponse(Exception):
    """Bad rows of an upload: answered as 422 with the message and each row's file and line."""

    def __init__(self, message: str, rows: list[dict[str, Any]], total: int) -> None:
        super().__init__(message)
        self.body = error_body(message, errors=rows, total=total)


@router.post(
    "/projects/{name}/import",
    response_model=ImportOut,
    responses={
        200: {
            "description": "Imported",
            "headers": {
                RESOLVE_JOB_HEADER: {
                    "description": "Status URL of the resolve job that folds the new labels in, "
                    "when they made the stored run due for a refit",
                    "schema": {"type": "string"},
                }
            },
        },
        **errors(400, 401, 403, 404, 413, 422),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": _upload_schema()}},
        }
    },
)
async def import_upload(name: str, user: Me, request: Request, response: Response) -> Any:
    """Import one uploaded file (``multipart/form-data``: ``file`` plus the options of
    ``veritag import``). Labels or gold imported past the refit threshold (``resolve.current``)
    queue a resolve job (one per project at a time: an import finding one queued names that one)
    and ``X-Veritag-Resolve-Job`` gives its status URL; the GETs read labels that include them
    once it is done. The request never fits.

    The caller is checked before the body is read, and a Content-Length over the limit is refused
    unread (413). A file with bad rows is refused whole (422, each row's file and line) unless
    ``skip_invalid`` keeps the good ones and lists the bad.
    """
    store = request_store(request)
    proj = await run_in_threadpool(project_for, store, name, user, ("admin",))
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES + _FORM_OVERHEAD:
        raise _too_large(MAX_UPLOAD_BYTES)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise HTTPException(
            status_code=422, detail="send the file as multipart/form-data in a field named 'file'"
        )
    async with request.form(max_files=1, max_fields=100) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InputError("no file: send it in a multipart field named 'file'")
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
            raise InputError(_bad_options(exc)) from None
        filename = _safe_name(upload.filename or "", "upload")
        try:
            out, job = await run_in_threadpool(
                _run_import, request, proj, upload, filename, options, user.id
            )
        except _RowErrorsResponse as exc:
            return JSONResponse(exc.body, status_code=422)
    if job is not None:
        response.headers[RESOLVE_JOB_HEADER] = _status_url(job)
    return out


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
    method: StoredMethod = None,
    csv_raw: Annotated[
        bool,
        Query(
            description="CSV: keep cells starting with = + - @ as they are, "
            "not prefixed with ' against formula injection"
        ),
    ] = False,
) -> FileResponse:
    """The project as a file download, as ``veritag export`` writes it (a folder format: zipped),
    with the labels of the newest stored truth run: a GET never fits, so 409 before the project
    was first resolved, and ``X-Veritag-Claims-Since`` says how many claims came after the run."""
    store = request_store(request)
    proj = project_for(store, name, user, READERS)
    if format not in EXPORT_FORMATS:
        raise InputError(
            f"unknown export format {format!r}; choose one of {', '.join(EXPORT_FORMATS)}"
        )
    if method is not None:
        check_method(method)
    suffix, media = _EXPORT_FILES.get(format, (f".{format}", "application/octet-stream"))
    download = _safe_name(proj.name, "project") + suffix
    folder = Path(tempfile.mkdtemp(prefix="veritag-export-"))
    try:
        out = folder / (format if format in FOLDER_FORMATS else download)
        result = export_project(
            store, proj, out, format, method=method, csv_raw=csv_raw, refit="never"
        )
        if format in FOLDER_FORMATS:
            out = Path(shutil.make_archive(str(folder / "zip"), "zip", root_dir=out))
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
    """What ``veritag status NAME --json`` prints: counts, imports, the latest resolution and
    automation."""
    store = request_store(request)
    proj, role = project_and_role(store, name, user)
    with store.session() as session:
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
    status_code=202,
    response_model=JobStartedOut,
    responses={202: _STARTED_DOC, **errors(400, 401, 403, 404, 422)},
)
def resolve(
    name: str, user: Me, request: Request, response: Response, body: ResolveBody | None = None
) -> dict[str, Any]:
    """Resolve one label per item from all claims and store the run (``veritag resolve
    --project``), as a job: its result (``ResolveOut`` in ``GET /jobs/{id}``) is the run's id,
    counts and each source's accuracy."""
    method = (body or ResolveBody()).method
    check_method(method)
    proj = project_for(request_store(request), name, user, READERS)
    job = jobs.enqueue(
        request.app, kind="resolve", project=proj.name, owner=user.id, params={"method": method}
    )
    url = _status_url(job)
    response.headers["Location"] = url
    return {"job": job.id, "kind": job.kind, "state": job.state, "status_url": url}
