"""CDS Hooks: discovery (public, as the specification requires) and patient-view cards."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from permed.serve._auth import require
from permed.serve._cds import PREFIX, card, discovery, prefetch_bundle
from permed.serve._fhir import features_from_bundle, name_sources
from permed.serve._service import predict_patients, validate_patients
from permed.serve._storage import Principal
from permed.serve._validation import PatientError
from permed.serve.routers._deps import ERRORS, JSON_ONLY, answer, json_content

router = APIRouter(prefix="/cds-services", tags=["cds-hooks"])


class HookRequest(BaseModel):
    """A CDS Hooks 2.0 call (only patient-view is offered)."""

    model_config = ConfigDict(extra="allow")

    hook: str
    hookInstance: str = Field(max_length=200)  # noqa: N815 - the specification's name
    context: dict[str, Any] = Field(default_factory=dict)
    prefetch: dict[str, Any] | None = None


@router.get("", summary="CDS Hooks discovery")
async def services(request: Request) -> dict[str, Any]:
    return discovery(request.app.state.models)


@router.post("/{service_id}", responses={**ERRORS, **JSON_ONLY},
             summary="Cards for the patient in view")
async def call(request: Request, service_id: str, body: HookRequest,
               principal: Principal = Depends(require("clinician")),
               _: None = Depends(json_content)) -> dict[str, Any]:
    models = request.app.state.models
    name = service_id.removeprefix(PREFIX)
    if not service_id.startswith(PREFIX) or name not in models or not models[name].fhir:
        raise HTTPException(404, detail=f"no CDS service '{service_id}': see /cds-services")
    if body.hook != "patient-view":
        raise HTTPException(422, detail=f"service '{service_id}' answers the patient-view hook, "
                            f"not '{body.hook}'")
    served = models[name]
    bundle = prefetch_bundle(body.prefetch)
    if bundle is None:
        return {"cards": []}
    found = features_from_bundle(bundle, served.fhir, served.schema.names)
    if set(found.missing) >= set(served.fhir):
        return {"cards": []}  # none of the model's inputs is in the record
    try:
        typed, missing = validate_patients(served, [found.values], batch=False)
    except PatientError as exc:  # named by where the Bundle had each value
        raise name_sources(exc, found) from None
    state = request.app.state
    explain = state.settings.explain
    answered = await answer(request, served, explain, "probability", partial(
        predict_patients, served, typed, batch=False, explain=explain, principal=principal,
        key=state.key, max_batch=1, missing=missing))
    result = answered["results"][0]
    return {"cards": [card(served, result, found.missing, found.notes)]}
