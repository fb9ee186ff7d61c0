"""The tables. Claims are facts, never edited: the database itself refuses UPDATE and DELETE on
them (see the triggers in the first migration), and this package has no code path that tries.
Truth runs (the derived labels and source reliabilities) are append-only history in the same way
(migration 0002): a new resolution is a new run, never an edit of an old one. So are automation
runs (migration 0003). Routing (migration 0004) keeps mutable bookkeeping beside them:
settings, tutor profiles, each item's domain and work leases, whose state changes; the claim a
submitted lease writes is append-only like every other."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ApiToken",
    "Assignment",
    "AutomationItem",
    "AutomationRun",
    "Base",
    "Claim",
    "Embedding",
    "Gold",
    "ImportRecord",
    "Item",
    "ItemDomain",
    "Job",
    "LoginFailure",
    "LoginSession",
    "Membership",
    "PosteriorBlock",
    "Project",
    "Review",
    "RoutingItem",
    "RoutingSettings",
    "RoutingSkill",
    "RoutingState",
    "Source",
    "SourceReliability",
    "TruthRun",
    "Tutor",
    "User",
]

# none_as_null: a Python None is SQL NULL, never the JSON text "null".
JSONType = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONType, Any: JSONType}


def _now_column() -> Mapped[datetime]:
    """A ``created_at`` column the database fills in: one clock for every process that writes."""
    return mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(200), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(200))
    role: Mapped[str] = mapped_column(sa.String(20))
    created_at: Mapped[datetime] = _now_column()


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    task_schema: Mapped[dict[str, Any]]
    description: Mapped[str] = mapped_column(sa.Text, default="")
    #: How many claims the project has been given: the one claims writer
    #: (``store.claims``) adds to it in the transaction that inserts them, so a truth run that
    #: read a smaller number is stale even when the claim it missed has a lower id (a
    #: transaction that took its id first and committed after the fit read the claims).
    claims_version: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")
    #: Moved whenever a tutor is added or switched on or off, so that a server process keeps the
    #: tutors' profiles in memory while it holds (``routing.leases``).
    tutors_version: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")
    created_at: Mapped[datetime] = _now_column()


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (
        sa.UniqueConstraint("project_id", "external_id", name="uq_items_project_external"),
        sa.Index("ix_items_project_id", "project_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"))
    external_id: Mapped[str] = mapped_column(sa.String(500))
    text: Mapped[str | None] = mapped_column(sa.Text)
    data: Mapped[dict[str, Any] | None]
    meta: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = _now_column()


class Source(Base):
    """Who made a claim: a human (``kind='human'``) or a model (``kind='model'``)."""

    __tablename__ = "sources"
    __table_args__ = (
        sa.UniqueConstraint("project_id", "kind", "name", name="uq_sources_project_kind_name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"))
    kind: Mapped[str] = mapped_column(sa.String(10))
    name: Mapped[str] = mapped_column(sa.String(200))
    version: Mapped[str | None] = mapped_column(sa.String(100))
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    created_at: Mapped[datetime] = _now_column()


class Claim(Base):
    """One source's answer about one item: a label (``value``) or, for models, ``probs``.

    ``dedup_key`` is set on imported claims so re-importing a file adds nothing; claims made
    live leave it NULL, which a unique index never treats as equal.
    """

    __tablename__ = "claims"
    __table_args__ = (
        sa.UniqueConstraint("item_id", "source_id", "dedup_key", name="uq_claims_dedup"),
        sa.Index("ix_claims_project_item", "project_id", "item_id"),
        sa.Index("ix_claims_retracts", "retracts"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"))
    item_id: Mapped[int] = mapped_column(sa.ForeignKey("items.id"))
    source_id: Mapped[int] = mapped_column(sa.ForeignKey("sources.id"))
    value: Mapped[Any | None]
    probs: Mapped[Any | None]
    dedup_key: Mapped[str | None] = mapped_column(sa.Text)
    #: Set on a retraction (an undo): the claim it takes back; a retraction has no value or probs.
    retracts: Mapped[int | None] = mapped_column(sa.Integer)
    created_at: Mapped[datetime] = _now_column()


class Gold(Base):
    """A label known to be right, used to measure sources and pin the truth."""

    __tablename__ = "gold"
    __table_args__ = (sa.Index("ix_gold_project", "project_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"))
    item_id: Mapped[int] = mapped_column(sa.ForeignKey("items.id"), unique=True)
    value: Mapped[Any]
    created_at: Mapped[datetime] = _now_column()


class ImportRecord(Base):
    """One import run: what file, what it added, so ``status`` can tell the story."""

    __tablename__ = "imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"))
    path: Mapped[str] = mapped_column(sa.Text)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    rows: Mapped[int]
    items_added: Mapped[int]
    claims_added: Mapped[int]
    gold_added: Mapped[int]
    rows_skipped: Mapped[int]
    created_at: Mapped[datetime] = _now_column()


class TruthRun(Base):
    """One resolution of a project: which method and engine, and which claims it covered.

    ``claims_version`` and ``gold_count`` say what the run saw: claims are append-only and gold
    labels are only ever added, so a run whose numbers still match the project's
    (``Project.claims_version``, the gold count) covers everything, and one whose numbers differ
    is stale. ``max_claim_id`` is the newest claim the run read: readers load "the claims up to
    the run" by it. ``pruned`` runs keep this row but lost their posterior blocks and source rows to
    the retention rule (``store.queries.prune_truth_runs``).
    """

    __tablename__ = "truth_runs"
    __table_args__ = (sa.Index("ix_truth_runs_project", "project_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"))
    method: Mapped[str] = mapped_column(sa.String(20))
    engine_version: Mapped[str] = mapped_column(sa.String(50))
    params: Mapped[dict[str, Any]]
    max_claim_id: Mapped[int]
    claims_version: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")
    gold_count: Mapped[int]
    n_items: Mapped[int]
    log_likelihood: Mapped[float | None] = mapped_column(sa.Float)
    n_iter: Mapped[int]
    converged: Mapped[bool]
    pruned: Mapped[bool] = mapped_column(server_default=sa.false())
    created_at: Mapped[datetime] = _now_column()


class PosteriorBlock(Base):
    """A run's answers for up to ``posterior_blocks.BLOCK_ITEMS`` consecutive items, as one
    compressed Arrow block (``store.posterior_blocks`` says what it holds and why).

    ``first_item_id`` and ``last_item_id`` bound the block's items, so a reader of a range of
    items fetches only the blocks that hold them.
    """

    __tablename__ = "posterior_blocks"

    run_id: Mapped[int] = mapped_column(sa.ForeignKey("truth_runs.id"), primary_key=True)
    block: Mapped[int] = mapped_column(primary_key=True)
    first_item_id: Mapped[int] = mapped_column(sa.BigInteger)
    last_item_id: Mapped[int] = mapped_column(sa.BigInteger)
    n_items: Mapped[int]
    payload: Mapped[bytes] = mapped_column(sa.LargeBinary)


class SourceReliability(Base):
    """A run's estimate of one source: expected accuracy, claim count, confusion matrix.

    ``confusion[k][l]`` = P(the source answers l | the true class is k); NULL for open-ended
    tasks, and ``accuracy`` NULL where nothing measured the source.
    """

    __tablename__ = "source_reliability"

    run_id: Mapped[int] = mapped_column(sa.ForeignKey("truth_runs.id"), primary_key=True)
    source_id: Mapped[int] = mapped_column(sa.ForeignKey("sources.id"), primary_key=True)
    accuracy: Mapped[float | None] = mapped_column(sa.Float)
    n_claims: Mapped[int]
    confusion: Mapped[Any | None]


class AutomationRun(Base):
    """One automation decision over a project: which model, what target, what the audit proved.

    ``audit_rate`` fixes the audit: an item is audited when its hash key falls below the rate, so
    the audit stays a uniform sample as items arrive. ``slices`` holds, per slice, its name and
    the policy's decision (threshold, bound, audited items behind it). ``source_id`` is NULL for a
    run before any model claim: it only draws the audit. ``max_claim_id`` and
    ``gold_count`` say which claims the run saw, and ``claims_version`` decides whether it is
    current, as for truth runs.
    """

    __tablename__ = "automation_runs"
    __table_args__ = (sa.Index("ix_automation_runs_project", "project_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"))
    source_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sources.id"))
    target: Mapped[float] = mapped_column(sa.Float)
    delta: Mapped[float] = mapped_column(sa.Float)
    audit_rate: Mapped[float] = mapped_column(sa.Float)
    slice_field: Mapped[str | None] = mapped_column(sa.String(200))
    params: Mapped[dict[str, Any]]
    slices: Mapped[Any]
    n_items: Mapped[int]
    n_auto: Mapped[int]
    n_audit: Mapped[int]
    n_audit_labeled: Mapped[int]
    overall_bound: Mapped[float | None] = mapped_column(sa.Float)
    max_claim_id: Mapped[int]
    claims_version: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")
    gold_count: Mapped[int]
    created_at: Mapped[datetime] = _now_column()


class AutomationItem(Base):
    """A run's decision for one item: ``auto`` (the model's ``label`` is accepted), ``audit``
    (humans label it whatever the model says) or ``human`` (below the threshold)."""

    __tablename__ = "automation_items"

    run_id: Mapped[int] = mapped_column(sa.ForeignKey("automation_runs.id"), primary_key=True)
    item_id: Mapped[int] = mapped_column(sa.ForeignKey("items.id"), primary_key=True)
    decision: Mapped[str] = mapped_column(sa.String(10))
    label: Mapped[Any | None]
    confidence: Mapped[float] = mapped_column(sa.Float)
    slice: Mapped[str | None] = mapped_column(sa.String(200))


class Embedding(Base):
    """A text's vector under one embedding model, computed once: keyed by the model's name and
    version and the SHA-256 of the text, so every project with the same text shares it."""

    __tablename__ = "embeddings"

    model: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    text_key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    vector: Mapped[bytes] = mapped_column(sa.LargeBinary)


class RoutingSettings(Base):
    """How a project routes work: its domains, when an item is done, the gold rate and the budget.

    ``budget`` is in the tutors' cost units (NULL: unlimited); leases reserve it until they end.
    """

    __tablename__ = "routing_settings"

    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), primary_key=True)
    domains: Mapped[Any] = mapped_column(JSONType)
    domain_field: Mapped[str] = mapped_column(sa.String(200))
    target: Mapped[float] = mapped_column(sa.Float)
    max_labels: Mapped[int]
    min_labels: Mapped[int]
    gold_rate: Mapped[float] = mapped_column(sa.Float)
    budget: Mapped[float | None] = mapped_column(sa.Float)
    lease_seconds: Mapped[int]


class Tutor(Base):
    """A human source's routing profile: declared domains, cost per label, availability."""

    __tablename__ = "tutors"
    __table_args__ = (
        sa.UniqueConstraint("project_id", "source_id", name="uq_tutors_project_source"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"))
    source_id: Mapped[int] = mapped_column(sa.ForeignKey("sources.id"))
    domains: Mapped[Any] = mapped_column(JSONType)
    cost: Mapped[float] = mapped_column(sa.Float)
    active: Mapped[bool]
    #: Leases the tutor was ever handed in the project (every ``gold_period``-th is gold).
    leases: Mapped[int] = mapped_column(server_default="0")
    created_at: Mapped[datetime] = _now_column()


class ItemDomain(Base):
    """An item's domain, computed once, and its origin: ``metadata``, ``keywords`` or ``model``."""

    __tablename__ = "item_domains"
    __table_args__ = (sa.Index("ix_item_domains_project", "project_id"),)

    item_id: Mapped[int] = mapped_column(sa.ForeignKey("items.id"), primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"))
    domain: Mapped[str] = mapped_column(sa.String(100))
    origin: Mapped[str] = mapped_column(sa.String(10))


class RoutingItem(Base):
    """An item's place in the routing queue (``routing.queue``), kept up to date on every write.

    ``probs`` is the posterior routing works with (the truth run's, with the human labels since
    folded in; NULL for tasks without one answer from a fixed list), ``top`` its largest class
    probability (the queue's order: the least certain first). ``labels`` counts standing human
    labels, ``leased`` leases not yet ended (an expired one counts until it is marked expired),
    ``need`` the labels the item still takes, and ``open`` whether it takes a lease now
    (``need > leased``, never for gold items). The index hands out candidates without a scan.
    """

    __tablename__ = "routing_items"
    __table_args__ = (
        sa.Index("ix_routing_items_pick", "project_id", "open", "domain", "top", "item_id"),
        sa.Index("ix_routing_items_gold", "project_id", "is_gold"),
    )

    item_id: Mapped[int] = mapped_column(sa.ForeignKey("items.id"), primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"))
    domain: Mapped[str] = mapped_column(sa.String(100))
    is_gold: Mapped[bool]
    labels: Mapped[int]
    leased: Mapped[int]
    need: Mapped[int]
    open: Mapped[bool]
    top: Mapped[float] = mapped_column(sa.Float)
    probs: Mapped[Any | None] = mapped_column(JSONType)


class RoutingState(Base):
    """What a project's routing queue was built from: the truth run (NULL before the first), the
    claims it accounts for (``claims_version``: the project's at the build, plus every label
    folded in since), the newest item, the items and the gold count it covers, and the settings
    it was built for (``settings_key``). ``stale`` is set by an undo, which a posterior cannot
    fold."""

    __tablename__ = "routing_state"

    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), primary_key=True)
    run_id: Mapped[int | None]
    claims_version: Mapped[int] = mapped_column(sa.BigInteger)
    max_item_id: Mapped[int]
    items: Mapped[int]
    gold_count: Mapped[int]
    settings_key: Mapped[str] = mapped_column(sa.String(64))
    stale: Mapped[bool]
    built: Mapped[int]
    #: The cost of submitted leases and of leases not yet ended (expired ones until marked),
    #: moved by the same writes, so the budget check reads one row.
    spent: Mapped[float] = mapped_column(sa.Float)
    reserved: Mapped[float] = mapped_column(sa.Float)


class RoutingSkill(Base):
    """A source's per-domain confusion and measured claims against the queue's truth run, as
    ``truth.source_reliability`` gives them (before the declared-domain prior is blended in)."""

    __tablename__ = "routing_skill"

    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), primary_key=True)
    source_id: Mapped[int] = mapped_column(sa.ForeignKey("sources.id"), primary_key=True)
    confusion: Mapped[Any] = mapped_column(JSONType)
    n_claims: Mapped[Any] = mapped_column(JSONType)


class Assignment(Base):
    """One lease of an item to a tutor: ``leased`` until ``expires_at``, then ``submitted`` (with
    its ``claim_id``), ``expired`` or ``released``. ``cost`` is reserved from the budget while the
    lease runs and spent once it is submitted."""

    __tablename__ = "assignments"
    __table_args__ = (
        sa.Index("ix_assignments_project_tutor", "project_id", "tutor_id"),
        sa.Index("ix_assignments_project_item", "project_id", "item_id"),
        sa.Index("ix_assignments_running", "project_id", "state", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"))
    item_id: Mapped[int] = mapped_column(sa.ForeignKey("items.id"))
    tutor_id: Mapped[int] = mapped_column(sa.ForeignKey("tutors.id"))
    is_gold: Mapped[bool]
    cost: Mapped[float] = mapped_column(sa.Float)
    leased_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    state: Mapped[str] = mapped_column(sa.String(10))
    claim_id: Mapped[int | None] = mapped_column(sa.ForeignKey("claims.id"))
    #: Seconds the tutor spent on the item before submitting (as the page measured it).
    seconds: Mapped[float | None] = mapped_column(sa.Float)
    #: Why the tutor gave the lease back unanswered.
    skip_reason: Mapped[str | None] = mapped_column(sa.Text)
    #: ``host:pid:tag`` of the server process that last handed the lease out (migration 0010).
    served_by: Mapped[str | None] = mapped_column(sa.String(100))


class ApiToken(Base):
    """A bearer token of a user for the server's API (migration 0005). Only the SHA-256 of the
    secret is stored; the secret is shown once, when the token is made."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(sa.String(200))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = _now_column()
    last_used_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    revoked: Mapped[bool] = mapped_column(sa.Boolean, default=False)


class Membership(Base):
    """A user's role in one project: ``reviewer``, ``tutor`` or ``admin``."""

    __tablename__ = "memberships"

    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), primary_key=True)
    role: Mapped[str] = mapped_column(sa.String(20))
    created_at: Mapped[datetime] = _now_column()


class LoginSession(Base):
    """A browser login: ``id`` is the SHA-256 of the cookie's secret, never the secret itself;
    ``csrf_token`` must come back in ``X-CSRF-Token`` on every state-changing request."""

    __tablename__ = "sessions"
    __table_args__ = (sa.Index("ix_sessions_user", "user_id"),)

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    csrf_token: Mapped[str] = mapped_column(sa.String(100))
    created_at: Mapped[datetime] = _now_column()
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class Review(Base):
    """A reviewer's verdict on an item (migration 0007): ``accept`` the resolved label or
    ``correct`` it. Either way the verdict itself is the claim ``claim_id`` the reviewer wrote;
    this row says it was a review. Append-only, like claims."""

    __tablename__ = "reviews"
    __table_args__ = (
        sa.Index("ix_reviews_project_item", "project_id", "item_id"),
        sa.CheckConstraint("action IN ('accept', 'correct')", name="ck_reviews_action"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("projects.id"))
    item_id: Mapped[int] = mapped_column(sa.ForeignKey("items.id"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(sa.String(10))
    claim_id: Mapped[int] = mapped_column(sa.ForeignKey("claims.id"))
    created_at: Mapped[datetime] = _now_column()


class Job(Base):
    """A queued background job (migrations 0008, 0012): who started it, what it runs (``kind``
    and its ``params``, everything a worker needs), where it stands (queued, running, done,
    failed), and which worker (``host:pid:tag``) runs it, alive while its ``heartbeat_at`` is
    recent. ``error`` is the last attempt's error, also while a retry waits. State changes; the
    work it does is recorded elsewhere (claims, automation runs) like any other."""

    __tablename__ = "jobs"
    __table_args__ = (
        sa.Index("ix_jobs_runner_state", "runner", "state"),
        sa.Index("ix_jobs_state_created", "state", "created_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(sa.String(50))
    project: Mapped[str] = mapped_column(sa.String(200))
    state: Mapped[str] = mapped_column(sa.String(10))
    result: Mapped[Any | None]
    error: Mapped[str | None] = mapped_column(sa.Text)
    runner: Mapped[str] = mapped_column(sa.String(300))
    params: Mapped[Any | None]
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    max_attempts: Mapped[int] = mapped_column(default=3, server_default="3")
    heartbeat_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    created_at: Mapped[datetime] = _now_column()
    started_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class LoginFailure(Base):
    """Failed logins of one account or client address (migration 0009): ``key`` is the SHA-256 of
    ``user:<name>`` or ``addr:<address>``. Mutable bookkeeping of the login throttle, deleted on a
    successful login (the account's) or an admin's unlock, not append-only history."""

    __tablename__ = "login_failures"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(sa.Integer)
    last_failed_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    locked_until: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class AuditEntry(Base):
    """One security-relevant action (migration 0010): a login that failed or succeeded, a user,
    role, membership, token or setting changed, an export. Append-only like claims (triggers)."""

    __tablename__ = "audit_log"
    __table_args__ = (
        sa.Index("ix_audit_log_at", "at"),
        sa.Index("ix_audit_log_action", "action"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    #: What happened, e.g. ``login``, ``user.create``, ``token.revoke``, ``export``.
    action: Mapped[str] = mapped_column(sa.String(40))
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    #: The acting user's name (or the name tried, for a failed login).
    actor: Mapped[str | None] = mapped_column(sa.String(200))
    #: The client's address as the server saw it.
    client: Mapped[str | None] = mapped_column(sa.String(100))
    project: Mapped[str | None] = mapped_column(sa.String(200))
    #: What the action was done to: a user name, a token id, a setting.
    target: Mapped[str | None] = mapped_column(sa.String(200))
    #: ``ok``, ``refused`` or ``locked``.
    outcome: Mapped[str] = mapped_column(sa.String(20))
    detail: Mapped[Any | None] = mapped_column(JSONType)
