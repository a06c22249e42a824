"""Data-quality checks of a table against a study, before any model sees it.

Every finding names the column, what was expected, what was found and the fix. Errors stop
``permed train``; warnings are printed and the run goes on.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from permed.exceptions import DataError
from permed.study._columns import (
    as_category,
    counter_restarts,
    date_format,
    duplicated_text,
    first_date,
    infer_kind,
    is_row_number,
    is_zip_code,
    looks_like_dates,
    looks_like_identifier,
    non_numeric_values,
    one_value,
    rows_text,
    share_text,
    spelled_twice,
    text_among_numbers,
    to_numeric,
)
from permed.study._leakage import near_separation
from permed.study._study import Study
from permed.study._validate_events import check_events
from permed.study._validate_images import check_images
from permed.study._validate_modalities import check_modalities
from permed.study._validate_risk import check_risk
from permed.study._validate_treat import check_treat
from permed.study._validate_values import (
    check_disguised_numbers,
    check_serial_dates,
    check_spellings,
)

__all__ = ["Finding", "ValidationReport", "check_columns_exist", "validate"]

MAX_CLASSES = 50
IMBALANCE_RATIO = 0.1
# A feature missing for more than this share of patients is warned about (imputed for most).
MOSTLY_MISSING = 0.5
# A column list in a message stops after this many names.
SHOWN_COLUMNS = 12
# How alike (difflib's ratio) a name and a column must be to be suggested: the whole names,
# or the name and one word of the column's name (stricter: 'age' is not 'stage_at_dx').
_CLOSE_NAME, _CLOSE_WORD = 0.6, 0.8


@dataclass(frozen=True)
class Finding:
    """One problem with the data: ``level`` is ``"error"``, ``"warning"`` or ``"note"`` (a
    reminder that may not apply, e.g. one an option given to train answers)."""

    level: str
    message: str
    column: str | None = None


@dataclass
class ValidationReport:
    """All findings, and the kind (numeric/categorical) of each feature."""

    findings: list[Finding] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    def error(self, message: str, column: str | None = None) -> None:
        self.findings.append(Finding("error", message, column))

    def warn(self, message: str, column: str | None = None) -> None:
        self.findings.append(Finding("warning", message, column))

    def raise_errors(self) -> None:
        """Raise one :class:`DataError` listing every error, if there is any."""
        if self.errors:
            messages = [f.message for f in self.errors]
            head = messages[0] if len(messages) == 1 else (
                f"{len(messages)} problems in the data:\n- " + "\n- ".join(messages))
            raise DataError(head, messages)


def suggest(name: str, columns: list[str]) -> str:
    """A ``did you mean`` hint for a column name that is not in the table, else the table's
    columns (the first ``SHOWN_COLUMNS`` of a wide one).

    Close means close once letter case and ``_``, ``-``, ``.`` and spaces are set aside
    (``event status`` and ``Event_Status``), or close to one word of a column's name
    (``event`` or ``evnt`` and ``Event_Status``, ``time`` and ``time_days``).
    """
    columns = [str(c) for c in columns]
    lowered = {c.lower(): c for c in columns}
    if name.lower() in lowered:
        return f"did you mean '{lowered[name.lower()]}'? (names are case-sensitive)"
    close = close_columns(name, columns)
    if close:
        return "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
    shown = ", ".join(f"'{c}'" for c in columns[:SHOWN_COLUMNS])
    if len(columns) > SHOWN_COLUMNS:
        return (f"the table's {len(columns)} columns are {shown} and "
                f"{len(columns) - SHOWN_COLUMNS} more")
    return f"the table's columns are {shown}"


def close_columns(name: str, columns: list[str], limit: int = 3) -> list[str]:
    """The columns most like ``name`` (see :func:`suggest`), closest first."""
    key = _name_key(name)
    if not key:
        return []
    scores: dict[str, float] = {}
    for column in columns:
        whole = difflib.SequenceMatcher(None, key, _name_key(column)).ratio()
        word = max((difflib.SequenceMatcher(None, key, w).ratio() for w in _name_words(column)),
                   default=0.0)
        score = max(whole if whole >= _CLOSE_NAME else 0.0, word if word >= _CLOSE_WORD else 0.0)
        if score:
            scores[column] = score
    return sorted(scores, key=lambda c: -scores[c])[:limit]


def _name_key(name: str) -> str:
    return re.sub(r"[\s_.-]+", "", name).casefold()


def _name_words(name: str) -> list[str]:
    """The words of a column's name: split at ``_ - .``, spaces and ``camelCase`` humps."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return [w.casefold() for w in re.split(r"[\s_.-]+", spaced) if w]


def check_columns_exist(frame: pd.DataFrame, study: Study) -> None:
    """Raise a :class:`DataError` when the study names a column the table lacks."""
    report = ValidationReport()
    _check_roles(frame, study, report)
    report.raise_errors()


def _check_roles(frame: pd.DataFrame, study: Study, report: ValidationReport) -> None:
    columns = list(frame.columns)
    for role, names in study.role_columns().items():
        for name in names:
            # an identifier column that is absent was removed by de-identification: good
            if name not in frame.columns and role != "identifiers":
                flag = "--" + role if role not in ("columns",) else "the study's [columns]"
                report.error(
                    f"{role} column '{name}' (from {flag}) is not in the data: "
                    f"{suggest(name, columns)}",
                    name,
                )


def validate(frame: pd.DataFrame, study: Study, min_class_size: int = 2) -> ValidationReport:
    """Check a table against a study for the study's task.

    Parameters
    ----------
    frame : pandas.DataFrame
        The patient table, as read.
    study : Study
        Roles, kinds and valid ranges.
    min_class_size : int
        Fewest patients a diagnosis class needs (the number of CV folds).

    Returns
    -------
    ValidationReport
        Errors, warnings and the feature kinds. Call ``raise_errors()`` to stop on errors.
    """
    report = ValidationReport()
    _check_roles(frame, study, report)
    if report.errors:
        return report
    if study.task == "diagnose":
        _check_target(frame, study, report, min_class_size)
    if study.task == "treat":
        check_treat(frame, study, report)
    if study.task == "risk":
        check_risk(frame, study, report)
    _check_ids(frame, study, report)
    if study.images:  # an image study: the network reads the images, not the other columns
        check_images(frame, study, report)
        return report
    check_modalities(frame, study, report)  # genes and notes: kinds "gene" and "text"
    check_events(frame, study, report)  # EHR event sequences: kind "events"
    _check_features(frame, study, report)
    _check_ranges(frame, study, report)
    _check_copies(frame, study, report)
    if study.task == "diagnose" and not report.errors:
        _check_leakage(frame, study, report)
    return report


def _check_features(frame: pd.DataFrame, study: Study, report: ValidationReport) -> None:
    for column in study.feature_columns(list(frame.columns)):
        if column in report.kinds:
            continue
        kind = _check_feature(frame, column, study, report)
        if kind:
            report.kinds[column] = kind
            _check_mostly_missing(frame[column], column, kind, report)
            if kind == "numeric":  # even declared: permed init declares every number numeric
                check_serial_dates(frame[column], column, report)
    for column in study.sensitive:  # audited for fairness: one group per way of writing it
        if column in frame.columns and column not in report.kinds:
            check_spellings(frame[column], column, f"sensitive column '{column}'", report)


def _check_mostly_missing(series: pd.Series, column: str, kind: str,
                          report: ValidationReport) -> None:
    """Warn of a feature missing for more than :data:`MOSTLY_MISSING` of the patients: the
    model sees a filled-in value for most of them, and learns who was tested."""
    n, k = len(series), int(series.isna().sum())
    if not n or k / n <= MOSTLY_MISSING:
        return
    filled = ("the median of the recorded values, beside a was-missing indicator"
              if kind == "numeric" else "the most frequent category")
    report.warn(
        f"column '{column}' is missing for {k} of {n} patients ({share_text(k / n)}): each "
        f"gap is imputed with {filled} of the {n - k} patients who have it, so for most "
        f"patients the model sees a filled-in value and learns whether '{column}' was "
        "recorded (who was tested) more than what it measures; drop it with --drop "
        f"'{column}' if it is rarely recorded, or check the extract if most patients should have "
        "it", column)


def _check_copies(frame: pd.DataFrame, study: Study, report: ValidationReport) -> None:
    """Warn of rows that repeat another row in every feature and outcome (without an id, a
    patient recorded twice cannot be told from two patients alike; with one, duplicated ids
    are refused by the id check)."""
    columns = [*report.kinds, *study.outcome_columns()]
    if study.id or not columns:
        return
    copies = frame[columns].duplicated(keep=False).to_numpy()
    if copies.any():
        report.warn(
            f"{int(copies.sum())} rows repeat another row in every feature and the outcome "
            f"(rows {rows_text(np.flatnonzero(copies))}): if they are a patient recorded twice, "
            "copies can fall on both sides of the test split and flatter the test figures; "
            "drop the repeats, or declare --id so that duplicated patients are refused")


def _check_target(
    frame: pd.DataFrame, study: Study, report: ValidationReport, min_class_size: int
) -> None:
    if not study.target:
        report.error("the diagnose task needs a target column: add --target COL "
                     "(or target = \"COL\" under [roles] in the study)")
        return
    target = frame[study.target]
    missing = int(target.isna().sum())
    if missing == len(target):
        report.error(f"target column '{study.target}' is entirely missing: choose another --target",
                     study.target)
        return
    if missing:
        report.warn(f"target column '{study.target}' is missing for {missing} of {len(target)} "
                    "patients: they are left out of training and evaluation", study.target)
    counts = as_category(target).dropna().value_counts()
    twice = spelled_twice(counts)
    if twice:
        report.error(f"target column '{study.target}' has classes that differ only in letter "
                     f"case or spaces: {twice}; write each class one way", study.target)
        return
    if len(counts) < 2:
        report.error(
            f"target column '{study.target}' has one class only ('{counts.index[0]}' for all "
            f"{int(counts.iloc[0])} patients): a diagnosis needs at least two classes; check the "
            "column or the data extract", study.target)
        return
    if len(counts) > MAX_CLASSES:
        report.error(
            f"target column '{study.target}' has {len(counts)} distinct values (at most "
            f"{MAX_CLASSES} classes are allowed for diagnose): it looks continuous; bin it into "
            "classes, or use --task risk for a time to event", study.target)
        return
    rare = counts[counts < min_class_size]
    if len(rare):
        shown = ", ".join(f"'{k}' ({v})" for k, v in rare.items())
        report.error(
            f"target column '{study.target}' has classes with fewer than {min_class_size} "
            f"patients: {shown}; stratified cross-validation needs at least {min_class_size} per "
            "class: merge rare classes, drop those rows, or lower --cv", study.target)
        return
    ratio = counts.iloc[-1] / counts.iloc[0]
    if ratio < IMBALANCE_RATIO:
        minority = counts.index[-1]
        report.warn(
            f"severe class imbalance in '{study.target}': '{minority}' is "
            f"{counts.iloc[-1] / counts.sum():.1%} of patients ({int(counts.iloc[-1])} of "
            f"{int(counts.sum())}), ratio 1:{1 / ratio:.0f} to '{counts.index[0]}'; read AUPRC, "
            "sensitivity and calibration rather than accuracy", study.target)


def _check_ids(frame: pd.DataFrame, study: Study, report: ValidationReport) -> None:
    if not study.id:
        return
    ids = frame[study.id]
    missing = int(ids.isna().sum())
    if missing:
        report.error(f"id column '{study.id}' is missing for {missing} patients in rows "
                     f"{rows_text(np.flatnonzero(ids.isna()))}: every patient needs an id",
                     study.id)
    if (ids.duplicated(keep=False) & ids.notna()).any():  # the rows, not the ids: PHI
        report.error(
            f"id column '{study.id}' has {duplicated_text(ids)}: one row per patient is "
            "expected; de-duplicate or aggregate the rows first", study.id)


def _check_feature(
    frame: pd.DataFrame, column: str, study: Study, report: ValidationReport
) -> str | None:
    series = frame[column]
    spec = study.columns.get(column)
    declared = spec.kind if spec else None
    if declared is None and _refused_identifier(series, column, report):  # first: none quotes it
        return None
    if series.isna().all():
        report.error(f"column '{column}' is entirely missing: drop it with --drop '{column}'",
                     column)
        return None
    if series.dropna().nunique() == 1:
        constant = f"column '{column}' {one_value(series)}: it carries no information; "
        if study.task == "treat":  # trial extracts hold eligibility criteria (ACTG 175 zprior)
            report.warn(constant + "it is left out", column)
        else:
            report.error(constant + f"drop it with --drop '{column}'", column)
        return None
    if declared is None and _left_out_by_shape(series, column, report):
        return None
    # a column deidentify cut to 3 ZIP digits is a place, whatever its name
    zip3 = "categorical" if study.deidentify.get(column) == "zip3" else None
    kind = infer_kind(series, declared or zip3)
    if kind == "numeric":
        bad = non_numeric_values(series)
        if len(bad):  # described, not quoted: a stray text may be a name or a note
            them = "them" if len(bad) > 1 else "it"
            report.error(
                f"column '{column}' is numeric but {text_among_numbers(series, bad)}: correct "
                f"{them}, leave {them} empty (or NA), or list the marker under missing in the "
                "study's [study] table, to mark it missing, or declare the column categorical "
                "in the study", column)
    else:
        _check_categories(series, column, declared, report)
    return kind


def _check_categories(series: pd.Series, column: str, declared: str | None,
                      report: ValidationReport) -> None:
    # numbers in disguise ('145 mmHg', '<0.1', 'unknown' among numbers) unless declared so
    if declared is None and not is_zip_code(series) and \
            check_disguised_numbers(series, column, report):
        return
    if series.dropna().nunique() == series.notna().sum() and series.notna().sum() > 20:
        # no value quoted: a value of its own for each patient is what an identifier looks like
        report.error(
            f"column '{column}' has a different text value for every patient: it looks like an "
            f"identifier or free text, not a feature; declare it with --id '{column}' or drop "
            f"it with --drop '{column}'" if not is_zip_code(series) else
            f"column '{column}' holds a different ZIP code for every patient: a full ZIP code "
            "identifies where a patient lives (a Safe Harbor identifier); cut it to 3 digits "
            f"with permed deidentify (--action {column}=zip3) or drop it with --drop "
            f"'{column}'", column)
        return
    check_spellings(series, column, f"column '{column}'", report)


def _left_out_by_shape(series: pd.Series, column: str, report: ValidationReport) -> bool:
    """Row counters and calendar dates are left out (True), a record-number look-alike kept,
    each with a warning: checks of a column whose kind the study does not declare."""
    if is_row_number(series):
        restarts = counter_restarts(series)
        counted = (f"the row numbers {series.iloc[0]}..{series.iloc[-1]} in order (a saved table "
                   "index)" if restarts == 0 else
                   f"numbers going up by one from row to row, restarting {restarts} time"
                   f"{'s' if restarts > 1 else ''} (a record counter, which follows the order "
                   "the rows were listed in, not the patient)")
        report.warn(f"column '{column}' holds {counted}: it is left out; declare it with --id "
                    f"'{column}' if it is the patient id, or give it a kind in the study if it is "
                    "a measurement", column)
        return True
    if looks_like_identifier(series):
        report.warn(f"column '{column}' holds a different whole number for every patient, like a "
                    f"record number: it is used as a feature; if it identifies patients, declare "
                    f"it with --id '{column}' or drop it with --drop '{column}' (give it a kind "
                    "in the study to keep it without this warning)", column)
    if looks_like_dates(series, markers=True):  # 'unknown' for a missing date too
        report.warn(
            f"column '{column}' holds dates (written {date_format(first_date(series))}): it is "
            "left out, since a model would learn the calendar and a date recorded at follow-up "
            "gives the outcome away; put what matters in a number of its own (age at admission, "
            f"days in hospital), or drop the column with --drop '{column}'", column)
        return True
    return False


def _check_ranges(frame: pd.DataFrame, study: Study, report: ValidationReport) -> None:
    for column, spec in study.columns.items():
        if spec.valid_range is None or column not in frame.columns:
            continue
        values = to_numeric(frame[column])
        low, high = spec.valid_range
        for side, mask, extreme in (
            ("below", values < low, values.min()),
            ("above", values > high, values.max()),
        ):
            if mask.any():
                bound = low if side == "below" else high
                word = "min" if side == "below" else "max"
                report.error(
                    f"column '{column}' has {int(mask.sum())} values {side} {bound:g} ({word} "
                    f"{extreme:g}) in rows {rows_text(np.flatnonzero(mask))}: check the unit or "
                    "set valid_range in the study", column)


def _check_leakage(frame: pd.DataFrame, study: Study, report: ValidationReport) -> None:
    target = frame[study.target]
    known = target.notna()
    labels = as_category(target[known])
    binary = labels.nunique() == 2
    for column, kind in report.kinds.items():
        # one gene separating two classes is biology, not leakage (notes, events: likewise)
        if kind in ("gene", "text", "events"):
            continue
        values = frame.loc[known, column]
        present = values.notna()
        if present.sum() < 10 or labels[present].nunique() < 2:
            continue
        if _separates(values[present], labels[present], kind, binary):
            report.warn(
                f"column '{column}' predicts '{study.target}' perfectly on its own: likely "
                "leakage (recorded after or because of the diagnosis?); if it is not known when "
                f"the prediction is made, drop it with --drop '{column}'", column)
        else:
            _check_near_leak(values, labels, column, kind, study.target, report)


def _check_near_leak(values: pd.Series, labels: pd.Series, column: str, kind: str, target: str,
                     report: ValidationReport) -> None:
    """Warn of a feature separating the classes almost perfectly (see permed.study._leakage):
    for two classes, one against the other; for more, each against the rest."""
    classes = sorted(labels.dropna().unique())
    for cls in classes[1:] if len(classes) == 2 else classes:
        found = near_separation(values, (labels == cls).to_numpy(), kind)
        if found is None:
            continue
        if len(classes) == 2:
            what = f"the classes of '{target}'"
            sides = {True: f"'{cls}' patients", False: f"'{classes[0]}' patients"}
        else:
            what = f"'{target}' = '{cls}' from the other classes"
            sides = {True: f"'{cls}' patients", False: "patients of other classes"}
        report.warn(
            f"column '{column}' separates {what} almost perfectly on its own "
            f"({found.text(sides)}): likely leakage (recorded after or because of the "
            "diagnosis?); if it is not known when the prediction is made, drop it with "
            f"--drop '{column}'", column)
        return


def _separates(values: pd.Series, labels: pd.Series, kind: str, binary: bool) -> bool:
    if kind == "numeric" and binary:
        positive = labels == sorted(labels.unique())[1]
        auc = roc_auc_score(positive, to_numeric(values))
        return bool(auc in (0.0, 1.0))
    if kind == "categorical" or values.nunique() <= 20:
        per_level = pd.DataFrame({"v": values.astype(str), "y": labels}).groupby("v")["y"]
        return bool(per_level.nunique().max() == 1 and values.nunique() < len(values) / 2)
    return False


# What the de-identification's column-name patterns call a direct identifier (not a date of
# birth, left out as a date; not a ZIP code or an age, which Safe Harbor keeps coarsened).
_DIRECT = ("a name", "an SSN", "a fax number", "a phone number", "an e-mail address",
           "a web address")


def _refused_identifier(series: pd.Series, column: str, report: ValidationReport) -> bool:
    """Refuse a feature named like a direct identifier, or whose values mostly are SSNs, e-mail
    addresses, phone numbers, IP addresses or URLs: counted, never quoted."""
    from permed.privacy._deidentify import identifier_values  # privacy imports study

    identifier = direct_identifier(column)
    if identifier:
        found = f"looks like {identifier}"
    elif (values := identifier_values(series)) is not None:
        what, matched, sampled = values
        found = f"holds {what} ({matched} of {sampled} values)"
    else:
        return False
    report.error(f"column '{column}' {found}, a direct identifier: a model must not learn from "
                 "it, and its values would be written into the report and the model; drop it "
                 f"with --drop '{column}' or list it under identifiers in the study (give it a "
                 "kind in the study if it is not one)", column)
    return True


def direct_identifier(column: str) -> str | None:
    """``"a name"``, ``"a phone number"``... when a column's name says it holds a direct
    identifier (``first_name``, ``PatientName``, ``phone``, ``email``), else None."""
    from permed.privacy._deidentify import _lookalike  # privacy imports study: at call time

    found = _lookalike(column)
    return found[0] if found and found[0] in _DIRECT else None
