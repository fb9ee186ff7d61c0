"""The routing queue: each item's place in line, kept up to date on writes (``routing.queue``).

``routing_items`` holds, per item, what a lease decision reads (domain, gold flag, standing
labels, running leases, labels still needed, posterior and its top probability) under an index
that hands out the least certain open items of a domain without scanning the project.
``routing_state`` says what a project's queue was built from, and ``routing_skill`` the sources'
per-domain confusion against that truth run. All three are derived: an empty queue is built again
from claims, leases and the newest truth run on the next request, so existing projects need no
backfill. Indexes let a request read a project's newest item, gold count and running leases
without a scan, and ``tutors.leases`` counts each tutor's leases (backfilled from the leases so
far), so a gold turn is read from one row rather than counted over the tutor's history;
``projects.tutors_version`` moves with every change of a project's tutors, so a server keeps
their profiles in memory while it holds.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

JSON = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "routing_items",
        sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id"), primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("domain", sa.String(100), nullable=False),
        sa.Column("is_gold", sa.Boolean, nullable=False),
        sa.Column("labels", sa.Integer, nullable=False),
        sa.Column("leased", sa.Integer, nullable=False),
        sa.Column("need", sa.Integer, nullable=False),
        sa.Column("open", sa.Boolean, nullable=False),
        sa.Column("top", sa.Float, nullable=False),
        sa.Column("probs", JSON),
    )
    op.create_index(
        "ix_routing_items_pick", "routing_items", ["project_id", "open", "domain", "top", "item_id"]
    )
    op.create_index("ix_routing_items_gold", "routing_items", ["project_id", "is_gold"])
    op.create_index("ix_items_project_id", "items", ["project_id", "id"])
    op.create_index("ix_gold_project", "gold", ["project_id"])
    op.create_index("ix_assignments_running", "assignments", ["project_id", "state", "expires_at"])
    op.add_column("tutors", sa.Column("leases", sa.Integer, nullable=False, server_default="0"))
    op.add_column(
        "projects", sa.Column("tutors_version", sa.BigInteger, nullable=False, server_default="0")
    )
    op.execute(
        "UPDATE tutors SET leases = "
        "(SELECT count(*) FROM assignments WHERE assignments.tutor_id = tutors.id)"
    )
    op.create_table(
        "routing_state",
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), primary_key=True),
        sa.Column("run_id", sa.Integer),
        sa.Column("claims_version", sa.BigInteger, nullable=False),
        sa.Column("max_item_id", sa.Integer, nullable=False),
        sa.Column("items", sa.Integer, nullable=False),
        sa.Column("gold_count", sa.Integer, nullable=False),
        sa.Column("settings_key", sa.String(64), nullable=False),
        sa.Column("stale", sa.Boolean, nullable=False),
        sa.Column("built", sa.Integer, nullable=False),
        sa.Column("spent", sa.Float, nullable=False),
        sa.Column("reserved", sa.Float, nullable=False),
    )
    op.create_table(
        "routing_skill",
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), primary_key=True),
        sa.Column("source_id", sa.Integer, sa.ForeignKey("sources.id"), primary_key=True),
        sa.Column("confusion", JSON, nullable=False),
        sa.Column("n_claims", JSON, nullable=False),
    )


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35): batch mode would copy and drop the
    # tables that others reference.
    op.drop_column("projects", "tutors_version")
    op.drop_column("tutors", "leases")
    op.drop_index("ix_assignments_running", "assignments")
    op.drop_index("ix_gold_project", "gold")
    op.drop_index("ix_items_project_id", "items")
    op.drop_table("routing_skill")
    op.drop_table("routing_state")
    op.drop_index("ix_routing_items_gold", "routing_items")
    op.drop_index("ix_routing_items_pick", "routing_items")
    op.drop_table("routing_items")
