"""Predict: one patient or a batch, any task; and the caller's own prediction log."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from permed.serve._auth import authorize, require
from permed.serve._schemas import PredictionRecord, PredictRequest, PredictResponse
from permed.serve._service import predict_patients
from permed.serve._storage import Principal
from permed.serve._validation import FieldError, PatientError, duplicate_keys
from permed.serve.routers._deps import (
    ERRORS,
    JSON_ONLY,
    DirectRoute,
    answer,
    json_body,
    json_response,
    read_body,
    served_model,
    storage,
)

router = APIRouter(tags=["predict"], responses=ERRORS)
clinicians = require("clinician")


async def predict(request: Request, name: str) -> Response:
    # The most called route reads its body and writes its answer itself (a DirectRoute):
    # FastAPI's dependency resolution and response-model pass cost as much as scoring a patient.
    # The body is still validated by PredictRequest, and tests hold the answer to PredictResponse.
    principal = await authorize(request, "clinician")
    served = served_model(request, name)
    body = await read_body(request, PredictRequest)
    if (body.patient is None) == (body.patients is None):
        raise PatientError([FieldError("patient", "either 'patient' (an object) or 'patients' "
                                       "(a list)", None, "send exactly one of 'patient' or "
                                       "'patients'")])
    if body.patients == []:
        raise PatientError([FieldError("patients", "a list of at least one patient", [],
                                       "patients must hold at least one patient: send one or "
                                       "more, or one 'patient'")])
    patients = [body.patient] if body.patient is not None else list(body.patients or [])
    repeated = duplicate_keys(await request.body(),
                              len(body.model_fields_set) + sum(len(p) for p in patients))
    if repeated:
        raise PatientError(repeated)
    state = request.app.state
    explain = state.settings.explain if body.explain is None else body.explain
    return json_response(await answer(request, served, explain, body.explain_scale, partial(
        predict_patients, served, patients, batch=body.patients is not None, explain=explain,
        principal=principal, key=state.key,
        max_batch=state.settings.max_batch, scale=body.explain_scale)))


router.add_api_route("/v1/models/{name}/predict", predict, methods=["POST"],
                     response_model=PredictResponse, openapi_extra=json_body(PredictRequest),
                     responses=JSON_ONLY,
                     summary="Answer for one patient or a batch, with uncertainty and top factors",
                     route_class_override=DirectRoute)


@router.get("/v1/predictions", response_model=list[PredictionRecord],
            summary="Your own recent predictions")
async def my_predictions(request: Request, limit: int = Query(50, ge=1, le=500),
                         principal: Principal = Depends(clinicians)) -> list[dict[str, Any]]:
    return storage(request).predictions(principal.user, limit)


@router.get("/v1/predictions/{prediction_id}", response_model=PredictionRecord,
            summary="One of your predictions")
async def my_prediction(request: Request, prediction_id: str,
                        principal: Principal = Depends(clinicians)) -> dict[str, Any]:
    record = storage(request).prediction(principal.user, prediction_id)
    if record is None:  # someone else's is "not found" too: existence is not revealed
        raise HTTPException(404, detail=f"no prediction '{prediction_id}' of yours")
    return record
