"""Login throttling: failed logins counted per account and per client address.

A server run as several processes must see every process's failures, so the counters live here
rather than in memory. ``key`` is the SHA-256 of ``user:<name>`` or ``addr:<address>``; a row is
mutable bookkeeping (counted up on a failure, deleted on a success or an admin's unlock), not
append-only history.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True)),
    )


def downgrade() -> None:
    op.drop_table("login_failures")
