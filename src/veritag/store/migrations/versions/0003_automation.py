"""Automation runs (which items a model labels alone, with the evidence) and stored embeddings.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
TABLES = ("automation_runs", "automation_items")


def upgrade() -> None:
    op.create_table(
        "automation_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("source_id", sa.Integer, sa.ForeignKey("sources.id")),
        sa.Column("target", sa.Float, nullable=False),
        sa.Column("delta", sa.Float, nullable=False),
        sa.Column("audit_rate", sa.Float, nullable=False),
        sa.Column("slice_field", sa.String(200)),
        sa.Column("params", JSON, nullable=False),
        sa.Column("slices", JSON, nullable=False),
        sa.Column("n_items", sa.Integer, nullable=False),
        sa.Column("n_auto", sa.Integer, nullable=False),
        sa.Column("n_audit", sa.Integer, nullable=False),
        sa.Column("n_audit_labeled", sa.Integer, nullable=False),
        sa.Column("overall_bound", sa.Float),
        sa.Column("max_claim_id", sa.Integer, nullable=False),
        sa.Column("gold_count", sa.Integer, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.create_index("ix_automation_runs_project", "automation_runs", ["project_id", "id"])
    op.create_table(
        "automation_items",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("automation_runs.id"), primary_key=True),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id"), primary_key=True),
        sa.Column("decision", sa.String(10), nullable=False),
        sa.Column("label", JSON),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("slice", sa.String(200)),
    )
    op.create_table(
        "embeddings",
        sa.Column("model", sa.String(100), primary_key=True),
        sa.Column("text_key", sa.String(64), primary_key=True),
        sa.Column("vector", sa.LargeBinary, nullable=False),
    )
    _forbid_changes()


def _forbid_changes() -> None:
    """Automation runs are history, like truth runs: UPDATE and DELETE are refused."""
    if op.get_bind().dialect.name == "sqlite":
        for table in TABLES:
            for event in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} are append-only'); END"
                )
    else:
        for table in TABLES:  # the function comes from migration 0002
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION veritag_runs_append_only()"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        for table in TABLES:
            op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
    op.drop_table("embeddings")
    for table in reversed(TABLES):
        op.drop_table(table)
