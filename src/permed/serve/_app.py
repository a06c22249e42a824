"""The FastAPI application: models loaded once, storage, routers, errors, the web page."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import pydantic_core
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from permed import __version__
from permed.privacy import integrity_key
from permed.serve._audit import AuditTrail
from permed.serve._auth import (
    FailedLogins,
    RateLimiter,
    Revocations,
    TokenIssuer,
    Verifications,
    token_secret,
)
from permed.serve._checkpoint import Checkpoints
from permed.serve._fhir import FhirError
from permed.serve._journal import journal_for
from permed.serve._middleware import ServiceMiddleware
from permed.serve._registry import load_models
from permed.serve._schemas import PredictRequest
from permed.serve._service import BatchTooLarge
from permed.serve._settings import Settings
from permed.serve._storage import Storage
from permed.serve._validation import PatientError, api_errors
from permed.serve.routers import audit, auth, cds_hooks, explain, fhir, models, predict, users
from permed.serve.routers._deps import NotJson

__all__ = ["create_app"]

log = logging.getLogger("permed.serve")

DESCRIPTION = """Trained permed models behind an authenticated, audited service.

Authenticate with `Authorization: Bearer <API key>` (`permed users add NAME --role ROLE`
prints one) or a token from `POST /v1/auth/token`. Roles: **clinician** (predict, explain,
FHIR, CDS Hooks, own prediction log), **scientist** (model cards and metrics), **admin** (users,
audit). Every request is recorded in a hash-chained audit trail.
"""


def _error(status: int, detail: str, errors: list[dict[str, Any]] | None = None,
           headers: dict[str, str] | None = None) -> Response:
    # infinities and NaN as text: a received value must never make the error itself fail
    body = pydantic_core.to_json({"detail": detail, "errors": errors or []},
                                 inf_nan_mode="strings", fallback=str)
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        # never FastAPI's default body, which echoes each value sent ("input")
        return _error(422, "the request does not match the API: see errors",
                      api_errors(exc.errors()))

    @app.exception_handler(PatientError)
    async def bad_patient(request: Request, exc: PatientError) -> Response:
        return _error(422, f"{len(exc.errors)} field(s) cannot be used: see errors",
                      [e.to_dict() for e in exc.errors])

    @app.exception_handler(FhirError)
    async def bad_bundle(request: Request, exc: FhirError) -> Response:
        return _error(422, f"the FHIR Bundle cannot be mapped to the model: {exc}",
                      [e.to_dict() for e in exc.errors])

    @app.exception_handler(NotJson)
    async def not_json(request: Request, exc: NotJson) -> Response:
        return _error(415, str(exc), [exc.error.to_dict()])

    @app.exception_handler(BatchTooLarge)
    async def too_many(request: Request, exc: BatchTooLarge) -> Response:
        return _error(413, str(exc))


def _document(app: FastAPI, models: tuple[type[BaseModel], ...]) -> None:
    """Add ``models`` to the OpenAPI schemas: request bodies that routes read themselves
    (:func:`permed.serve.routers._deps.json_body`) are not seen by FastAPI."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()  # FastAPI's, which keeps it in app.openapi_schema
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(schema.pop("$defs", {}))
                schemas[model.__name__] = schema
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]


def _page() -> str:
    return resources.files("permed.serve").joinpath("static/index.html").read_text("utf-8")


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # The models, libraries and schemas loaded so far live as long as the service: kept out of
    # the cyclic collector, whose full passes over them each held a worker still for ~0.17 s
    # under load (benchmarks/serve.py, concurrency 8)
    gc.collect()
    gc.freeze()
    app.state.checkpoints.start()
    app.state.revocations.start()
    yield
    app.state.journal.close()  # commit what the last requests queued
    app.state.checkpoints.close()
    app.state.revocations.close()
    app.state.verifications.close()
    gc.unfreeze()


def create_app(settings: Settings) -> FastAPI:
    """The service for ``settings.runs``.

    Every run is loaded and verified (signature and digests) before the app is returned, its
    ONNX model checked against the native one, and the database opened (tables created when
    missing).

    Parameters
    ----------
    settings : Settings

    Returns
    -------
    fastapi.FastAPI

    Raises
    ------
    BundleError
        A run is missing, unsigned or was changed since training.
    """
    key = integrity_key()
    app = FastAPI(title="permed", version=__version__, description=DESCRIPTION,
                  docs_url=None, redoc_url=None,  # their pages load scripts from a CDN
                  lifespan=_lifespan)
    app.state.settings = settings
    app.state.key = key
    app.state.models = load_models(settings.runs, settings.onnx)
    app.state.storage = Storage(settings.url, settings.key_cache_seconds)
    app.state.audit = AuditTrail(app.state.storage, key)
    app.state.journal = journal_for(app.state.audit)
    app.state.checkpoints = Checkpoints(app.state.storage)
    app.state.revocations = Revocations(app.state.storage)
    app.state.tokens = TokenIssuer(token_secret(settings.jwt_secret, key), settings.jwt_audience,
                                   settings.token_minutes, settings.max_session_minutes)
    app.state.limiter = RateLimiter(settings.rate_limit)
    app.state.failed_logins = FailedLogins(settings.max_auth_failures)
    app.state.verifications = Verifications()
    _handlers(app)
    # predict first: routes are matched in order, and predict is by far the most called
    for module in (predict, explain, models, fhir, cds_hooks, users, audit, auth):
        app.include_router(module.router)
    _document(app, (PredictRequest,))
    page = _page()

    @app.get("/health", tags=["health"], summary="Liveness and the number of models")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "models": len(app.state.models), "version": __version__}

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    static = resources.files("permed.serve").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    app.add_middleware(ServiceMiddleware, journal=app.state.journal,
                       max_body_bytes=settings.max_body_bytes, tls=settings.tls)
    return app
