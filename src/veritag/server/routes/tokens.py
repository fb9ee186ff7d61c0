"""The caller's API tokens: ``POST /tokens``, ``GET /tokens``, ``DELETE /tokens/{id}``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from ...limits import SafeText
from ...store.models import ApiToken, User
from ..audit import request_actor
from ..auth import list_tokens, new_token, revoke_token
from ..common import Id, json_ready, request_store
from ..deps import Me
from ..openapi import errors
from ..responses import NewTokenOut, TokenOut

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")


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
    """Revoke one of the caller's tokens (a global admin may revoke anyone's); it stops working at
    once."""
    with request_store(request).session() as session:
        return _token_json(
            revoke_token(
                session,
                token_id,
                None if user.role == "admin" else user.id,
                request_actor(request, user),
            )
        )
