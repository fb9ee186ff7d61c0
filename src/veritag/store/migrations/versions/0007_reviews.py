"""Reviews: a reviewer's verdict on an item, next to the claim it wrote; append-only.

A review never edits what tutors said: accepting or correcting an item writes a new claim by the
reviewer (a human source) and one ``reviews`` row naming that claim, so the history of who said
what stays whole. The database refuses UPDATE and DELETE on reviews, as on claims and runs.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id"), nullable=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("action", sa.String(10), nullable=False),
        sa.Column("claim_id", sa.Integer, sa.ForeignKey("claims.id"), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("action IN ('accept', 'correct')", name="ck_reviews_action"),
    )
    op.create_index("ix_reviews_project_item", "reviews", ["project_id", "item_id"])
    _forbid_changes()


def _forbid_changes() -> None:
    """Reviews are history, like claims: UPDATE and DELETE are refused by the database."""
    if op.get_bind().dialect.name == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER reviews_no_{event.lower()} BEFORE {event} ON reviews "
                "BEGIN SELECT RAISE(ABORT, 'reviews are append-only'); END"
            )
    else:  # the function comes from migration 0002
        op.execute(
            "CREATE TRIGGER reviews_append_only BEFORE UPDATE OR DELETE ON reviews "
            "FOR EACH ROW EXECUTE FUNCTION veritag_runs_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.execute("DROP TRIGGER reviews_append_only ON reviews")
    op.drop_index("ix_reviews_project_item", "reviews")
    op.drop_table("reviews")
