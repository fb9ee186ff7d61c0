"""The columnar fast path reads what the row reader reads, writes what csv.writer wrote, and
steps aside (returns None) whenever it cannot vouch for a file."""

from __future__ import annotations

import csv
import io
import math
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from veritag.io import columnar
from veritag.io.readers import open_rows
from veritag.io.labels import RowTable

COLUMNS = ("task", "worker", "label")


def coded(path: Path, encoding: str = "utf-8") -> dict[str, tuple[list[str], list[int]]] | None:
    """What the fast path reads: per column, the distinct values and the codes."""
    reader = open_rows(path, encoding=encoding)
    try:
        got = columnar.read_coded(reader, COLUMNS)
    finally:
        reader.close()
    return (
        None
        if got is None
        else {c: (v.values.to_pylist(), v.codes.tolist()) for c, v in got.items()}
    )


def by_rows(path: Path, encoding: str = "utf-8") -> dict[str, tuple[list[str], list[int]]]:
    """What the row reader reads, as the same codes (the reference)."""
    errors: list = []
    bad = [0]
    table = RowTable(path, encoding, COLUMNS, errors, bad)
    names: dict[str, dict[str, int]] = {c: {} for c in COLUMNS}
    codes: dict[str, list[int]] = {c: [] for c in COLUMNS}
    for line, values in table.rows():
        cells = [table.text(line, values, c) for c in COLUMNS]
        if None in cells:
            continue
        for c, v in zip(COLUMNS, cells):
            codes[c].append(names[c].setdefault(v, len(names[c])))  # type: ignore[arg-type]
    assert not bad[0], errors
    return {c: (list(names[c]), codes[c]) for c in COLUMNS}


def test_whitespace_is_what_str_strip_strips() -> None:
    assert set(columnar.PY_WHITESPACE) == {
        chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()
    }


def test_a_plain_csv_takes_the_fast_path_with_quotes_unicode_crlf_bom_and_blank_lines(
    tmp_path: Path,
) -> None:
    path = tmp_path / "l.csv"
    path.write_bytes(
        "\ufefftask , worker,label\r\n"
        '"t,1",w1,"a ""b"""\r\n'
        "\r\n"
        # stripped like str.strip: the same task and label as above
        '  t\u00e9 \u3000,w2,\u00a0a "b"\r\n'
        "t\u00e9,w1,c\r\n"
        "t\u00e9,w1,c\r\n".encode()  # a duplicate row stays a second claim
    )
    got = coded(path)
    assert got is not None
    assert got == by_rows(path)
    assert got["task"] == (["t,1", "t\u00e9"], [0, 1, 1, 1])
    assert got["label"] == (['a "b"', "c"], [0, 0, 1, 1])


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("empty cell", b"task,worker,label\nx,,1\n"),
        ("blank cell", b"task,worker,label\nx, \t,1\n"),
        ("short row", b"task,worker,label\nx,w,1\ny,w\n"),
        ("every row wider than the header", b"task,worker,label\nx,w,1,extra\ny,w,1,extra\n"),
        ("line break in a quoted cell", b'task,worker,label\n"x\ny",w,1\n'),
        ("lone carriage return", b"task,worker,label\nx,w,1\ry,w,1\n"),
        ("not UTF-8 in a column nobody asked for", b"task,worker,label,note\nx,w,1,caf\xe9\n"),
        ("unterminated quote", b'task,worker,label\nx,w,"1\n'),
        ("header only", b"task,worker,label\n"),
        ("header spanning two lines", b'task,worker,"label\n"\nx,w,1\n'),
    ],
)
def test_anything_unusual_goes_to_the_row_reader(tmp_path: Path, name: str, body: bytes) -> None:
    path = tmp_path / "l.csv"
    path.write_bytes(body)
    try:
        reader = open_rows(path)
    except Exception:  # the row reader refuses the header itself: nothing for the fast path to do
        return
    try:
        assert (
            columnar.read_coded(reader, [c for c in COLUMNS if c in (reader.columns or [])]) is None
        ), name
    finally:
        reader.close()


@pytest.mark.parametrize(
    "row",
    [
        b'"ab"c,w,l',
        b'a"b,w,l',
        b' "a",w,l',
        b'"a" ,w,l',
        b'"a"b"c,w,l',
        b'"a""b",w,l',
        b"a\x00b,w,l",
        b"\xef\xbb\xbfa,w,l",
    ],
)
def test_quotes_where_csv_does_not_expect_them_read_as_the_row_reader_reads_them(
    tmp_path: Path, row: bytes
) -> None:
    path = tmp_path / "l.csv"
    path.write_bytes(b"task,worker,label\n" + row + b"\nz,w,l\n")
    got = coded(path)
    assert got is not None and got == by_rows(path)


def test_other_encodings_and_jsonl_go_to_the_row_reader(tmp_path: Path) -> None:
    latin = tmp_path / "l.csv"
    latin.write_bytes("task,worker,label\ncaf\u00e9,w,1\n".encode("latin-1"))
    assert coded(latin, encoding="latin-1") is None
    assert by_rows(latin, encoding="latin-1")["task"][0] == ["caf\u00e9"]
    jsonl = tmp_path / "l.jsonl"
    jsonl.write_text('{"task": "x", "worker": "w", "label": "1"}\n', encoding="utf-8")
    assert coded(jsonl) is None


def test_many_blocks_keep_first_seen_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    rows = [
        (f"t{rng.integers(0, 400)}", f"w{rng.integers(0, 30)}", str(rng.integers(0, 4)))
        for _ in range(3000)
    ]
    path = tmp_path / "l.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([COLUMNS, *rows])
    monkeypatch.setattr(
        columnar, "BLOCK_SIZE", 512
    )  # dozens of blocks, each with its own dictionary
    got = coded(path)
    assert got is not None and got == by_rows(path)


_PAD = st.text(alphabet=st.sampled_from(list(" \t\u00a0\u3000,\"'é🙂ab")), max_size=3)
#: A cell with something to keep: quotes, commas, unicode and whitespace to strip around it.
_CELL = st.builds(
    lambda a, core, b: a + core + b, _PAD, st.sampled_from(["a", "b", "é", "🙂", '"', "x,y"]), _PAD
)
#: Now and then a cell the fast path must refuse: empty, blank, or with a line break.
_ODD = st.sampled_from(["", " ", "\u3000", "a\nb", "a\r\nb", "a\rb"])


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(st.tuples(_CELL, _CELL, _CELL), min_size=1, max_size=12),
    odd=st.one_of(st.none(), st.tuples(st.integers(0, 11), st.integers(0, 2), _ODD)),
    crlf=st.booleans(),
    bom=st.booleans(),
    blank=st.booleans(),
    note=st.booleans(),
)
def test_fast_path_reads_what_the_row_reader_reads(
    tmp_path: Path, rows, odd, crlf: bool, bom: bool, blank: bool, note: bool
) -> None:
    rows = [list(r) for r in rows]
    if odd is not None:
        rows[odd[0] % len(rows)][odd[1]] = odd[2]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n" if crlf else "\n")
    writer.writerow([*COLUMNS, "note"] if note else COLUMNS)
    for i, row in enumerate(rows):
        writer.writerow([*row, "n,ote"] if note else row)
        if blank and i == 0:
            buf.write("\r\n" if crlf else "\n")
    path = tmp_path / "h.csv"
    path.write_bytes(("\ufeff" if bom else "").encode() + buf.getvalue().encode("utf-8"))
    got = coded(path)
    event("fast path" if got is not None else "row reader")
    if (
        got is not None
    ):  # the fast path vouched for the file: it must read exactly what the row reader reads
        assert got == by_rows(path)


def test_parquet_text_integers_and_row_groups_in_another_order(tmp_path: Path) -> None:
    path = tmp_path / "l.parquet"
    first = pa.table(
        {
            "task": ["b", "a", "b"],
            "worker": pa.array([2, 1, 2], pa.int64()),
            "label": [" y", "x", "y"],
        }
    )
    second = pa.table(
        {"task": ["c", "a"], "worker": pa.array([3, 2], pa.int64()), "label": ["z", "x"]}
    )
    with pq.ParquetWriter(path, first.schema) as writer:
        writer.write_table(first)
        writer.write_table(second)
    got = coded(path)
    assert got == by_rows(path)
    assert got is not None and got["task"] == (["b", "a", "c"], [0, 1, 0, 2, 1])
    assert got["worker"] == (["2", "1", "3"], [0, 1, 0, 2, 0])


@pytest.mark.parametrize(
    "table",
    [
        pa.table({"task": ["a", None], "worker": ["w", "w"], "label": ["x", "y"]}),
        pa.table(
            {"task": ["a", "b"], "worker": ["w", "w"], "label": [1.0, 2.0]}
        ),  # the row reader writes 1.0
        pa.table({"task": ["a", "b"], "worker": ["w", "w"], "label": [True, False]}),
    ],
)
def test_parquet_nulls_and_other_types_go_to_the_row_reader(
    tmp_path: Path, table: pa.Table
) -> None:
    path = tmp_path / "l.parquet"
    pq.write_table(table, path)
    assert coded(path) is None


# --- writing ----------------------------------------------------------------------------------


def test_csv_rounded_writes_what_repr_of_round_writes() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [
            rng.random(20000),
            rng.random(2000) ** 8,
            [
                0.0,
                1.0,
                0.5,
                1e-4,
                9.9e-5,
                5e-5,
                1e-7,
                0.0078125,
                0.9999995,
                0.1234565,
                0.0001,
                1 / 3,
                2 / 3,
                1.5,
                -0.25,
                math.nan,
                math.inf,
            ],
            np.arange(0, 1_000_001, 997) / 1e6,
            (np.arange(2000) + 0.5) / 1e6,
        ]
    )
    got = columnar.csv_rounded(values).to_pylist()
    assert got == [repr(round(v, 6)) for v in values.tolist()]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=20))
def test_csv_text_quotes_as_csv_writer_does(cells: list[str]) -> None:
    buf = io.StringIO()
    csv.writer(buf).writerows([c] for c in cells)
    assert (
        "".join(f"{c}\r\n" for c in columnar.csv_text(columnar.strings(cells)).to_pylist())
        == buf.getvalue()
    )


def test_write_csv_is_byte_for_byte_csv_writer(tmp_path: Path) -> None:
    tasks = ["t1", "a,b", 'say "hi"', "é🙂", "line\nbreak", " pad "]
    labels = ["x", "y,z", "x", "w", "x", "y"]
    conf = np.array([1.0, 0.5, 1 / 3, 0.9999996, 2e-5, 0.25])
    out = tmp_path / "o.csv"
    columnar.write_csv(
        out,
        ["task", "label", "confidence"],
        [
            columnar.csv_text(columnar.strings(tasks)),
            columnar.csv_text(columnar.strings(labels)),
            columnar.csv_rounded(conf),
        ],
        chunk_rows=4,
    )
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["task", "label", "confidence"])
    writer.writerows([t, lab, round(c, 6)] for t, lab, c in zip(tasks, labels, conf.tolist()))
    assert out.read_bytes() == buf.getvalue().encode("utf-8")
    assert not list(tmp_path.glob(".o.csv.tmp*"))


def test_reading_and_writing_never_import_pandas(tmp_path: Path) -> None:
    """pyarrow imports pandas (0.7 s) on its first conversion of a Python object."""
    import subprocess

    path = tmp_path / "l.csv"
    path.write_text("task,worker,label\nx,w,1\ny,w,0\n", encoding="utf-8")
    code = (
        "import sys; from pathlib import Path\n"
        "from veritag.io.labels import read_label_files, write_labels\n"
        "from veritag.resolve.files import resolve_files\n"
        f"r = resolve_files(read_label_files(Path({str(path)!r})), method='mv')\n"
        f"write_labels(r, Path({str(tmp_path / 'o.csv')!r}))\n"
        "print(sorted(m for m in ('pandas', 'sqlalchemy', 'alembic', 'sklearn')"
        " if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_parquet_dictionary_columns_as_pandas_writes_categoricals(tmp_path: Path) -> None:
    path = tmp_path / "l.parquet"
    pq.write_table(
        pa.table(
            {
                "task": pa.array(["b", "a", "b"]).dictionary_encode(),
                "worker": pa.array(["w", "v", "w"]).dictionary_encode(),
                "label": pa.array(["1", " 2", "2"]).dictionary_encode(),
            }
        ),
        path,
    )
    got = coded(path)
    assert got is not None and got == by_rows(path)
    assert got["label"] == (["1", "2"], [0, 1, 1])


def test_tsv_takes_the_fast_path(tmp_path: Path) -> None:
    path = tmp_path / "l.tsv"
    path.write_text('task\tworker\tlabel\nt 1\tw,1\t"a\tb"\nt 1\tw2\tc\n', encoding="utf-8")
    got = coded(path)
    assert got is not None and got == by_rows(path)
    assert got["label"][0] == ["a\tb", "c"]
