"""Jobs become a queue that ``veritag worker`` processes take work from (``veritag.jobs``).

A job row now holds everything needed to run it (``params``, besides ``kind``, ``project`` and
``user_id``), how often it was tried (``attempts`` of ``max_attempts``) and when its worker last
said it is alive (``heartbeat_at``): a job whose heartbeat is too old is taken again by another
worker. Jobs left queued or running by a server before this revision were Python closures of
that process, which no worker can run: they are failed with a message saying so.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "jobs",
        sa.Column(
            "params",
            sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql"),
        ),
    )
    op.add_column("jobs", sa.Column("attempts", sa.Integer, server_default="0", nullable=False))
    op.add_column("jobs", sa.Column("max_attempts", sa.Integer, server_default="3", nullable=False))
    op.add_column("jobs", sa.Column("heartbeat_at", sa.DateTime(timezone=True)))
    op.create_index("ix_jobs_state_created", "jobs", ["state", "created_at"])
    jobs = sa.table(
        "jobs",
        sa.column("state", sa.String),
        sa.column("error", sa.Text),
        sa.column("finished_at", sa.DateTime(timezone=True)),
    )
    op.execute(
        jobs.update()
        .where(jobs.c.state.in_(("queued", "running")))
        .values(
            state="failed",
            error="veritag was upgraded while this job waited or ran; start it again",
            finished_at=sa.func.now(),
        )
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_state_created", "jobs")
    with op.batch_alter_table("jobs") as batch:
        for column in ("heartbeat_at", "max_attempts", "attempts", "params"):
            batch.drop_column(column)
