"""Tabular de-identification under HIPAA Safe Harbor, driven by the study.

Each column gets one action:

=================  ===================================================================
``drop``           remove the column
``pseudonymize``   keyed HMAC-SHA256 of the value (``P`` + 16 hex digits): the same value
                   gives the same pseudonym in every file de-identified with the same key,
                   so records still link
``shift_date``     move every date of a patient by the same keyed offset (1 to 365 days,
                   earlier or later): intervals within a patient are kept exactly; a date
                   stays a date, a time keeps its clock and its zone as written
``year``           keep only the year
``birth_year``     the year of birth; years that imply an age over 89 become ``<=YYYY``
``age``            ages over 89 become ``90+``
``zip3``           the first 3 digits of the ZIP code; the 17 restricted areas (under 20,000
                   people) become ``000``
``scrub``          free text: every identifier replaced by its tag (:mod:`._text`)
``keep``           leave the column as it is (silences the look-alike warning)
=================  ===================================================================

Actions come from the study's ``[deidentify]`` section, then from the roles: ``identifiers``
are dropped and the ``id`` column is pseudonymized. A column whose name looks like an
identifier (name, MRN, SSN, phone, e-mail, address...), or whose values are mostly SSNs, e-mail
addresses, phone numbers, IP addresses or URLs (:func:`identifier_values`), dates or free text,
but has no action is treated as one, secure by default, with a warning naming the action taken
and how to choose another. Names of people are recognized by the column name only.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from permed.exceptions import DataError, StudyError
from permed.privacy._kanon import RiskSummary, risk_summary
from permed.privacy._keys import Key
from permed.privacy._text import _FORMATS, scrub_text
from permed.study import Study, as_category
from permed.study._columns import date_format, looks_like_dates, rows_text

__all__ = ["ACTIONS", "RESTRICTED_ZIP3", "Deidentified", "deidentify_frame", "identifier_values",
           "plan_actions", "pseudonym", "read_as_text"]

ACTIONS = ("drop", "pseudonymize", "shift_date", "year", "birth_year", "age", "zip3", "scrub",
           "keep")
# 3-digit ZIP areas with 20,000 people or fewer (Census 2000), replaced by 000 under Safe Harbor.
RESTRICTED_ZIP3 = frozenset({"036", "059", "063", "102", "203", "556", "692", "790", "821",
                             "823", "830", "831", "878", "879", "884", "890", "893"})
MAX_SHIFT_DAYS = 365
AGE_LIMIT = 89
_ZIP = r"\d{5}(?:-?\d{4})?"
_GENERALIZING = ("age", "zip3", "year", "birth_year")
# A text column where at least this share of the first VALUE_SAMPLE non-missing values (and at
# least VALUE_MIN of them) are, whole, one kind of identifier holds that identifier.
VALUE_SHARE = 0.8
VALUE_MIN = 3
VALUE_SAMPLE = 200
# (what the values are, the note scrubber's tag whose patterns recognize one), checked in order.
_VALUE_KINDS = (("SSNs", "SSN"), ("e-mail addresses", "EMAIL"), ("phone numbers", "PHONE"),
                ("IP addresses", "IP"), ("web addresses (URLs)", "URL"))
_VALUE_PATTERNS = {tag: [r.pattern for r in _FORMATS if r.tag == tag] for _, tag in _VALUE_KINDS}

# (pattern over the normalized column name, what it looks like, default action, tag in text),
# most specific first.
_LOOKALIKES: list[tuple[re.Pattern[str], str, str, str]] = [
    (re.compile(r"(^|_)(birth|dob|date_of_birth|birthdate|birthday)($|_)"), "a date of birth",
     "birth_year", "DATE"),
    (re.compile(r"(^|_)((first|last|middle|given|family|full|maiden|patient)_?name|name|"
                r"surname|fname|lname|initials)($|_)"), "a name", "drop", "NAME"),
    (re.compile(r"(^|_)(ssn|social_security)($|_)"), "an SSN", "drop", "SSN"),
    (re.compile(r"(^|_)(fax)($|_)"), "a fax number", "drop", "FAX"),
    (re.compile(r"(^|_)(phone|telephone|tel|mobile|pager)($|_)"), "a phone number", "drop",
     "PHONE"),
    (re.compile(r"(^|_)(e_?mail)($|_)"), "an e-mail address", "drop", "EMAIL"),
    (re.compile(r"(^|_)(url|website|homepage|ip|ip_address|ipaddress|mac_address)($|_)"),
     "a web address", "drop", "URL"),
    (re.compile(r"(^|_)(address|street|addr|city|town|county|precinct|geocode|latitude|"
                r"longitude)($|_)"), "a place", "drop", "LOCATION"),
    (re.compile(r"(^|_)(zip|zipcode|zip_code|postal|postcode)($|_)"), "a ZIP code", "zip3", "ZIP"),
    (re.compile(r"(^|_)(age|age_years)($|_)"), "an age", "age", "AGE"),
    (re.compile(r"(^|_)(account|acct|member|policy|beneficiary|insurance_id|plan_id|health_plan|"
                r"license|licence|certificate|dea|npi|plate|vin|vehicle|serial|device|imei|"
                r"udi|fingerprint|voiceprint|biometric|photo|photograph|image_file|passport|"
                r"badge|study_code|participant)($|_)"), "an identifying number", "drop", "ID"),
    (re.compile(r"(^|_)(mrn|medical_record|record_(id|number|no)|patient_id|subject_id|"
                r"person_id|encounter_id|visit_id|case_id|id)($|_)"), "a record id",
     "pseudonymize", "MRN"),
]


@dataclass
class Deidentified:
    """The result of :func:`deidentify_frame`.

    Attributes
    ----------
    frame : pandas.DataFrame
        The de-identified table.
    actions : dict of str to str
        The action applied to each column (columns left as they were are absent).
    warnings : list of str
        Columns that looked like identifiers without an action, and what was done.
    risk : dict
        ``{"before": RiskSummary, "after": RiskSummary}`` over the quasi-identifiers, or
        empty when none was declared or implied.
    replaced : int
        Identifiers replaced by a tag in free-text columns.
    """

    frame: pd.DataFrame
    actions: dict[str, str]
    warnings: list[str] = field(default_factory=list)
    risk: dict[str, RiskSummary] = field(default_factory=dict)
    replaced: int = 0


def _normalized(name: str) -> str:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", str(name))
    return re.sub(r"[^a-z0-9]+", "_", spaced.lower()).strip("_")


def _lookalike(name: str) -> tuple[str, str, str] | None:
    """``(what, default action, tag)`` when a column name looks like an identifier."""
    normalized = _normalized(name)
    for pattern, what, action, tag in _LOOKALIKES:
        if pattern.search(normalized):
            return what, action, tag
    return None


def _looks_like_text(series: pd.Series) -> bool:
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return False
    present = series.dropna().astype(str).head(200)
    return len(present) > 0 and float(present.str.len().mean()) > 40 and bool(
        present.str.contains(" ").mean() > 0.8)


def plan_actions(frame: pd.DataFrame, study: Study | None = None,
                 text_columns: tuple[str, ...] = (),
                 overrides: Mapping[str, str] | None = None) -> tuple[dict[str, str], list[str]]:
    """Decide each column's action; return the actions and the look-alike warnings.

    Order of precedence: ``overrides`` (``--action COL=ACTION``), the study's ``[deidentify]``
    section, ``text_columns`` (scrubbed), the ``identifiers`` role (dropped), the ``id`` role
    (pseudonymized), then look-alike names and values.

    Raises
    ------
    StudyError
        An action is unknown or names a column the table lacks.
    """
    study = study or Study()
    declared = {**study.deidentify, **(overrides or {})}
    _check_declared(declared, list(frame.columns), text_columns)
    actions = dict.fromkeys(text_columns, "scrub")
    actions.update(dict.fromkeys([c for c in study.identifiers if c in frame.columns], "drop"))
    if study.id and study.id in frame.columns:
        actions[study.id] = "pseudonymize"
    actions.update(declared)
    warnings = []
    for column in frame.columns:
        if column in actions:
            continue
        guess = _guess(frame[column], column, has_id=_patient_id(frame, study) is not None)
        if guess is not None:
            what, action = guess
            actions[column] = action
            warnings.append(
                f"column '{column}' {what} but has no de-identification action: "
                f"applied '{action}'; declare it under [deidentify] in the study ({column} = "
                f"\"{action}\", or \"keep\" if it is not an identifier)")
    return {c: a for c, a in actions.items() if a != "keep"}, warnings


def _check_declared(declared: Mapping[str, str], columns: list[str],
                    text_columns: tuple[str, ...]) -> None:
    from permed.study._validate import suggest

    for column, action in declared.items():
        if action not in ACTIONS:
            raise StudyError(f"de-identification action '{action}' for column '{column}' is not "
                             f"known; expected one of {', '.join(ACTIONS)}")
    for column in [*declared, *text_columns]:
        if column not in columns:
            raise StudyError(f"de-identification names column '{column}', which is not in the "
                             f"data: {suggest(column, columns)}")


def identifier_values(series: pd.Series) -> tuple[str, int, int] | None:
    """What a text column's values are when they are mostly one kind of direct identifier.

    At least ``VALUE_SHARE`` of the first ``VALUE_SAMPLE`` non-missing values, and at least
    ``VALUE_MIN`` of them, must be, whole, an SSN (``123-45-6789``), an e-mail address, a phone
    number (``617-555-0100``, ``(617) 555-0100``), an IPv4 or IPv6 address or a URL, as the note
    scrubber (:mod:`._text`) writes them. Names and street addresses are not recognized by value.

    Returns
    -------
    (str, int, int) or None
        ``("SSNs", matched, sampled)``, or None when the column is no such column.
    """
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series) or \
            pd.api.types.is_datetime64_any_dtype(series):
        return None
    present = [str(v).strip() for v in series.dropna().head(VALUE_SAMPLE)]
    present = [v for v in present if v]
    if len(present) < VALUE_MIN:
        return None
    for what, tag in _VALUE_KINDS:
        matched = sum(any(p.fullmatch(v) for p in _VALUE_PATTERNS[tag]) for v in present)
        if matched >= VALUE_MIN and matched >= VALUE_SHARE * len(present):
            return what, matched, len(present)
    return None


def _guess(series: pd.Series, column: str, has_id: bool) -> tuple[str, str] | None:
    """``(what the column looks like, as a message says it, default action)``, or None."""
    found = _lookalike(column)
    if found is not None and found[1] == "age" and not _numeric_like(series):
        found = None  # e.g. an age group "40-49": not an age in years
    if found is not None and found[1] == "zip3" and not _zip_like(series):
        return f"looks like {found[0]}", "drop"
    if found is not None:
        return f"looks like {found[0]}", found[1]
    values = identifier_values(series)
    if values is not None:  # counted, never quoted: the warning goes into reports
        what, matched, sampled = values
        return f"holds {what} ({matched} of {sampled} values)", "drop"
    # Free text first: a note that mentions a date is a note to scrub, not a date to shift.
    if _looks_like_text(series):
        return "looks like free text", "scrub"
    if looks_like_dates(series):
        return "looks like dates", "shift_date" if has_id else "year"
    return None


def _numeric_like(series: pd.Series) -> bool:
    present = series.dropna()
    return bool(pd.to_numeric(present, errors="coerce").notna().all())


def _zip_like(series: pd.Series) -> bool:
    return all(re.fullmatch(_ZIP, v) for v in _zip_text(series).dropna())


def _patient_id(frame: pd.DataFrame, study: Study) -> str | None:
    """The column identifying the patient: the study's id, else a record-id look-alike."""
    if study.id and study.id in frame.columns:
        return study.id
    for column in frame.columns:
        found = _lookalike(column)
        if found is not None and found[1] == "pseudonymize":
            return str(column)
    return None


def _digest(label: str, key: Key, purpose: str) -> bytes:
    return hmac.new(key.derive(purpose), label.strip().encode(), hashlib.sha256).digest()


def pseudonym(value: object, key: Key) -> str | None:
    """The keyed pseudonym of one value: ``P`` + 16 hex digits of HMAC-SHA256; None if missing.

    Integers and integral floats give the same pseudonym (``12`` and ``12.0``), surrounding
    spaces are ignored.
    """
    return _pseudonyms(pd.Series([value], dtype=object), key).iloc[0]


def read_as_text(columns: list[str], study: Study | None = None,
                 overrides: Mapping[str, str] | None = None) -> list[str]:
    """The columns to pseudonymize that their names already show, to be read as text.

    Read as numbers, the record numbers ``000101`` and ``101`` are one patient, with one
    pseudonym and one date shift; read as written, they are two.
    """
    study = study or Study()
    declared = {**study.deidentify, **(overrides or {})}

    def pseudonymized(column: str) -> bool:
        if column in declared:
            return declared[column] == "pseudonymize"
        found = _lookalike(column)
        return column == study.id or (found is not None and found[1] == "pseudonymize")

    return [c for c in columns if pseudonymized(c)]


def _id_labels(series: pd.Series) -> pd.Series:
    """Labels of ids as written, except that ``101.0`` (a number saved as a float) is ``101``."""
    labels = as_category(series)
    return labels.where(labels.isna(), labels.str.replace(r"^\s*(\d+)\.0*\s*$", r"\1",
                                                           regex=True))


def _pseudonyms(series: pd.Series, key: Key) -> pd.Series:
    labels = _id_labels(series)
    cache: dict[str, str] = {}
    for label in labels.dropna().unique():
        cache[label] = "P" + _digest(label, key, "pseudonym").hex()[:16]
    return labels.map(cache).astype(object).where(labels.notna(), None)


def _shift_days(patients: pd.Series, key: Key) -> pd.Series:
    """Each patient's offset in days: keyed, in [-365, -1] or [1, 365]; NA without a patient."""
    labels = _id_labels(patients)
    labels = labels.where(labels.str.strip() != "")  # a blank id is no patient
    cache: dict[str, int] = {}
    for label in labels.dropna().unique():
        value = int.from_bytes(_digest(label, key, "date-shift")[:8], "big") % (2 * MAX_SHIFT_DAYS)
        cache[label] = value - MAX_SHIFT_DAYS if value < MAX_SHIFT_DAYS else \
            value - MAX_SHIFT_DAYS + 1
    return labels.map(cache).astype("Int64")


# Day, month and year as numbers (the year last), e.g. 09.05.2019, 5/9/19, 09-05-2019 10:00.
_DAY_MONTH = re.compile(r"^\s*(\d{1,2})([/.-])(\d{1,2})\2(?:\d{4}|\d{2})(?:[T ].*)?$")
_SEPARATOR_NAMES = {"/": "slashes", ".": "dots", "-": "dashes"}


def _day_first(text: pd.Series, column: str) -> pd.Series:
    """For each value written day-month-year or month-day-year, whether it is read day first.

    The order is decided once for all the values of the column written with the same separator:
    a first number over 12 means day first, a second number over 12 means month first, and when
    no value decides, dots are read day first (13.05.2019, the European convention) and slashes
    and dashes month first (05/13/2019, the US one). A column with both is refused: reading each
    value its own way would move some dates by months and leave impossible intervals.
    """
    parts = text.str.extract(_DAY_MONTH)
    numeric = parts[0].notna()
    first = pd.to_numeric(parts[0], errors="coerce")
    second = pd.to_numeric(parts[2], errors="coerce")
    day_first = pd.Series(False, index=text.index)
    for separator in parts.loc[numeric, 1].unique():
        group = numeric & (parts[1] == separator)
        days_first, months_first = group & (first > 12), group & (second > 12)
        if days_first.any() and months_first.any():
            ambiguous = separator.join(("05", "09", "2019"))
            raise DataError(
                f"column '{column}' has dates written with {_SEPARATOR_NAMES[separator]} in "
                f"both orders: day first in rows {rows_text(np.flatnonzero(days_first))} "
                f"(written {date_format(text[days_first].iloc[0])}) and month first in rows "
                f"{rows_text(np.flatnonzero(months_first))} (written "
                f"{date_format(text[months_first].iloc[0])}), so '{ambiguous}' could be 5 "
                "September or 9 May: write the dates as YYYY-MM-DD, or in one order throughout "
                "the column")
        day_first[group] = bool(days_first.any()) or (separator == "." and
                                                      not months_first.any())
    return day_first


def _parse(text: pd.Series, day_first: bool) -> pd.Series:
    try:
        parsed = pd.to_datetime(text, errors="coerce", format="mixed", dayfirst=day_first)
    except ValueError:  # a time zone written in a way _ZONE does not take off: read it in UTC
        parsed = pd.to_datetime(text, errors="coerce", format="mixed", dayfirst=day_first,
                                utc=True)
    return parsed.dt.tz_convert(None) if parsed.dt.tz is not None else parsed


# A clock time's zone as written after it: "08:00:00+01:00", "23:30-0500", "08:00Z", "08:00 UTC".
_ZONE = re.compile(r"(?<=\d)(?P<zone>\s?(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?))\s*$",
                   re.IGNORECASE)
_CLOCK = re.compile(r"\d{1,2}:\d{2}")


def _zones(text: pd.Series) -> pd.Series:
    """The zone written after each value's clock time ('' without one): a date-only value's
    '-09' (2019-05-09) is its day, not a zone."""
    found = text.str.extract(_ZONE)["zone"]
    timed = text.str.contains(_CLOCK, na=False)
    return found.where(timed & found.notna(), "").astype(object)


def _dates(series: pd.Series, column: str) -> pd.Series:
    """The column as datetimes, each numeric day-month order decided once (see _day_first).

    A value written with a time zone (``2024-01-05T08:00:00+01:00``) is read at its own clock
    time, 08:00, the zone left aside (``_zones``): converting it to UTC would move its time, and
    its day, by hours (``shift_date`` writes the zone back as written).
    """
    if pd.api.types.is_datetime64_any_dtype(series):
        return series.dt.tz_localize(None) if series.dt.tz is not None else series
    text = as_category(series)  # 1919.0 reads '1919', a year; missing stays NaN
    zones = _zones(text.astype("string"))
    text = pd.Series([t[:len(t) - len(z)] if z else t for t, z in zip(text, zones, strict=True)],
                     index=series.index, dtype=object)
    day_first = _day_first(text.astype("string"), column)
    parsed = pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns]")
    for flag in (False, True):
        chosen = (day_first == flag) & series.notna()
        if chosen.any():
            parsed[chosen] = _parse(text[chosen], flag)
    bad = series.notna() & parsed.isna()
    if bad.any():
        raise DataError(
            f"column '{column}' has {int(bad.sum())} values that are not dates in rows "
            f"{rows_text(np.flatnonzero(bad))}: write dates as YYYY-MM-DD (or MM/DD/YYYY), or "
            "leave them empty")
    return parsed


def _written_forms(series: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """For each value: whether it holds a clock time, the separator before that time ('T' or a
    space), and its zone as written ('' without one). A datetime column's values hold a time
    unless every one is at midnight; a zone-aware one's zone is each value's UTC offset."""
    if pd.api.types.is_datetime64_any_dtype(series):
        present = series.dropna()
        timed = bool(len(present)) and bool((present != present.dt.normalize()).any())
        zones = (series.dt.strftime("%z").str.replace(r"(\d{2})(\d{2})$", r"\1:\2", regex=True)
                 if series.dt.tz is not None else pd.Series("", index=series.index))
        return (pd.Series(timed, index=series.index), pd.Series(" ", index=series.index),
                zones.fillna("").astype(object))
    text = as_category(series).astype("string")
    timed = text.str.contains(_CLOCK, na=False)
    separators = text.str.contains(r"\dT\d", na=False).map({True: "T", False: " "})
    return timed, separators, _zones(text)


def _shift_dates(series: pd.Series, column: str, patients: pd.Series, key: Key) -> pd.Series:
    """Each date moved by its patient's offset in days, on its own clock, written in its own
    form: a date stays a date (``2024-01-05``), a time keeps its zone as written
    (``2024-01-05T08:00:00+01:00`` moves to ``...T08:00:00+01:00`` on another day), as records
    joined later with local times expect."""
    shifted = _dates(series, column) + pd.to_timedelta(_shift_days(patients, key), unit="D")
    timed, separators, zones = _written_forms(series)
    days = shifted.dt.strftime("%Y-%m-%d")
    clocks = days + separators + shifted.dt.strftime("%H:%M:%S") + zones
    text = days.where(~timed, clocks)
    return text.astype(object).where(shifted.notna(), None)


def _ages(series: pd.Series, column: str) -> pd.Series:
    values = pd.to_numeric(series, errors="coerce")
    bad = series.notna() & values.isna()
    if bad.any():
        raise DataError(f"age column '{column}' has {int(bad.sum())} values that are not numbers "
                        f"in rows {rows_text(np.flatnonzero(bad))}: write ages in years")
    text = values.map(lambda v: None if pd.isna(v) else
                      f"{AGE_LIMIT + 1}+" if v > AGE_LIMIT else f"{v:g}")
    return text.astype(object) if (values > AGE_LIMIT).any() else values


def _birth_years(series: pd.Series, column: str, reference_year: int) -> pd.Series:
    years = _dates(series, column).dt.year
    cutoff = reference_year - AGE_LIMIT - 1
    text = [None if pd.isna(y) else f"<={cutoff}" if y < cutoff else str(int(y)) for y in years]
    return pd.Series(text, index=series.index, dtype=object)


def _zip_text(series: pd.Series) -> pd.Series:
    """ZIP codes as 5-digit text (``2139.0`` is ``02139``); a missing one stays None (``map``
    would turn it into NaN, which no pattern can read)."""
    text = series.map(lambda v: f"{int(v):05d}" if isinstance(v, (int, float, np.integer,
                                                                  np.floating))
                      else str(v).strip(), na_action="ignore")
    return text.astype(object).where(series.notna(), None)


def _zip3(series: pd.Series, column: str) -> pd.Series:
    text = _zip_text(series)
    valid = text.map(lambda v: v is None or re.fullmatch(_ZIP, v) is not None).astype(bool)
    if not valid.all():
        raise DataError(f"ZIP column '{column}' has {int((~valid).sum())} values that are not "
                        f"5-digit ZIP codes in rows {rows_text(np.flatnonzero(~valid))}: fix "
                        "them or drop the column")
    head = text.map(lambda v: "000" if v[:3] in RESTRICTED_ZIP3 else v[:3], na_action="ignore")
    return head.astype(object).where(text.notna(), None)


def _known_identifiers(frame: pd.DataFrame, actions: Mapping[str, str]) -> dict[str, str]:
    """Columns whose values a note may repeat, with the tag to give them in text."""
    known = {}
    for column, action in actions.items():
        if action in ("shift_date", "year", "birth_year"):
            known[column] = "DATE"
        elif action in ("drop", "pseudonymize"):
            found = _lookalike(column)
            known[column] = found[2] if found else "ID"
    return known


def _scrub_column(frame: pd.DataFrame, column: str,
                  known: Mapping[str, str]) -> tuple[pd.Series, int]:
    texts: list[str | None] = []
    replaced = 0
    others = list(known)
    for position, value in enumerate(frame[column].tolist()):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            texts.append(None)
            continue
        record: dict[str, list[Any]] = {}
        for other in others:
            record.setdefault(known[other], []).append(frame[other].iat[position])
        result = scrub_text(str(value), record)
        texts.append(result.text)
        replaced += len(result.spans)
    return pd.Series(texts, index=frame.index, dtype=object), replaced


def _quasi_identifiers(study: Study, actions: Mapping[str, str],
                       quasi: list[str] | None) -> list[str]:
    if quasi:
        return list(quasi)
    if study.quasi_identifiers:
        return list(study.quasi_identifiers)
    implied = [c for c, a in actions.items() if a in _GENERALIZING]
    return list(dict.fromkeys([*implied, *study.sensitive]))


def deidentify_frame(frame: pd.DataFrame, key: Key, study: Study | None = None, *,
                     text_columns: tuple[str, ...] = (),
                     actions: Mapping[str, str] | None = None,
                     quasi_identifiers: list[str] | None = None,
                     reference_year: int | None = None) -> Deidentified:
    """De-identify a table under Safe Harbor.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table with identifiers.
    key : Key
        The data key: pseudonyms and date shifts are keyed with it (same key, same result).
    study : Study, optional
        Roles (``id``, ``identifiers``, ``quasi_identifiers``, ``sensitive``) and the
        ``[deidentify]`` actions.
    text_columns : tuple of str
        Free-text columns to scrub.
    actions : mapping of str to str, optional
        Actions that override the study's, e.g. ``{"visit": "shift_date"}``.
    quasi_identifiers : list of str, optional
        Columns for the re-identification risk (default: the study's, else the generalized
        and sensitive columns).
    reference_year : int, optional
        The year ages are counted to for ``birth_year`` (default: this year).

    Returns
    -------
    Deidentified

    Raises
    ------
    StudyError
        An unknown action, a column that is not in the table, or ``shift_date`` without a
        patient id column.
    DataError
        A date, age or ZIP column holds values that cannot be read as such.

    Examples
    --------
    >>> from permed.privacy import generate_key
    >>> table = pd.DataFrame({"mrn": ["A1", "A2"], "age": [93, 40]})
    >>> deidentify_frame(table, generate_key()).frame["age"].tolist()
    ['90+', '40']
    """
    study = study or Study()
    plan, warnings = plan_actions(frame, study, tuple(text_columns), actions)
    patient = _patient_id(frame, study)
    if patient is None and "shift_date" in plan.values():
        raise StudyError("shift_date needs the patient id column to shift each patient's dates "
                         "alike: set id under [roles] in the study, or pass --id COL")
    reference_year = reference_year or datetime.now(UTC).year
    out = frame.copy()
    replaced = _apply(out, frame, plan, patient, key, reference_year)
    unshifted = _without_patient(frame, plan, patient)
    warnings += [unshifted] if unshifted else []
    quasi = _quasi_identifiers(study, plan, quasi_identifiers)
    risk = {"before": risk_summary(frame, quasi), "after": risk_summary(out, quasi)} if quasi \
        else {}
    return Deidentified(out, plan, warnings, risk, replaced)


@dataclass(frozen=True)
class _Context:
    frame: pd.DataFrame
    patient: str | None
    key: Key
    reference_year: int


def _by_pseudonym(series: pd.Series, column: str, ctx: _Context) -> pd.Series:
    return _pseudonyms(series, ctx.key)


def _by_shift(series: pd.Series, column: str, ctx: _Context) -> pd.Series:
    return _shift_dates(series, column, ctx.frame[str(ctx.patient)], ctx.key)


def _by_year(series: pd.Series, column: str, ctx: _Context) -> pd.Series:
    return _dates(series, column).dt.year.astype("Int64")


def _by_birth_year(series: pd.Series, column: str, ctx: _Context) -> pd.Series:
    return _birth_years(series, column, ctx.reference_year)


_TRANSFORMS = {
    "pseudonymize": _by_pseudonym,
    "shift_date": _by_shift,
    "year": _by_year,
    "birth_year": _by_birth_year,
    "age": lambda series, column, ctx: _ages(series, column),
    "zip3": lambda series, column, ctx: _zip3(series, column),
}


def _without_patient(frame: pd.DataFrame, plan: Mapping[str, str],
                     patient: str | None) -> str | None:
    """The warning for rows with dates to shift but no patient id: their dates are left empty.

    A date is shifted by its patient's offset; without a patient there is no offset, and the real
    date must not remain.
    """
    shifted = [c for c, a in plan.items() if a == "shift_date"]
    if not shifted or patient is None:
        return None
    ids = as_category(frame[patient])
    dated = (ids.isna() | (ids.str.strip() == "")) & frame[shifted].notna().any(axis=1)
    if not dated.any():
        return None
    columns = ", ".join(f"'{c}'" for c in shifted)
    return (f"{int(dated.sum())} row(s) have dates but no patient id in '{patient}' (rows "
            f"{rows_text(np.flatnonzero(dated))}): their dates in {columns} were left empty, "
            "since each date moves by its patient's offset and a real date must not remain; "
            "fill in the patient id to keep them")


def _apply(out: pd.DataFrame, frame: pd.DataFrame, plan: Mapping[str, str], patient: str | None,
           key: Key, reference_year: int) -> int:
    """Apply every action to ``out`` (a copy of ``frame``); return the text replacements."""
    replaced = 0
    known = _known_identifiers(frame, plan)
    context = _Context(frame, patient, key, reference_year)
    for column, action in plan.items():
        if action == "scrub":
            out[column], count = _scrub_column(frame, column, known)
            replaced += count
        elif action in _TRANSFORMS:
            out[column] = _TRANSFORMS[action](frame[column], column, context)
    for column in [c for c, a in plan.items() if a == "drop"]:
        del out[column]
    return replaced
