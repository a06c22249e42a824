"""Bearer tokens: exchange an API key for a short-lived JWT."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from permed.serve._auth import authenticate
from permed.serve._schemas import TokenResponse
from permed.serve._storage import Principal
from permed.serve.routers._deps import ERRORS

router = APIRouter(prefix="/v1/auth", tags=["auth"], responses=ERRORS)


@router.post("/token", response_model=TokenResponse,
             summary="A bearer token (HS256, with exp and aud) for the calling user")
def token(request: Request, principal: Principal = Depends(authenticate)) -> dict[str, Any]:
    tokens = request.app.state.tokens
    return {"access_token": tokens.issue(principal.user), "expires_in": 60 * tokens.minutes}
