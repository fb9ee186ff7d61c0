"""The FastAPI application over one store: ``create_app(store)``; ``veritag serve`` runs it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..errors import AlreadyExists, InputError, LabelError, NotFound, SchemaError, VeritagError
from ..store.engine import Store
from .api import router
from .api_ops import router as ops_router
from .arena import pages_router as arena_pages_router
from .arena import router as arena_router
from .common import encodable
from .pages import STATIC_DIR
from .pages import router as pages_router
from .review import pages_router as review_pages_router
from .review import router as review_router

__all__ = ["app_from_env", "create_app", "error_status"]


def error_status(exc: VeritagError) -> int:
    """The HTTP status of a user's mistake: 404 missing, 409 taken, 422 refused input, else 400."""
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, AlreadyExists):
        return 409
    if isinstance(exc, LabelError | SchemaError | InputError):
        return 422
    return 400


def create_app(store: Store) -> FastAPI:
    """The server over ``store``: the JSON API under ``/api/v1`` (OpenAPI at ``/api/v1/openapi.json``)
    and the web UI (``/login``, ``/``, ``/p/{project}/label``, ``/p/{project}/dashboard``)."""
    app = FastAPI(title="veritag", version=__version__, openapi_url="/api/v1/openapi.json",
                  docs_url="/api/v1/docs", redoc_url=None)
    app.state.store = store

    @app.exception_handler(VeritagError)
    async def _mistake(_request: Request, exc: VeritagError) -> JSONResponse:
        return JSONResponse({"detail": encodable(str(exc))}, status_code=error_status(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's 422 (``detail``: one entry per problem, with ``loc`` naming the field), with the
        echoed input made encodable: NaN, 1e400 or a lone surrogate in a body must not turn it into a 500."""
        return JSONResponse({"detail": encodable(jsonable_encoder(exc.errors()))}, status_code=422)

    @app.middleware("http")
    async def _headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.url.path.startswith("/api/v1/") and not request.url.path.startswith("/api/v1/docs"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    app.include_router(router)
    app.include_router(ops_router)
    app.include_router(review_router)
    app.include_router(arena_router)
    app.include_router(arena_pages_router)  # before review's /p/{name}/plots/{plot}.svg, which it narrows
    app.include_router(pages_router)
    app.include_router(review_pages_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def app_from_env() -> FastAPI:
    """The app over ``$VERITAG_DATABASE_URL``: what each worker process of ``veritag serve
    --workers N`` builds (uvicorn imports it by name in every worker)."""
    from ..config import database_url_for
    from ..store import open_store

    return create_app(open_store(database_url_for(None)))
