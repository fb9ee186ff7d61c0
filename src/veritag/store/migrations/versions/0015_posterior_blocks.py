"""A truth run's per-item answers in compressed blocks instead of one row per item.

``posterior_blocks`` holds a run's items ``BLOCK_ITEMS`` at a time as zstd-compressed Arrow
(``store.posterior_blocks``); ``posteriors`` goes. A refit of 10^6 items wrote 10^6 rows, which
on SQLite held the only writer lock for about 20 s; it now writes 16 rows.

Runs stay history: the blocks refuse UPDATE, and DELETE unless their run is already marked
pruned, as the posterior rows did since 0011. The upgrade moves every stored run's rows into
blocks; the downgrade moves them back.

Revision ID: 0015
Revises: 0014
"""

import json

import numpy as np
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from veritag.schema import canonical_json
from veritag.store import posterior_blocks
from veritag.store.posterior_blocks import decode_block, insert_blocks, run_table

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

JSON = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
BASES = ("claims", "model", "gold")  # resolve.core.BASES when this migration was written
PRUNED = "EXISTS (SELECT 1 FROM truth_runs WHERE truth_runs.id = OLD.run_id AND truth_runs.pruned)"

blocks = sa.table(
    "posterior_blocks",
    sa.column("run_id", sa.Integer),
    sa.column("block", sa.Integer),
    sa.column("payload", sa.LargeBinary),
)
rows = sa.table(
    "posteriors",
    sa.column("run_id", sa.Integer),
    sa.column("item_id", sa.Integer),
    sa.column("label", JSON),
    sa.column("confidence", sa.Float),
    sa.column("probs", JSON),
    sa.column("n_claims", sa.Integer),
    sa.column("n_labels", sa.Integer),
    sa.column("basis", sa.String(10)),
)


def _guard(table: str) -> None:
    """UPDATE refused; DELETE refused unless the run is pruned (0011's rule for run rows)."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} are append-only'); END"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} WHEN NOT {PRUNED} "
            f"BEGIN SELECT RAISE(ABORT, '{table} are append-only'); END"
        )
        return
    op.execute(
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION veritag_runs_append_only()"
    )
    op.execute(
        f"CREATE TRIGGER {table}_prune_only BEFORE DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION veritag_runs_prune_only()"
    )


def _run_ids(conn: sa.Connection, table: str) -> list[int]:
    return list(conn.scalars(sa.text(f"SELECT DISTINCT run_id FROM {table} ORDER BY run_id")))


def _to_blocks(conn: sa.Connection, run_id: int) -> None:
    """One run's rows into blocks, a block's worth of rows at a time (a run may be 10^6 rows)."""
    stmt = (
        sa.select(
            rows.c.item_id,
            sa.cast(rows.c.label, sa.Text),
            rows.c.confidence,
            sa.cast(rows.c.probs, sa.Text),
            rows.c.n_claims,
            rows.c.n_labels,
            rows.c.basis,
        )
        .where(rows.c.run_id == run_id)
        .order_by(rows.c.item_id)
    )
    found = conn.execute(stmt.execution_options(yield_per=posterior_blocks.BLOCK_ITEMS))
    for number, part in enumerate(found.partitions()):
        probs = [json.loads(r[3]) if r[3] is not None else None for r in part]
        table = run_table(
            np.array([r[0] for r in part], np.int64),
            [canonical_json(json.loads(r[1])) for r in part],
            np.array([r[2] for r in part], np.float64),
            np.array([r[4] for r in part], np.int64),
            np.array([r[5] for r in part], np.int64),
            np.array([BASES.index(r[6]) for r in part], np.int8),
            np.array(probs, np.float64) if all(p is not None for p in probs) else None,
        )
        insert_blocks(conn, run_id, table, first_block=number)


def _to_rows(conn: sa.Connection, run_id: int) -> None:
    for payload in conn.scalars(
        sa.select(blocks.c.payload).where(blocks.c.run_id == run_id).order_by(blocks.c.block)
    ).all():
        table = decode_block(payload).to_pylist()
        conn.execute(
            rows.insert(),
            [
                {
                    "run_id": run_id,
                    "item_id": r["item_id"],
                    "label": json.loads(r["label"]),
                    "confidence": r["confidence"],
                    "probs": r.get("probs"),
                    "n_claims": r["n_claims"],
                    "n_labels": r["n_labels"],
                    "basis": BASES[r["basis"]],
                }
                for r in table
            ],
        )


def upgrade() -> None:
    op.create_table(
        "posterior_blocks",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("truth_runs.id"), primary_key=True),
        sa.Column("block", sa.Integer, primary_key=True),
        sa.Column("first_item_id", sa.BigInteger, nullable=False),
        sa.Column("last_item_id", sa.BigInteger, nullable=False),
        sa.Column("n_items", sa.Integer, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
    )
    conn = op.get_bind()
    for run_id in _run_ids(conn, "posteriors"):
        _to_blocks(conn, run_id)
    _guard("posterior_blocks")
    op.drop_table("posteriors")  # its triggers go with it


def downgrade() -> None:
    op.create_table(
        "posteriors",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("truth_runs.id"), primary_key=True),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id"), primary_key=True),
        sa.Column("label", JSON, nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("probs", JSON),
        sa.Column("n_claims", sa.Integer, nullable=False),
        sa.Column("n_labels", sa.Integer, nullable=False),
        sa.Column("basis", sa.String(10), nullable=False),
    )
    conn = op.get_bind()
    for run_id in _run_ids(conn, "posterior_blocks"):
        _to_rows(conn, run_id)
    _guard("posteriors")
    op.drop_table("posterior_blocks")
