"""Predict: one patient or a batch, any task; and the caller's own prediction log."""

from __future__ import annotations

import json
import logging
from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from permed.serve._auth import authorize, require
from permed.serve._schemas import ErrorBody, PredictionRecord, PredictRequest, PredictResponse
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

log = logging.getLogger("permed.serve")
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
            summary="One of your predictions, checked against its audit record",
            responses={500: {"model": ErrorBody, "description": (
                "The stored prediction does not match its audit record: it is withheld.")}})
def my_prediction(request: Request, prediction_id: str,
                  principal: Principal = Depends(clinicians)) -> dict[str, Any]:
    # a def route: FastAPI runs it in a worker thread, and finding the audit entry that
    # records the prediction is a database search that must not hold up the event loop
    record = storage(request).prediction_record(principal.user, prediction_id)
    if record is None:  # someone else's is "not found" too: existence is not revealed
        raise HTTPException(404, detail=f"no prediction '{prediction_id}' of yours")
    problem = request.app.state.audit.check_prediction(record)
    if problem is not None:
        # 500, not 409: the caller's request is sound and no change to it can help; it is the
        # service's own stored data that is corrupt (or was tampered with), a server failure
        # for its administrator, and a clinician must not act on that answer
        log.error("prediction %s does not match its audit record: %s", record["id"], problem)
        raise HTTPException(500, detail=(
            f"the stored prediction '{record['id']}' does not match its audit record ({problem})"
            ", so it is withheld: ask the service's administrator to run its audit "
            "verification (GET /v1/audit/verify) and restore the prediction log from a backup"))
    return {**record, "answer": json.loads(record["answer"])}
