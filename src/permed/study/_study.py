"""The study: what each column of a patient table is.

A study is read from a TOML file (``permed init`` writes one) or built from command-line flags.
Everything downstream reads roles from it; nothing guesses a column by position.
"""

from __future__ import annotations

import numbers
import tomllib
from dataclasses import asdict, dataclass, field, fields
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from permed.exceptions import StudyError

__all__ = ["TASKS", "ColumnSpec", "Study"]

TASKS = ("diagnose", "risk", "treat")
KINDS = ("numeric", "categorical")
MONOTONE = ("increase", "decrease")
_LIST_ROLES = ("sensitive", "identifiers", "actionable", "drop", "quasi_identifiers", "genes",
               "notes")
_SCALAR_ROLES = ("id", "target", "time", "event", "treatment", "outcome", "propensity",
                 "true_effect", "images", "events")
ON_BAD_FILE = ("fail", "skip")


@dataclass
class ColumnSpec:
    """What permed knows about one column beyond its role."""

    kind: str | None = None
    unit: str | None = None
    valid_range: tuple[float, float] | None = None
    # the only direction a counterfactual may move this (actionable) column
    monotone: str | None = None

    def __post_init__(self) -> None:
        if self.kind is not None and self.kind not in KINDS:
            raise StudyError(
                f"column kind '{self.kind}' is not known; expected one of {', '.join(KINDS)}"
            )
        if self.monotone is not None and self.monotone not in MONOTONE:
            raise StudyError(
                f"monotone = '{self.monotone}' is not known; expected one of "
                f"{', '.join(MONOTONE)} (the only direction a counterfactual may change the "
                "column)"
            )
        if self.valid_range is not None:
            pair = list(self.valid_range) if isinstance(self.valid_range, list | tuple) else []
            if len(pair) != 2 or not all(_is_number(v) for v in pair):
                raise StudyError(f"valid_range = {self.valid_range!r} must be two numbers, "
                                 "[low, high], e.g. valid_range = [0, 120]")
            low, high = (float(v) for v in pair)
            if low > high:
                raise StudyError(
                    f"valid_range [{low}, {high}] has its low end above its high end: swap them"
                )
            self.valid_range = (low, high)


@dataclass
class Study:
    """Column roles for one cohort.

    Parameters
    ----------
    task : {"diagnose", "risk", "treat"} or None
    id : str, optional
        Patient identifier column: never a feature; checked for duplicates.
    target : str, optional
        The diagnosis column (diagnose).
    time, event : str, optional
        Follow-up time and event indicator (risk).
    treatment, outcome : str, optional
        Treatment arm and outcome (treat).
    propensity : str, optional
        Known probability of the treatment received (treat; e.g. a randomized design).
    true_effect : str, optional
        True individual effect, in simulated data only (treat; enables PEHE).
    sensitive : list of str
        Audited for fairness; not a feature unless ``use_sensitive`` is true.
    identifiers : list of str
        Protected health information: never a feature.
    actionable : list of str
        Features a counterfactual may change.
    drop : list of str
        Columns left out of the analysis.
    columns : dict of str to ColumnSpec
        Per-column kind, unit, valid range and, for actionable columns, the monotone direction
        (``"increase"`` or ``"decrease"``) a counterfactual may move them in.
    use_sensitive : bool
        Use the sensitive columns as features too.
    quasi_identifiers : list of str
        Columns that could re-identify a patient in combination (age, sex, ZIP...): the
        re-identification risk of ``permed deidentify`` is measured over them.
    deidentify : dict of str to str
        ``[deidentify]``: the de-identification action of each column (``drop``,
        ``pseudonymize``, ``shift_date``, ``year``, ``birth_year``, ``age``, ``zip3``,
        ``scrub``, ``keep``); see :mod:`permed.privacy`.
    genes : list of str
        Gene-expression columns, as names or glob patterns (``"gene_*"``) matched against the
        table's columns: log-transformed and variance-filtered inside each fold.
    notes : list of str
        Free-text clinical note columns, encoded by ``text_encoder`` after PHI scrubbing.
    text_encoder : str
        ``"tfidf"`` (default: as accurate as MiniLM on Symptom2Disease and ~15x faster on a
        CPU, see benchmarks/multimodal.py), ``"minilm"`` (the packaged all-MiniLM-L6-v2
        sentence encoder), ``"auto"`` (MiniLM when installed) or a local sentence-transformers
        model folder.
    images : str, optional
        Column of image file paths (DICOM, NIfTI, PNG/JPEG, .npy/.npz; relative to the table's
        folder): the input of the image model (``--models cnn``), never a tabular feature.
    events : str, optional
        Column of time-ordered EHR event tokens separated by spaces (``ADM:EMERGENCY
        DX:4019 RX:Heparin``, as ``permed ingest mimic --events`` writes): read by the sequence
        model (``--models gru``), never a tabular feature.
    on_bad_file : {"fail", "skip"}
        What an unreadable image does: stop training with an error naming the file, or leave
        the patient out (a warning lists the files).
    missing : list of str
        ``[study] missing``: the extract's own markers of a missing value (``["n/a", "-",
        "unknown"]``), read as missing beside ``""``, ``NA``, ``N/A`` and ``?``, in training and
        in every table scored with the model.
    fhir : dict of str to str or dict
        ``[fhir]``: where ``permed serve`` reads each feature in a FHIR R4 Bundle: a path
        (``"Patient.birthDate"`` gives the age in years, ``"Patient.gender"`` the gender,
        optionally recoded with ``{path = "Patient.gender", map = {male = "M"}}``) or an
        Observation (``{loinc = "2093-3", unit = "mg/dL"}``: its latest value, converted to
        the unit). See docs/serve.md.
    """

    task: str | None = None
    id: str | None = None
    target: str | None = None
    time: str | None = None
    event: str | None = None
    treatment: str | None = None
    outcome: str | None = None
    propensity: str | None = None
    true_effect: str | None = None
    sensitive: list[str] = field(default_factory=list)
    identifiers: list[str] = field(default_factory=list)
    actionable: list[str] = field(default_factory=list)
    drop: list[str] = field(default_factory=list)
    columns: dict[str, ColumnSpec] = field(default_factory=dict)
    use_sensitive: bool = False
    quasi_identifiers: list[str] = field(default_factory=list)
    deidentify: dict[str, str] = field(default_factory=dict)
    fhir: dict[str, Any] = field(default_factory=dict)
    genes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    text_encoder: str = "tfidf"
    images: str | None = None
    events: str | None = None
    on_bad_file: str = "fail"
    missing: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.task is not None and self.task not in TASKS:
            raise StudyError(f"task '{self.task}' is not known; expected one of {', '.join(TASKS)}")
        if self.on_bad_file not in ON_BAD_FILE:
            raise StudyError(f"on_bad_file '{self.on_bad_file}' is not known; expected fail (stop "
                             "at an unreadable image) or skip (leave it out)")
        if not isinstance(self.missing, list) or not all(
                isinstance(m, str) and m.strip() for m in self.missing):
            raise StudyError(f"[study] missing = {self.missing!r} must be a list of the texts "
                             'that mark a missing value, e.g. ["n/a", "-", "unknown"]')

    # ---- roles -----------------------------------------------------------------------------
    def outcome_columns(self) -> list[str]:
        """Columns that hold what is predicted: never features."""
        roles = (self.target, self.time, self.event, self.treatment, self.outcome,
                 self.propensity, self.true_effect)
        return [c for c in roles if c]

    def role_columns(self) -> dict[str, list[str]]:
        """Every column the study names, by role (for checking that they exist)."""
        named: dict[str, list[str]] = {r: [getattr(self, r)] for r in _SCALAR_ROLES
                                       if getattr(self, r)}
        named.update({r: list(getattr(self, r)) for r in _LIST_ROLES
                      if getattr(self, r) and r != "genes"})  # genes are patterns: see below
        if self.columns:
            named["columns"] = list(self.columns)
        return named

    def feature_columns(self, available: list[str]) -> list[str]:
        """The columns a model may learn from, in table order."""
        excluded = set(self.outcome_columns()) | set(self.identifiers) | set(self.drop)
        if self.id:
            excluded.add(self.id)
        if self.images:  # image paths: read by the image model, never a tabular feature
            excluded.add(self.images)
        if self.events:  # event tokens: read by the sequence model, never a tabular feature
            excluded.add(self.events)
        if not self.use_sensitive:
            excluded |= set(self.sensitive)
        return [c for c in available if c not in excluded]

    def gene_columns(self, available: list[str]) -> list[str]:
        """The columns the ``genes`` patterns match, in table order."""
        return [c for c in available if any(fnmatchcase(str(c), p) for p in self.genes)]

    def with_overrides(self, **overrides: Any) -> Study:
        """A copy where every non-empty override replaces (scalars) or extends (lists) a role."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for key, value in overrides.items():
            if value is None or value == [] or key not in values:
                continue
            if key in _LIST_ROLES:
                values[key] = list(dict.fromkeys([*values[key], *value]))
            else:
                values[key] = value
        return Study(**values)

    # ---- TOML ------------------------------------------------------------------------------
    @classmethod
    def from_toml(cls, path: str | Path) -> Study:
        """Read a study file (see :meth:`to_toml` for the format)."""
        path = Path(path)
        if not path.is_file():
            raise StudyError(f"study file '{path}' does not exist: create one with permed init")
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise StudyError(f"study file '{path}' is not valid TOML: {exc}") from None
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "study") -> Study:
        """Build a study from the parsed TOML structure."""
        unknown = set(raw) - {"study", "roles", "columns", "deidentify", "fhir"}
        if unknown:
            raise StudyError(
                f"{source}: unknown section(s) {sorted(unknown)}; expected [study], [roles], "
                f"[columns.NAME], [deidentify], [fhir]{_misplaced(unknown, 'the top level')}"
            )
        settings = _study_section(raw.get("study", {}), source)
        roles = dict(raw.get("roles", {}))
        allowed = set(_SCALAR_ROLES) | set(_LIST_ROLES) | {"use_sensitive", "on_bad_file"}
        bad = sorted(set(roles) - allowed)
        if bad:
            raise StudyError(f"{source}: unknown role(s) {bad}; expected {sorted(allowed)}"
                             f"{_misplaced(set(bad), '[roles]')}")
        for role in _LIST_ROLES:
            if isinstance(roles.get(role), str):
                roles[role] = [roles[role]]
        _check_role_types(roles, source)
        columns = {}
        for name, spec in raw.get("columns", {}).items():
            if not isinstance(spec, dict):
                raise StudyError(f"{source}: columns.{name} = {spec!r} must be a table: write "
                                 f"[columns.{_toml_key(name)}] on its own line, then kind = ...")
            extra = sorted(set(spec) - {"kind", "unit", "valid_range", "monotone"})
            if extra:
                raise StudyError(
                    f"{source}: [columns.{name}] has unknown key(s) {extra}; expected kind, "
                    "unit, valid_range, monotone"
                )
            columns[name] = ColumnSpec(**spec)
        deidentify = {str(k): str(v) for k, v in raw.get("deidentify", {}).items()}
        fhir = {str(k): _fhir_source(k, v, source) for k, v in raw.get("fhir", {}).items()}
        return cls(columns=columns, deidentify=deidentify, fhir=fhir, **settings, **roles)

    def to_dict(self) -> dict[str, Any]:
        """The study as plain data (for manifests)."""
        data = asdict(self)
        data["columns"] = {k: {kk: vv for kk, vv in asdict(v).items() if vv is not None}
                           for k, v in self.columns.items()}
        return data

    def to_toml(self) -> str:
        """The study as TOML text."""
        lines = ["# permed study: what each column is. See docs/study.md.", "[study]"]
        lines.append(f"task = {_toml(self.task)}" if self.task else '# task = "diagnose"')
        if self.text_encoder != "tfidf":
            lines.append(f"text_encoder = {_toml(self.text_encoder)}")
        if self.missing:
            lines.append(f"missing = {_toml(self.missing)}")
        lines += ["", "[roles]"]
        for role in (*_SCALAR_ROLES, *_LIST_ROLES):
            value = getattr(self, role)
            lines.append(f"{role} = {_toml(value)}" if value else f"# {role} = ")
        if self.use_sensitive:
            lines.append("use_sensitive = true")
        if self.on_bad_file != "fail":
            lines.append(f"on_bad_file = {_toml(self.on_bad_file)}")
        for name, spec in self.columns.items():
            lines += ["", f"[columns.{_toml_key(name)}]", *_spec_lines(spec)]
        if self.deidentify:
            lines += ["", "[deidentify]"]
            lines += [f"{_toml_key(k)} = {_toml(v)}" for k, v in self.deidentify.items()]
        if self.fhir:
            lines += ["", "[fhir]"]
            lines += [f"{_toml_key(k)} = {_toml(v)}" for k, v in self.fhir.items()]
        return "\n".join(lines) + "\n"


FHIR_PATHS = ("Patient.birthDate", "Patient.gender")


def _spec_lines(spec: ColumnSpec) -> list[str]:
    lines = [f"{key} = {_toml(value)}" for key, value in asdict(spec).items() if value is not None]
    if spec.kind is None:  # permed init leaves out a kind it would guess wrong
        lines.insert(0, '# kind = "numeric" or "categorical": not set; permed validate says '
                        "what the values look like")
    return lines


def _check_role_types(roles: dict[str, Any], source: str) -> None:
    """A column role names one column, a list role a list of them, use_sensitive is a switch."""
    for role, value in roles.items():
        if role in _SCALAR_ROLES or role == "on_bad_file":
            ok, expected = isinstance(value, str), 'one column name in quotes, e.g. "age"'
        elif role in _LIST_ROLES:
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
            expected = 'a list of column names, e.g. ["age", "sex"]'
        else:  # use_sensitive
            ok, expected = isinstance(value, bool), "true or false"
        if not ok:
            raise StudyError(f"{source}: [roles] {role} = {_toml(value)} must be {expected}")


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _fhir_source(name: str, value: Any, source: str) -> str | dict[str, Any]:
    """Check one ``[fhir]`` entry: a Patient path, or an Observation's LOINC code and unit."""
    where = f"{source}: [fhir] {name}"
    entry = {"path": value} if isinstance(value, str) else value
    if not isinstance(entry, dict) or ("path" in entry) == ("loinc" in entry):
        raise StudyError(f"{where} must be a path such as \"Patient.birthDate\" or "
                         "{loinc = \"2093-3\", unit = \"mg/dL\"}")
    allowed = {"path", "map"} if "path" in entry else {"loinc", "unit", "map"}
    extra = sorted(set(entry) - allowed)
    if extra:
        raise StudyError(f"{where} has unknown key(s) {extra}; expected {sorted(allowed)}")
    if "path" in entry and entry["path"] not in FHIR_PATHS:
        raise StudyError(f"{where}: path '{entry['path']}' is not supported; expected "
                         f"{', '.join(FHIR_PATHS)}, or an Observation: {{loinc = ..., unit = ...}}")
    if "loinc" in entry and not isinstance(entry.get("unit"), str):
        raise StudyError(f"{where} needs the UCUM unit the model expects, e.g. "
                         f"{{loinc = \"{entry['loinc']}\", unit = \"mg/dL\"}}")
    if not isinstance(entry.get("map", {}), dict):
        raise StudyError(f"{where}: map must be a table such as {{male = \"M\", female = \"F\"}}")
    return value if isinstance(value, str) else dict(entry)


def _misplaced(keys: set[str], where: str) -> str:
    """The fix for [study] settings written elsewhere (``task = "diagnose"`` at the top of the
    file, before any section, or under [roles])."""
    found = sorted(keys & {"task", "text_encoder", "missing"})
    if not found:
        return ""
    named = " and ".join(found)
    return (f": {named} {'is a setting' if len(found) == 1 else 'are settings'} of [study], "
            f"not of {where}: put {named} under [study]")


def _study_section(section: dict[str, Any], source: str) -> dict[str, Any]:
    """The ``[study]`` table's settings, as keyword arguments of :class:`Study`."""
    extra = sorted(set(section) - {"task", "text_encoder", "missing"})
    if extra:
        raise StudyError(f"{source}: [study] has unknown key(s) {extra}; expected task, "
                         "text_encoder, missing (the column roles go under [roles])")
    settings: dict[str, Any] = {"task": section.get("task")}
    if "text_encoder" in section:
        settings["text_encoder"] = str(section["text_encoder"])
    if "missing" in section:
        markers = section["missing"]
        settings["missing"] = [markers] if isinstance(markers, str) else markers
    return settings


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def _toml_key(name: str) -> str:
    # a bare TOML key is ASCII letters, digits, '_' and '-' only ('région' must be quoted)
    bare = name.isascii() and name.replace("_", "").replace("-", "").isalnum()
    return name if bare else _toml(name)
