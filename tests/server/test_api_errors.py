"""Every error answer of ``/api/v1`` is one model (``ApiError``), a wrong method names every method
its path takes, and the OpenAPI document lists the errors a route answers."""

from __future__ import annotations

from typing import Any

import pytest
from server_helpers import World

from veritag.server.openapi import ApiError


def error(r: Any, status: int) -> dict[str, Any]:
    """The answer's body, checked to be an ``ApiError`` with ``status``."""
    assert r.status_code == status, r.text
    body = r.json()
    ApiError.model_validate(body)
    assert isinstance(body["detail"], str) and body["detail"]
    return body  # type: ignore[no-any-return]


def test_a_label_error_and_a_validation_error_have_the_one_model(world: World) -> None:
    w = world
    refused = error(
        w.call(
            "rev",
            "POST",
            f"/projects/p/review/{w.items['plain']}",
            json={"action": "correct", "value": "maybe"},
        ),
        422,
    )
    assert "maybe" in refused["detail"] and "errors" not in refused
    invalid = error(w.call("ana", "POST", "/projects", json={"name": "new"}), 422)
    assert "schema" in invalid["detail"]
    assert invalid["errors"] == [
        {"loc": ["body", "schema"], "msg": "Field required", "type": "missing"}
    ]


def test_a_validation_error_does_not_echo_the_input(world: World) -> None:
    secret = "s3cret-" * 20_000
    body = error(world.call("ana", "POST", "/users", json={"username": secret, "password": 5}), 422)
    assert "s3cret" not in str(body)
    assert {tuple(e["loc"]) for e in body["errors"]} == {("body", "username"), ("body", "password")}
    assert all(set(e) == {"loc", "msg", "type"} for e in body["errors"])


def test_http_errors_have_the_one_model(world: World) -> None:
    error(world.call(None, "GET", "/me"), 401)
    error(world.call("tut", "GET", "/projects/q"), 403)
    error(world.call("ana", "GET", "/projects/nope"), 404)
    error(world.call("ana", "GET", "/nowhere"), 404)


@pytest.mark.parametrize(
    ("path", "methods"),
    [("/projects", "GET, POST"), ("/tokens", "GET, POST"), ("/tokens/1", "DELETE")],
)
def test_a_wrong_method_names_every_method_of_the_path(
    world: World, path: str, methods: str
) -> None:
    r = world.call("ana", "PUT", path, json={})
    error(r, 405)
    assert r.headers["Allow"] == methods


def test_the_openapi_document_lists_what_a_route_answers(world: World) -> None:
    doc = world.client.get("/api/v1/openapi.json").json()
    answers = {
        (path, method): set(op["responses"])
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    }
    assert answers["/api/v1/projects/{name}", "get"] == {"200", "401", "403", "404"}
    assert answers["/api/v1/tokens/{token_id}", "delete"] == {"200", "401", "403", "404", "422"}
    assert answers["/api/v1/projects/{name}/work", "post"] == {
        "200",
        "204",
        "400",
        "401",
        "403",
        "404",
    }
    assert answers["/api/v1/me", "get"] == {"200", "401"}
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    refused = doc["paths"]["/api/v1/projects"]["post"]["responses"]["422"]
    assert refused["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ApiError"
    }
    body = doc["components"]["schemas"]["ProjectBody"]["properties"]["schema"]
    assert body["discriminator"]["propertyName"] == "type"  # a task schema, not any object
    assert doc["paths"]["/api/v1/login"]["post"]["responses"]["429"]["headers"]["Retry-After"]
