"""The audit trail (administrators only): recent entries and verification of the chain."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from permed.serve._auth import require
from permed.serve._schemas import AuditEntry, AuditVerification
from permed.serve._storage import Principal
from permed.serve.routers._deps import ERRORS, storage

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=ERRORS)
admins = require("admin")


@router.get("", response_model=list[AuditEntry], summary="The latest audit entries")
def entries(request: Request, limit: int = Query(100, ge=1, le=10_000),
            _: Principal = Depends(admins)) -> list[dict[str, Any]]:
    return storage(request).audit_rows(limit)


@router.get("/verify", response_model=AuditVerification,
            summary="Check every entry's MAC, the sequence, the chain and the head")
def verify(request: Request, _: Principal = Depends(admins)) -> dict[str, Any]:
    report = request.app.state.audit.verify()
    return {"ok": report.ok, "entries": report.entries, "problems": report.problems,
            "notes": report.notes}
