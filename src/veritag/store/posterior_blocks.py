"""A truth run's answers per item, stored compactly: Arrow blocks of ``BLOCK_ITEMS`` items.

A run used to be one database row per item, so every refit of a project of 10^6 items inserted
10^6 rows, which took tens of seconds, and on SQLite held the one writer lock throughout, so
every tutor's submit waited. A block is one row holding the columns of ``BLOCK_ITEMS`` items in
item order, zstd-compressed Arrow: a refit of 10^6 items writes 16 rows of a few MB.

Columns of a block (``SCHEMA``; ``probs`` only when the run has class probabilities):

* ``item_id`` (int64), ascending;
* ``label``: the label as canonical JSON text, dictionary-encoded (a classification run has as
  many distinct texts as classes);
* ``confidence`` (float64), ``n_claims`` and ``n_labels`` (int32);
* ``basis`` (int8): the ``resolve.core.BASES`` code (claims, model, gold);
* ``probs``: the posterior, a fixed-size list of float64 per item.

Blocks are immutable like the rest of a run; the database refuses UPDATE and allows DELETE only
of a pruned run's blocks (migration 0015). Readers get ``pyarrow.Table``s and turn them into
whatever they need; ``BlockReader`` reads a run's blocks by item-id range and keeps the last one
decoded, so a caller that walks a run in small ranges decodes each block once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import sqlalchemy as sa
from numpy.typing import NDArray

from .models import PosteriorBlock

__all__ = [
    "BLOCK_ITEMS",
    "FORMAT",
    "BlockReader",
    "decode_block",
    "encode_block",
    "insert_blocks",
    "labels_of",
    "probs_of",
    "run_table",
]

#: Items per block: small enough that reading one item's answer decodes little, large enough
#: that a run of 10^8 items is a few thousand rows.
BLOCK_ITEMS = 65_536

#: Written into every block's schema metadata; a reader refuses a format it does not know.
FORMAT = b"veritag-posteriors/1"

_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")


def run_table(
    item_id: NDArray[np.int64],
    label: list[str],
    confidence: NDArray[np.float64],
    n_claims: NDArray[np.int64],
    n_labels: NDArray[np.int64],
    basis: NDArray[np.int8],
    probs: NDArray[np.float64] | None = None,
) -> pa.Table:
    """A run's columns as one table (``label`` already JSON text), sorted by item id."""
    columns: dict[str, Any] = {
        "item_id": pa.array(np.asarray(item_id, np.int64)),
        "label": pa.array(label, pa.string()).dictionary_encode(),
        "confidence": pa.array(np.asarray(confidence, np.float64)),
        "n_claims": pa.array(np.asarray(n_claims, np.int32)),
        "n_labels": pa.array(np.asarray(n_labels, np.int32)),
        "basis": pa.array(np.asarray(basis, np.int8)),
    }
    if probs is not None:
        probs = np.ascontiguousarray(probs, np.float64)
        width = probs.shape[1] if probs.ndim == 2 else 0
        columns["probs"] = pa.FixedSizeListArray.from_arrays(pa.array(probs.ravel()), width)
    table = pa.table(columns)
    ids = columns["item_id"].to_numpy()
    if ids.size > 1 and not (ids[1:] > ids[:-1]).all():
        table = table.take(pa.array(np.argsort(ids, kind="stable")))
    return table


def encode_block(table: pa.Table) -> bytes:
    """One block's bytes: an Arrow IPC stream, zstd-compressed, tagged with ``FORMAT``."""
    table = table.replace_schema_metadata({b"format": FORMAT})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_OPTIONS) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def decode_block(payload: bytes) -> pa.Table:
    """The table ``encode_block`` wrote; ``ValueError`` for bytes of another format."""
    table = pa.ipc.open_stream(pa.py_buffer(payload)).read_all()
    found = (table.schema.metadata or {}).get(b"format")
    if found != FORMAT:
        raise ValueError(f"not a veritag posterior block (format {found!r}, expected {FORMAT!r})")
    return table.replace_schema_metadata(None)


def labels_of(table: pa.Table) -> NDArray[np.object_]:
    """The ``label`` column as Python values, each distinct JSON text decoded once."""
    parts = []
    for chunk in table.column("label").chunks:
        texts = chunk.dictionary.to_pylist()
        values = np.empty(len(texts), dtype=object)
        for i, text in enumerate(texts):  # one per distinct label, not per item
            values[i] = json.loads(text)
        parts.append(values[chunk.indices.to_numpy(zero_copy_only=False)])
    return np.concatenate(parts) if parts else np.empty(0, dtype=object)


def probs_of(table: pa.Table) -> NDArray[np.float64] | None:
    """The ``probs`` column as an (items, classes) array, or None when the run has none."""
    if "probs" not in table.column_names:
        return None
    column = table.column("probs").combine_chunks()
    width = column.type.list_size
    return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)


def insert_blocks(conn: sa.Connection, run_id: int, table: pa.Table, first_block: int = 0) -> int:
    """Append ``table`` (a ``run_table``) as run ``run_id``'s blocks, numbered from
    ``first_block`` (a run written in parts continues its numbering); returns how many."""
    rows = []
    for number, start in enumerate(range(0, table.num_rows, BLOCK_ITEMS), first_block):
        block = table.slice(start, BLOCK_ITEMS)
        ids = block.column("item_id")
        rows.append(
            {
                "run_id": run_id,
                "block": number,
                "first_item_id": ids[0].as_py(),
                "last_item_id": ids[-1].as_py(),
                "n_items": block.num_rows,
                "payload": encode_block(block),
            }
        )
    for row in rows:  # one at a time: a batch of many MB-sized parameters gains nothing
        conn.execute(sa.insert(PosteriorBlock.__table__), row)
    return len(rows)


class BlockReader:
    """Run ``run_id``'s blocks by item-id range, the last decoded block kept for the next call.

    Runs never change, so the kept block stays right for as long as the reader lives.
    """

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self._kept: tuple[int, pa.Table] | None = None

    def _block(self, conn: sa.Connection, number: int) -> pa.Table:
        if self._kept is None or self._kept[0] != number:
            payload = conn.scalar(
                sa.select(PosteriorBlock.payload).where(
                    PosteriorBlock.run_id == self.run_id, PosteriorBlock.block == number
                )
            )
            self._kept = (number, decode_block(payload))
        return self._kept[1]

    def tables(
        self, conn: sa.Connection, first: int | None = None, last: int | None = None
    ) -> Iterator[pa.Table]:
        """The run's rows with item ids in ``[first, last]`` (all when unbounded), block by
        block in item order."""
        stmt = sa.select(PosteriorBlock.block).where(PosteriorBlock.run_id == self.run_id)
        if first is not None:
            stmt = stmt.where(PosteriorBlock.last_item_id >= first)
        if last is not None:
            stmt = stmt.where(PosteriorBlock.first_item_id <= last)
        for number in conn.scalars(stmt.order_by(PosteriorBlock.block)).all():
            table = self._block(conn, number)
            ids = table.column("item_id").to_numpy()
            lo = 0 if first is None else int(np.searchsorted(ids, first, "left"))
            hi = ids.size if last is None else int(np.searchsorted(ids, last, "right"))
            yield table if (lo, hi) == (0, ids.size) else table.slice(lo, hi - lo)
