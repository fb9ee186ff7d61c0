"""The tutor's loop and items: ``POST /projects/{name}/work``,
``.../work/{lease}/submit|release|undo`` and ``GET /projects/{name}/items/{id}``.

A tutor's lease never says whether the item is a gold check, so gold checks stay blind. A
pairwise (or arena) lease shows the two responses as ``left`` and ``right`` in an order drawn per
lease, without the item's other fields or its external id (either may name the models), and
takes ``left``/``right``/``tie`` back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from ...errors import Conflict, Forbidden, NotFound, VeritagError
from ...limits import SafeJson, SafeText
from ...routing import pairwise
from ...routing import service as routing
from ...schema import BaseSchema, PairwiseSchema
from ...store.models import Assignment, Item, Project, Source, Tutor
from ...store.queries import project_schema
from ..common import Id, process_name, request_store
from ..auth import Principal
from ..deps import Me, project_and_role, project_for
from ..jobs import queue_refit
from ..openapi import errors
from ..responses import ItemOut, LeaseOut, ReleaseOut, SubmitOut, UndoOut

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")


def _blind(
    out: dict[str, Any],
    project: Project,
    schema: PairwiseSchema,
    lease: int,
    data: dict[str, Any] | None,
) -> dict[str, Any]:
    """A tutor's view of a pairwise item (``routing.pairwise``): the prompt and the two responses
    as left and right; the item's other fields and its external id stay on the server."""
    return out | {
        "data": None,
        "external_id": None,
        "pair": pairwise.pair_view(schema, project.id, lease, data),
    }


def _lease_json(
    project: Project, lease: routing.Lease, schema: BaseSchema | None = None
) -> dict[str, Any]:
    """A lease as the tutor sees it (pairwise sides blinded); ``schema``: the project's, when the
    caller parsed it already."""
    schema = schema or project_schema(project)
    out = {
        "lease": lease.id,
        "item_id": lease.item_id,
        "external_id": lease.external_id,
        "text": lease.text,
        "data": lease.data,
        "domain": lease.domain,
        "cost": lease.cost,
        "type": schema.type,
        "leased_at": lease.leased_at.isoformat(),
        "expires_at": lease.expires_at.isoformat(),
        "resumed": lease.resumed,
    }
    return (
        _blind(out, project, schema, lease.id, lease.data)
        if isinstance(schema, PairwiseSchema)
        else out
    )


@router.post(
    "/projects/{name}/work",
    response_model=LeaseOut,
    response_model_exclude_unset=True,
    responses={
        204: {"description": "Nothing left for the caller to label"},
        **errors(400, 401, 403, 404),
    },
)
def request_work(name: str, user: Me, request: Request) -> dict[str, Any] | Response:
    """Lease the item the caller should label next; 204 when nothing is left for them. A caller
    who already holds a running lease in the project gets that one back, renewed (``resumed``)."""
    store = request_store(request)
    proj = project_for(store, name, user, ("tutor",))
    lease = _next_lease(proj, user, request)
    return Response(status_code=204) if lease is None else lease


def _next_lease(proj: Project, user: Principal, request: Request) -> dict[str, Any] | None:
    """The caller's next lease as they see it, or None when nothing is left for them."""
    try:
        lease = routing.request_work(
            request_store(request),
            proj,
            user.username,
            served_by=process_name(),
            on_due=lambda: queue_refit(request.app, proj, user.id),
        )
    except NotFound:  # the project exists (checked by the caller): no routing tutor of it
        raise Forbidden(
            f"you are not a routing tutor of project {proj.name!r}; "
            "an admin adds you with POST /projects/{name}/tutors"
        ) from None
    return None if lease is None else _lease_json(proj, lease)


@contextmanager
def _own_lease(project: Project, lease: int) -> Iterator[None]:
    """404 unless ``lease`` is a lease of this project to the caller (in any state): the routing
    call checks it, once, and either refusal reads here as no such lease."""
    try:
        yield
    except (NotFound, routing.NotYourLease):
        raise NotFound(f"you hold no lease {lease} in project {project.name!r}") from None


class SubmitBody(BaseModel):
    value: SafeJson
    #: Seconds the tutor spent on the item (the page measures it), for speed scorecards.
    seconds: float | None = Field(default=None, ge=0, le=7 * 24 * 3600)
    next: bool = Field(
        default=False,
        description="Also lease the caller's next item and answer it as `next`, as `POST "
        ".../work` would: one round trip per label instead of two",
    )


@router.post(
    "/projects/{name}/work/{lease}/submit",
    response_model=SubmitOut,
    response_model_exclude_unset=True,
    responses=errors(400, 401, 403, 404, 422),
)
def submit(name: str, lease: Id, body: SubmitBody, user: Me, request: Request) -> dict[str, Any]:
    """Answer a lease; the value is checked against the project's schema (422 with the reason).
    A pairwise answer may be ``left``/``right``/``tie`` as the lease showed the responses.

    With ``next``, the answer also carries the caller's next lease (``next``: null when nothing
    is left). The label is stored first, in its own transaction: if leasing the next item fails,
    the answer is still 200 with the claim, ``next`` null and ``next_error`` saying why."""
    store = request_store(request)
    proj = project_for(store, name, user, ("tutor",))
    with _own_lease(proj, lease):
        claim = routing.submit(
            store, proj, lease, body.value, tutor=user.username, seconds=body.seconds
        )
    out: dict[str, Any] = {"lease": lease, "claim_id": claim}
    if body.next:
        try:
            out["next"] = _next_lease(proj, user, request)
        except VeritagError as exc:  # the label is stored: say why there is no next item
            out |= {"next": None, "next_error": str(exc)}
    return out


class ReleaseBody(BaseModel):
    reason: SafeText | None = Field(default=None, max_length=2000)


@router.post(
    "/projects/{name}/work/{lease}/release",
    response_model=ReleaseOut,
    responses=errors(400, 401, 403, 404, 422),
)
def release(
    name: str, lease: Id, user: Me, request: Request, body: ReleaseBody | None = None
) -> dict[str, Any]:
    """Give a lease back unanswered (a skip, with the tutor's reason): the item returns to the pool,
    not to the caller."""
    store = request_store(request)
    proj = project_for(store, name, user, ("tutor",))
    with _own_lease(proj, lease):
        routing.release(
            store, proj, lease, tutor=user.username, reason=(body or ReleaseBody()).reason
        )
    return {"lease": lease, "state": "released"}


@router.post(
    "/projects/{name}/work/{lease}/undo",
    response_model=UndoOut,
    response_model_exclude_unset=True,
    responses=errors(401, 403, 404, 409, 422),
)
def undo(name: str, lease: Id, user: Me, request: Request) -> dict[str, Any]:
    """Take back the caller's last answer while its lease holds (409 otherwise): the claim stays in
    the history with a retraction after it, and the lease runs again; ``previous`` is the answer."""
    store = request_store(request)
    proj = project_for(store, name, user, ("tutor",))
    with _own_lease(proj, lease):
        try:
            back, value = routing.undo(store, proj, lease, tutor=user.username)
        except (NotFound, routing.NotYourLease):
            raise
        except VeritagError as exc:
            raise Conflict(str(exc)) from None
    schema = project_schema(proj)
    if isinstance(schema, PairwiseSchema):
        value = pairwise.to_sides(proj.id, lease, value)
    return _lease_json(proj, back, schema) | {"previous": value}


@router.get(
    "/projects/{name}/items/{item_id}",
    response_model=ItemOut,
    response_model_exclude_unset=True,
    responses=errors(401, 403, 404, 422),
)
def item(name: str, item_id: Id, user: Me, request: Request) -> dict[str, Any]:
    """An item as data. A tutor sees only an item leased to them right now (404 otherwise)."""
    store = request_store(request)
    proj, role = project_and_role(store, name, user)
    with store.session() as session:
        row = session.scalar(sa.select(Item).where(Item.id == item_id, Item.project_id == proj.id))
        if row is not None and role == "tutor":
            held = session.scalar(
                sa.select(Assignment.id)
                .join(Tutor, Tutor.id == Assignment.tutor_id)
                .join(Source, Source.id == Tutor.source_id)
                .where(
                    Assignment.item_id == item_id,
                    Assignment.project_id == proj.id,
                    Assignment.state == "leased",
                    Assignment.expires_at > datetime.now(UTC),
                    Source.name == user.username,
                )
                .limit(1)
            )
            if held is None:
                row = None
        if row is None:
            raise NotFound(f"no item {item_id} for you in project {name!r}")
        out = {"id": row.id, "external_id": row.external_id, "text": row.text, "data": row.data}
        schema = project_schema(proj)
        if role == "tutor" and isinstance(schema, PairwiseSchema):
            out = _blind(out, proj, schema, held, row.data)
        if role != "tutor":
            out["meta"] = row.meta
        return out
