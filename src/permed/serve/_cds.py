"""CDS Hooks 2.0: discovery of one ``patient-view`` service per FHIR-mapped model, and its cards.

The EHR sends the patient and their Observations as prefetch (the templates are in the
discovery document); the service maps them like a FHIR Bundle, scores and explains the
patient, and returns one card: a summary under 140 characters, an indicator by risk level
(``info``, ``warning``, ``critical``), its source, and Markdown detail with the uncertainty,
the top factors and any referral. With nothing to say (no prefetch, or none of the model's
inputs in the record) the answer is ``{"cards": []}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from permed.serve._fhir import LOINC
from permed.serve._registry import ServedModel

__all__ = ["PREFIX", "card", "discovery", "prefetch_bundle"]

PREFIX = "permed-"
SUMMARY_LIMIT = 140


def _loinc_codes(served: ServedModel) -> list[str]:
    return [str(m["loinc"]) for m in served.fhir.values()
            if isinstance(m, dict) and "loinc" in m]


def discovery(models: dict[str, ServedModel]) -> dict[str, Any]:
    """The ``/cds-services`` document: a patient-view service per model with a FHIR mapping."""
    services = []
    for name, served in models.items():
        if not served.fhir:
            continue
        codes = ",".join(f"{LOINC}|{c}" for c in _loinc_codes(served))
        prefetch = {"patient": "Patient/{{context.patientId}}"}
        if codes:
            prefetch["observations"] = ("Observation?patient={{context.patientId}}&code="
                                        + codes)
        services.append({
            "hook": "patient-view", "id": f"{PREFIX}{name}",
            "title": f"permed {served.task}: {name}",
            "description": f"{served.task} model '{name}' ({served.selected_model}, version "
                           f"{served.version}) for the patient in view, with its uncertainty "
                           "and top factors",
            "prefetch": prefetch,
            "usageRequirements": "Authorization: Bearer <API key of a clinician user>",
        })
    return {"services": services}


def prefetch_bundle(prefetch: dict[str, Any] | None) -> dict[str, Any] | None:
    """A Bundle of the prefetched Patient and Observations (None without a Patient)."""
    prefetch = prefetch or {}
    patient = prefetch.get("patient")
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        return None
    entries = [{"resource": patient}]
    observations = prefetch.get("observations")
    if isinstance(observations, dict):
        entries += [e for e in observations.get("entry", []) if isinstance(e, dict)]
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def _indicator(served: ServedModel, answer: dict[str, Any]) -> str:
    if served.task == "risk":
        return {"high": "critical", "intermediate": "warning"}.get(
            str(answer.get("risk_group")), "info")
    if served.task == "diagnose" and len(served.schema.classes) == 2:
        p = float(answer.get(f"prob_{served.schema.classes[1]}", 0.0))
        if p >= 0.8:
            return "critical"
        if p >= 0.5 or answer.get("refer_to_clinician"):
            return "warning"
        return "info"
    return "warning" if answer.get("refer_to_clinician") else "info"


def _short(text: str) -> str:
    return text if len(text) < SUMMARY_LIMIT else text[:SUMMARY_LIMIT - 2] + "…"


def card(served: ServedModel, result: dict[str, Any], missing: list[str],
         notes: Sequence[str] = ()) -> dict[str, Any]:
    """One card for one answered patient; ``notes`` say how a value was read from the record
    (an age from a partial birth date), as the RiskAssessment's ``note`` does."""
    answer = result["answer"]
    lines = [f"**{served.name}** ({served.task}, {served.selected_model}, version "
             f"{served.version})", "", f"**Answer:** {result['summary']}"]
    uncertainty = result["uncertainty"]
    if uncertainty.get("prediction_set"):
        lines.append(f"**Prediction set** ({100 * (uncertainty.get('coverage') or 0):.0f}% "
                     f"coverage): {', '.join(uncertainty['prediction_set'])}")
    explanation = result.get("explanation")
    if explanation:
        lines += ["", "**Top factors:**"]
        lines += [f"- {f['text']}" for f in explanation["factors"][:5]]
    if missing:
        lines += ["", f"*Not in the record (imputed):* {', '.join(missing)}"]
    if notes:
        lines += ["", *(f"*Read from the record:* {note}" for note in notes)]
    if answer.get("refer_to_clinician"):
        lines += ["", f"**Refer to clinician:** {answer.get('refer_reason')}"]
    return {
        "uuid": result["prediction_id"],
        "summary": _short(f"{served.name}: {result['summary']}"),
        "indicator": _indicator(served, answer),
        "detail": "\n".join(lines),
        "source": {"label": f"permed {served.name} (version {served.version})"},
    }
