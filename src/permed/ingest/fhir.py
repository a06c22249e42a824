"""FHIR R4 bundles to one row per patient: demographics, LOINC observations, active conditions.

Each Bundle (``batch``, ``transaction``, ``collection`` or ``searchset``; one file may also hold
a single resource or an NDJSON export) is read resource by resource; resources are tied to their
patient by ``subject``/``patient`` references (``Patient/ID`` or ``urn:uuid:ID``).

Per patient:

- ``patient_id``, ``gender``, ``age_years`` (completed years at ``as_of``, or at the patient's
  latest dated resource, or at death: what ``permed serve`` computes from a live Bundle, see
  :func:`age_on`), ``deceased``, ``marital_status``, and the US Core ``race`` and
  ``ethnicity`` where present. Names, addresses, telecom and identifiers are never read: they
  are protected health information and no model needs them.
- Each LOINC-coded Observation with a quantity, including the components of panels such as
  blood pressure (85354-9 -> 8480-6 systolic, 8462-4 diastolic): ``<name>_<code>_latest``,
  ``_mean``, ``_min``, ``_max`` and ``_count``. Each code keeps its most frequent UCUM unit;
  values in another unit are left out and counted in :attr:`FhirTable.dropped_units`.
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

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from permed.exceptions import DataError

if TYPE_CHECKING:
    from permed.study import Study

__all__ = ["FhirTable", "read_fhir"]

LOINC = "http://loinc.org"
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
        Per LOINC code, values left out because their unit differs from the code's main unit.
    files : int
        Files read.
    """

    frame: pd.DataFrame
    units: dict[str, str] = field(default_factory=dict)
    loinc: dict[str, str] = field(default_factory=dict)
    dropped_units: dict[str, int] = field(default_factory=dict)
    files: int = 0

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


def _load(path: Path) -> list[dict[str, Any]]:
    """Every resource in one file (a Bundle, a single resource or NDJSON lines)."""
    text = path.read_text(encoding="utf-8")
    try:
        documents = ([json.loads(line) for line in text.splitlines() if line.strip()]
                     if path.suffix == ".ndjson" else [json.loads(text)])
    except json.JSONDecodeError as exc:
        raise DataError(f"'{path}' is not valid JSON ({exc.msg} at line {exc.lineno}): "
                        "fix or remove the file") from None
    resources: list[dict[str, Any]] = []
    for document in documents:
        if not isinstance(document, dict) or "resourceType" not in document:
            raise DataError(f"'{path}' holds JSON without a resourceType: it is not FHIR")
        if document["resourceType"] == "Bundle":
            resources += [e["resource"] for e in document.get("entry", [])
                          if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
        else:
            resources.append(document)
    return resources


def _subject(resource: dict[str, Any]) -> str | None:
    for key in ("subject", "patient"):
        reference = (resource.get(key) or {}).get("reference")
        if isinstance(reference, str):
            return reference.rsplit("/", 1)[-1].removeprefix("urn:uuid:")
    return None


def age_on(birth: Any, on: Any) -> int | None:
    """Age in completed years on a date (the clinical convention); None without a birth date.

    Examples
    --------
    >>> age_on("2009-04-29", "2020-04-28"), age_on("2009-04-29", "2020-04-29")
    (10, 11)
    """
    born, then = pd.to_datetime(birth, utc=True, errors="coerce"), pd.to_datetime(on, utc=True)
    if pd.isna(born) or pd.isna(then):
        return None
    return int(then.year - born.year - ((then.month, then.day) < (born.month, born.day)))


def latest_date(resources: list[dict[str, Any]]) -> pd.Timestamp | None:
    """The latest date among resources (the patient's record), None when none is dated."""
    dates = [d for d in map(resource_date, resources) if d is not None and not pd.isna(d)]
    return max(dates) if dates else None


def resource_date(resource: dict[str, Any]) -> pd.Timestamp | None:
    for key in ("effectiveDateTime", "issued", "onsetDateTime", "recordedDate"):
        if resource.get(key):
            return pd.to_datetime(resource[key], utc=True, errors="coerce")
    period = resource.get("effectivePeriod") or resource.get("period") or {}
    start = period.get("start") or period.get("end")
    return pd.to_datetime(start, utc=True, errors="coerce") if start else None


def _coding(concept: dict[str, Any] | None, system: str | None = None
            ) -> tuple[str, str] | None:
    for coding in (concept or {}).get("coding", []):
        if (system is None or coding.get("system") == system) and coding.get("code"):
            return str(coding["code"]), str(coding.get("display") or (concept or {}).get(
                "text") or coding["code"])
    return None


def _quantities(resource: dict[str, Any]) -> list[tuple[str, str, float, str]]:
    """(code, display, value, unit) of an Observation and of each of its components."""
    found = []
    for part in [resource, *resource.get("component", [])]:
        code = _coding(part.get("code"), LOINC)
        quantity = part.get("valueQuantity")
        if code and isinstance(quantity, dict) and isinstance(quantity.get("value"), int | float):
            unit = str(quantity.get("code") or quantity.get("unit") or "")
            found.append((code[0], code[1], float(quantity["value"]), unit))
    return found


def _extension_text(patient: dict[str, Any], kind: str) -> str | None:
    for extension in patient.get("extension", []):
        if extension.get("url") == f"{_US_CORE}{kind}":
            for inner in extension.get("extension", []):
                if inner.get("url") == "text" and inner.get("valueString"):
                    return str(inner["valueString"])
    return None


def _demographics(patient: dict[str, Any], as_of: pd.Timestamp | None) -> dict[str, Any]:
    born = pd.to_datetime(patient.get("birthDate"), utc=True, errors="coerce")
    died = pd.to_datetime(patient.get("deceasedDateTime"), utc=True, errors="coerce")
    deceased = bool(patient.get("deceasedBoolean")) or not pd.isna(died)
    end = died if not pd.isna(died) else as_of
    age = age_on(born, end) if end is not None else None
    marital = _coding(patient.get("maritalStatus"))
    return {"patient_id": str(patient.get("id")), "gender": patient.get("gender"),
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


@dataclass
class _Collected:
    patients: dict[str, dict[str, Any]] = field(default_factory=dict)
    observations: list[tuple[str, str, str, float, str, pd.Timestamp | None]] = field(
        default_factory=list)
    conditions: dict[str, set[tuple[str, str]]] = field(default_factory=lambda: defaultdict(set))
    latest: dict[str, pd.Timestamp] = field(default_factory=dict)


def _collect(resources: list[dict[str, Any]], into: _Collected) -> None:
    for resource in resources:
        kind, who = resource.get("resourceType"), _subject(resource)
        if kind == "Patient":
            into.patients[str(resource.get("id"))] = resource
            continue
        if who is None:
            continue
        when = resource_date(resource)
        if when is not None and not pd.isna(when):
            into.latest[who] = max(into.latest.get(who, when), when)
        if kind == "Observation":
            into.observations += [(who, code, name, value, unit, when)
                                  for code, name, value, unit in _quantities(resource)]
        elif kind == "Condition" and _active(resource):
            code = _coding(resource.get("code"))
            if code:
                into.conditions[who].add(code)


def _observation_columns(collected: _Collected, table: FhirTable) -> pd.DataFrame:
    if not collected.observations:
        return pd.DataFrame()
    obs = pd.DataFrame(collected.observations,
                       columns=["patient_id", "code", "name", "value", "unit", "when"])
    main_unit = obs.groupby("code")["unit"].agg(lambda u: Counter(u).most_common(1)[0][0])
    keep = obs["unit"].to_numpy() == main_unit.reindex(obs["code"]).to_numpy()
    table.dropped_units = {str(k): int(v) for k, v in obs[~keep]["code"].value_counts().items()}
    obs = obs[keep].sort_values("when", na_position="first", kind="stable")
    names = obs.groupby("code")["name"].first()
    grouped = obs.groupby(["patient_id", "code"])["value"]
    stats = grouped.agg(["last", "mean", "min", "max", "count"]).rename(columns={"last": "latest"})
    wide = stats.unstack("code")
    columns = {}
    for stat, code in wide.columns:
        column = f"{_slug(names[code])}_{_slug(code)}_{stat}"
        columns[(stat, code)] = column
        if stat != "count":
            table.units[column] = str(main_unit[code])
        if stat == "latest":
            table.loinc[column] = str(code)
    wide.columns = [columns[c] for c in wide.columns]
    order = sorted(wide.columns, key=lambda c: (c.rsplit("_", 1)[0], _STATS.index(
        c.rsplit("_", 1)[1])))
    return wide[order]


def read_fhir(path: str | Path, as_of: str | None = None) -> FhirTable:
    """Read FHIR R4 bundles into one row per patient.

    Parameters
    ----------
    path : str or Path
        A Bundle (or NDJSON) file, or a folder searched recursively for ``.json``/``.ndjson``.
    as_of : str, optional
        ISO date at which ages are computed (default: each patient's latest dated resource).

    Returns
    -------
    FhirTable
        The table (``patient_id`` first), the unit of each observation column and the LOINC
        code of each ``_latest`` column.

    Raises
    ------
    DataError
        When a file is not JSON or not FHIR, or no Patient resource is found.
    """
    files = _files(Path(path))
    collected = _Collected()
    for file in files:
        _collect(_load(file), collected)
    if not collected.patients:
        raise DataError(f"no Patient resource in the {len(files)} file(s) under '{path}': each "
                        "Bundle must include its Patient")
    fixed = pd.to_datetime(as_of, utc=True) if as_of else None
    rows = [_demographics(p, fixed if fixed is not None else collected.latest.get(pid))
            for pid, p in collected.patients.items()]
    frame = pd.DataFrame(rows).set_index("patient_id")
    frame = frame.dropna(axis=1, how="all")
    table = FhirTable(frame, files=len(files))
    observations = _observation_columns(collected, table)
    conditions = {pid: {f"condition_{_slug(c)}_{_slug(name)}": 1 for c, name in codes}
                  for pid, codes in collected.conditions.items()}
    condition_frame = pd.DataFrame.from_dict(conditions, orient="index")
    parts = [frame, observations.reindex(frame.index)]
    if not condition_frame.empty:
        parts.append(condition_frame.reindex(frame.index).fillna(0).astype(int)
                     .sort_index(axis=1))
    table.frame = pd.concat(parts, axis=1).reset_index()
    return table
