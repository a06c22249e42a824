"""Bearer tokens: exchange an API key for a short-lived JWT, and renew it within its session."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request

from permed.exceptions import SecurityError
from permed.serve._auth import authenticate
from permed.serve._schemas import TokenResponse
from permed.serve._storage import Principal
from permed.serve.routers._deps import ERRORS

router = APIRouter(prefix="/v1/auth", tags=["auth"], responses=ERRORS)


@router.post("/token", response_model=TokenResponse,
             summary="A bearer token (HS256, with exp and aud) for the calling user; called "
             "with a token, a renewal within the session's maximum lifetime")
def token(request: Request, principal: Principal = Depends(authenticate)) -> dict[str, Any]:
    tokens = request.app.state.tokens
    try:
        access, seconds = tokens.renew(principal)
    except SecurityError as exc:  # the session is over: only the API key starts another
        raise HTTPException(401, detail=str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
    return {"access_token": access, "expires_in": seconds}
