"""The JSON API under ``/api/v1``: projects, members, tutors' work loop, items, routing, users, tokens.

Every route but ``POST /login`` needs a user (see ``auth``); what each role may do:

==============================  ========================================================
route                           who
==============================  ========================================================
GET /me, /tokens; POST /tokens  anyone logged in (a token is always for oneself)
DELETE /tokens/{id}             its owner, or a global admin
GET  /projects                  anyone; lists only the projects they can see
POST /projects, POST /users     global admin
POST /users/{name}/unlock       global admin (clears a login lockout, see ``throttle``)
GET  /projects/{name}           a member (any role) or a global admin
POST .../members, .../tutors    admin of the project (global admins are admin everywhere)
POST .../work[...]              tutor member, who must also be a routing tutor of that name
                                (``/work``, ``/work/{lease}/submit|release|undo``)
GET  .../items/{id}             reviewer/admin: any item; tutor: only one leased to them now
GET  .../routing                reviewer or admin of the project
==============================  ========================================================

A tutor's lease never says whether the item is a gold check, so gold checks stay blind. A
pairwise (or arena) lease shows the two responses as ``left`` and ``right`` in an order drawn per
lease, without the item's other fields or its external id (either may name the models), and
takes ``left``/``right``/``tie`` back.

The other routes under ``/api/v1`` live beside this module: project operations (import, export,
status, resolve, autolabel and automate jobs, queue, reports) in ``api_ops``, the reviewer's queue
in ``review`` and the dashboard's data in ``dashboard_data``; ``tests/server/test_authz.py``
checks every route against every role.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field

from ..errors import NotFound, VeritagError
from ..limits import (
    MAX_DOMAINS,
    Description,
    Domain,
    ProjectName,
    SafeJson,
    SafeText,
    Username,
    text_problem,
)
from ..routing import pairwise
from ..routing import service as routing
from ..schema import PairwiseSchema, parse_schema
from ..store import audit
from ..store.models import ApiToken, Assignment, Item, Membership, Project, Source, Tutor, User
from ..store.queries import create_project, create_user, list_projects, project_counts
from . import throttle
from .audit import request_actor
from .auth import (
    COOKIE,
    authenticate,
    end_login,
    list_tokens,
    new_token,
    project_access,
    revoke_token,
    start_login,
)
from .common import Id, json_ready, process_name, request_store
from .deps import Admin, Me, project_for
from .openapi import TaskSchemaJson, errors
from .responses import (
    ItemOut,
    LeaseOut,
    LoginOut,
    MemberOut,
    MeOut,
    NewTokenOut,
    ProjectDetailOut,
    ProjectOut,
    ReleaseOut,
    RoutingOut,
    SubmitOut,
    TokenOut,
    TutorOut,
    UndoOut,
    UnlockOut,
    UserOut,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")

Role = Literal["admin", "reviewer", "tutor"]


def _project_json(
    project: Project, role: str, counts: dict[str, int] | None = None
) -> dict[str, Any]:
    out = {
        "name": project.name,
        "description": project.description,
        "schema": project.task_schema,
        "role": role,
    }
    if counts is not None:
        out["counts"] = counts
    return out


# --- login ---------------------------------------------------------------------------------------


class LoginBody(BaseModel):
    username: SafeText
    password: SafeText


@router.post("/login", response_model=LoginOut, responses=errors(400, 401, 422, 429))
def login(body: LoginBody, request: Request, response: Response) -> dict[str, Any]:
    """Check the password; set the session cookie and return the CSRF token for ``X-CSRF-Token``."""
    store, address = request_store(request), throttle.client_address(request)
    with store.session() as session:
        try:
            throttle.check(session, body.username, address)
        except throttle.Throttled as exc:
            throttle.locked_out(store, body.username, address, exc)
            raise exc.http() from None
        user = authenticate(session, body.username, body.password)
        if user is not None:
            throttle.record_success(session, body.username)
            secret, csrf, expires = start_login(session, user, client=address)
    if user is None:
        throttle.failed(store, body.username, address)
        raise HTTPException(status_code=401, detail="wrong username or password")
    response.set_cookie(
        COOKIE,
        secret,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        expires=expires,
        path="/",
    )
    return {
        "username": user.username,
        "role": user.role,
        "csrf_token": csrf,
        "expires_at": expires.isoformat(),
    }


@router.post("/logout", status_code=204, responses=errors(401, 403))
def logout(user: Me, request: Request, response: Response) -> Response:
    """End the cookie's session (a bearer token stays valid; revoke tokens separately)."""
    with request_store(request).session() as session:
        end_login(session, request.cookies.get(COOKIE), request_actor(request, user))
    out = Response(status_code=204)
    out.delete_cookie(COOKIE, path="/")
    return out


# --- users and tokens ----------------------------------------------------------------------------


@router.get("/me", response_model=MeOut, responses=errors(401))
def me(user: Me, request: Request) -> dict[str, Any]:
    with request_store(request).session() as session:
        rows = session.execute(
            sa.select(Project.name, Membership.role)
            .join(Membership, Membership.project_id == Project.id)
            .where(Membership.user_id == user.id)
            .order_by(Project.name)
        ).all()
    return {
        "id": user.id,
        "username": user.username,
        "role": user.role,
        "auth": user.via,
        "memberships": [{"project": name, "role": role} for name, role in rows],
    }


class UserBody(BaseModel):
    username: Username
    password: SafeText
    role: Role = "tutor"


@router.post(
    "/users", status_code=201, response_model=UserOut, responses=errors(400, 401, 403, 409, 422)
)
def add_user(body: UserBody, admin: Admin, request: Request) -> dict[str, Any]:
    with request_store(request).session() as session:
        user = create_user(
            session,
            username=body.username,
            password=body.password,
            role=body.role,
            actor=request_actor(request, admin),
        )
        return {"id": user.id, "username": user.username, "role": user.role}


@router.post("/users/{name}/unlock", response_model=UnlockOut, responses=errors(401, 403, 404))
def unlock_user(name: str, admin: Admin, request: Request) -> dict[str, Any]:
    """Clear an account's failed logins and lockout (see ``throttle``); global admin only."""
    with request_store(request).session() as session:
        user = (
            None
            if text_problem(name)
            else session.scalar(sa.select(User).where(User.username == name))
        )
        if user is None:
            raise HTTPException(status_code=404, detail=f"no user named {name!r}")
        cleared = throttle.unlock_account(session, name, request_actor(request, admin))
    return {"username": name, "cleared": cleared}


class TokenBody(BaseModel):
    name: SafeText = Field(default="token", max_length=200)


@router.post(
    "/tokens", status_code=201, response_model=NewTokenOut, responses=errors(400, 401, 403, 422)
)
def add_token(user: Me, request: Request, body: TokenBody | None = None) -> dict[str, Any]:
    """A new API token for the caller; the secret is in this answer only."""
    with request_store(request).session() as session:
        row, secret = new_token(
            session,
            session.get_one(User, user.id),
            (body or TokenBody()).name,
            request_actor(request, user),
        )
        return {"id": row.id, "name": row.name, "token": secret}


def _token_json(row: ApiToken) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "created_at": json_ready(row.created_at),
        "last_used_at": json_ready(row.last_used_at),
        "revoked": row.revoked,
    }


@router.get("/tokens", response_model=list[TokenOut], responses=errors(401))
def tokens(user: Me, request: Request) -> list[dict[str, Any]]:
    """The caller's API tokens (names and use, never secrets)."""
    with request_store(request).session() as session:
        return [_token_json(t) for t in list_tokens(session, user.id)]


@router.delete("/tokens/{token_id}", response_model=TokenOut, responses=errors(401, 403, 404, 422))
def revoke(token_id: Id, user: Me, request: Request) -> dict[str, Any]:
    """Revoke one of the caller's tokens (a global admin may revoke anyone's); it stops working at once."""
    with request_store(request).session() as session:
        return _token_json(
            revoke_token(
                session,
                token_id,
                None if user.role == "admin" else user.id,
                request_actor(request, user),
            )
        )


# --- projects and members ------------------------------------------------------------------------


@router.get("/projects", response_model=list[ProjectOut], responses=errors(401))
def projects(user: Me, request: Request) -> list[dict[str, Any]]:
    with request_store(request).session() as session:
        if user.role == "admin":
            return [_project_json(p, "admin") for p in list_projects(session)]
        rows = session.execute(
            sa.select(Project, Membership.role)
            .join(Membership, Membership.project_id == Project.id)
            .where(Membership.user_id == user.id)
            .order_by(Project.id)
        ).all()
        return [_project_json(p, role) for p, role in rows]


class ProjectBody(BaseModel):
    name: ProjectName
    schema_: Annotated[dict[str, Any], TaskSchemaJson] = Field(alias="schema")
    description: Description = ""


@router.post(
    "/projects",
    status_code=201,
    response_model=ProjectOut,
    responses=errors(400, 401, 403, 409, 422),
)
def add_project(body: ProjectBody, admin: Admin, request: Request) -> dict[str, Any]:
    with request_store(request).session() as session:
        project = create_project(
            session,
            name=body.name,
            schema=body.schema_,
            description=body.description,
            actor=request_actor(request, admin),
        )
        return _project_json(project, "admin")


@router.get("/projects/{name}", response_model=ProjectDetailOut, responses=errors(401, 403, 404))
def project(name: str, user: Me, request: Request) -> dict[str, Any]:
    with request_store(request).session() as session:
        proj, role = project_access(session, name, user)
        return _project_json(proj, role, project_counts(session, project_id=proj.id))


class MemberBody(BaseModel):
    username: Username
    role: Role


@router.post(
    "/projects/{name}/members",
    response_model=MemberOut,
    responses={
        201: {"model": MemberOut, "description": "Added"},
        **errors(400, 401, 403, 404, 422),
    },
)
def add_member(
    name: str, body: MemberBody, user: Me, request: Request, response: Response
) -> dict[str, Any]:
    """Make a user a member of the project with a role (or change their role)."""
    with request_store(request).session() as session:
        proj, _ = project_access(session, name, user, ("admin",))
        member = session.scalar(sa.select(User).where(User.username == body.username))
        if member is None:
            raise HTTPException(status_code=404, detail=f"no user named {body.username!r}")
        row = session.get(Membership, (proj.id, member.id))
        was = None if row is None else row.role
        if row is None:
            session.add(Membership(project_id=proj.id, user_id=member.id, role=body.role))
            response.status_code = 201
        else:
            row.role = body.role
        audit.record(
            session,
            "member.add" if was is None else "member.role",
            actor=request_actor(request, user),
            project=proj.name,
            target=body.username,
            detail={"role": body.role, "was": was},
        )
    return {"project": name, "username": body.username, "role": body.role}


class TutorBody(BaseModel):
    username: Username
    domains: list[Domain] = Field(default=[], max_length=MAX_DOMAINS)
    cost: float = Field(default=1.0, allow_inf_nan=False)


@router.post(
    "/projects/{name}/tutors",
    status_code=201,
    response_model=TutorOut,
    responses=errors(400, 401, 403, 404, 409, 422),
)
def add_tutor(name: str, body: TutorBody, user: Me, request: Request) -> dict[str, Any]:
    """Make a tutor member a routing tutor (declared domains, cost per label); they label under their username."""
    store = request_store(request)
    with store.session() as session:
        proj, _ = project_access(session, name, user, ("admin",))
        role = session.scalar(
            sa.select(Membership.role)
            .join(User, User.id == Membership.user_id)
            .where(Membership.project_id == proj.id, User.username == body.username)
        )
    if role != "tutor":
        raise HTTPException(
            status_code=422,
            detail=f"{body.username!r} is not a tutor member of project {name!r}; "
            "add them with POST /projects/{name}/members first",
        )
    profile = routing.add_tutor(
        store,
        proj,
        body.username,
        domains=body.domains,
        cost=body.cost,
        actor=request_actor(request, user),
    )
    return {
        "username": profile.name,
        "domains": list(profile.domains),
        "cost": profile.cost,
        "active": profile.active,
    }


# --- the tutor's loop ----------------------------------------------------------------------------


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


def _lease_json(project: Project, lease: routing.Assignment) -> dict[str, Any]:
    schema = parse_schema(project.task_schema)
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
    try:
        lease = routing.request_work(store, proj, user.username, served_by=process_name())
    except NotFound:  # the project exists (checked above): the caller is no routing tutor of it
        raise HTTPException(
            status_code=403,
            detail=f"you are not a routing tutor of project {name!r}; "
            "an admin adds you with POST /projects/{name}/tutors",
        ) from None
    if lease is None:
        return Response(status_code=204)
    return _lease_json(proj, lease)


@contextmanager
def _own_lease(project: Project, lease: int) -> Iterator[None]:
    """404 unless ``lease`` is a lease of this project to the caller (in any state): the routing
    call checks it, once, and either refusal reads here as no such lease."""
    try:
        yield
    except (NotFound, routing.NotYourLease):
        raise HTTPException(
            status_code=404, detail=f"you hold no lease {lease} in project {project.name!r}"
        ) from None


class SubmitBody(BaseModel):
    value: SafeJson
    #: Seconds the tutor spent on the item (the page measures it), for speed scorecards.
    seconds: float | None = Field(default=None, ge=0, le=7 * 24 * 3600)


@router.post(
    "/projects/{name}/work/{lease}/submit",
    response_model=SubmitOut,
    responses=errors(400, 401, 403, 404, 422),
)
def submit(name: str, lease: Id, body: SubmitBody, user: Me, request: Request) -> dict[str, Any]:
    """Answer a lease; the value is checked against the project's schema (422 with the reason).
    A pairwise answer may be ``left``/``right``/``tie`` as the lease showed the responses."""
    store = request_store(request)
    proj = project_for(store, name, user, ("tutor",))
    with _own_lease(proj, lease):
        claim = routing.submit(
            store, proj, lease, body.value, tutor=user.username, seconds=body.seconds
        )
    return {"lease": lease, "claim_id": claim}


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
            raise HTTPException(status_code=409, detail=str(exc)) from None
    if isinstance(parse_schema(proj.task_schema), PairwiseSchema):
        value = pairwise.to_sides(proj.id, lease, value)
    return _lease_json(proj, back) | {"previous": value}


# --- items and routing ---------------------------------------------------------------------------


@router.get(
    "/projects/{name}/items/{item_id}",
    response_model=ItemOut,
    response_model_exclude_unset=True,
    responses=errors(401, 403, 404, 422),
)
def item(name: str, item_id: Id, user: Me, request: Request) -> dict[str, Any]:
    """An item as data. A tutor sees only an item leased to them right now (404 otherwise)."""
    with request_store(request).session() as session:
        proj, role = project_access(session, name, user)
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
            raise HTTPException(
                status_code=404, detail=f"no item {item_id} for you in project {name!r}"
            )
        out = {"id": row.id, "external_id": row.external_id, "text": row.text, "data": row.data}
        schema = parse_schema(proj.task_schema)
        if role == "tutor" and isinstance(schema, PairwiseSchema):
            out = _blind(out, proj, schema, held, row.data)
        if role != "tutor":
            out["meta"] = row.meta
        return out


@router.get(
    "/projects/{name}/routing", response_model=RoutingOut, responses=errors(400, 401, 403, 404)
)
def routing_status(name: str, user: Me, request: Request) -> dict[str, Any]:
    """Where routing stands: items done and pending, leases, budget, each tutor's skill per domain."""
    store = request_store(request)
    with store.session() as session:
        proj, _ = project_access(session, name, user, ("reviewer", "admin"))
    return json_ready(routing.routing_status(store, proj, refit="never"))  # type: ignore[no-any-return]
