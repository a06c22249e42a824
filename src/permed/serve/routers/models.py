"""Models: the list, each model's schema (clinicians and scientists), card, metrics and report."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response

from permed.exceptions import SecurityError
from permed.serve._auth import require, session_began
from permed.serve._storage import Principal
from permed.serve.routers._deps import ERRORS, served_model

router = APIRouter(prefix="/v1/models", tags=["models"], responses=ERRORS)

readers = require("clinician", "scientist")
scientists = require("scientist")
_REPORT_AUDIENCE = "permed-report"
# The report is self-contained HTML with inline styles and scripts, and nothing else.
_REPORT_POLICY = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
                  "script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
                  "frame-ancestors 'none'")


@router.get("", summary="The models served here")
async def list_models(request: Request, _: Principal = Depends(readers)) -> list[dict[str, Any]]:
    return [m.reference() for m in request.app.state.models.values()]


@router.get("/{name}/schema", summary="The fields a patient needs: type, unit, range")
async def model_schema(request: Request, name: str,
                       _: Principal = Depends(readers)) -> dict[str, Any]:
    return served_model(request, name).schema_payload()


@router.get("/{name}/card", summary="The model card: performance, calibration, uncertainty")
async def model_card(request: Request, name: str,
                     _: Principal = Depends(scientists)) -> dict[str, Any]:
    return served_model(request, name).card()


@router.get("/{name}/metrics", summary="The run's metrics.json")
async def model_metrics(request: Request, name: str,
                        _: Principal = Depends(scientists)) -> dict[str, Any]:
    return served_model(request, name).metrics


@router.post("/{name}/report-ticket", summary="A one-minute link to the model report")
async def report_ticket(request: Request, name: str,
                        principal: Principal = Depends(readers)) -> dict[str, str]:
    served_model(request, name)
    # the session's start goes with the ticket: ending the user's sessions voids it too
    ticket = request.app.state.tokens.issue(principal.user, _REPORT_AUDIENCE, minutes=1,
                                            auth_time=principal.auth_time)
    return {"url": f"/v1/models/{name}/report?ticket={ticket}"}


@router.get("/{name}/report", summary="The model report (HTML)",
            responses={200: {"content": {"text/html": {}}}})
async def model_report(request: Request, name: str,
                       ticket: str = Query(..., max_length=2000,
                                           description="From POST /v1/models/{name}/report-ticket.")
                       ) -> Response:
    tokens, storage = request.app.state.tokens, request.app.state.storage
    try:
        claims = tokens.claims(ticket, _REPORT_AUDIENCE)
    except SecurityError as exc:
        raise HTTPException(401, detail=f"report link: {exc}") from None
    user = str(claims["sub"])
    found = storage.active_user(user)  # the role and the end of sessions: one read
    role = None if found is None else found[0]
    request.state.principal = Principal(user, role or "none", f"ticket:{user}")  # for the audit
    if found is not None:
        try:
            session_began(claims, found[1])
        except SecurityError as exc:
            raise HTTPException(401, detail=f"report link: {exc}") from None
    if role not in ("clinician", "scientist"):
        raise HTTPException(403, detail="the report is for the clinician and scientist roles")
    served = served_model(request, name)
    if served.report is None:
        raise HTTPException(404, detail=f"run '{served.run_dir}' has no report.html: write it "
                            f"with permed report {served.run_dir}")
    return Response(served.report, media_type="text/html",
                    headers={"Content-Security-Policy": _REPORT_POLICY})
