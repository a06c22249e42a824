"""FHIR R4 bundles to one row per patient: demographics, LOINC observations, active conditions.

Each Bundle (``batch``, ``transaction``, ``collection`` or ``searchset``; one file may also hold
a single resource or an NDJSON export) is read resource by resource; resources are tied to their
patient by ``subject``/``patient`` references: ``Patient/ID`` (relative or absolute, a version
``/_history/N`` ignored), or an entry's ``fullUrl`` (``urn:uuid:...``; a Patient without an id
is known by its fullUrl, which is then its ``patient_id``). Resources whose reference names no
Patient of the input, and Patients with neither id nor fullUrl, are left out with a warning; one
id given to Patients that disagree (in gender, birthDate...) is warned of, by count and file.

A resource whose fields permed reads are malformed (a ``birthDate`` that is not a FHIR date
string, a ``code`` that is not a CodeableConcept, a non-finite value...) is refused with a
:class:`~permed.exceptions.DataError` naming the file, the resource and the field, by the same
rule (:func:`resource_problems`) as ``permed serve`` applies to a live Bundle.

With ``as_of`` (``--as-of``) the record is read as it stood on that date: only Observations and
Conditions dated on or before it feed the features (those after it, and undated ones, are left
out and counted), and a death after it is not counted: nothing from after the prediction date
leaks into the table.

Per patient:

- ``patient_id``, ``gender``, ``age_years`` (completed years at ``as_of``, or at the patient's
  latest dated resource, or at death: what ``permed serve`` computes from a live Bundle, see
  :func:`age_on`; a year-only or year-month ``birthDate`` counts from the middle of its period,
  see :class:`BirthDate`), ``deceased``, ``marital_status``, and the US Core ``race`` and
  ``ethnicity`` where present. Names, addresses, telecom and identifiers are never read: they
  are protected health information and no model needs them.
- Each Observation code with a quantity, including the components of panels such as blood
  pressure (85354-9 -> 8480-6 systolic, 8462-4 diastolic): ``<name>_<code>_latest``,
  ``_mean``, ``_min``, ``_max`` and ``_count``, in the code's most frequent UCUM unit. A LOINC
  coding is taken where the code has one; another coding is kept apart by its system,
  ``<name>_<system>_<code>_...`` (a local ``2345-7`` is not LOINC 2345-7), and is not among the
  features ``permed serve`` reads from a live Bundle (its ``[fhir]`` map is by LOINC). A value
  in another unit is converted with the table ``permed serve`` uses (:mod:`permed.ingest._ucum`;
  ``mg/dl`` is ``mg/dL``); one that cannot be (another dimension, a unit not in the table) is
  left out, counted in :attr:`FhirTable.dropped_units` and in a warning naming the code, both
  units and how many values and patients. A value given beyond a limit (``comparator`` ``<``,
  ``>``) is read at its limit, as ``permed serve`` reads it, with a warning; one result sent
  twice (same patient, code, time, value and unit) counts once.
- Each Observation code with a coded result (``valueCodeableConcept``, such as SARS-CoV-2 RNA
  detected / not detected): ``<name>_<code>_result``, the display (else the code) of the
  patient's latest result, a categorical feature. Other kinds of value (``valueString``: free
  text, which may name people; ``valueBoolean``, ``valueInteger``, ``valueRange``...) and
  Observations without a value are not read, and are counted per code in a warning.
- Observations entered-in-error or cancelled (:data:`IGNORED_STATUS`, as ``permed serve``
  reads a Bundle) and Conditions whose ``verificationStatus`` is entered-in-error or refuted
  are left out, and counted in :attr:`FhirTable.notes`.
- Each Condition that is active (``clinicalStatus`` active, recurrence or relapse, or no
  status and no abatement) as a 0/1 indicator ``condition_<code>_<name>``.

Examples
--------
>>> from permed.ingest.fhir import read_fhir  # doctest: +SKIP
>>> table = read_fhir("bundles/")  # doctest: +SKIP
>>> table.frame.shape, table.units["body_temperature_8310_5_latest"]  # doctest: +SKIP
((10, 120), 'Cel')
"""

from __future__ import annotations

import calendar
import json
import math
import re
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from permed.exceptions import DataError
from permed.ingest._csv import ReadWarning
from permed.ingest._ucum import UCUM, UnitError, convert, ucum_unit

if TYPE_CHECKING:
    from permed.study import Study

__all__ = ["AS_OF_EXPECTED", "IGNORED_STATUS", "AsOf", "BirthDate", "BornAfterError", "FhirTable",
           "age_on", "as_of_date", "birth_date", "fhir_datetime", "latest_date", "read_fhir",
           "resource_problems"]

LOINC = "http://loinc.org"
# Observation statuses that say the result does not stand: neither training nor serving reads it
IGNORED_STATUS = ("entered-in-error", "cancelled")
_ACTIVE = {"active", "recurrence", "relapse"}
_US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-"
_STATS = ("latest", "mean", "min", "max", "count")
# the demographics permed serve reads from a Bundle's Patient (study FHIR_PATHS)
_PATIENT_PATHS = {"gender": "Patient.gender", "age_years": "Patient.birthDate"}


@dataclass
class FhirTable:
    """The patient table and what it was built from.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per patient.
    units : dict of str to str
        The UCUM unit of each observation column.
    loinc : dict of str to str
        The LOINC code behind each ``_latest`` column (for a study's ``[fhir]`` section).
    dropped_units : dict of str to int
        Per LOINC code, values left out because their unit cannot be converted to the code's
        main unit.
    files : int
        Files read.
    notes : list of str
        What was done to the values as the rules say (units converted), for the record.
    warnings : list of str
        What was left out or read with a caveat, with counts (each also issued as a
        :class:`~permed.ingest.ReadWarning`).
    """

    frame: pd.DataFrame
    units: dict[str, str] = field(default_factory=dict)
    loinc: dict[str, str] = field(default_factory=dict)
    dropped_units: dict[str, int] = field(default_factory=dict)
    files: int = 0
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        warnings.warn(message, ReadWarning, stacklevel=3)

    def constant(self) -> list[str]:
        """The columns with one value (or none) for every patient: nothing to learn from.

        A small extract gives many (one visit each: every ``_count`` is 1; nobody deceased).
        """
        return [str(c) for c in self.frame.columns
                if c != "patient_id" and self.frame[c].dropna().nunique() <= 1]

    def study(self) -> Study:
        """The study written beside the table.

        ``patient_id`` is the id, each observation column has its unit, the constant columns
        are under ``drop`` (validation refuses them as features), and ``[fhir]`` maps what
        ``permed serve`` reads from a live Bundle: ``gender`` (``Patient.gender``),
        ``age_years`` (``Patient.birthDate``) and each ``_latest`` column (its LOINC code and
        unit). Serving leaves every other feature missing, for the model to impute.
        """
        from permed.study import ColumnSpec, Study

        drop = self.constant()
        patient = {name: path for name, path in _PATIENT_PATHS.items()
                   if name in self.frame.columns}
        observed = {c: {"loinc": code, "unit": self.units[c]}
                    for c, code in self.loinc.items() if self.units.get(c)}
        fhir = {c: source for c, source in {**patient, **observed}.items() if c not in drop}
        return Study(id="patient_id", drop=drop, fhir=fhir,
                     columns={c: ColumnSpec(unit=u) for c, u in self.units.items() if u})


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40] or "value"


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix in (".json", ".ndjson"))
        if not found:
            raise DataError(f"folder '{path}' holds no .json or .ndjson FHIR files: point "
                            "permed ingest fhir at the folder of Bundle files")
        return found
    if not path.is_file():
        raise DataError(f"'{path}' does not exist: give a FHIR Bundle file or a folder of them")
    return [path]


def _readable_entry(entry: Any) -> bool:
    """A Bundle entry that is an object, with no resource or a resource with a resourceType."""
    if not isinstance(entry, dict):
        return False
    resource = entry.get("resource")
    return "resource" not in entry or (isinstance(resource, dict) and isinstance(
        resource.get("resourceType"), str))


_Loaded = list[tuple[dict[str, Any], str | None]]


class _NotFhir(DataError):
    """A whole JSON file without a resourceType: not FHIR (a bulk-export manifest, say)."""


def _load(path: Path) -> _Loaded:
    """Every resource in one file (a Bundle, a single resource or NDJSON lines), each with its
    Bundle entry's ``fullUrl`` (None outside a Bundle)."""
    try:  # a byte-order mark, which some Windows tools write, is not part of the JSON
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"'{path}' is not UTF-8 text (byte {exc.start}): FHIR JSON is UTF-8; "
                        "save the file as UTF-8") from None
    # split on newlines only: a JSON string may hold U+2028, which splitlines() would cut at
    lines = text.split("\n") if path.suffix == ".ndjson" else [text]
    documents = []
    for number, line in enumerate(lines, 1):
        if not line.strip() and path.suffix == ".ndjson":
            continue
        where = f"line {number}" if path.suffix == ".ndjson" else None
        try:
            documents.append((json.loads(line), where))
        except json.JSONDecodeError as exc:
            raise DataError(f"'{path}' is not valid JSON ({exc.msg} at line "
                            f"{number if where else exc.lineno}, column {exc.colno}): fix or "
                            "remove the file") from None
    resources: _Loaded = []
    for document, where in documents:
        if not isinstance(document, dict) or "resourceType" not in document:
            raise (DataError if where else _NotFhir)(
                f"'{path}' holds JSON without a resourceType{f' at {where}' if where else ''}: "
                "it is not FHIR")
        if document["resourceType"] == "Bundle":
            entries = document.get("entry", [])
            if not isinstance(entries, list) or not all(map(_readable_entry, entries)):
                raise DataError(f"'{path}' holds a Bundle whose entry is not a list of objects "
                                "with a resource (an object with a resourceType): fix or "
                                "remove the file")
            resources += [(e["resource"], e.get("fullUrl") if isinstance(e.get("fullUrl"), str)
                           else None) for e in entries if "resource" in e]
        else:
            resources.append((document, None))
    return resources


_HISTORY_RE = re.compile(r"/_history/[^/]*$")


def _subject(resource: dict[str, Any]) -> str | None:
    """The patient reference of a resource, without a version (``Patient/p1/_history/2`` is
    ``Patient/p1``)."""
    for key in ("subject", "patient"):
        reference = (resource.get(key) or {}).get("reference")
        if isinstance(reference, str) and reference:
            return _HISTORY_RE.sub("", reference)
    return None


# FHIR R4 date and dateTime (http://hl7.org/fhir/R4/datatypes.html#primitive): a year, a month
# or a day, and for a dateTime a time of day with its zone
_DATE = r"([0-9]{4})(?:-(0[1-9]|1[0-2])(?:-(0[1-9]|[12][0-9]|3[01]))?)?"
_DATE_RE = re.compile(_DATE)
_DATETIME_RE = re.compile(_DATE + r"(?:T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)"
                          r"(?:\.[0-9]+)?(?:Z|[+-](?:0[0-9]|1[0-3]):[0-5][0-9]|[+-]14:00)?)?")
DATE_EXPECTED = "a FHIR date string YYYY, YYYY-MM or YYYY-MM-DD"
DATETIME_EXPECTED = ("a FHIR dateTime string (YYYY, YYYY-MM, YYYY-MM-DD or "
                     "YYYY-MM-DDThh:mm:ss+zz:zz)")


@dataclass(frozen=True)
class BirthDate:
    """A ``Patient.birthDate``: the period it names and the day taken as the birthday.

    FHIR allows a year (``1960``) or a month (``1960-05``). A partial date is taken at the
    middle of its period, July 1 of the year or the 15th of the month: the day that is never
    more than half the period away from the true birthday, so that an age is at most one year
    off.
    """

    text: str
    first: date
    last: date

    @property
    def partial(self) -> bool:
        return self.first != self.last

    @property
    def day(self) -> date:
        if not self.partial:
            return self.first
        return self.first.replace(day=15) if self.first.month == self.last.month else (
            self.first.replace(month=7))


def birth_date(value: Any) -> BirthDate | None:
    """A FHIR date (``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``), None when it is not one.

    Examples
    --------
    >>> birth_date("1960").day, birth_date("1960-05").day, birth_date("1960-05-02").day
    (datetime.date(1960, 7, 1), datetime.date(1960, 5, 15), datetime.date(1960, 5, 2))
    >>> birth_date(19600101) is None, birth_date("1960-02-30") is None
    (True, True)
    """
    match = _DATE_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return None
    year, month, day = (int(g) if g else None for g in match.groups())
    try:
        first = date(year, month or 1, day or 1)  # type: ignore[arg-type]
    except ValueError:  # 1960-02-30
        return None
    if day is not None:
        return BirthDate(value, first, first)
    if month is not None:
        return BirthDate(value, first, first.replace(day=calendar.monthrange(year, month)[1]))
    return BirthDate(value, first, date(first.year, 12, 31))


def fhir_datetime(value: Any) -> pd.Timestamp | None:
    """A FHIR dateTime or instant as a UTC timestamp (a partial one at its start), None when
    it is not one (a number is never read as nanoseconds since 1970)."""
    if not isinstance(value, str) or _DATETIME_RE.fullmatch(value) is None:
        return None
    when = pd.to_datetime(value, utc=True, errors="coerce")
    return None if pd.isna(when) else when


AS_OF_EXPECTED = ("an ISO 8601 date, YYYY-MM-DD, or date and time, YYYY-MM-DDThh:mm:ss with Z "
                  "or an offset such as +01:00")
_AS_OF_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?"
                       r"(?:Z|[+-][0-9]{2}:[0-9]{2})?)?")
_NUMERIC_DATE_RE = re.compile(r"([0-9]{1,2})[/.]([0-9]{1,2})[/.]([0-9]{4})")


@dataclass(frozen=True)
class AsOf:
    """The date a record is read as it stood on (``--as-of``): ages are computed on ``day``,
    and only resources dated on or before ``last`` (the end of the day for a date) are read."""

    text: str
    day: date
    last: pd.Timestamp

    def includes(self, when: pd.Timestamp | None) -> bool:
        return when is not None and when <= self.last


def _readings(first: str, second: str, year: str) -> list[str]:
    """The ISO dates a numeric date may mean: month first, then day first."""
    found = []
    for m, d in ((first, second), (second, first)):
        try:
            found.append(date(int(year), int(m), int(d)).isoformat())
        except ValueError:
            continue
    return list(dict.fromkeys(found))


def as_of_date(text: str) -> AsOf:
    """``--as-of`` read as ISO 8601; anything else is refused, never guessed.

    Raises
    ------
    DataError
        Not an ISO date or date-time (``01/02/2024`` is 1 February or 2 January), or not a
        date of the calendar.

    Examples
    --------
    >>> as_of_date("2024-01-01").last
    Timestamp('2024-01-01 23:59:59.999999999+0000', tz='UTC')
    """
    numeric = _NUMERIC_DATE_RE.fullmatch(text)
    if numeric is not None:
        readings = _readings(*numeric.groups())
        raise DataError(
            f"--as-of '{text}' is not an ISO date: a date written with slashes or dots reads "
            "differently from country to country (day or month first); write it as "
            f"YYYY-MM-DD ({' or '.join(readings) or 'a valid date'})")
    if _AS_OF_RE.fullmatch(text) is None:
        raise DataError(f"--as-of '{text}' is not a date: expected {AS_OF_EXPECTED}")
    try:
        day = date.fromisoformat(text[:10])
        when = pd.Timestamp(text)
    except ValueError:
        raise DataError(f"--as-of '{text}' is not a date of the calendar: expected "
                        f"{AS_OF_EXPECTED}") from None
    when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
    if len(text) == 10:  # a whole day: up to its last instant
        when += pd.Timedelta(days=1) - pd.Timedelta(1, unit="ns")
    return AsOf(text, day, when)


class BornAfterError(DataError):
    """A birth date after the date age is computed on."""

    def __init__(self, birth: BirthDate, on: date) -> None:
        self.birth, self.on = birth, on
        super().__init__(f"Patient.birthDate '{birth.text}' is after {on.isoformat()}, the date "
                         "age is computed on")


def age_on(birth: str | BirthDate | None, on: Any) -> int | None:
    """Age in completed years on a date (the clinical convention); None without a birth date.

    A partial birth date counts from the middle of its period (:class:`BirthDate`), or from
    ``on`` when that falls inside the period and before its middle (age 0).

    Raises
    ------
    BornAfterError
        The birth date's period starts after ``on``.

    Examples
    --------
    >>> age_on("2009-04-29", "2020-04-28"), age_on("2009-04-29", "2020-04-29")
    (10, 11)
    >>> age_on("1960", "2020-06-30"), age_on("1960", "2020-07-01")
    (59, 60)
    """
    born = birth if isinstance(birth, BirthDate) else birth_date(birth)
    then = pd.to_datetime(on, utc=True, errors="coerce")
    if born is None or pd.isna(then):
        return None
    then = then.date()
    if born.first > then:
        raise BornAfterError(born, then)
    day = min(born.day, then)
    return int(then.year - day.year - ((then.month, then.day) < (day.month, day.day)))


def latest_date(resources: list[dict[str, Any]]) -> pd.Timestamp | None:
    """The latest date among resources (the patient's record), None when none is dated."""
    dates = [d for d in map(resource_date, resources) if d is not None]
    return max(dates) if dates else None


def _period_start(period: Any) -> pd.Timestamp | None:
    if not isinstance(period, dict):
        return None
    start = period.get("start") or period.get("end")
    return fhir_datetime(start) if start else None


def resource_date(resource: dict[str, Any]) -> pd.Timestamp | None:
    """When a resource happened: an Observation's effective[x] (dateTime, instant or the start
    of its period), a Condition's onset or recording, an Encounter's period; an Observation's
    ``issued`` (when the result was released, often later) only when nothing else is given."""
    for key in ("effectiveDateTime", "effectiveInstant"):
        if resource.get(key):
            return fhir_datetime(resource[key])
    if resource.get("effectivePeriod"):
        return _period_start(resource["effectivePeriod"])
    for key in ("onsetDateTime", "recordedDate"):
        if resource.get(key):
            return fhir_datetime(resource[key])
    if resource.get("period"):
        return _period_start(resource["period"])
    return fhir_datetime(resource["issued"]) if resource.get("issued") else None


# ---- the shape of what is read: one rule for permed ingest fhir and permed serve ----------

_DATED = ("effectiveDateTime", "effectiveInstant", "issued", "onsetDateTime", "recordedDate")
_CONCEPTS = {"Patient": ("maritalStatus",), "Observation": ("code",),
             "Condition": ("code", "clinicalStatus")}

Problem = tuple[str, str, Any]
"""A field of a resource (a FHIRPath below it), what was expected and what was found."""


def _concept_problems(path: str, concept: Any) -> list[Problem]:
    expected = "a CodeableConcept: an object with a 'coding' list of {system, code} objects"
    if not isinstance(concept, dict):
        return [(path, expected, concept)]
    coding = concept.get("coding", [])
    if not isinstance(coding, list):
        return [(f"{path}.coding", "a list of Coding objects ({system, code})", coding)]
    problems: list[Problem] = []
    for i, item in enumerate(coding):
        if not isinstance(item, dict):
            problems.append((f"{path}.coding[{i}]", "a Coding object ({system, code})", item))
            continue
        problems += [(f"{path}.coding[{i}].{key}", "a string", item[key])
                     for key in ("system", "code", "display")
                     if key in item and not isinstance(item[key], str)]
    if "text" in concept and not isinstance(concept["text"], str):
        problems.append((f"{path}.text", "a string", concept["text"]))
    return problems


def _quantity_problems(path: str, quantity: Any) -> list[Problem]:
    if not isinstance(quantity, dict):
        return [(path, "a Quantity: an object with a numeric value and a UCUM code", quantity)]
    value = quantity.get("value")
    problems: list[Problem] = []
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                              or not math.isfinite(value)):
        problems.append((f"{path}.value", "a finite number", value))
    return problems + [(f"{path}.{key}", "a string", quantity[key]) for key in ("code", "unit")
                       if key in quantity and not isinstance(quantity[key], str)]


def _observation_problems(resource: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    if "valueQuantity" in resource:
        problems += _quantity_problems("valueQuantity", resource["valueQuantity"])
    components = resource.get("component", [])
    if not isinstance(components, list):
        return [*problems, ("component", "a list of objects (code, valueQuantity)", components)]
    for i, part in enumerate(components):
        if not isinstance(part, dict):
            problems.append((f"component[{i}]", "an object (code, valueQuantity)", part))
            continue
        if "code" in part:
            problems += _concept_problems(f"component[{i}].code", part["code"])
        if "valueQuantity" in part:
            problems += _quantity_problems(f"component[{i}].valueQuantity",
                                           part["valueQuantity"])
    return problems


def _patient_problems(resource: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    if "birthDate" in resource and birth_date(resource["birthDate"]) is None:
        problems.append(("birthDate", DATE_EXPECTED, resource["birthDate"]))
    if "deceasedDateTime" in resource and fhir_datetime(resource["deceasedDateTime"]) is None:
        problems.append(("deceasedDateTime", DATETIME_EXPECTED, resource["deceasedDateTime"]))
    if "gender" in resource and not isinstance(resource["gender"], str):
        problems.append(("gender", "a code string (male, female, other, unknown)",
                         resource["gender"]))
    extensions = resource.get("extension", [])
    if not isinstance(extensions, list) or not all(
            isinstance(e, dict) and isinstance(e.get("extension", []), list)
            and all(isinstance(inner, dict) for inner in e.get("extension", []))
            for e in extensions):
        problems.append(("extension", "a list of Extension objects", extensions))
    return problems


def _dated_problems(resource: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = [(key, DATETIME_EXPECTED, resource[key]) for key in _DATED
                               if resource.get(key) and fhir_datetime(resource[key]) is None]
    for key in ("effectivePeriod", "period"):
        period = resource.get(key)
        if period is None:
            continue
        if not isinstance(period, dict):
            problems.append((key, "a Period: an object with start and end dateTimes", period))
            continue
        problems += [(f"{key}.{end}", DATETIME_EXPECTED, period[end]) for end in ("start", "end")
                     if period.get(end) and fhir_datetime(period[end]) is None]
    return problems


def resource_problems(resource: dict[str, Any]) -> list[Problem]:
    """What is malformed in the fields permed reads from a resource, each as (field, what was
    expected, what was found); empty when the resource can be read."""
    kind = resource.get("resourceType")
    problems: list[Problem] = []
    if "id" in resource and not isinstance(resource["id"], str):
        problems.append(("id", "a string", resource["id"]))
    if kind != "Patient":
        problems += [(key, "a Reference: an object with a 'reference' string", resource[key])
                     for key in ("subject", "patient") if key in resource
                     and not (isinstance(resource[key], dict) and isinstance(
                         resource[key].get("reference", ""), str))]
    if "status" in resource and not isinstance(resource["status"], str):
        problems.append(("status", "a code string", resource["status"]))
    for key in _CONCEPTS.get(str(kind), ()):
        if key in resource:
            problems += _concept_problems(key, resource[key])
    if kind == "Patient":
        problems += _patient_problems(resource)
    elif kind == "Observation":
        problems += _observation_problems(resource)
    return problems + _dated_problems(resource)


def found_text(value: Any) -> str:
    """What was found, for a message: the value and its JSON type."""
    kinds = {str: "the string", bool: "the boolean", int: "the number", float: "the number",
             list: "a list", dict: "an object", type(None): "null"}
    kind = kinds.get(type(value), type(value).__name__)
    if isinstance(value, list | dict):
        shown = json.dumps(value, default=str)
        return f"{kind} {shown if len(shown) <= 60 else shown[:57] + '...'}"
    return kind if value is None else f"{kind} {json.dumps(value, default=str)}"


def _coding(concept: dict[str, Any] | None, system: str | None = None
            ) -> tuple[str, str] | None:
    for coding in (concept or {}).get("coding", []):
        if (system is None or coding.get("system") == system) and coding.get("code"):
            return str(coding["code"]), str(coding.get("display") or (concept or {}).get(
                "text") or coding["code"])
    return None


def _observation_code(concept: Any) -> tuple[str, str] | None:
    """The key of an Observation's code (the LOINC code where there is one, else
    ``system|code`` of its first coding) and its display."""
    codings = [c for c in (concept or {}).get("coding", []) if c.get("code")]
    chosen = next((c for c in codings if c.get("system") == LOINC), codings[0] if codings else None)
    if chosen is None:
        return None
    key = chosen["code"] if chosen.get("system") == LOINC else (
        f"{chosen.get('system') or ''}|{chosen['code']}")
    return key, str(chosen.get("display") or concept.get("text") or chosen["code"])


def _concept_text(concept: Any) -> str | None:
    """A coded result as a category: its first coding's display, else its code, else the
    concept's text (a valueCodeableConcept is not checked as a code is: read with care)."""
    if not isinstance(concept, dict):
        return None
    codings = concept.get("coding") if isinstance(concept.get("coding"), list) else []
    for coding in (c for c in codings if isinstance(c, dict)):
        for key in ("display", "code"):
            if isinstance(coding.get(key), str) and coding[key].strip():
                return str(coding[key]).strip()
    text = concept.get("text")
    return text.strip() if isinstance(text, str) and text.strip() else None


# (code key, display, number, category, unit, comparator): a quantity has a number, a coded
# result a category
_Value = tuple[str, str, float, str | None, str, str]


def _part_value(key: str, name: str, part: dict[str, Any]) -> _Value | str:
    """What one Observation (or component) holds, or the kind of value that is not read."""
    quantity = part.get("valueQuantity")
    if quantity is not None:
        if quantity.get("value") is None:
            return "valueQuantity without a value"
        unit = str(quantity.get("code") or quantity.get("unit") or "")
        return (key, name, float(quantity["value"]), None, unit,
                str(quantity.get("comparator") or ""))
    if "valueCodeableConcept" in part:
        category = _concept_text(part["valueCodeableConcept"])
        return (key, name, math.nan, category, "", "") if category else (
            "valueCodeableConcept without a coding or text")
    return next((k for k in part if k.startswith("value")), "without a value")


def _observation_values(resource: dict[str, Any]) -> tuple[list[_Value], list[tuple[str, str]]]:
    """The values of an Observation and of each of its components, and (kind of value, code)
    of those that are not read (a panel without a value of its own is not counted)."""
    components = resource.get("component", [])
    parts = [resource, *components] if not components or any(
        k.startswith("value") for k in resource) else components
    found: list[_Value] = []
    skipped: list[tuple[str, str]] = []
    for part in parts:
        code = _observation_code(part.get("code"))
        if code is None:
            skipped.append(("a code without a coding", "no code"))
            continue
        value = _part_value(*code, part)
        if isinstance(value, str):
            skipped.append((value, code[0]))
        else:
            found.append(value)
    return found, skipped


def _code_label(key: str) -> str:
    """A code for a message: ``LOINC 2345-7``, ``code 2345-7 of http://lab.local``."""
    if "|" not in key:
        return f"LOINC {key}"
    system, code = key.split("|", 1)
    return f"code {code} of {system}" if system else f"code {code} (no system)"


def _column_base(key: str, name: str) -> str:
    if "|" not in key:
        return f"{_slug(name)}_{_slug(key)}"
    system, code = key.split("|", 1)
    source = _slug(system.split("://")[-1]) if system else "no_system"
    return f"{_slug(name)}_{source}_{_slug(code)}"


def _extension_text(patient: dict[str, Any], kind: str) -> str | None:
    for extension in patient.get("extension", []):
        if extension.get("url") == f"{_US_CORE}{kind}":
            for inner in extension.get("extension", []):
                if inner.get("url") == "text" and inner.get("valueString"):
                    return str(inner["valueString"])
    return None


def _death(patient: dict[str, Any], cutoff: AsOf | None) -> tuple[bool, pd.Timestamp | None]:
    """Whether the patient had died (by ``--as-of``, when given) and when."""
    died = fhir_datetime(patient.get("deceasedDateTime"))
    if died is not None and cutoff is not None and not cutoff.includes(died):
        return False, None  # a death after --as-of is the future
    return bool(patient.get("deceasedBoolean")) or died is not None, died


def _demographics(key: str, patient: dict[str, Any], as_of: Any,
                  cutoff: AsOf | None) -> dict[str, Any]:
    deceased, died = _death(patient, cutoff)
    end = died if died is not None else as_of
    try:
        age = age_on(patient.get("birthDate"), end) if end is not None else None
    except BornAfterError as exc:
        raise DataError(
            f"{key}: {exc} (its "
            f"{'death' if died is not None else 'latest dated resource or --as-of'}): fix the "
            "birthDate, or give --as-of a date after it") from None
    marital = _coding(patient.get("maritalStatus"))
    return {"patient_id": key.removeprefix("Patient/"), "gender": patient.get("gender"),
            "age_years": np.nan if age is None else age,
            "deceased": int(deceased), "marital_status": marital[0] if marital else None,
            "race": _extension_text(patient, "race"),
            "ethnicity": _extension_text(patient, "ethnicity")}


def _active(condition: dict[str, Any]) -> bool:
    status = _coding(condition.get("clinicalStatus"))
    if status is not None:
        return status[0] in _ACTIVE
    return not (condition.get("abatementDateTime") or condition.get("abatementPeriod")
                or condition.get("abatementString"))


def _abated_after(condition: dict[str, Any], cutoff: AsOf | None) -> bool:
    """The condition abated after ``--as-of``: it was active then, whatever its status now."""
    if cutoff is None:
        return False
    period = condition.get("abatementPeriod")
    ended = fhir_datetime(condition.get("abatementDateTime") or (
        period.get("start") if isinstance(period, dict) else None))
    return ended is not None and not cutoff.includes(ended)


# what a row of the table reads from a Patient: two Patients with one id that differ in these
# are two records of one id that disagree
_PATIENT_FIELDS = ("gender", "birthDate", "deceasedBoolean", "deceasedDateTime",
                   "maritalStatus", "extension")


@dataclass
class _Collected:
    """What the files hold, per patient reference as written; references are resolved to
    Patients once every file is read (a Bundle may come before its Patient's)."""

    # "Patient/ID", or the entry's fullUrl for a Patient without an id
    patients: dict[str, dict[str, Any]] = field(default_factory=dict)
    full_urls: dict[str, str] = field(default_factory=dict)
    sources: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    conflicts: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    unreferenceable: list[str] = field(default_factory=list)
    # (reference, *_Value, when)
    observations: list[tuple[Any, ...]] = field(default_factory=list)
    unread: Counter[tuple[str, str]] = field(default_factory=Counter)
    conditions: dict[str, set[tuple[str, str]]] = field(default_factory=lambda: defaultdict(set))
    latest: dict[str, pd.Timestamp] = field(default_factory=dict)
    ignored: Counter[str] = field(default_factory=Counter)
    # --as-of: the resources left out, per (kind, "after" | "undated"), and their patients
    cut: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))


def _check(resources: _Loaded, path: Path) -> None:
    """Refuse a file with a malformed resource, naming every problem."""
    problems = []
    for number, (resource, _) in enumerate(resources, 1):
        kind = resource.get("resourceType")
        name = f"{kind}/{resource['id']}" if isinstance(resource.get("id"), str) else kind
        problems += [f"{name} (resource {number} of the file): {kind}.{where} must be "
                     f"{expected}, found {found_text(found)}"
                     for where, expected, found in resource_problems(resource)]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise DataError(f"'{path}' holds malformed FHIR: " + "; ".join(problems[:3]) + more
                        + ": fix the resource or leave the file out", problems)


def _ignored_status(resource: dict[str, Any]) -> str | None:
    """The status that says a result or a diagnosis does not stand: an Observation
    entered-in-error or cancelled (as permed serve reads them), a Condition whose
    verificationStatus is entered-in-error or refuted."""
    if resource.get("resourceType") == "Observation":
        status = resource.get("status")
        return f"with status {status}" if status in IGNORED_STATUS else None
    if resource.get("resourceType") == "Condition":
        verified = _coding(resource.get("verificationStatus"))
        if verified and verified[0] in ("entered-in-error", "refuted"):
            return f"with verificationStatus {verified[0]}"
    return None


def _add_patient(patient: dict[str, Any], full_url: str | None, source: str,
                 into: _Collected) -> None:
    key = f"Patient/{patient['id']}" if patient.get("id") else full_url
    if not key:
        into.unreferenceable.append(source)
        return
    if full_url:
        into.full_urls[full_url] = key
    if key in into.patients:
        into.conflicts[key] |= {name for name in _PATIENT_FIELDS
                                if into.patients[key].get(name) != patient.get(name)}
    into.patients[key] = patient
    into.sources[key].append(source)


def _patient_key(reference: str, into: _Collected) -> str | None:
    """The Patient a reference names: by its entry's fullUrl (``urn:uuid:...``, an absolute
    URL), by ``Patient/ID`` (relative or absolute), or by ``urn:uuid:ID`` where the Patient's
    id is that uuid (Synthea); None when it names no Patient of the input."""
    if reference in into.full_urls:
        return into.full_urls[reference]
    if reference.startswith(("urn:uuid:", "urn:oid:")):
        key = "Patient/" + reference.split(":", 2)[2]
    elif "/" not in reference:
        key = f"Patient/{reference}"
    else:
        kind, _, rest = reference.rstrip("/").rpartition("/")
        if kind.rpartition("/")[2] != "Patient":
            return None
        key = f"Patient/{rest}"
    return key if key in into.patients else None


def _collect(resources: _Loaded, source: str, into: _Collected, cutoff: AsOf | None) -> None:
    for resource, full_url in resources:
        kind, who = resource.get("resourceType"), _subject(resource)
        if kind == "Patient":
            _add_patient(resource, full_url, source, into)
            continue
        if who is None:
            continue
        when = resource_date(resource)
        if when is not None and not pd.isna(when):
            into.latest[who] = max(into.latest.get(who, when), when)
        if kind in ("Observation", "Condition"):
            _add(resource, who, when, into, cutoff)


def _add(resource: dict[str, Any], who: str, when: pd.Timestamp | None, into: _Collected,
         cutoff: AsOf | None) -> None:
    """An Observation's values, or a Condition if active, unless it does not stand or comes
    after --as-of."""
    kind = resource["resourceType"]
    status = _ignored_status(resource)
    if status:
        into.ignored[f"{kind} {status}"] += 1
    elif cutoff is not None and not cutoff.includes(when):
        into.cut[kind, "undated" if when is None else "after"].append(who)
    elif kind == "Observation":
        found, skipped = _observation_values(resource)
        into.observations += [(who, *value, when) for value in found]
        into.unread.update(skipped)
    elif _active(resource) or _abated_after(resource, cutoff):
        code = _coding(resource.get("code"))
        if code:
            into.conditions[who].add(code)


def _cut_messages(collected: _Collected, cutoff: AsOf, table: FhirTable) -> None:
    """Say what --as-of left out: resources dated after it (a note), undated ones (a warning:
    nothing shows they precede it) and deaths after it."""
    def counted(kind: str, which: str) -> str:
        who = collected.cut.get((kind, which), [])
        return f"{len(who)} {kind}(s) of {len(set(who))} patient(s)" if who else ""

    after = [c for c in (counted("Observation", "after"), counted("Condition", "after")) if c]
    if after:
        table.notes.append(f"--as-of {cutoff.text}: {' and '.join(after)} dated after it are "
                           "left out")
    undated = [c for c in (counted("Observation", "undated"), counted("Condition", "undated"))
               if c]
    if undated:
        table.warn(f"--as-of {cutoff.text}: {' and '.join(undated)} have no date, so nothing "
                   "shows they precede it: they are left out; date them (effective[x], "
                   "onset[x] or recordedDate) to have them read")
    died = [p for p in collected.patients.values()
            if fhir_datetime(p.get("deceasedDateTime")) is not None and not _death(p, cutoff)[0]]
    if died:
        table.notes.append(f"--as-of {cutoff.text}: {len(died)} patient(s) died after it: "
                           "deceased is 0 for them and their age is on --as-of")
    undated_deaths = sum(1 for p in collected.patients.values() if p.get("deceasedBoolean")
                         and not p.get("deceasedDateTime"))
    if undated_deaths:
        table.warn(f"--as-of {cutoff.text}: {undated_deaths} patient(s) are marked deceased "
                   "(deceasedBoolean) with no date, so nothing shows whether they died before "
                   "it: deceased is 1 for them; give deceasedDateTime to have it read as of "
                   "the date")


def _files_text(sources: list[str]) -> str:
    named = list(dict.fromkeys(sources))
    more = f" and {len(named) - 5} more" if len(named) > 5 else ""
    return ", ".join(named[:5]) + more


def _patient_messages(collected: _Collected, table: FhirTable) -> None:
    """Warn of Patients nothing can refer to, and of one id given to records that disagree
    (counted and located by file: an id may be a medical record number)."""
    if collected.unreferenceable:
        table.warn(f"{len(collected.unreferenceable)} Patient resource(s) have neither an id nor "
                   f"a fullUrl (in {_files_text(collected.unreferenceable)}), so nothing can "
                   "refer to them: they are left out; give each Patient an id")
    conflicts = {k: fields for k, fields in collected.conflicts.items() if fields}
    if conflicts:
        fields = sorted(set().union(*conflicts.values()), key=_PATIENT_FIELDS.index)
        sources = [s for key in conflicts for s in collected.sources[key]]
        table.warn(f"{len(conflicts)} Patient id(s) are given to more than one Patient resource "
                   f"that differ in {', '.join(fields)} (in {_files_text(sources)}): the one "
                   "read last is used and their Observations and Conditions are pooled in one "
                   "row; give different patients different ids, or leave the older record out")


def _resolve(collected: _Collected, table: FhirTable) -> None:
    """Tie each Observation value and Condition to its Patient's row (``patient_id``); those
    whose reference names no Patient of the input are left out, and counted."""
    ids = {ref: key for ref in {*collected.conditions, *collected.latest,
                                *(row[0] for row in collected.observations)}
           if (key := _patient_key(ref, collected)) is not None}
    orphans = [row for row in collected.observations if row[0] not in ids]
    orphan_conditions = [ref for ref in collected.conditions if ref not in ids]
    if orphans or orphan_conditions:
        refs = {row[0] for row in orphans} | set(orphan_conditions)
        what = [f"{len(orphans)} Observation value(s)" if orphans else "",
                f"{sum(len(collected.conditions[r]) for r in orphan_conditions)} active "
                "Condition(s)" if orphan_conditions else ""]
        table.warn(f"{' and '.join(w for w in what if w)} refer to {len(refs)} patient(s) not "
                   "in the input (no Patient with that id or fullUrl), so they are left out: "
                   "include those Patients, or check the subject references")
    pid = {ref: key.removeprefix("Patient/") for ref, key in ids.items()}
    collected.observations = [(pid[row[0]], *row[1:]) for row in collected.observations
                              if row[0] in pid]
    conditions: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for ref, codes in collected.conditions.items():
        if ref in pid:
            conditions[pid[ref]] |= codes
    collected.conditions = conditions


def _why_not(unit: str, expected: str) -> str:
    """Why a value in ``unit`` cannot be expressed in ``expected``, and the fix."""
    if not unit or not expected:
        return "a value without a unit cannot be compared with one in a unit: send " \
               "valueQuantity.code in UCUM"
    for code in (unit, expected):
        if ucum_unit(code) not in UCUM:
            return (f"'{code}' is not in permed's table of UCUM units: correct the unit code, or "
                    "convert the values before ingest")
    dimensions = [UCUM[ucum_unit(code)][0] for code in (unit, expected)]
    why = f"'{unit}' measures {dimensions[0]}, '{expected}' {dimensions[1]}"
    if set(dimensions) == {"mass concentration", "substance concentration"}:
        return (f"{why}, and converting between them needs the analyte's molar mass: convert "
                "them before ingest, or give them the LOINC code of the molar measurement")
    return f"{why}: correct the unit code, or the Observation's code"


def _unit_text(unit: str) -> str:
    return f"'{unit}'" if unit else "no unit"


def _convert_units(obs: pd.DataFrame, table: FhirTable) -> tuple[pd.DataFrame, pd.Series]:
    """Each code's values in its most frequent unit: the others converted, or left out (and
    warned about) where they cannot be."""
    obs = obs.reset_index(drop=True)
    main_unit = obs.groupby("code")["unit"].agg(lambda u: Counter(u).most_common(1)[0][0])
    other = obs[obs["unit"].to_numpy() != main_unit.reindex(obs["code"]).to_numpy()]
    values, keep = obs["value"].to_numpy(copy=True), np.ones(len(obs), dtype=bool)
    for (code, unit), rows in other.groupby(["code", "unit"], sort=True):
        expected = str(main_unit[code])
        try:
            values[rows.index] = [convert(v, unit, expected) for v in rows["value"]]
        except UnitError:
            keep[rows.index] = False
            table.dropped_units[code] = table.dropped_units.get(code, 0) + len(rows)
            table.warn(f"{_code_label(code)}: {len(rows)} value(s) of "
                       f"{rows['patient_id'].nunique()} patient(s) in {_unit_text(unit)} cannot "
                       f"be converted to {_unit_text(expected)} (the code's most frequent "
                       f"unit), so they are left out: {_why_not(unit, expected)}")
            continue
        table.notes.append(f"{_code_label(code)}: {len(rows)} value(s) in '{unit}' converted to "
                           f"'{expected}', the code's most frequent unit")
    return obs.assign(value=values)[keep], main_unit


def _without_duplicates(obs: pd.DataFrame, table: FhirTable) -> pd.DataFrame:
    """One value where Observations repeat one another (same patient, code, time, value and
    unit: one result sent twice, under two ids or in two files), so that it is not counted
    twice in a mean or a count. Undated values are kept: nothing shows they are one."""
    same = obs.duplicated(["patient_id", "code", "when", "value", "category", "unit",
                           "comparator"])
    repeated = same.to_numpy() & obs["when"].notna().to_numpy()
    if repeated.any():
        patients = obs[repeated]["patient_id"].nunique()
        table.notes.append(
            f"{int(repeated.sum())} Observation value(s) of {patients} patient(s) repeat another "
            "exactly (same patient, code, time, value and unit) and are counted once")
    return obs[~repeated]


def _warn_comparators(obs: pd.DataFrame, table: FhirTable) -> None:
    """Values given as beyond a limit (``<0.5``, ``>600``) are kept at the limit, as permed
    serve reads them: leaving them out would drop the most abnormal results and let an older
    value stand as the latest. The warning says so, per code."""
    limited = obs[obs["comparator"] != ""]
    for code, rows in limited.groupby("code", sort=True):
        kinds = ", ".join(f"'{c}' {n}" for c, n in sorted(Counter(rows["comparator"]).items()))
        table.warn(f"{_code_label(code)}: {len(rows)} value(s) of "
                   f"{rows['patient_id'].nunique()} patient(s) are given beyond a limit ({kinds}): "
                   "each is read at its limit, as permed serve reads it, so the true value lies "
                   "beyond what the table holds; they are kept, since leaving them out would "
                   "drop the most abnormal results "
                   "and let an older value stand as the latest")


def _warn_unread(unread: Counter[tuple[str, str]], table: FhirTable) -> None:
    """Count, per kind of value and code, the Observation values that are not read."""
    if not unread:
        return
    kinds: dict[str, Counter[str]] = defaultdict(Counter)
    for (kind, code), n in unread.items():
        kinds[kind][code] += n
    parts = []
    for kind, codes in sorted(kinds.items(), key=lambda k: -k[1].total()):
        listed = ", ".join(f"{_code_label(c) if c != 'no code' else c} {n}"
                           for c, n in codes.most_common(5))
        more = f" and {len(codes) - 5} more code(s)" if len(codes) > 5 else ""
        parts.append(f"{codes.total()} {kind} ({listed}{more})")
    table.warn(f"{unread.total()} Observation value(s) are not read: {'; '.join(parts)}. Only "
               "quantities and coded results (valueCodeableConcept) become features; free text "
               "is never read, as it may name people")


def _numeric_columns(obs: pd.DataFrame, table: FhirTable) -> pd.DataFrame:
    """latest, mean, min, max and count of each code's quantities, in its main unit."""
    if obs.empty:
        return pd.DataFrame()
    obs, main_unit = _convert_units(obs, table)
    _warn_comparators(obs, table)
    names = obs.groupby("code")["name"].first()
    grouped = obs.groupby(["patient_id", "code"])["value"]
    stats = grouped.agg(["last", "mean", "min", "max", "count"]).rename(columns={"last": "latest"})
    wide = stats.unstack("code")
    columns = {}
    for stat, code in wide.columns:
        column = f"{_column_base(code, names[code])}_{stat}"
        columns[(stat, code)] = column
        if stat != "count":
            table.units[column] = str(main_unit[code])
        if stat == "latest" and "|" not in code:  # permed serve maps LOINC codes
            table.loinc[column] = str(code)
    wide.columns = [columns[c] for c in wide.columns]
    order = sorted(wide.columns, key=lambda c: (c.rsplit("_", 1)[0], _STATS.index(
        c.rsplit("_", 1)[1])))
    return wide[order]


def _coded_columns(obs: pd.DataFrame) -> pd.DataFrame:
    """Each code's latest coded result, as a category."""
    if obs.empty:
        return pd.DataFrame()
    names = obs.groupby("code")["name"].first()
    wide = obs.groupby(["patient_id", "code"])["category"].last().unstack("code")
    wide.columns = [f"{_column_base(code, names[code])}_result" for code in wide.columns]
    return wide.sort_index(axis=1)


def _observation_columns(collected: _Collected, table: FhirTable) -> pd.DataFrame:
    _warn_unread(collected.unread, table)
    if not collected.observations:
        return pd.DataFrame()
    obs = pd.DataFrame(collected.observations, columns=[
        "patient_id", "code", "name", "value", "category", "unit", "comparator", "when"])
    obs = _without_duplicates(obs.assign(unit=obs["unit"].map(ucum_unit)), table)
    obs = obs.sort_values("when", na_position="first", kind="stable")
    coded = obs["category"].notna()
    return pd.concat([_numeric_columns(obs[~coded], table), _coded_columns(obs[coded])], axis=1)


def _collect_files(root: Path, files: list[Path], collected: _Collected,
                   cutoff: AsOf | None) -> list[str]:
    """Collect the resources of every file; return the files of a folder skipped as not FHIR
    (a folder may hold other JSON, such as a bulk-export manifest; a file given alone may not)."""
    skipped = []
    for file in files:
        try:
            resources = _load(file)
        except _NotFhir:
            if not root.is_dir():
                raise
            skipped.append(str(file.relative_to(root)))
            continue
        _check(resources, file)
        _collect(resources, str(file.relative_to(root)) if root.is_dir() else file.name,
                 collected, cutoff)
    return skipped


def read_fhir(path: str | Path, as_of: str | None = None) -> FhirTable:
    """Read FHIR R4 bundles into one row per patient.

    Parameters
    ----------
    path : str or Path
        A Bundle (or NDJSON) file, or a folder searched recursively for ``.json``/``.ndjson``.
    as_of : str, optional
        Read the record as it stood on this ISO 8601 date (``YYYY-MM-DD``, the whole day) or
        date and time (``YYYY-MM-DDThh:mm:ss``, UTC unless it carries ``Z`` or an offset):
        Observations and Conditions dated after it, and undated ones, are left out (counted in
        :attr:`FhirTable.notes` and :attr:`FhirTable.warnings`), a Condition that abated after
        it counts as active, a death after it is not counted, and ages are computed on it.
        Default: everything is read, ages at each patient's latest dated resource.

    Returns
    -------
    FhirTable
        The table (``patient_id`` first), the unit of each observation column and the LOINC
        code of each ``_latest`` column.

    Raises
    ------
    DataError
        When ``as_of`` is not an ISO date, a file is not JSON or not FHIR, or no Patient
        resource is found.
    """
    cutoff = as_of_date(as_of) if as_of else None
    root = Path(path)
    files = _files(root)
    collected = _Collected()
    skipped = _collect_files(root, files, collected, cutoff)
    table = FhirTable(pd.DataFrame(), files=len(files) - len(skipped))
    if skipped:
        table.warn(f"{len(skipped)} JSON file(s) without a resourceType are not FHIR and were "
                   f"skipped (a bulk-export manifest, say): {', '.join(skipped[:5])}"
                   f"{' …' if len(skipped) > 5 else ''}")
    _patient_messages(collected, table)
    if not collected.patients:
        without = (f" ({len(collected.unreferenceable)} without an id or fullUrl)"
                   if collected.unreferenceable else "")
        raise DataError(f"no Patient resource{without} in the {len(files)} file(s) under "
                        f"'{path}': each Bundle must include its Patient, with an id")
    latest: dict[str, pd.Timestamp] = {}
    for ref, when in collected.latest.items():
        key = _patient_key(ref, collected)
        if key is not None:
            latest[key] = max(latest.get(key, when), when)
    rows = [_demographics(key, p, cutoff.day if cutoff else latest.get(key), cutoff)
            for key, p in collected.patients.items()]
    frame = pd.DataFrame(rows).set_index("patient_id")
    table.frame = frame.dropna(axis=1, how="all")
    _resolve(collected, table)
    if cutoff is not None:
        _cut_messages(collected, cutoff, table)
    if collected.ignored:
        table.notes.append(
            f"{sum(collected.ignored.values())} resource(s) that do not stand are left out ("
            + ", ".join(f"{n} {what}" for what, n in sorted(collected.ignored.items()))
            + "), as permed serve leaves them out")
    observations = _observation_columns(collected, table)
    conditions = {pid: {f"condition_{_slug(c)}_{_slug(name)}": 1 for c, name in codes}
                  for pid, codes in collected.conditions.items()}
    condition_frame = pd.DataFrame.from_dict(conditions, orient="index")
    frame = table.frame
    parts = [frame, observations.reindex(frame.index)]
    if not condition_frame.empty:
        parts.append(condition_frame.reindex(frame.index).fillna(0).astype(int)
                     .sort_index(axis=1))
    table.frame = pd.concat(parts, axis=1).reset_index()
    return table
