"""Around every request: the body size limit, security headers and the audit event."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any
from urllib.parse import parse_qsl

from permed.serve._audit import AuditTrail, prediction_digest
from permed.serve._journal import Journal, LoopJournal

__all__ = ["SECURITY_HEADERS", "ServiceMiddleware"]

log = logging.getLogger("permed.serve")

SECURITY_HEADERS = {
    "content-security-policy": ("default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                "script-src 'self'; object-src 'none'; base-uri 'none'; "
                                "frame-ancestors 'none'; form-action 'self'"),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
_HSTS = ("strict-transport-security", "max-age=63072000; includeSubDomains")
# Requests that are not audited: the page's static files, health and the API description.
_UNAUDITED = ("/static/", "/health", "/openapi.json", "/favicon.ico")


class BodyTooLarge(Exception):
    pass


def _audited(path: str) -> bool:
    return path != "/" and not path.startswith(_UNAUDITED)


def _outcome(status: int) -> str:
    if status < 400:
        return "success"
    if status in (401, 403):
        return f"denied: {status}"
    return f"failure: {status}"


class ServiceMiddleware:
    """Pure ASGI middleware (no per-request task switch of Starlette's BaseHTTPMiddleware).

    Parameters
    ----------
    app : ASGI app
    journal : Journal or LoopJournal
        Stores the audit event (the answer waits for its commit).
    max_body_bytes : int
        Larger bodies get 413 before the application sees them.
    tls : bool
        Add Strict-Transport-Security.
    """

    def __init__(self, app: Any, journal: Journal | LoopJournal, max_body_bytes: int,
                 tls: bool) -> None:
        self.app = app
        self.journal = journal
        self.max_body_bytes = max_body_bytes
        self.headers = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
        if tls:
            self.headers.append((_HSTS[0].encode(), _HSTS[1].encode()))

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})
        request_id = uuid.uuid4().hex[:16]
        started = withheld = False

        async def send_wrapper(message: dict[str, Any]) -> None:
            nonlocal started, withheld
            if message["type"] == "http.response.start":
                started = True
                if _audited(scope["path"]) and not await self._record(scope, message["status"],
                                                                       request_id):
                    withheld = True
                    await self._unrecorded(send, request_id)
                    return
                message["headers"] = self._headers(message.get("headers", []), request_id)
            elif withheld:
                return
            await send(message)

        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(scope, send_wrapper)
            return
        try:
            await self.app(scope, self._limited(receive), send_wrapper)
        except BodyTooLarge:
            if not started:
                await self._too_large(scope, send_wrapper)

    def _limited(self, receive: Any) -> Any:
        received = 0

        async def wrapper() -> dict[str, Any]:
            nonlocal received
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge()
            return message
        return wrapper

    def _headers(self, headers: list[tuple[bytes, bytes]],
                 request_id: str) -> list[tuple[bytes, bytes]]:
        present = {k.lower() for k, _ in headers}
        extra = [(k, v) for k, v in self.headers if k not in present]
        return [*headers, *extra, (b"x-request-id", request_id.encode())]

    async def _too_large(self, scope: dict[str, Any], send: Any) -> None:
        body = json.dumps({"detail": f"request body larger than {self.max_body_bytes} bytes: "
                           "send fewer patients per request", "errors": []}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def _record(self, scope: dict[str, Any], status: int, request_id: str) -> bool:
        """Store the request's audit event, with the prediction rows its handler left; False
        when predictions could not be stored (their answer must not go out)."""
        state = scope["state"]
        principal = state.get("principal")
        route = scope.get("route")
        params = scope.get("path_params") or {}
        query = dict(_query(scope))
        details = {"method": scope["method"],
                   "endpoint": getattr(route, "path", None) or "unmatched",
                   "status": status, "request_id": request_id,
                   "model": (params.get("name") or query.get("model") or "")[:64] or None,
                   "credential": principal.credential if principal else None}
        if principal is None and state.get("attempted"):  # the key id tried, never the secret
            details["attempted_key"] = state["attempted"]
        user = principal.user if principal else "anonymous"
        action = getattr(route, "name", None) or "unmatched"
        predictions = state.get("predictions") or []
        event = AuditTrail.event(user, action, _outcome(status), **details)
        if predictions:  # chained with the entry: an edited prediction row shows on verify
            event["details"]["predictions"] = {row["id"]: prediction_digest(row)
                                               for row in predictions}
        try:
            await self.journal.record([event], predictions)
        except Exception:  # noqa: BLE001 - logged; an answer without predictions still goes out
            log.exception("could not write the audit event of request %s", request_id)
            return not predictions
        return True

    async def _unrecorded(self, send: Any, request_id: str) -> None:
        body = json.dumps({"detail": "the prediction could not be recorded in the prediction log"
                           " and audit trail, so it is withheld: retry, and tell the service's "
                           "administrator if it persists", "errors": []}).encode()
        await send({"type": "http.response.start", "status": 503,
                    "headers": self._headers([(b"content-type", b"application/json"),
                                              (b"content-length", str(len(body)).encode())],
                                             request_id)})
        await send({"type": "http.response.body", "body": body})


def _query(scope: dict[str, Any]) -> list[tuple[str, str]]:
    query = scope.get("query_string", b"")
    return parse_qsl(query.decode("latin-1")) if query else []
