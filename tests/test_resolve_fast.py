"""File mode's columnar fast path gives what the row-by-row path gives, bad rows still name file and
line, and the command line imports only what a command needs."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from vt_helpers import GT, LABELS, read_csv, write_csv

from veritag.errors import InputError
from veritag.io import columnar
from veritag.io.labels import read_label_files, write_labels, write_sources
from veritag.resolve.files import FileResolution, resolve_files
from veritag.resolve.project import _code_texts, _probability_rows

HEAVY = ("pandas", "sklearn", "scipy.stats", "sqlalchemy", "alembic")


def row_by_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on the fast path steps aside, as it does for a file it cannot vouch for."""
    monkeypatch.setattr(columnar, "read_coded", lambda reader, names: None)


def assert_same(fast: FileResolution, slow: FileResolution, tmp_path: Path) -> None:
    assert fast.tasks == slow.tasks and fast.labels == slow.labels and fast.classes == slow.classes
    assert np.array_equal(fast.confidence, slow.confidence)
    assert fast.sources == slow.sources and np.array_equal(fast.n_claims, slow.n_claims)
    assert np.array_equal(fast.accuracy, slow.accuracy, equal_nan=True)
    assert (fast.n_iter, fast.converged, fast.n_labels, fast.n_gold, fast.n_model_rows) == (
        slow.n_iter,
        slow.converged,
        slow.n_labels,
        slow.n_gold,
        slow.n_model_rows,
    )
    assert fast.label_source == slow.label_source
    for name, result in (("fast", fast), ("slow", slow)):
        write_labels(result, tmp_path / f"{name}.csv")
        write_sources(result.source_rows(), tmp_path / f"{name}-workers.csv")
    assert (tmp_path / "fast.csv").read_bytes() == (tmp_path / "slow.csv").read_bytes()
    assert (tmp_path / "fast-workers.csv").read_bytes() == (
        tmp_path / "slow-workers.csv"
    ).read_bytes()


def old_write_labels(result: FileResolution, out: Path) -> None:
    """How write_labels wrote, row by row, before it wrote whole columns."""
    with out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["task", "label", "confidence"])
        writer.writerows(
            [t, label, round(c, 6)]
            for t, label, c in zip(result.tasks, result.labels, result.confidence.tolist())
        )


@pytest.mark.parametrize("method", ["ds", "mv"])
def test_the_sample_resolves_the_same_both_ways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    gt = {r["task"]: r["label"] for r in read_csv(GT)}
    model = write_csv(
        tmp_path / "m.csv",
        ["task", "model", "0", "1"],
        [(t, "m", 0.3, 0.7) if label == "1" else (t, "m", 0.7, 0.3) for t, label in gt.items()],
    )
    gold = write_csv(tmp_path / "g.csv", ["task", "label"], list(gt.items())[:50])
    runs = [{}, {"gold": gold, "model_probs": model}]
    fast = [resolve_files(read_label_files(LABELS, **kw), method=method) for kw in runs]
    old_write_labels(fast[0], tmp_path / "old.csv")
    write_labels(fast[0], tmp_path / "new.csv")
    assert (tmp_path / "new.csv").read_bytes() == (tmp_path / "old.csv").read_bytes()
    row_by_row(monkeypatch)
    for i, (result, kw) in enumerate(zip(fast, runs)):
        (tmp_path / str(i)).mkdir()
        slow = resolve_files(read_label_files(LABELS, **kw), method=method)
        assert_same(result, slow, tmp_path / str(i))


def test_parquet_resolves_like_the_csv_it_came_from(tmp_path: Path) -> None:
    parquet = tmp_path / "labels.parquet"
    pq.write_table(
        pcsv.read_csv(
            LABELS,
            convert_options=pcsv.ConvertOptions(
                column_types={c: pa.string() for c in ("task", "worker", "label")}
            ),
        ),
        parquet,
        row_group_size=1000,
    )
    (tmp_path / "csv").mkdir()
    assert_same(
        resolve_files(read_label_files(parquet)),
        resolve_files(read_label_files(LABELS)),
        tmp_path / "csv",
    )
    # integer columns are read as the text the row reader makes of them
    ints = tmp_path / "ints.parquet"
    pq.write_table(pcsv.read_csv(LABELS), ints)
    assert (
        resolve_files(read_label_files(ints)).labels
        == resolve_files(read_label_files(LABELS)).labels
    )


def test_bad_rows_are_still_named_by_file_and_line(tmp_path: Path) -> None:
    """Past a quoted cell holding a line break, the fast path steps aside; the row reader counts
    physical lines, as it always did."""
    lines = ["task,worker,label", '"t\n0",w0,a'] + [
        f"t{i},w{i % 7},{'ab'[i % 2]}" for i in range(1, 3000)
    ]
    lines[2500] = "t2500,,a"
    labels = tmp_path / "l.csv"
    labels.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_label_files(labels)
    assert f"{labels}:2502: field 'worker': the value is empty" in str(info.value)
    assert "1 bad row(s); nothing was resolved" in str(info.value)


_NAME = st.text(alphabet=st.sampled_from(list('ab ,"é🙂\u00a0')), min_size=1, max_size=3)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.tuples(
            _NAME,
            st.sampled_from(["w1", "w2", " w3", "w3", "é"]),
            st.sampled_from(["1", "2", "10", " 2", "x,y", '"q"']),
        ),
        min_size=1,
        max_size=30,
    ),
    crlf=st.booleans(),
    bom=st.booleans(),
    method=st.sampled_from(["ds", "mv", "onecoin"]),
)
def test_small_files_resolve_the_same_both_ways(
    tmp_path: Path, rows, crlf: bool, bom: bool, method: str
) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n" if crlf else "\n")
    writer.writerows([("task", "worker", "label"), *rows, *rows[:2]])  # duplicate rows count twice
    path = tmp_path / "h.csv"
    path.write_bytes(("\ufeff" if bom else "").encode() + buf.getvalue().encode("utf-8"))

    def run() -> FileResolution | str:
        try:
            return resolve_files(read_label_files(path), method=method)
        except InputError as exc:
            return str(exc)

    fast = run()
    with pytest.MonkeyPatch.context() as mp:
        row_by_row(mp)
        slow = run()
    event("refused" if isinstance(fast, str) else "resolved")
    if isinstance(fast, str) or isinstance(slow, str):
        assert fast == slow
    else:
        assert_same(fast, slow, tmp_path)


# --- the project path codes stored texts without Python code per claim ------------------------


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(['"a"', '"b"', "1", '{"verdict":"x"}', '["a","b"]']), max_size=40))
def test_code_texts_numbers_distinct_texts_in_first_seen_order(texts: list[str]) -> None:
    seen: dict[str, int] = {}
    want = [seen.setdefault(t, len(seen)) for t in texts]
    calls: list[str] = []

    def code(t: str) -> int:
        calls.append(t)
        return len(calls) - 1

    assert _code_texts(code, texts).tolist() == want
    assert calls == list(seen)  # once per distinct text


_PROB = st.floats(min_value=0, max_value=1, allow_nan=False)


@settings(max_examples=100, deadline=None)
@given(k=st.integers(1, 4), n=st.integers(1, 20), data=st.data())
def test_probability_rows_parse_like_json(k: int, n: int, data: st.DataObject) -> None:
    rows = [data.draw(st.lists(_PROB, min_size=k, max_size=k)) for _ in range(n)]
    spaced = data.draw(st.booleans())
    texts = [json.dumps(r) if spaced else json.dumps(r, separators=(",", ":")) for r in rows]
    got = _probability_rows(texts, k)
    assert got.shape == (n, k) and np.array_equal(got, np.array(rows, dtype=np.float64))


def test_probability_rows_fall_back_to_json_for_anything_else() -> None:
    assert _probability_rows(['["0.25", 0.75]', "[1, 0]"], 2).tolist() == [[0.25, 0.75], [1.0, 0.0]]
    assert _probability_rows(["[0.5, 0.5, 0]"], 2).shape == (
        1,
        3,
    )  # refused by the caller, as before
    with pytest.raises(ValueError):
        _probability_rows(["[0.5, 0.5]", "[1]"], 2)


# --- imports --------------------------------------------------------------------------------


def _modules_after(code: str) -> list[str]:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            code + "\nimport sys, json\n"
            f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_the_command_line_imports_nothing_heavy() -> None:
    assert _modules_after("import veritag.cli") == []


def test_file_mode_imports_nothing_heavy(tmp_path: Path) -> None:
    args = [
        "resolve",
        str(LABELS),
        "-o",
        str(tmp_path / "out.csv"),
        "--workers-out",
        str(tmp_path / "w.csv"),
    ]
    assert (
        _modules_after(f"from veritag.cli import app\napp({args!r}, standalone_mode=False)") == []
    )
    assert len(read_csv(tmp_path / "out.csv")) == 800


def test_help_lists_every_method_and_task_type() -> None:
    from typer.testing import CliRunner

    from veritag.cli import app
    from veritag.schema import TASK_TYPES
    from veritag.truth import METHODS

    runner = CliRunner()
    for command, names in (("resolve", METHODS), ("report", METHODS), ("init", TASK_TYPES)):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0
        assert ", ".join(names) in re.sub(r"[│\s]+", " ", result.output), (command, result.output)
