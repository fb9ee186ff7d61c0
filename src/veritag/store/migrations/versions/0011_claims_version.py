"""A per-project claims counter that a late commit cannot fool, and pruned truth runs.

``projects.claims_version`` counts the claims a project has been given; the one claims writer
adds to it in the transaction that inserts them. ``truth_runs.claims_version`` is the count a
run read. Staleness used to compare the newest claim id, which misses a claim whose transaction
took a lower id but committed after a fit read the claims (PostgreSQL hands out ids at insert,
not at commit). ``truth_runs.pruned`` marks a run whose posteriors and source rows the retention
rule deleted (``store.queries.prune_truth_runs``).

Runs stay history: the append-only triggers of 0002 are narrowed, not dropped. A run's row still
refuses DELETE and any UPDATE but setting ``pruned`` (never back), and its posterior and source
rows refuse UPDATE, and DELETE unless their run is already marked pruned.

Backfill: a project's version is its number of claims, and a run's is the number of the
project's claims with ids up to its ``max_claim_id``: a run that covered every claim stays
current, and one that did not stays stale by exactly the claims it missed.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


#: The columns of ``truth_runs`` that no UPDATE may change (all but ``pruned``).
FROZEN = (
    "id, project_id, method, engine_version, params, max_claim_id, claims_version, gold_count, "
    "n_items, log_likelihood, n_iter, converged, created_at"
)
ROWS = ("posteriors", "source_reliability")
PRUNED = "EXISTS (SELECT 1 FROM truth_runs WHERE truth_runs.id = OLD.run_id AND truth_runs.pruned)"


def _sqlite_refuse(name: str, event: str, table: str, when: str = "") -> None:
    op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute(
        f"CREATE TRIGGER {name} BEFORE {event} ON {table} {when} "
        f"BEGIN SELECT RAISE(ABORT, '{table} are append-only'); END"
    )


def _pg_refuse(
    name: str, event: str, table: str, when: str = "", function: str = "veritag_runs_append_only"
) -> None:
    op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
    op.execute(
        f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW {when} "
        f"EXECUTE FUNCTION {function}()"
    )


def _allow_pruning() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_refuse("truth_runs_no_update", f"UPDATE OF {FROZEN}", "truth_runs")
        _sqlite_refuse(
            "truth_runs_keep_pruned",
            "UPDATE OF pruned",
            "truth_runs",
            "WHEN OLD.pruned AND NOT NEW.pruned",
        )
        for table in ROWS:
            _sqlite_refuse(f"{table}_no_delete", "DELETE", table, f"WHEN NOT {PRUNED}")
        return
    _pg_refuse("truth_runs_append_only", f"DELETE OR UPDATE OF {FROZEN}", "truth_runs")
    _pg_refuse(
        "truth_runs_keep_pruned",
        "UPDATE OF pruned",
        "truth_runs",
        "WHEN (OLD.pruned AND NOT NEW.pruned)",
    )
    # A trigger's WHEN may not hold a subquery on PostgreSQL: the function asks.
    op.execute(
        "CREATE FUNCTION veritag_runs_prune_only() RETURNS trigger AS $$ BEGIN "
        f"IF NOT {PRUNED} THEN RAISE EXCEPTION '% are append-only', TG_TABLE_NAME; END IF; "
        "RETURN OLD; END $$ LANGUAGE plpgsql"
    )
    for table in ROWS:
        _pg_refuse(f"{table}_append_only", "UPDATE", table)
        _pg_refuse(f"{table}_prune_only", "DELETE", table, function="veritag_runs_prune_only")


def _forbid_pruning() -> None:
    """0002's triggers back: runs refuse every UPDATE and DELETE."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER truth_runs_keep_pruned")
        _sqlite_refuse("truth_runs_no_update", "UPDATE", "truth_runs")
        for table in ROWS:
            _sqlite_refuse(f"{table}_no_delete", "DELETE", table)
        return
    op.execute("DROP TRIGGER truth_runs_keep_pruned ON truth_runs")
    for table in ROWS:
        op.execute(f"DROP TRIGGER {table}_prune_only ON {table}")
    op.execute("DROP FUNCTION veritag_runs_prune_only()")
    for table in ("truth_runs", *ROWS):
        _pg_refuse(f"{table}_append_only", "UPDATE OR DELETE", table)


def upgrade() -> None:
    op.add_column(
        "projects", sa.Column("claims_version", sa.BigInteger, nullable=False, server_default="0")
    )
    op.add_column(
        "truth_runs",
        sa.Column("claims_version", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.add_column(
        "truth_runs", sa.Column("pruned", sa.Boolean, nullable=False, server_default=sa.false())
    )
    # 0002's trigger refuses any UPDATE of a run: lifted for the backfill, narrowed after it.
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER truth_runs_no_update")
    else:
        op.execute("DROP TRIGGER truth_runs_append_only ON truth_runs")
    op.execute(
        "UPDATE projects SET claims_version = "
        "(SELECT count(*) FROM claims WHERE claims.project_id = projects.id)"
    )
    op.execute(
        "UPDATE truth_runs SET claims_version = (SELECT count(*) FROM claims "
        "WHERE claims.project_id = truth_runs.project_id AND claims.id <= truth_runs.max_claim_id)"
    )
    _allow_pruning()


def downgrade() -> None:
    _forbid_pruning()
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35 has it): batch mode would copy and drop
    # tables that other tables' foreign keys point at.
    op.drop_column("truth_runs", "pruned")
    op.drop_column("truth_runs", "claims_version")
    op.drop_column("projects", "claims_version")
