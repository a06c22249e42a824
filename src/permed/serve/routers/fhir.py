"""FHIR R4: a patient's Bundle in, a RiskAssessment out."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse

from permed.serve._auth import require
from permed.serve._fhir import features_from_bundle, name_sources, risk_assessment
from permed.serve._service import predict_patients, validate_patients
from permed.serve._storage import Principal
from permed.serve._validation import FieldError, PatientError
from permed.serve.routers._deps import ERRORS, JSON_ONLY, answer, fhir_content, served_model

router = APIRouter(prefix="/fhir", tags=["fhir"], responses=ERRORS)


class FhirJSONResponse(JSONResponse):
    media_type = "application/fhir+json"


@router.post("/RiskAssessment/$evaluate",
             summary="Evaluate a FHIR R4 Bundle (Patient + Observations) with a model",
             responses={200: {"description": "A FHIR R4 RiskAssessment; probabilityDecimal is "
                              "a percentage (0-100), R4's convention",
                              "content": {"application/fhir+json": {
                                  "schema": {"type": "object"}}}}, **JSON_ONLY})
async def evaluate(request: Request,
                   model: str = Query(..., description="The model's name (GET /v1/models)."),
                   bundle: dict[str, Any] = Body(
                       ..., description="A FHIR R4 Bundle with one Patient and their "
                       "Observations (LOINC codes, UCUM units)."),
                   principal: Principal = Depends(require("clinician")),
                   _: None = Depends(fhir_content)) -> FhirJSONResponse:
    served = served_model(request, model)
    if not served.fhir:
        raise PatientError([FieldError(
            "model", "a model trained with a [fhir] mapping in its study", model,
            f"model '{model}' has no FHIR mapping: add a [fhir] section to the study (e.g. "
            "age = \"Patient.birthDate\") and train it again")])
    found = features_from_bundle(bundle, served.fhir, served.schema.names)
    try:
        typed, missing = validate_patients(served, [found.values], batch=False)
    except PatientError as exc:  # named by where the Bundle had each value
        raise name_sources(exc, found) from None
    state = request.app.state
    explain = state.settings.explain
    body = await answer(request, served, explain, "probability", partial(
        predict_patients, served, typed, batch=False, explain=explain, principal=principal,
        key=state.key, max_batch=1, missing=missing))
    result = body["results"][0]
    return FhirJSONResponse(risk_assessment(served, result["answer"], found, result["summary"],
                                            result["explanation"], result["prediction_id"]))
