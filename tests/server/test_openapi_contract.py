"""The OpenAPI document tells the truth: schemathesis runs every operation of the live
``/api/v1/openapi.json`` against the real app under uvicorn, as a global admin and as a tutor.

Each answer must be no 5xx, have a documented status, a documented content type, a body that
fits the documented schema and documented headers. Generation is bounded (``EXAMPLES`` cases per
operation and caller, on SQLite and PostgreSQL) and derandomized, so a run is repeatable. The
cases are drawn from three sources: valid and invalid (schemathesis' negative mode) requests
aimed at the real project ``p``, its item, lease 1 and the user ``tut`` (so routes get past the
not-found answers and do their work), and valid requests with every path parameter generated.

One thing is held fixed on purpose: ``DELETE /tokens/{token_id}`` always revokes a throwaway
token, since a generated id would soon be that of the caller's own token (ids are small) and
every later call of the run would then be a 401. ``POST /logout`` stays in: with a bearer
token it ends no session.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from server_helpers import World, serve_app

from veritag.server import create_app
from veritag.server.auth import new_token
from veritag.store.models import User

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
#: Generated cases per operation and caller (the file stays within about a minute on two cores).
EXAMPLES = 10


@contextmanager
def live(world: World) -> Iterator[str]:
    """A second app over the world's store under uvicorn on loopback; its lifespan runs, so the
    job runner (autolabel, automate) is shut down at the end."""
    with serve_app(create_app(world.store)) as url:
        yield url


def throwaway_token(world: World) -> int:
    with world.store.session() as session:
        user = session.query(User).filter_by(username="tut").one()
        return new_token(session, user, "to revoke")[0].id


def real_values(world: World, path: str) -> dict[str, Any]:
    """Path parameters that name things that exist, so the route does its work."""
    values: dict[str, Any] = {"item_id": world.items["plain"], "lease": 1, "job_id": "0" * 32}
    values["name"] = "tut" if path.startswith("/api/v1/users/") else "p"
    return values


def run_operation(
    operation: Any, base_url: str, headers: dict[str, str], fixed: dict[str, Any]
) -> str | None:
    """Run ``EXAMPLES`` cases of one operation; the failures found, as text, or None."""
    names = {p.name for p in operation.path_parameters}
    aimed = {k: v for k, v in fixed.items() if k in names}
    strategy = st.one_of(
        [operation.as_strategy(mode, path_parameters=aimed) for mode in GenerationMode]
        + ([operation.as_strategy()] if names - {"token_id"} else [])
    )
    session = requests.Session()

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(
            base_url=base_url, session=session, headers=headers, checks=CHECKS, timeout=60
        )

    try:
        check()
    except FailureGroup as exc:
        return f"{operation.label}: {exc}"
    finally:
        session.close()
    return None


@pytest.mark.parametrize("who", ["ana", "tut"])
def test_every_operation_answers_as_documented(world: World, who: str) -> None:
    fixed = {"token_id": throwaway_token(world)}
    with live(world) as url:
        schema = schemathesis.openapi.from_url(f"{url}/api/v1/openapi.json")
        found = []
        for result in schema.get_all_operations():
            operation = result.ok()
            problem = run_operation(
                operation, url, world.as_(who), {**real_values(world, operation.path), **fixed}
            )
            if problem:
                found.append(problem)
    assert not found, f"{len(found)} operation(s) broke the contract:\n\n" + "\n\n".join(found)
