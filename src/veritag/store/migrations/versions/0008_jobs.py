"""Background jobs of the server (autolabel, automate), kept in the database.

A server run as several processes answers a poll from whichever process gets it, so a job's state
lives here rather than in the memory of the process that runs it. ``runner`` names that process
(host, pid and a tag per app), so a process starting up can fail the jobs a dead one left running.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column(
            "result",
            sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql"),
        ),
        sa.Column("error", sa.Text),
        sa.Column("runner", sa.String(300), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_jobs_runner_state", "jobs", ["runner", "state"])


def downgrade() -> None:
    op.drop_table("jobs")
