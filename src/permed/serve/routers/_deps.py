"""Shared dependencies and error responses of the routers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pydantic_core
from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from permed.serve._registry import ServedModel
from permed.serve._schemas import ErrorBody
from permed.serve._service import Answered
from permed.serve._storage import Storage
from permed.serve._validation import FieldError

__all__ = ["ERRORS", "JSON_ONLY", "DirectRoute", "NotJson", "answer", "fhir_content",
           "json_body", "json_content", "json_response", "read_body", "require_json",
           "served_model", "storage"]

ModelT = TypeVar("ModelT", bound=BaseModel)


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


# Documented for every authenticated operation (schemathesis checks responses against them).
ERRORS: dict[int | str, dict[str, Any]] = {
    401: _error("No, malformed, unknown, revoked or expired credential."),
    403: _error("The caller's role may not use this endpoint."),
    404: _error("No such model or record."),
    413: _error("Request body or batch too large."),
    422: _error("A field is missing, unknown or has a bad value: one entry per field."),
    429: _error("Rate limit reached: see Retry-After."),
}
# Documented for the operations that read a JSON body (require_json).
JSON_ONLY: dict[int | str, dict[str, Any]] = {
    415: _error("The body is not sent as JSON: send Content-Type: application/json."),
}


class NotJson(ValueError):
    """A body sent with a media type other than JSON (415); ``error`` names the header."""

    def __init__(self, error: FieldError) -> None:
        self.error = error
        super().__init__(error.message)


def require_json(request: Request, expected: str = "application/json") -> None:
    """Refuse a body not declared as JSON: ``application/json`` or any ``application/*+json``
    (``application/fhir+json``), as FastAPI parses bodies. Without this a form post
    (``curl -d``'s default) or ``text/plain`` would be read as JSON all the same.

    Raises
    ------
    NotJson
    """
    declared = request.headers.get("content-type")
    media = (declared or "").split(";", 1)[0].strip().lower()
    if media == "application/json" or (media.startswith("application/")
                                       and media.endswith("+json")):
        return
    found = f"is '{declared}'" if declared else "is missing"
    raise NotJson(FieldError("header Content-Type", expected, declared, (
        f"header 'Content-Type' {found}, so the body is not read as JSON: send the body with "
        f"the header 'Content-Type: {expected.split(' ')[0]}'"), format=True))


def json_content(request: Request) -> None:
    """:func:`require_json` as a dependency (after the caller's authorization)."""
    require_json(request)


def fhir_content(request: Request) -> None:
    """:func:`require_json` for a FHIR resource."""
    require_json(request, "application/fhir+json or application/json")


class DirectRoute(APIRoute):
    """A route documented like any other (from its endpoint's signature, ``response_model`` and
    ``openapi_extra``) but called directly, ``endpoint(request, **path_params)``: no dependency
    resolution and no response-model pass. Its endpoint authorizes the caller, reads its body
    (:func:`read_body`) and returns a :class:`Response` (:func:`json_response`) itself."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        endpoint = self.endpoint

        async def handler(request: Request) -> Response:
            response: Response = await endpoint(request, **request.path_params)
            return response
        return handler


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` of a route that reads its JSON body itself (:func:`read_body`): the
    body documented as ``model`` (the app adds the model to the schemas:
    :func:`permed.serve._app.create_app`)."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


async def read_body(request: Request, model: type[ModelT]) -> ModelT:
    """The request's JSON body as ``model`` (sent as JSON: :func:`require_json`); a 422 with
    one entry per problem, as FastAPI gives for a body parameter."""
    require_json(request)
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])}
                                      for e in exc.errors(include_url=False)]) from None


def json_response(body: Any) -> Response:
    """``body`` as JSON (NaN and infinities as null, as pydantic writes them)."""
    return Response(pydantic_core.to_json(body, inf_nan_mode="null"),
                    media_type="application/json")


async def answer(request: Request, served: ServedModel, explain: bool, scale: str,
                 call: Callable[[], Answered]) -> dict[str, Any]:
    """Run ``call`` on the event loop when it takes a few milliseconds, else in a worker thread
    (a permutation explanation or a survival curve must not hold up other requests); return
    its body, and leave its prediction log rows for the middleware to store with the audit
    event."""
    answered = call() if served.quick(explain, scale) else await run_in_threadpool(call)
    request.state.predictions = answered.predictions
    return answered.body


def storage(request: Request) -> Storage:
    """The service's database."""
    store: Storage = request.app.state.storage
    return store


def served_model(request: Request, name: str) -> ServedModel:
    """The model served under ``name``, or 404 listing the names."""
    models: dict[str, ServedModel] = request.app.state.models
    if name not in models:
        raise HTTPException(404, detail=f"no model '{name}' is served here; models: "
                            + ", ".join(sorted(models)))
    return models[name]
