"""Automation runs record the claims version they read, as truth runs do since 0011.

``automation_runs.claims_version`` is the project's ``claims_version`` when the run read the
claims. Whether a run is current used to compare the newest claim id, which misses a claim whose
transaction took a lower id but committed after the run read the claims (PostgreSQL hands out
ids at insert, not at commit).

Backfill, as 0011 did for truth runs: a run's version is the number of the project's claims with
ids up to its ``max_claim_id``. Automation runs stay history: 0003's trigger that refuses any
UPDATE is lifted for the backfill only and put back as it was.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def _refuse_changes() -> None:
    """0003's trigger on ``automation_runs``: UPDATE (and DELETE) refused."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE TRIGGER automation_runs_no_update BEFORE UPDATE ON automation_runs "
            "BEGIN SELECT RAISE(ABORT, 'automation_runs are append-only'); END"
        )
    else:
        op.execute(
            "CREATE TRIGGER automation_runs_append_only BEFORE UPDATE OR DELETE ON automation_runs "
            "FOR EACH ROW EXECUTE FUNCTION veritag_runs_append_only()"
        )


def upgrade() -> None:
    op.add_column(
        "automation_runs",
        sa.Column("claims_version", sa.BigInteger, nullable=False, server_default="0"),
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER automation_runs_no_update")
    else:
        op.execute("DROP TRIGGER automation_runs_append_only ON automation_runs")
    op.execute(
        "UPDATE automation_runs SET claims_version = (SELECT count(*) FROM claims WHERE "
        "claims.project_id = automation_runs.project_id "
        "AND claims.id <= automation_runs.max_claim_id)"
    )
    _refuse_changes()


def downgrade() -> None:
    op.drop_column("automation_runs", "claims_version")
