"""Routing to specialist tutors: settings, tutor profiles, item domains and work leases.

These are bookkeeping, not history: a lease changes state and a cached domain can be recomputed,
so no append-only trigger here. The claim a submitted lease writes goes to ``claims`` as always.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSON = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "routing_settings",
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), primary_key=True),
        sa.Column("domains", JSON, nullable=False),
        sa.Column("domain_field", sa.String(200), nullable=False),
        sa.Column("target", sa.Float, nullable=False),
        sa.Column("max_labels", sa.Integer, nullable=False),
        sa.Column("min_labels", sa.Integer, nullable=False),
        sa.Column("gold_rate", sa.Float, nullable=False),
        sa.Column("budget", sa.Float),
        sa.Column("lease_seconds", sa.Integer, nullable=False),
    )
    op.create_table(
        "tutors",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("source_id", sa.Integer, sa.ForeignKey("sources.id"), nullable=False),
        sa.Column("domains", JSON, nullable=False),
        sa.Column("cost", sa.Float, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.UniqueConstraint("project_id", "source_id", name="uq_tutors_project_source"),
    )
    op.create_table(
        "item_domains",
        sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id"), primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("domain", sa.String(100), nullable=False),
        sa.Column("origin", sa.String(10), nullable=False),
    )
    op.create_index("ix_item_domains_project", "item_domains", ["project_id"])
    op.create_table(
        "assignments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id"), nullable=False),
        sa.Column("tutor_id", sa.Integer, sa.ForeignKey("tutors.id"), nullable=False),
        sa.Column("is_gold", sa.Boolean, nullable=False),
        sa.Column("cost", sa.Float, nullable=False),
        sa.Column("leased_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("claim_id", sa.Integer, sa.ForeignKey("claims.id")),
    )
    op.create_index("ix_assignments_project_tutor", "assignments", ["project_id", "tutor_id"])
    op.create_index("ix_assignments_project_item", "assignments", ["project_id", "item_id"])


def downgrade() -> None:
    for table in ("assignments", "item_domains", "tutors", "routing_settings"):
        op.drop_table(table)
