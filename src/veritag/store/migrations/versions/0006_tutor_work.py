"""The tutor's work in the browser: time spent per lease, skip reasons, undone claims.

``assignments.seconds`` is how long the tutor looked at the item before answering and
``assignments.skip_reason`` why they gave it back. ``claims.retracts`` names the claim a
*retraction* takes back (no foreign key: SQLite cannot add one to an existing table): undo never
deletes or edits a claim (claims are append-only), it adds a value-less claim by the same source
that points at the one undone, and readers skip both.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("assignments", sa.Column("seconds", sa.Float))
    op.add_column("assignments", sa.Column("skip_reason", sa.Text))
    op.add_column("claims", sa.Column("retracts", sa.Integer))
    op.create_index("ix_claims_retracts", "claims", ["retracts"])


def downgrade() -> None:
    op.drop_index("ix_claims_retracts", "claims")
    op.drop_column("claims", "retracts")
    op.drop_column("assignments", "skip_reason")
    op.drop_column("assignments", "seconds")
