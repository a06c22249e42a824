"""Explain: one patient's full explanation (every factor, largest first)."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, Request

from permed.serve._auth import require
from permed.serve._schemas import ExplainRequest, PredictResponse
from permed.serve._service import predict_patients
from permed.serve._storage import Principal
from permed.serve.routers._deps import ERRORS, JSON_ONLY, answer, json_content, served_model

router = APIRouter(tags=["explain"], responses=ERRORS)


@router.post("/v1/models/{name}/explain", response_model=PredictResponse, responses=JSON_ONLY,
             summary="One patient's answer with its top factors (SHAP)")
async def explain(request: Request, name: str, body: ExplainRequest,
                  principal: Principal = Depends(require("clinician")),
                  _: None = Depends(json_content)) -> dict[str, Any]:
    state = request.app.state
    served = served_model(request, name)
    return await answer(request, served, True, body.explain_scale, partial(
        predict_patients, served, [body.patient], batch=False, explain=True,
        principal=principal, key=state.key, max_batch=1, top=body.top,
        scale=body.explain_scale))
