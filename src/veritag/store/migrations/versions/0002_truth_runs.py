"""Truth runs: stored resolutions (posteriors per item, reliability per source), append-only.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
TABLES = ("truth_runs", "posteriors", "source_reliability")


def upgrade() -> None:
    op.create_table(
        "truth_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("method", sa.String(20), nullable=False),
        sa.Column("engine_version", sa.String(50), nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("max_claim_id", sa.Integer, nullable=False),
        sa.Column("gold_count", sa.Integer, nullable=False),
        sa.Column("n_items", sa.Integer, nullable=False),
        sa.Column("log_likelihood", sa.Float),
        sa.Column("n_iter", sa.Integer, nullable=False),
        sa.Column("converged", sa.Boolean, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.create_index("ix_truth_runs_project", "truth_runs", ["project_id", "id"])
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
    op.create_table(
        "source_reliability",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("truth_runs.id"), primary_key=True),
        sa.Column("source_id", sa.Integer, sa.ForeignKey("sources.id"), primary_key=True),
        sa.Column("accuracy", sa.Float),
        sa.Column("n_claims", sa.Integer, nullable=False),
        sa.Column("confusion", JSON),
    )
    _forbid_changes()


def _forbid_changes() -> None:
    """Runs are history, like claims: the database refuses UPDATE and DELETE on them."""
    if op.get_bind().dialect.name == "sqlite":
        for table in TABLES:
            for event in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} are append-only'); END"
                )
    else:
        op.execute(
            "CREATE FUNCTION veritag_runs_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION '% are append-only', TG_TABLE_NAME; END $$ LANGUAGE plpgsql"
        )
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION veritag_runs_append_only()"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        for table in TABLES:
            op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
        op.execute("DROP FUNCTION veritag_runs_append_only()")
    for table in reversed(TABLES):
        op.drop_table(table)
