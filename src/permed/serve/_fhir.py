"""FHIR R4 in and out: a Bundle's Patient and Observations to model features, and the answer
as a RiskAssessment.

The mapping comes from the study's ``[fhir]`` section, kept in the signed schema of the run:

- ``"Patient.birthDate"``: age in completed years on the date of the patient's death, else of
  the Bundle's latest dated resource (today when none is dated), as ``permed ingest fhir``
  computes it for training;
- ``"Patient.gender"``: the gender code, recoded with ``map`` when given;
- ``{loinc = CODE, unit = UCUM}``: the latest Observation (or Observation component) with that
  LOINC code, its ``valueQuantity`` converted to the unit. An unknown or incompatible unit is a
  422 that names the Observation, the unit and the unit expected.

A mapped feature without a value in the Bundle is missing (the model imputes it) and is listed
in the answer. ``RiskAssessment.prediction.probabilityDecimal`` follows R4's convention for
decimals: a percentage (0-100, "Decimal values are expressed as percentages as well (max =
100)", RiskAssessment.prediction.probability[x]).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from permed.ingest.fhir import age_on, latest_date
from permed.serve._validation import FieldError

__all__ = ["FhirInput", "UCUM", "convert", "features_from_bundle", "risk_assessment"]

LOINC = "http://loinc.org"
UCUM_SYSTEM = "http://unitsofmeasure.org"
_IGNORED_STATUS = ("entered-in-error", "cancelled")

# UCUM code -> (dimension, factor, offset): value in the dimension's base = value * factor + offset
UCUM: dict[str, tuple[str, float, float]] = {
    "kg": ("mass", 1.0, 0.0), "g": ("mass", 1e-3, 0.0), "mg": ("mass", 1e-6, 0.0),
    "[lb_av]": ("mass", 0.45359237, 0.0), "[oz_av]": ("mass", 0.028349523125, 0.0),
    "m": ("length", 1.0, 0.0), "cm": ("length", 0.01, 0.0), "mm": ("length", 1e-3, 0.0),
    "[in_i]": ("length", 0.0254, 0.0), "[ft_i]": ("length", 0.3048, 0.0),
    "K": ("temperature", 1.0, 0.0), "Cel": ("temperature", 1.0, 273.15),
    "[degF]": ("temperature", 5 / 9, 459.67 * 5 / 9),
    "/s": ("frequency", 1.0, 0.0), "/min": ("frequency", 1 / 60, 0.0),
    "{beats}/min": ("frequency", 1 / 60, 0.0), "{breaths}/min": ("frequency", 1 / 60, 0.0),
    "/h": ("frequency", 1 / 3600, 0.0),
    "%": ("fraction", 0.01, 0.0), "1": ("fraction", 1.0, 0.0),
    "Pa": ("pressure", 1.0, 0.0), "kPa": ("pressure", 1000.0, 0.0),
    "mm[Hg]": ("pressure", 133.322387415, 0.0), "cm[H2O]": ("pressure", 98.0665, 0.0),
    "g/L": ("mass concentration", 1.0, 0.0), "g/dL": ("mass concentration", 10.0, 0.0),
    "mg/dL": ("mass concentration", 0.01, 0.0), "mg/L": ("mass concentration", 1e-3, 0.0),
    "ug/mL": ("mass concentration", 1e-3, 0.0), "ng/mL": ("mass concentration", 1e-6, 0.0),
    "mol/L": ("substance concentration", 1000.0, 0.0),
    "mmol/L": ("substance concentration", 1.0, 0.0),
    "umol/L": ("substance concentration", 1e-3, 0.0),
    "nmol/L": ("substance concentration", 1e-6, 0.0),
    "kg/m2": ("body mass index", 1.0, 0.0),
    "a": ("time", 365.25, 0.0), "mo": ("time", 365.25 / 12, 0.0), "wk": ("time", 7.0, 0.0),
    "d": ("time", 1.0, 0.0), "h": ("time", 1 / 24, 0.0), "min": ("time", 1 / 1440, 0.0),
    "U/L": ("catalytic concentration", 1.0, 0.0),
    "10*3/uL": ("number concentration", 1.0, 0.0), "10*9/L": ("number concentration", 1.0, 0.0),
}


class UnitError(ValueError):
    """A unit that is not known, or not convertible to the one expected."""


def convert(value: float, unit: str, target: str) -> float:
    """``value`` in UCUM ``unit`` expressed in ``target``.

    Raises
    ------
    UnitError
        Either unit is unknown, or they measure different things.

    Examples
    --------
    >>> round(convert(98.6, "[degF]", "Cel"), 2)
    37.0
    """
    if unit == target:
        return value
    if unit not in UCUM:
        raise UnitError(f"unit '{unit}' is not a UCUM unit permed can convert")
    if target not in UCUM:
        raise UnitError(f"the model's unit '{target}' is not a UCUM unit permed can convert")
    dimension, factor, offset = UCUM[unit]
    expected, target_factor, target_offset = UCUM[target]
    if dimension != expected:
        raise UnitError(f"unit '{unit}' measures {dimension}, not {expected} ('{target}')")
    return (value * factor + offset - target_offset) / target_factor


@dataclass
class FhirInput:
    """What a Bundle gave: the patient's features and where each came from."""

    values: dict[str, Any]
    patient_reference: str
    basis: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    observed: date | None = None


def _reference(entry: dict[str, Any], resource: dict[str, Any]) -> str:
    if resource.get("id"):
        return f"{resource['resourceType']}/{resource['id']}"
    return str(entry.get("fullUrl") or resource["resourceType"])


def _when(resource: dict[str, Any]) -> str:
    period = resource.get("effectivePeriod") or {}
    return str(resource.get("effectiveDateTime") or period.get("start")
               or resource.get("issued") or "")


def _codes(concept: dict[str, Any] | None) -> set[str]:
    return {c.get("code") for c in (concept or {}).get("coding", [])
            if c.get("system") in (LOINC, None) and c.get("code")}


def _quantities(resource: dict[str, Any], loinc: str) -> list[dict[str, Any]]:
    found = []
    if loinc in _codes(resource.get("code")) and "valueQuantity" in resource:
        found.append(resource["valueQuantity"])
    for component in resource.get("component", []):
        if loinc in _codes(component.get("code")) and "valueQuantity" in component:
            found.append(component["valueQuantity"])
    return found


def _resources(bundle: Any) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise _fhir_error("resourceType", "a FHIR R4 Bundle", (bundle or {}).get("resourceType")
                          if isinstance(bundle, dict) else type(bundle).__name__,
                          "the request body must be a FHIR Bundle (resourceType 'Bundle')")
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise _fhir_error("entry", "a list of entries", type(entries).__name__,
                          "Bundle.entry must be a list")
    return [(e, e["resource"]) for e in entries
            if isinstance(e, dict) and isinstance(e.get("resource"), dict)]


class FhirError(ValueError):
    """The Bundle cannot be mapped; ``errors`` names each problem."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(e.message for e in errors))


def _fhir_error(name: str, expected: str, received: Any, message: str) -> FhirError:
    return FhirError([FieldError(name, expected, received, message)])


def _patient(resources: list[tuple[dict[str, Any], dict[str, Any]]]
             ) -> tuple[dict[str, Any], dict[str, Any]]:
    patients = [(e, r) for e, r in resources if r.get("resourceType") == "Patient"]
    if len(patients) != 1:
        raise _fhir_error("Patient", "exactly one Patient resource", len(patients),
                          f"the Bundle holds {len(patients)} Patient resources; send one "
                          "patient's Bundle")
    return patients[0]


def _latest(observations: list[tuple[dict[str, Any], dict[str, Any]]], loinc: str
            ) -> tuple[str, str, dict[str, Any]] | None:
    """The most recent (reference, time, quantity) for a LOINC code."""
    candidates = []
    for entry, resource in observations:
        if resource.get("status") in _IGNORED_STATUS:
            continue
        for quantity in _quantities(resource, loinc):
            candidates.append((_when(resource), _reference(entry, resource), quantity))
    if not candidates:
        return None
    when, reference, quantity = max(candidates, key=lambda c: c[0])
    return reference, when, quantity


def _observation_value(name: str, source: dict[str, Any], found: tuple[str, str, dict[str, Any]]
                       ) -> float:
    reference, _, quantity = found
    unit = quantity.get("code") or quantity.get("unit")
    value = quantity.get("value")
    label = f"{reference} (LOINC {source['loinc']})"
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _fhir_error(label, f"valueQuantity.value, a number in {source['unit']}", value,
                          f"{label} for feature '{name}' has no numeric valueQuantity.value")
    if not unit:
        raise _fhir_error(label, f"a UCUM unit convertible to '{source['unit']}'", None,
                          f"{label} for feature '{name}' has no unit: send valueQuantity.code "
                          f"in UCUM (expected '{source['unit']}')")
    try:
        return convert(float(value), str(unit), source["unit"])
    except UnitError as exc:
        raise _fhir_error(label, f"a UCUM unit convertible to '{source['unit']}'", unit,
                          f"{label} for feature '{name}' is in unit '{unit}': {exc}; send it "
                          f"in '{source['unit']}' or a unit convertible to it") from None


def _patient_value(name: str, source: dict[str, Any], patient: dict[str, Any],
                   on: Any) -> Any:
    path = source["path"]
    if path == "Patient.birthDate":
        birth = patient.get("birthDate")
        if birth is None:
            return None
        try:
            date.fromisoformat(str(birth)[:10])
        except ValueError:
            raise _fhir_error("Patient.birthDate", "a date YYYY-MM-DD", birth,
                              f"Patient.birthDate '{birth}' is not a date") from None
        return age_on(birth, on)
    gender = patient.get("gender")
    recode = source.get("map")
    if gender is None or not recode:
        return gender
    if gender not in recode:
        raise _fhir_error("Patient.gender", "one of " + ", ".join(recode), gender,
                          f"Patient.gender '{gender}' has no code for feature '{name}' in the "
                          f"study's [fhir] map ({', '.join(recode)})")
    return recode[gender]


def features_from_bundle(bundle: Any, mapping: dict[str, Any],
                         features: list[str]) -> FhirInput:
    """A patient's features from a FHIR Bundle, by the study's mapping.

    Raises
    ------
    FhirError
        Not a Bundle, not one Patient, an Observation without a number, or a unit that cannot
        be converted (every problem is named).
    """
    resources = _resources(bundle)
    patient_entry, patient = _patient(resources)
    observations = [(e, r) for e, r in resources if r.get("resourceType") == "Observation"]
    values: dict[str, Any] = dict.fromkeys(features)
    basis, errors, times = [_reference(patient_entry, patient)], [], []
    for name, raw in mapping.items():
        source = {"path": raw} if isinstance(raw, str) else raw
        if "loinc" not in source:
            continue
        found = _latest(observations, str(source["loinc"]))
        if found is None:
            continue
        try:
            values[name] = _observation_value(name, source, found)
        except FhirError as exc:
            errors.extend(exc.errors)
            continue
        basis.append(found[0])
        times.append(found[1])
    observed = date.fromisoformat(max(times)[:10]) if times else None
    age_date = (patient.get("deceasedDateTime") or latest_date([r for _, r in resources])
                or datetime.now(UTC).date())
    for name, raw in mapping.items():
        source = {"path": raw} if isinstance(raw, str) else raw
        if "path" in source:
            try:
                values[name] = _patient_value(name, source, patient, age_date)
            except FhirError as exc:
                errors.extend(exc.errors)
    if errors:
        raise FhirError(errors)
    missing = [name for name in features if values.get(name) is None]
    return FhirInput(values, basis[0], list(dict.fromkeys(basis)), missing, observed)


# ---- the answer as a RiskAssessment --------------------------------------------------------


def _percent(p: Any) -> float:
    return round(100.0 * float(p), 4)


def _horizon(key: str) -> dict[str, Any] | None:
    """``whenRange`` up to a horizon written as in ``risk_at_<h>`` (``365``, ``2.5``)."""
    try:
        return {"high": {"value": float(key)}}
    except ValueError:
        return None


def _predictions(served: Any, answer: dict[str, Any]) -> list[dict[str, Any]]:
    schema = served.schema
    out = []
    for column, value in answer.items():
        if value is None:
            continue
        if column.startswith("prob_"):
            out.append({"outcome": {"text": f"{schema.target} = {column[5:]}"},
                        "probabilityDecimal": _percent(value)})
        elif column.startswith("risk_at_"):
            out.append({"outcome": {"text": f"event by time {column[8:]}"},
                        "probabilityDecimal": _percent(value),
                        "whenRange": _horizon(column[8:])})
        elif column.startswith("outcome_") and not column.endswith(("_low", "_high")):
            arm = column[8:]
            low, high = answer.get(f"{column}_low"), answer.get(f"{column}_high")
            out.append({"outcome": {"text": f"expected outcome under {arm}"},
                        "rationale": f"{value:.4g} (95% CI {low:.4g} to {high:.4g})"
                        if low is not None and high is not None else f"{value:.4g}"})
    return [{k: v for k, v in p.items() if v is not None} for p in out]


def risk_assessment(served: Any, answer: dict[str, Any], fhir_input: FhirInput,
                    summary: str, explanation: dict[str, Any] | None,
                    prediction_id: str) -> dict[str, Any]:
    """A FHIR R4 RiskAssessment for one answer.

    ``method`` names the model (``urn:permed:model`` | name) and its version, ``basis``
    references the Patient and the Observations used, ``prediction`` holds one entry per class
    (diagnose), horizon (risk) or arm (treat), and ``note`` the summary, what was missing, the
    top factors and any referral.
    """
    notes = [summary]
    if fhir_input.missing:
        notes.append("not in the record (imputed by the model): " + ", ".join(fhir_input.missing))
    if explanation is not None:
        notes.append("top factors: " + explanation["text"])
    resource: dict[str, Any] = {
        "resourceType": "RiskAssessment",
        "id": prediction_id,
        "status": "final",
        "subject": {"reference": fhir_input.patient_reference},
        "occurrenceDateTime": datetime.now(UTC).isoformat(timespec="seconds"),
        "method": {"coding": [{"system": "urn:permed:model", "code": served.name,
                               "display": f"permed {served.name} ({served.selected_model}, "
                                          f"version {served.version})"}],
                   "text": f"permed {served.task} model '{served.name}' version "
                           f"{served.version}"},
        "basis": [{"reference": r} for r in fhir_input.basis],
        "prediction": _predictions(served, answer),
        "note": [{"text": n} for n in notes],
    }
    if answer.get("refer_to_clinician"):
        resource["mitigation"] = f"refer to clinician: {answer.get('refer_reason')}"
    return resource
