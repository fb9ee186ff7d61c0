"""The success bodies of the JSON API under ``/api/v1``, as pydantic models for the OpenAPI
document.

The routes still build plain dicts; FastAPI checks each against its model (a key a model does not
name is a bug: ``Out`` forbids it) and the document shows the shape. Deep, open-ended parts
(reports, dashboards, job results) are typed as JSON objects. Models whose keys come and go
(``pair``, ``meta``) are served with ``response_model_exclude_unset``, so a key the route leaves
out stays out.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from .openapi import Out, TaskSchemaJson

__all__ = [
    "AutomationReportOut",
    "DashboardOut",
    "ImportOut",
    "ItemOut",
    "JobOut",
    "JobStartedOut",
    "LeaderboardOut",
    "LeaseOut",
    "LoginOut",
    "MeOut",
    "MemberOut",
    "NewTokenOut",
    "ProjectDetailOut",
    "ProjectOut",
    "QualityReportOut",
    "QueueOut",
    "ReleaseOut",
    "ResolveOut",
    "ReviewOut",
    "ReviewQueueOut",
    "RoutingOut",
    "StatusOut",
    "SubmitOut",
    "TokenOut",
    "TutorOut",
    "UndoOut",
    "UnlockOut",
    "UserOut",
]

Role = Literal["admin", "reviewer", "tutor"]
JsonObject = dict[str, Any]


class LoginOut(Out):
    username: str
    role: Role
    csrf_token: str = Field(
        description="Send it as X-CSRF-Token with every cookie request that changes state"
    )
    expires_at: str


class MembershipOut(Out):
    project: str
    role: Role


class MeOut(Out):
    id: int
    username: str
    role: Role
    auth: Literal["token", "session"]
    memberships: list[MembershipOut]


class UserOut(Out):
    id: int
    username: str
    role: Role


class UnlockOut(Out):
    username: str
    cleared: bool = Field(description="Whether the account had failed logins or a lockout to clear")


class NewTokenOut(Out):
    id: int
    name: str
    token: str = Field(description="The secret: shown in this answer only")


class TokenOut(Out):
    id: int
    name: str
    created_at: str | None
    last_used_at: str | None
    revoked: bool


class ProjectOut(Out):
    name: str
    description: str
    task_schema: Annotated[JsonObject, TaskSchemaJson] = Field(alias="schema")
    role: Role


class ProjectDetailOut(ProjectOut):
    counts: dict[str, int]


class MemberOut(Out):
    project: str
    username: str
    role: Role


class TutorOut(Out):
    username: str
    domains: list[str]
    cost: float
    active: bool


class PairOut(Out):
    """A pairwise item as a tutor sees it: the two responses in the lease's order."""

    prompt: Any
    left: Any
    right: Any


class LeaseOut(Out):
    lease: int
    item_id: int
    external_id: str | None
    text: str | None
    data: JsonObject | None
    domain: str | None
    cost: float
    type: str
    leased_at: str
    expires_at: str
    resumed: bool = Field(
        default=False, description="The caller's running lease, handed back renewed"
    )
    pair: PairOut | None = Field(default=None, description="Pairwise projects only")


class UndoOut(LeaseOut):
    previous: Any = Field(description="The answer taken back")


class SubmitOut(Out):
    lease: int
    claim_id: int
    next: LeaseOut | None = Field(
        default=None,
        description="With `next` asked: the caller's next lease, null when nothing is left",
    )
    next_error: str | None = Field(
        default=None, description="Why no next lease was given, though the answer was stored"
    )


class ReleaseOut(Out):
    lease: int
    state: Literal["released"]


class ItemOut(Out):
    id: int
    external_id: str | None
    text: str | None
    data: JsonObject | None
    meta: JsonObject | None = Field(default=None, description="Reviewers and admins only")
    pair: PairOut | None = Field(default=None, description="A tutor's view of a pairwise item")


class RoutingOut(Out):
    settings: JsonObject
    items: int
    done: int
    pending: int
    gold_items: int
    in_flight: int
    labels_spent: int
    spent: float | None
    reserved: float | None
    budget_left: float | None
    tutors: list[JsonObject]


class RowOut(Out):
    file: str
    line: int | None = None
    row: int | None = None
    field: str | None
    message: str


class ImportOut(Out):
    file: str
    bytes: int
    rows: int
    items_added: int
    items_filled: int
    claims_added: int
    gold_added: int
    rows_skipped: int
    errors: list[RowOut] = Field(description="The first bad rows skipped (skip_invalid)")
    imported_before: str | None = Field(
        description="When the same file was imported before, if it was"
    )


class StatusOut(Out):
    project: JsonObject
    role: Role
    imports: list[JsonObject]
    resolution: JsonObject | None
    automation: JsonObject | None


class SourceOut(Out):
    """One source's share of a resolve job's run: its claims and its estimated accuracy."""

    source: str
    kind: str
    claims: int
    accuracy: float | None


class ResolveOut(Out):
    """The result of a ``resolve`` job (``POST .../resolve`` or an import past the refit
    threshold), as ``GET /jobs/{id}`` answers it once done: the stored run and each source's
    accuracy. Named in ``JobOut`` so the OpenAPI document shows it; the other kinds' results stay
    open JSON objects."""

    run: int
    method: str
    requested_method: str
    engine_version: str
    open_ended: bool
    iterations: int | None
    converged: bool | None
    items: int
    basis: dict[str, int] = Field(alias="from", description="Items resolved on each basis")
    sources: list[SourceOut]


class JobStartedOut(Out):
    job: str
    kind: str
    state: str
    status_url: str


class JobOut(Out):
    job: str
    kind: str
    project: str
    state: Literal["queued", "running", "done", "failed"]
    attempts: int = Field(description="Times a worker took it (a crash or an error may retry it)")
    result: ResolveOut | JsonObject | None = Field(
        default=None, description="When done; a resolve job's is a ResolveOut"
    )
    error: str | None = Field(default=None, description="When failed")
    created_at: str | None
    started_at: str | None
    finished_at: str | None


class QueueItemOut(Out):
    id: str = Field(description="The item's external id")
    reason: str
    model_confidence: float | None
    slice: str | None


class QueueOut(Out):
    run: int
    total: int
    items: list[QueueItemOut]


class TruthOut(Out):
    """The stored truth run a GET read (a GET never fits): None before the first run; ``stale``
    when claims or gold labels came after it (``claims_since`` of them)."""

    run: int | None
    stale: bool
    claims_since: int
    refitted: bool


class QualityReportOut(Out):
    report: JsonObject
    truth: TruthOut
    warnings: list[str]


class AutomationReportOut(Out):
    report: JsonObject
    current: bool
    warnings: list[str]


class ReviewQueueOut(Out):
    project: str
    total: int
    items: list[JsonObject]
    truth: TruthOut


class ReviewOut(Out):
    item_id: int
    action: Literal["accept", "correct"]
    value: Any
    claim_id: int
    review_id: int


class DashboardOut(Out):
    project: str
    schema_type: str
    progress: JsonObject
    automation: JsonObject | None
    tutors: list[JsonObject]
    members: list[JsonObject] | None = Field(description="Admins only; null for reviewers")
    notes: list[str]


class LeaderboardOut(Out):
    project: str
    domain: str | None
    domains: list[str]
    ties: str
    interval: str
    weighted: bool
    tie_param: float | None
    models: list[JsonObject]
