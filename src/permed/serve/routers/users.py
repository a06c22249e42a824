"""Users and their API keys (administrators only)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request

from permed.exceptions import PermedError
from permed.serve._auth import require
from permed.serve._schemas import EndedSessions, ErrorBody, NewUser, UserKey, UserSummary
from permed.serve._storage import Principal, UnknownUser
from permed.serve.routers._deps import ERRORS, storage

router = APIRouter(prefix="/v1/users", tags=["users"], responses={
    **ERRORS, 409: {"model": ErrorBody, "description": "The user already exists or was "
                    "deactivated, or is the last active admin."}})
admins = require("admin")


@router.get("", response_model=list[UserSummary], summary="Every user")
def list_users(request: Request, _: Principal = Depends(admins)) -> list[dict[str, Any]]:
    return storage(request).users()


@router.post("", response_model=UserKey, status_code=201,
             summary="Add a user; their API key is shown once")
def add_user(request: Request, body: NewUser, _: Principal = Depends(admins)) -> dict[str, Any]:
    try:
        key = storage(request).add_user(body.name, body.role, body.expires_days)
    except PermedError as exc:
        raise HTTPException(409, detail=str(exc)) from None
    return {"name": body.name, "role": body.role, "api_key": key}


@router.post("/{name}/keys", response_model=UserKey, status_code=201,
             summary="Another API key for a user")
def new_key(request: Request, name: str, _: Principal = Depends(admins)) -> dict[str, Any]:
    store = storage(request)
    try:
        key = store.new_key(name)
    except UnknownUser as exc:
        raise HTTPException(404, detail=str(exc)) from None
    except PermedError as exc:
        raise HTTPException(409, detail=str(exc)) from None
    return {"name": name, "role": store.user_role(name), "api_key": key}


@router.delete("/{name}", summary="Deactivate a user and revoke their keys")
def revoke(request: Request, name: str, _: Principal = Depends(admins)) -> dict[str, Any]:
    try:
        revoked = storage(request).revoke(name)
    except UnknownUser as exc:
        raise HTTPException(404, detail=str(exc)) from None
    except PermedError as exc:
        raise HTTPException(409, detail=str(exc)) from None
    return {"name": name, "revoked_keys": revoked}


@router.delete("/{name}/sessions", response_model=EndedSessions,
               summary="End a user's sessions: their bearer tokens are refused, their API keys "
               "still work")
def end_sessions(request: Request, name: str, _: Principal = Depends(admins)) -> dict[str, Any]:
    try:
        ended = storage(request).end_sessions(name)
    except UnknownUser as exc:
        raise HTTPException(404, detail=str(exc)) from None
    return {"name": name, "sessions_not_before": datetime.fromtimestamp(ended, UTC).isoformat(
        timespec="milliseconds")}
