"""FHIR R4 in and out: a Bundle's Patient and Observations to model features, and the answer
as a RiskAssessment.

The mapping comes from the study's ``[fhir]`` section, kept in the signed schema of the run:

- ``"Patient.birthDate"``: age in completed years on the date of the patient's death, else of
  the Bundle's latest dated resource (today when none is dated), as ``permed ingest fhir``
  computes it for training; a year (``1960``) or a month (``1960-05``) counts from the middle
  of the period (July 1, the 15th) and the answer notes it; a birth date after that date, or
  one that is not a FHIR date string, is a 422;
- ``"Patient.gender"``: the gender code, recoded with ``map`` when given;
- ``{loinc = CODE, unit = UCUM}``: the latest Observation (or Observation component) with that
  LOINC code, its ``valueQuantity`` converted to the unit. An unknown or incompatible unit is a
  422 that names the Observation, the unit and the unit expected.

Every entry and every field permed reads is checked first: a malformed one (a ``code`` that is
not a CodeableConcept, a non-finite value, a date that is not a FHIR date string...) is a 422
that names the resource (``Bundle.entry[i]``, its type and id), the field, what was expected and
what was found. A mapped feature without a value in the Bundle is missing (the model imputes
it) and is listed in the answer. ``RiskAssessment.prediction.probabilityDecimal`` follows R4's
convention for decimals: a percentage (0-100, "Decimal values are expressed as percentages as
well (max = 100)", RiskAssessment.prediction.probability[x]).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd

from permed.ingest._ucum import UCUM, UnitError, convert
from permed.ingest.fhir import IGNORED_STATUS as _IGNORED_STATUS
from permed.ingest.fhir import (
    BornAfterError,
    age_on,
    birth_date,
    fhir_datetime,
    latest_date,
    resource_date,
    resource_problems,
)
from permed.serve._validation import FieldError, PatientError, received_kind

__all__ = ["FhirError", "FhirInput", "UCUM", "UnitError", "convert", "features_from_bundle",
           "name_sources", "risk_assessment"]

LOINC = "http://loinc.org"
UCUM_SYSTEM = "http://unitsofmeasure.org"
_EPOCH = pd.Timestamp(0, tz="UTC")


@dataclass
class FhirInput:
    """What a Bundle gave: the patient's features and where each came from.

    ``patient_reference`` is None for a Patient with neither ``id`` nor ``fullUrl``; ``basis``
    holds the references of the resources used (those that can be referenced); ``sources``
    names, per feature, where its value came from (``Observation/ID (LOINC CODE)``,
    ``Patient.birthDate``); ``notes`` what the answer should say about how a value was read.
    """

    values: dict[str, Any]
    patient_reference: str | None
    basis: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    observed: date | None = None
    sources: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class _Entry:
    """A resource of the Bundle and where it is: its index in ``Bundle.entry``."""

    index: int
    full_url: str | None
    resource: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.resource["resourceType"])

    @property
    def reference(self) -> str | None:
        if self.resource.get("id"):
            return f"{self.kind}/{self.resource['id']}"
        return self.full_url or None

    @property
    def label(self) -> str:
        """The resource for a message: its type, id if it has one, and place."""
        named = f"{self.kind}/{self.resource['id']}" if self.resource.get("id") else self.kind
        return f"{named} (Bundle.entry[{self.index}])"


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


def _found(value: Any) -> str:
    """What was found instead, for a message: its kind (:func:`received_kind`), never the value
    (a Bundle is a patient's record)."""
    if isinstance(value, str):
        return "text not of that form"
    return received_kind(value) or "null"


def _shape_error(where: str, expected: str, value: Any, what: str) -> FieldError:
    return FieldError(where, expected, value, f"{what} must be {expected}, found {_found(value)}")


def _entry_errors(index: int, entry: Any) -> list[FieldError]:
    where = f"Bundle.entry[{index}]"
    if not isinstance(entry, dict):
        return [_shape_error(where, "an object holding a resource", entry, where)]
    if "fullUrl" in entry and not isinstance(entry["fullUrl"], str):
        return [_shape_error(f"{where}.fullUrl", "a string", entry["fullUrl"],
                             f"{where}.fullUrl")]
    if "resource" not in entry:
        return []  # a request or response entry: nothing to read
    resource = entry["resource"]
    if not isinstance(resource, dict):
        return [_shape_error(f"{where}.resource", "a FHIR resource (an object)", resource,
                             f"{where}.resource")]
    kind = resource.get("resourceType")
    if not isinstance(kind, str):
        return [_shape_error(f"{where}.resource.resourceType", "a resource type string", kind,
                             f"{where}.resource.resourceType")]
    named = f"{kind}/{resource['id']}" if isinstance(resource.get("id"), str) else kind
    return [_shape_error(f"{where}.resource.{name}", expected, found,
                         f"{named} ({where}): {kind}.{name}")
            for name, expected, found in resource_problems(resource)]


def _resources(bundle: Any) -> list[_Entry]:
    """The Bundle's resources; every malformed entry, or field permed reads, is refused at once
    (the code below trusts their shape)."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise _fhir_error("resourceType", "a FHIR R4 Bundle", (bundle or {}).get("resourceType")
                          if isinstance(bundle, dict) else type(bundle).__name__,
                          "the request body must be a FHIR Bundle (resourceType 'Bundle')")
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise _fhir_error("entry", "a list of entries", type(entries).__name__,
                          "Bundle.entry must be a list")
    errors = [error for i, e in enumerate(entries) for error in _entry_errors(i, e)]
    if errors:
        raise FhirError(errors)
    return [_Entry(i, e.get("fullUrl"), e["resource"]) for i, e in enumerate(entries)
            if "resource" in e]


class FhirError(ValueError):
    """The Bundle cannot be mapped; ``errors`` names each problem."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(e.message for e in errors))


def _fhir_error(name: str, expected: str, received: Any, message: str) -> FhirError:
    return FhirError([FieldError(name, expected, received, message)])


def _patient(resources: list[_Entry]) -> _Entry:
    patients = [e for e in resources if e.kind == "Patient"]
    if len(patients) != 1:
        raise _fhir_error("Patient", "exactly one Patient resource", len(patients),
                          f"the Bundle holds {len(patients)} Patient resources; send one "
                          "patient's Bundle")
    return patients[0]


@dataclass
class _Found:
    """The Observation (or component) quantity chosen for a feature."""

    entry: _Entry
    when: pd.Timestamp | None
    quantity: dict[str, Any]

    def label(self, loinc: str) -> str:
        named = self.entry.reference or self.entry.label
        return f"{named} (LOINC {loinc})"


def _latest(observations: list[_Entry], loinc: str) -> _Found | None:
    """The most recent quantity for a LOINC code (an undated one only when none is dated)."""
    candidates = []
    for entry in observations:
        if entry.resource.get("status") in _IGNORED_STATUS:
            continue
        when = resource_date(entry.resource)
        candidates += [_Found(entry, when, q) for q in _quantities(entry.resource, loinc)]
    if not candidates:
        return None
    return max(candidates, key=lambda c: (c.when is not None, c.when or _EPOCH))


def _observation_value(name: str, source: dict[str, Any], found: _Found) -> float:
    quantity = found.quantity
    unit = quantity.get("code") or quantity.get("unit")
    value = quantity.get("value")
    label = found.label(source["loinc"])
    if value is None:
        raise _fhir_error(label, f"valueQuantity.value, a number in {source['unit']}", value,
                          f"{label} for feature '{name}' has no numeric valueQuantity.value")
    if not unit:
        raise _fhir_error(label, f"a UCUM unit convertible to '{source['unit']}'", None,
                          f"{label} for feature '{name}' has no unit: send valueQuantity.code "
                          f"in UCUM (expected '{source['unit']}')")
    try:
        return convert(float(value), str(unit), source["unit"])
    except UnitError as exc:
        # the unit is the sender's format, not the patient's: named, since the fix is about it
        raise FhirError([FieldError(
            label, f"a UCUM unit convertible to '{source['unit']}'", unit,
            f"{label} for feature '{name}' is in unit '{unit}': {exc}; send it in "
            f"'{source['unit']}' or a unit convertible to it", format=True)]) from None


def _age(name: str, patient: dict[str, Any], on: date, basis: str) -> tuple[int | None, str]:
    """Age in completed years on ``on``, and a note when the birth date is partial."""
    birth = birth_date(patient.get("birthDate"))
    if birth is None:
        return None, ""
    try:
        age = age_on(birth, on)
    except BornAfterError:  # its message quotes both dates: neither goes into the error body
        raise _fhir_error("Patient.birthDate", f"a date on or before {basis}", birth.text,
                          f"Patient.birthDate is after the date age is computed on ({basis}): "
                          "a patient is not born after their record; check Patient.birthDate "
                          "and the dates of the Bundle") from None
    if not birth.partial:
        return age, ""
    return age, (f"{name} {age} from the partial Patient.birthDate '{birth.text}': the birthday "
                 f"is taken as {min(birth.day, on).isoformat()}, the middle of the period, so "
                 "the age may be one year off")


def _gender(name: str, source: dict[str, Any], patient: dict[str, Any]) -> Any:
    gender = patient.get("gender")
    recode = source.get("map")
    if gender is None or not recode:
        return gender
    if gender not in recode:
        raise _fhir_error("Patient.gender", "one of " + ", ".join(recode), gender,
                          f"Patient.gender has no code for feature '{name}' in the study's "
                          f"[fhir] map ({', '.join(recode)}): send one of them")
    return recode[gender]


def _age_date(patient: dict[str, Any], resources: list[_Entry]) -> tuple[date, str]:
    """The date age is computed on, and what it is."""
    died = fhir_datetime(patient.get("deceasedDateTime"))
    if died is not None:
        return died.date(), "the patient's deceasedDateTime"
    latest = latest_date([e.resource for e in resources])
    if latest is not None:
        return latest.date(), "the date of the Bundle's latest dated resource"
    return datetime.now(UTC).date(), "today: no resource of the Bundle is dated"


def _sources(mapping: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, {"path": raw} if isinstance(raw, str) else raw)
            for name, raw in mapping.items()]


def features_from_bundle(bundle: Any, mapping: dict[str, Any],
                         features: list[str]) -> FhirInput:
    """A patient's features from a FHIR Bundle, by the study's mapping.

    Raises
    ------
    FhirError
        Not a Bundle; a malformed entry, or a malformed field that permed reads (named by its
        place in ``Bundle.entry``, the resource's type and id, the field, what was expected and
        what was found); not one Patient; an Observation without a number; a unit that cannot
        be converted; a birth date after the record (every problem is named).
    """
    resources = _resources(bundle)
    patient_entry = _patient(resources)
    patient = patient_entry.resource
    observations = [e for e in resources if e.kind == "Observation"]
    found = FhirInput(dict.fromkeys(features), patient_entry.reference)
    errors, used = [], []
    for name, source in _sources(mapping):
        if "loinc" not in source:
            continue
        latest = _latest(observations, str(source["loinc"]))
        if latest is None:
            continue
        try:
            found.values[name] = _observation_value(name, source, latest)
        except FhirError as exc:
            errors.extend(exc.errors)
            continue
        found.sources[name] = latest.label(source["loinc"])
        used.append(latest)
    on, basis = _age_date(patient, resources)
    for name, source in _sources(mapping):
        if "path" not in source:
            continue
        found.sources[name] = source["path"]
        try:
            if source["path"] == "Patient.birthDate":
                found.values[name], note = _age(name, patient, on, basis)
                found.notes += [note] if note else []
            else:
                found.values[name] = _gender(name, source, patient)
        except FhirError as exc:
            errors.extend(exc.errors)
    if errors:
        raise FhirError(errors)
    references = [found.patient_reference, *(u.entry.reference for u in used)]
    found.basis = list(dict.fromkeys(r for r in references if r))
    found.missing = [name for name in features if found.values.get(name) is None]
    dated = [u.when for u in used if u.when is not None]
    found.observed = max(dated).date() if dated else None
    return found


def name_sources(error: PatientError, found: FhirInput) -> PatientError:
    """``error`` (the model's checks of the features read from a Bundle, such as a value
    outside its valid range) with each feature named by where the Bundle had it.

    Examples
    --------
    ``field 'patient.chol' is above its valid range ...`` becomes ``Observation/c1 (LOINC
    2093-3) for feature 'chol' is above its valid range ...``, its field ``Observation/c1
    (LOINC 2093-3)``.
    """
    named = []
    for item in error.errors:
        feature = item.field.removeprefix("patient.")
        source = found.sources.get(feature)
        if source is None:
            named.append(item)
            continue
        message = item.message.replace(f"field '{item.field}'",
                                       f"{source} for feature '{feature}'", 1)
        named.append(FieldError(source, item.expected, item.received, message, item.format))
    return PatientError(named)


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

    ``subject`` references the Patient (its ``Patient/ID``, else the entry's ``fullUrl``, else
    only a ``display``), ``method`` names the model (``urn:permed:model`` | name) and its
    version, ``basis`` references the Patient and the Observations used (those that can be
    referenced), ``prediction`` holds one entry per class (diagnose), horizon (risk) or arm
    (treat), and ``note`` the summary, how a value was read (an age from a partial birth date),
    what was missing, the top factors and any referral.
    """
    notes = [summary, *fhir_input.notes]
    if fhir_input.missing:
        notes.append("not in the record (imputed by the model): " + ", ".join(fhir_input.missing))
    if explanation is not None:
        notes.append("top factors: " + explanation["text"])
    resource: dict[str, Any] = {
        "resourceType": "RiskAssessment",
        "id": prediction_id,
        "status": "final",
        # subject is required (1..1); a Patient without id or fullUrl can only be described
        "subject": {"reference": fhir_input.patient_reference}
        if fhir_input.patient_reference else {"display": "the Patient of the Bundle (it has "
                                                         "no id or fullUrl to refer to)"},
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
