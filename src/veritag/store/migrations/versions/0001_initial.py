"""Initial tables: users, projects, items, sources, append-only claims, gold, imports.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def _created_at() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(200), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        _created_at(),
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("task_schema", JSON, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        _created_at(),
    )
    op.create_table(
        "items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("external_id", sa.String(500), nullable=False),
        sa.Column("text", sa.Text),
        sa.Column("data", JSON),
        sa.Column("meta", JSON),
        _created_at(),
        sa.UniqueConstraint("project_id", "external_id", name="uq_items_project_external"),
    )
    op.create_table(
        "sources",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.String(100)),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id")),
        _created_at(),
        sa.UniqueConstraint("project_id", "kind", "name", name="uq_sources_project_kind_name"),
    )
    op.create_table(
        "claims",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id"), nullable=False),
        sa.Column("source_id", sa.Integer, sa.ForeignKey("sources.id"), nullable=False),
        sa.Column("value", JSON),
        sa.Column("probs", JSON),
        sa.Column("dedup_key", sa.Text),
        _created_at(),
        sa.UniqueConstraint("item_id", "source_id", "dedup_key", name="uq_claims_dedup"),
    )
    op.create_index("ix_claims_project_item", "claims", ["project_id", "item_id"])
    op.create_table(
        "gold",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id"), nullable=False, unique=True),
        sa.Column("value", JSON, nullable=False),
        _created_at(),
    )
    op.create_table(
        "imports",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("items_added", sa.Integer, nullable=False),
        sa.Column("claims_added", sa.Integer, nullable=False),
        sa.Column("gold_added", sa.Integer, nullable=False),
        sa.Column("rows_skipped", sa.Integer, nullable=False),
        _created_at(),
    )
    _forbid_claim_changes()


def _forbid_claim_changes() -> None:
    """Make claims append-only in the database itself, whatever code talks to it."""
    if op.get_bind().dialect.name == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER claims_no_{event.lower()} BEFORE {event} ON claims "
                "BEGIN SELECT RAISE(ABORT, 'claims are append-only'); END"
            )
    else:
        op.execute(
            "CREATE FUNCTION veritag_claims_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'claims are append-only'; END $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER claims_append_only BEFORE UPDATE OR DELETE ON claims "
            "FOR EACH ROW EXECUTE FUNCTION veritag_claims_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.execute("DROP TRIGGER claims_append_only ON claims")
        op.execute("DROP FUNCTION veritag_claims_append_only()")
    for table in ("imports", "gold", "claims", "sources", "items", "projects", "users"):
        op.drop_table(table)
