"""Audit log of security-relevant actions, and which server process handed out each lease.

``audit_log`` is append-only history like claims: the database refuses UPDATE and DELETE on it.
``assignments.served_by`` is the ``host:pid:tag`` of the server process that last handed the lease
to its tutor, so a process that starts after a crash on the same host can cut short the leases of
requests that died with it (see ``routing.service.release_orphaned_leases``).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

JSON = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("actor_id", sa.Integer, sa.ForeignKey("users.id")),
        sa.Column("actor", sa.String(200)),
        sa.Column("client", sa.String(100)),
        sa.Column("project", sa.String(200)),
        sa.Column("target", sa.String(200)),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("detail", JSON),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_action", "audit_log", ["action"])
    if op.get_bind().dialect.name == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{event.lower()} BEFORE {event} ON audit_log "
                "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
            )
    else:
        op.execute(
            "CREATE FUNCTION veritag_audit_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION veritag_audit_append_only()"
        )
    op.add_column("assignments", sa.Column("served_by", sa.String(100)))


def downgrade() -> None:
    with op.batch_alter_table("assignments") as batch:
        batch.drop_column("served_by")
    if op.get_bind().dialect.name != "sqlite":
        op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION veritag_audit_append_only()")
    op.drop_index("ix_audit_log_action", "audit_log")
    op.drop_index("ix_audit_log_at", "audit_log")
    op.drop_table("audit_log")
