"""Checks of a time-to-event outcome: the time and event columns, and the horizons.

``validate()`` runs :func:`check_risk` without options (``permed validate`` does not know
``--event-value`` or ``--horizons``); the risk protocol runs it again with them before it
trains, so every message below reaches the user before any model is fitted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from permed.study._columns import (
    as_category,
    date_format,
    infer_kind,
    looks_like_dates,
    non_numeric_values,
    plural,
    rows_phrase,
    rows_text,
    spelled_twice,
    text_among_numbers,
    to_numeric,
)
from permed.study._leakage import level_text, near_separation
from permed.study._study import Study

if TYPE_CHECKING:
    from permed.study._validate import ValidationReport

__all__ = ["MIN_FOLLOWED", "MIN_FOLLOWED_SHARE", "RiskOptions", "check_risk", "encode_event",
           "follow_up_times", "followed_rule", "thinly_followed", "time_text", "time_unit"]

# A feature level with at most this many levels whose patients (at least this many) all had
# the event is warned about as likely leakage.
LEAKAGE_LEVELS = 10
LEAKAGE_PATIENTS = 10
# A horizon fewer patients than this (and than this share) are followed to is warned about.
MIN_FOLLOWED = 20
MIN_FOLLOWED_SHARE = 0.05
# All horizons below this quantile of the event times, or this share of the median follow-up,
# look like another unit than the times'.
HORIZON_UNIT_QUANTILE = 0.01
# Labels read as "event" / "censored" without --event-value.
_EVENT_LABELS = {"1": True, "0": False, "True": True, "False": False, "true": True,
                 "false": False}


@dataclass(frozen=True)
class RiskOptions:
    """What ``permed train`` adds to the study for a risk outcome.

    Parameters
    ----------
    event_value : str, optional
        The event column's value meaning "the event happened" (default: 1 or True).
    horizons : tuple of float
        Times at which absolute risk is asked for.
    """

    event_value: str | None = None
    horizons: tuple[float, ...] = ()
    trained: bool = False  # the event value is a trained model's (permed evaluate), no option


def followed_rule(patients: int) -> int:
    """Fewest patients still followed at a horizon for its risk to be checkable: 20, or 5% of
    ``patients`` when that is more."""
    return max(MIN_FOLLOWED, math.ceil(MIN_FOLLOWED_SHARE * patients))


def thinly_followed(times: np.ndarray, horizons: list[float] | tuple[float, ...]
                    ) -> tuple[dict[float, int], float]:
    """The horizons fewer than :func:`followed_rule` patients are followed to, with how many
    are; and the time that many patients reach (0 when there are fewer patients).

    Parameters
    ----------
    times : ndarray
        Follow-up times, one per patient.
    horizons : sequence of float
    """
    times = np.asarray(times, dtype=np.float64)
    enough = followed_rule(len(times))
    reach = float(np.sort(times)[::-1][enough - 1]) if len(times) >= enough else 0.0
    counts = {float(h): int((times >= h).sum()) for h in horizons}
    return {h: n for h, n in counts.items() if n < enough}, reach


def time_text(value: float, unit: str | None = None, floor: bool = False) -> str:
    """A time as a reader wants it: ``2358``, ``6.46 years`` (3 significant digits below
    100); ``floor`` rounds down, for a bound that must not be passed (``below 6.45``)."""
    value = float(value)
    digits = 0 if abs(value) >= 100 or value == 0 else 2 - math.floor(math.log10(abs(value)))
    scale = 10.0 ** digits
    shown = (math.floor(value * scale) if floor else round(value * scale)) / scale
    text = f"{shown:.{max(digits, 0)}f}".rstrip("0").rstrip(".") if digits else f"{shown:.0f}"
    if not unit:
        return text
    return f"{text} {unit[:-1] if shown == 1 and unit.endswith('s') else unit}"


def time_unit(study: Study) -> str | None:
    """The unit the study declares for the time column (``[columns.TIME] unit``), if any."""
    spec = study.columns.get(study.time or "")
    return spec.unit if spec else None


def _values_text(counts: pd.Series) -> str:
    return ", ".join(f"'{label}' ({n})" for label, n in counts.items())


def follow_up_times(frame: pd.DataFrame, study: Study) -> pd.Series:
    """The time column as floats (NaN where missing or not a number)."""
    return to_numeric(frame[study.time])


def encode_event(series: pd.Series, event_value: str | None) -> pd.Series:
    """Event indicators as booleans (None where missing or unreadable).

    Parameters
    ----------
    series : pandas.Series
        The event column.
    event_value : str, optional
        The value meaning "event"; without it, 1/0 and True/False are read.

    Returns
    -------
    pandas.Series of object
        True, False or None per row.
    """
    labels = as_category(series)
    if event_value is not None:
        return labels.map(lambda v: None if v is None else v == str(event_value))
    return labels.map(lambda v: _EVENT_LABELS.get(v) if v is not None else None)


def check_risk(frame: pd.DataFrame, study: Study, report: ValidationReport,
               options: RiskOptions | None = None) -> None:
    """Check the time and event columns (and, with ``options``, the horizons).

    Parameters
    ----------
    frame : pandas.DataFrame
    study : Study
        Its ``time`` and ``event`` roles name the outcome columns.
    report : ValidationReport
        Findings are added here.
    options : RiskOptions, optional
        ``--event-value`` and ``--horizons``; None when they are not known yet (``permed
        validate``, and train's table checks): an event column of two labels other than 0/1
        is then a finding of level ``"note"``, neither an error nor a warning: train checks
        the labels again with ``--event-value``, and refuses them without it.
    """
    if not study.time or not study.event:
        report.error("the risk task needs a time column and an event column: add --time COL "
                     "--event COL (or time = \"COL\" and event = \"COL\" under [roles] in the "
                     "study)")
        return
    times_ok = _check_time(frame, study, report)
    event = _check_event(frame, study, report, options)
    if event is None or not times_ok:
        return
    _check_zero_times(frame, study, report, event)
    # whenever the event is known: 1/0 in the table, or a value given with --event-value (train
    # adds the warnings the table's own checks did not raise)
    _check_event_leakage(frame, study, report, event)
    if options is not None and options.horizons:
        _check_horizons(frame, study, report, options.horizons, event)


def _check_event_leakage(frame: pd.DataFrame, study: Study, report: ValidationReport,
                         event: pd.Series) -> None:
    """Warn of a feature value every one of whose patients (10 or more) had the event: like
    WHAS500's discharge status, it is often recorded at or after the event; and of a feature
    separating the patients with the event from the others almost perfectly (see
    permed.study._leakage)."""
    known = event.notna().to_numpy()
    had = event[known].astype(bool).to_numpy()
    skip = {*study.gene_columns(list(frame.columns)), *study.notes}
    for column in study.feature_columns(list(frame.columns)):
        if _all_had_event(frame, study, report, column, known, had) or column in skip:
            continue
        spec = study.columns.get(column)
        kind = infer_kind(frame[column], spec.kind if spec else None)
        found = near_separation(frame.loc[known, column], had, kind)
        if found is not None:
            sides = {True: "patients with the event", False: "censored patients"}
            report.warn(
                f"column '{column}' separates the patients who had the event ('{study.event}') "
                f"from the censored almost perfectly on its own ({found.text(sides)}): likely "
                "leakage (recorded at or after the event?); if it is not known when the "
                f"prediction is made, drop it with --drop '{column}'", column)


def _all_had_event(frame: pd.DataFrame, study: Study, report: ValidationReport, column: str,
                   known: np.ndarray, had: np.ndarray) -> bool:
    values = as_category(frame[column])[known]
    if values.nunique() > LEAKAGE_LEVELS:
        return False
    counts = values.value_counts()
    for level, count in counts.items():
        if count >= LEAKAGE_PATIENTS and had[(values == level).to_numpy()].all():
            # the value described, never quoted: it may be a date or a place (see level_text)
            report.warn(
                f"column '{column}': all {count} patients with {level_text(level, counts)}, "
                f"had the event ('{study.event}'): likely leakage (recorded at or after the "
                "event, like a status at discharge?); if it is not known when the "
                f"prediction is made, drop it with --drop '{column}'", column)
            return True
    return False


def _check_time(frame: pd.DataFrame, study: Study, report: ValidationReport) -> bool:
    column = study.time
    series = frame[column]
    if looks_like_dates(series):
        written = date_format(series.dropna().iloc[0])
        report.error(
            f"time column '{column}' holds dates (written {written}), not "
            "follow-up times: --time is the time from the start of follow-up (diagnosis, "
            "admission) to the event or the last contact, in one unit; put the days between "
            f"the start date and '{column}' in a column of its own and pass that", column)
        return False
    bad = non_numeric_values(series)
    if len(bad):
        report.error(
            f"time column '{column}' must hold numbers but {text_among_numbers(series, bad)}: "
            "follow-up times must be numbers in one unit (e.g. days); correct them", column)
        return False
    times = to_numeric(series)
    missing = times.isna().to_numpy()
    if missing.any():
        report.error(
            f"time column '{column}' is missing for {int(missing.sum())} patients in rows "
            f"{rows_text(np.flatnonzero(missing))}: every patient needs a follow-up time; fill "
            "it in or drop those rows", column)
    negative = (times < 0).to_numpy()
    if negative.any():
        report.error(
            f"time column '{column}' has {int(negative.sum())} negative times (min "
            f"{times.min():g}) in rows {rows_text(np.flatnonzero(negative))}: follow-up times "
            "count from the start of follow-up and must be positive; check how they were "
            "computed", column)
    return not (missing.any() or negative.any())


def _check_event(frame: pd.DataFrame, study: Study, report: ValidationReport,
                 options: RiskOptions | None) -> pd.Series | None:
    column = study.event
    labels = as_category(frame[column])
    missing = labels.isna().to_numpy()
    if missing.any():
        report.error(
            f"event column '{column}' is missing for {int(missing.sum())} patients in rows "
            f"{rows_text(np.flatnonzero(missing))}: every patient needs an event indicator "
            "(1 = event, 0 = censored)", column)
        return None
    counts = labels.value_counts().sort_index()
    twice = spelled_twice(counts)
    if twice:
        report.error(
            f"event column '{column}' has values that differ only in letter case or spaces: "
            f"{twice}; write each value one way (1 = event and 0 = censored, or the value "
            "given with --event-value and one other)", column)
        return None
    if len(counts) > 2:
        report.error(
            f"event column '{column}' has {len(counts)} values ({_values_text(counts.head(5))}): "
            "expected two, the event and censoring (1/0, True/False, or a value named with "
            "--event-value and one other); recode the others (competing events are not "
            "supported)", column)
        return None
    event_value = options.event_value if options is not None else None
    if event_value is not None:
        trained = options is not None and options.trained
        return _check_named_event(labels, counts, column, str(event_value), report, trained)
    if not set(counts.index) <= set(_EVENT_LABELS) and options is not None and options.trained:
        report.error(
            f"event column '{column}' has values other than 0/1: {_values_text(counts)}; the "
            "model was trained with 1 = event and 0 = censored (or True/False), and the cohort "
            f"must code the event the same way: recode '{column}'", column)
        return None
    if not set(counts.index) <= set(_EVENT_LABELS):
        message = (f"event column '{column}' has values other than 0/1: "
                   f"{_values_text(counts)}; expected 1 = event and 0 = censored (or "
                   "True/False): recode it, or name the value that means the event with "
                   f"--event-value, e.g. --event-value {counts.index[-1]}")
        if options is None:  # a note: printed by permed validate, not by train (which knows)
            from permed.study._validate import Finding

            report.findings.append(Finding("note", f"{message} (permed train will need it)",
                                           column))
        else:
            report.error(message, column)
        return None
    event = encode_event(frame[column], None)
    _check_some_events(event, column, report, "")
    return event


def _check_named_event(labels: pd.Series, counts: pd.Series, column: str, event_value: str,
                       report: ValidationReport, trained: bool = False) -> pd.Series | None:
    if event_value not in counts.index:
        shown = ", ".join(f"'{v}'" for v in counts.index[:10])
        if trained:
            report.error(
                f"event column '{column}' has the values {shown}, but the model was trained "
                f"with event value '{event_value}': the cohort must code the event the same "
                f"way: recode '{column}' so that '{event_value}' marks the event", column)
            return None
        report.error(f"--event-value '{event_value}' is not a value of event column '{column}', "
                     f"whose values are {shown}: use one of them", column)
        return None
    event = labels == event_value
    _check_some_events(event, column, report, f" (with --event-value '{event_value}')")
    return event


def _check_some_events(event: pd.Series, column: str, report: ValidationReport,
                       how: str) -> None:
    if not event.astype(bool).any():
        report.error(
            f"event column '{column}' records no event{how}: all {len(event)} patients are "
            "censored; a risk model needs observed events: check the column (1 = event) or "
            "--event-value", column)


def _check_zero_times(frame: pd.DataFrame, study: Study, report: ValidationReport,
                      event: pd.Series) -> None:
    column = study.time
    zero = (to_numeric(frame[column]) == 0).to_numpy()
    died = event.astype(bool).to_numpy()
    if (zero & died).any():
        rows = np.flatnonzero(zero & died)
        report.error(
            f"time column '{column}' is 0 for {plural(len(rows), 'patient')} with an event in "
            f"{rows_phrase(rows)}: an event at time 0 happened before follow-up started; check "
            "the time origin, give a same-day event a part of a day (0.5 for days), or drop those "
            "rows", column)
    if (zero & ~died).any():
        rows = np.flatnonzero(zero & ~died)
        one = len(rows) == 1
        report.warn(
            f"time column '{column}' is 0 for {plural(len(rows), 'censored patient')} in "
            f"{rows_phrase(rows)}: "
            f"{'it was' if one else 'they were'} followed for no time, contribute"
            f"{'s' if one else ''} nothing to a survival model and {'is' if one else 'are'} "
            "left out", column)



def _check_horizons(frame: pd.DataFrame, study: Study, report: ValidationReport,
                    horizons: tuple[float, ...], event: pd.Series) -> None:
    times = to_numeric(frame[study.time]).dropna().to_numpy()
    unit = time_unit(study)
    longest = float(times.max())
    beyond = [h for h in horizons if h >= longest]
    if beyond:
        shown = ", ".join(f"{h:g}" for h in beyond)
        report.error(
            f"--horizons {shown} {'is' if len(beyond) == 1 else 'are'} beyond the follow-up in "
            f"'{study.time}': the longest follow-up is {time_text(longest, unit)}; choose "
            f"horizons below {time_text(longest, unit, floor=True)}", study.time)
    thin, reach = thinly_followed(times, [h for h in horizons if h < longest])
    enough = followed_rule(len(times))
    for horizon, followed in thin.items():
        report.warn(
            f"--horizons {horizon:g}: only {followed} of {len(times)} patients are followed "
            f"that long in '{study.time}', so the risk by {time_text(horizon, unit)} rests on "
            f"them and its calibration cannot be checked; choose horizons up to "
            f"{time_text(reach, unit, floor=True)}, which {enough} patients reach", study.time)
    _check_horizon_unit(frame, study, report, horizons, event)


def _check_horizon_unit(frame: pd.DataFrame, study: Study, report: ValidationReport,
                        horizons: tuple[float, ...], event: pd.Series) -> None:
    """Warn when every horizon comes before nearly every event or within the first 1% of the
    median follow-up: ``--horizons 1,3,5`` against WHAS500's follow-up in days (median 631)."""
    times = to_numeric(frame[study.time]).to_numpy(dtype=np.float64)  # none missing by now
    happened = times[event.astype(bool).to_numpy()]
    unit, last = time_unit(study), max(horizons)
    early = float(np.quantile(happened, HORIZON_UNIT_QUANTILE)) if len(happened) else 0.0
    median = float(np.median(times))
    reasons = []
    if last < early:
        reasons.append(f"comes before {1 - HORIZON_UNIT_QUANTILE:.0%} of the events (1st "
                       f"percentile of the event times: {time_text(early, unit)})")
    if last < HORIZON_UNIT_QUANTILE * median:
        reasons.append(f"is under {HORIZON_UNIT_QUANTILE:.0%} of the median follow-up "
                       f"({time_text(median, unit)})")
    if reasons:
        shown = ", ".join(f"{h:g}" for h in horizons)
        report.warn(
            f"--horizons {shown}: every horizon {' and '.join(reasons)} in '{study.time}', "
            f"whose longest follow-up is {time_text(float(times.max()), unit)}: are the "
            "horizons in the time column's unit? They cover only the very start of the "
            "follow-up", study.time)
