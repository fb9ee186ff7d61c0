"""The FastAPI application over one store: ``create_app(store)``; ``veritag serve`` runs it."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.utils import is_body_allowed_for_status_code
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..errors import VeritagError
from ..store.engine import Store
from .arena import pages_router as arena_pages_router
from .arena import router as arena_router
from .audit import pages_router as audit_pages_router
from .audit import router as audit_router
from .common import pid_alive
from .openapi import error_body, install, validation_body
from .pages import STATIC_DIR
from .pages import router as pages_router
from .review import pages_router as review_pages_router
from .review import router as review_router
from .routes import API_ROUTERS

__all__ = ["app_from_env", "create_app"]

log = logging.getLogger(__name__)


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(app: FastAPI, scope: Scope) -> str:
    """The ``Allow`` header of a path: every method some route takes there (Starlette's 405 names
    only the first matching route's, so ``PUT /projects`` hid ``POST``). Mounted apps (static
    files) answer their own 405s and are left out."""
    routes = [r for r in app.router.routes if not isinstance(r, Mount)]
    return ", ".join(
        m
        for m in _METHODS
        if any(r.matches({**scope, "method": m})[0] is Match.FULL for r in routes)
    )


#: Connections of the pool kept free of request threads: a request may open a second
#: connection for a moment (a cache read inside a write), and the embedded worker needs one.
_SPARE_CONNECTIONS = 3


def _fit_threads_to_pool(store: Store) -> None:
    """Run at most as many requests at once as the database pool can serve.

    Sync endpoints run in anyio's thread pool (40 threads); the SQLAlchemy pool holds fewer
    connections (5 + 10 overflow). Under a burst the extra threads waited for a connection and
    failed after its 30 s timeout (a 500); with as many threads as connections the burst waits
    in the event loop instead, and every request is answered."""
    pool = store.engine.pool
    size = getattr(pool, "size", lambda: 0)() + max(getattr(pool, "_max_overflow", 0), 0)
    if size > _SPARE_CONNECTIONS:
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = min(limiter.total_tokens, size - _SPARE_CONNECTIONS)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """On start, fit the request threads to the database pool, and release what a crashed
    process of this host left leased (``release_orphaned_leases``)."""
    from ..config import load_settings
    from ..routing.service import release_orphaned_leases

    _fit_threads_to_pool(app.state.store)

    grace = load_settings().orphan_lease_seconds
    cut = await asyncio.to_thread(
        release_orphaned_leases, app.state.store, socket.gethostname(), pid_alive, grace
    )
    if cut:
        log.warning(
            "%d leases of server processes that stopped on this host now expire within %g s",
            cut,
            grace,
        )
    yield


class _SecurityHeaders:
    """Adds the headers every answer carries (no sniffing, no framing, no referrer to other
    sites, and no caching of API answers).

    Plain ASGI, wrapping ``send``: Starlette's ``@app.middleware("http")`` runs every request
    through an extra task and memory stream, which cost more CPU than the tutor's submit itself.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        no_store = path.startswith("/api/v1/") and not path.startswith("/api/v1/docs")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Referrer-Policy", "same-origin")
                if no_store:
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(store: Store) -> FastAPI:
    """The server over ``store``: the JSON API under ``/api/v1`` (OpenAPI at
    ``/api/v1/openapi.json``) and the web UI (``/login``, ``/``, ``/p/{project}/label``,
    ``/p/{project}/dashboard``)."""
    app = FastAPI(
        title="veritag",
        version=__version__,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        lifespan=_lifespan,
    )
    app.state.store = store

    @app.exception_handler(VeritagError)
    async def _mistake(_request: Request, exc: VeritagError) -> JSONResponse:
        return JSONResponse(error_body(str(exc)), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        """A 422 listing each problem (``loc`` names the field) without echoing the input back."""
        return JSONResponse(validation_body(exc), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _refused(request: Request, exc: StarletteHTTPException) -> Response:
        """An ``HTTPException`` as an ``ApiError``; a 405 names every method its path takes."""
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request.app, request.scope) or headers.get(
                "Allow", ""
            )
        if not is_body_allowed_for_status_code(exc.status_code):
            return Response(status_code=exc.status_code, headers=headers)
        return JSONResponse(error_body(exc.detail), status_code=exc.status_code, headers=headers)

    app.add_middleware(_SecurityHeaders)

    for api_router in API_ROUTERS:
        app.include_router(api_router)
    app.include_router(review_router)
    app.include_router(arena_router)
    app.include_router(audit_router)
    app.include_router(
        arena_pages_router
    )  # before review's /p/{name}/plots/{plot}.svg, which it narrows
    app.include_router(pages_router)
    app.include_router(review_pages_router)
    app.include_router(audit_pages_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    install(app)
    return app


def app_from_env() -> FastAPI:
    """The app over ``$VERITAG_DATABASE_URL``: what each worker process of ``veritag serve
    --workers N`` builds (uvicorn imports it by name in every worker)."""
    from ..config import database_url_for
    from ..store import open_store

    return create_app(open_store(database_url_for(None)))
