"""Column typing: which columns are numeric, which categorical, which hold dates, and which hold
stray text."""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "MISSING_WORDS", "DisguisedNumbers", "as_category", "boolean_spellings", "counter_restarts",
    "date_format", "disguised_numbers", "duplicated_text", "excel_serial_dates", "first_date",
    "guess_kind", "infer_kind",
    "is_missing_word", "is_row_number", "is_zip_code", "looks_like_dates",
    "looks_like_identifier", "non_numeric_values", "one_value", "rows_text", "share_text",
    "spelled_twice",
    "text_among_numbers", "texts_text", "to_numeric", "value_shape", "written_code",
]

# A numeric column holding this few distinct whole numbers (3 to 5, e.g. chest pain type 1-4 or
# an ECG result 0-2) is read as coded categories: treating codes as a measurement imposes an
# order and spacing they do not have. Declare kind = "numeric" in the study to keep it a number.
CODED_LEVELS = (3, 5)
# A text column where at least this share of the non-missing values parse as numbers is a
# numeric column with stray text (a typo, a unit, "twelve"), not a categorical one.
NUMERIC_SHARE = 0.8
# A text column where at least this share of the values are numbers, bare or written with a
# unit, a sign or separators ('145 mmHg', '<0.1', '2,330.0'), and the rest at most MAX_MARKERS
# spellings ('unknown', 'not done'), is numbers in disguise: read as text, every number would be
# a category of its own. Fewer than MIN_NUMBERS distinct numbers are codes (see CODED_LEVELS).
MOSTLY_NUMBERS = 0.5
MAX_MARKERS = 10
MIN_NUMBERS = CODED_LEVELS[1] + 1
# A whole-number column going up by one from row to row at this share of its steps counts rows.
COUNTER_SHARE = 0.99
# A numeric column with a different whole number for each of at least this many patients looks
# like an identifier.
ID_MIN_ROWS = 50
# A whole value that is a date (see looks_like_dates): day and month in either order, the year
# first or last, or the month written out; then an optional time and time zone.
_DAY_OR_MONTH = r"(?:0?[1-9]|[12]\d|3[01])"
_MONTH_NUMBER = r"(?:0?[1-9]|1[0-2])"
_MONTH_WORD = r"[A-Za-z]{3,9}\.?"
_DATE_VALUE = (
    rf"(?:\d{{4}}([-/.]){_MONTH_NUMBER}\1{_DAY_OR_MONTH}"
    rf"|{_DAY_OR_MONTH}([-/.]){_DAY_OR_MONTH}\2(?:\d{{4}}|\d{{2}})"
    rf"|{_MONTH_WORD} {_DAY_OR_MONTH},? \d{{4}}"
    rf"|{_DAY_OR_MONTH}(?: {_MONTH_WORD},? |-{_MONTH_WORD}-)\d{{4}})"
    r"(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:[AaPp][Mm]|Z|[+-]\d{2}:?\d{2})?)?"
)
# A number written with a comparison, a currency sign, thousands separators, a percent sign or
# a unit: '<0.1', '>= 90', '$1,200', '2,330.0', '65%', '145 mmHg', '5.2 mmol/L'. A letter
# before the number ('T2', 'V45.81': a stage, a code) makes it no number.
_DECORATED_NUMBER = re.compile(
    r"(?P<comparison>[<>]=?|[\u2264\u2265~])?\s*(?P<currency>[$\u20ac\u00a3])?\s*"
    r"(?P<number>[-+]?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+))\s*"
    r"(?P<unit>%|[A-Za-z\u00b5\u03bc\u00b0/][\w/\u00b5\u03bc\u00b0\u00b2\u00b3.^*-]*)?"
)
# A column named like a ZIP code (zip, zip3, zipcode, zip_code, postal, postcode), as
# permed deidentify names one, over the name in lower case with '_' between words.
_ZIP_NAME = re.compile(r"(^|_)(zip|zip3|zip5|zipcode|zip_code|postal|postal_code|postcode)"
                       r"($|_)")
_ZIP_TEXT = re.compile(r"\s*(?:\d{3}|\d{5}(?:-?\d{4})?)\s*")
# What permed deidentify's birth_year writes for a year of birth implying an age over 89.
_BIRTH_YEAR_BOUND = r"^\s*<=\s*((?:18|19|20)\d\d)\s*$"
# Spellings of a missing value common in extracts (letter case and spaces aside). A message
# may quote one: it quotes this list, not a patient's data; any other text is described.
MISSING_WORDS = frozenset({
    "-", "--", "---", ".", "?", "na", "n/a", "n.a.", "nan", "null", "none", "missing",
    "unknown", "unk", "not known", "not done", "nd", "n.d.", "pending", "not available",
    "not recorded", "not measured", "not applicable", "no data", "no result", "refused",
    "declined", "tbd", "blank", "empty", "x", "nr", "ns"})
# The spellings of yes and no a boolean column is read with (letter case and spaces aside).
_BOOLEAN_WORDS = {"yes": True, "y": True, "true": True, "t": True, "1": True,
                  "no": False, "n": False, "false": False, "f": False, "0": False}


def to_numeric(series: pd.Series) -> pd.Series:
    """Values as floats; anything that does not parse becomes NaN."""
    if pd.api.types.is_bool_dtype(series):
        return series.astype(float)
    if not pd.api.types.is_numeric_dtype(series):
        # A value de-identification groups reads as its bound: "90+" (an age over 89) as 90,
        # "<=1934" (a year of birth implying an age over 89) as 1934.
        text = series.astype("string")
        top = text.str.fullmatch(r"\s*\d+(?:\.\d+)?\+\s*", na=False).astype(bool)
        if top.any():
            series = series.where(~top, text.str.strip().str.rstrip("+"))
        bound = text.str.extract(_BIRTH_YEAR_BOUND, expand=False)
        if bound.notna().any():
            series = series.where(bound.isna(), bound)
    return pd.to_numeric(series, errors="coerce").astype(float)


def is_row_number(series: pd.Series) -> bool:
    """Whether a column counts the rows: whole numbers going up by one from row to row, like the
    index pandas saves in a CSV (0..n-1), or a counter restarting in each of a few files appended
    to one another (Symptom2Disease's ``index`` runs 0..299 four times, and the diseases are
    listed in blocks, so the counter gives the diagnosis away).

    At least 99% of the steps must be +1: visit years or visit numbers in a table of several rows
    per patient restart far more often than that.
    """
    if len(series) < 20 or series.isna().any() or not pd.api.types.is_numeric_dtype(series):
        return False
    if pd.api.types.is_bool_dtype(series):
        return False
    steps = np.diff(series.to_numpy(dtype=float))
    return bool(np.mean(steps == 1) >= COUNTER_SHARE)


def looks_like_identifier(series: pd.Series) -> bool:
    """Whether a numeric column holds a different whole number for each of at least
    ``ID_MIN_ROWS`` patients, like a record number in shuffled order (a measurement that fine
    repeats somewhere among that many patients)."""
    if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return False
    present = series.dropna()
    return bool(len(present) >= ID_MIN_ROWS and present.is_unique
                and np.all(np.mod(present.to_numpy(dtype=float), 1) == 0))


def written_code(series: pd.Series) -> bool:
    """Whether a column read as text holds a different string of digits for every patient,
    some written with leading zeros, like a medical record number ``000101``: an identifier,
    which read as a number (101) looks like a measurement, or a row counter when sorted. A
    column named like a ZIP code (``is_zip_code``) is a place, not an identifier."""
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return False
    present = series.dropna().astype(str).str.strip()
    if present.empty or not present.is_unique or is_zip_code(series):
        return False
    digits = present.str.fullmatch(r"\d+").astype(bool)
    return bool(digits.all() and (present.str.startswith("0") & (present.str.len() > 1)).any())


def counter_restarts(series: pd.Series) -> int:
    """How often a row counter (see ``is_row_number``) does not go up by one."""
    return int(np.sum(np.diff(series.to_numpy(dtype=float)) != 1))


def looks_like_dates(series: pd.Series, markers: bool = False) -> bool:
    """Whether a column holds calendar dates: a datetime dtype, or text where at least 80% of
    the first 200 values are, whole, a date like ``1997-01-13``, ``1/13/1997``, ``13.01.1997``,
    ``Jan 13, 1997`` or ``13-Jan-1997``, optionally with a time (``1997-01-13 10:00``,
    ``1997-01-13T10:00:00Z``).

    The whole value must be a date: a note that mentions one ("admitted 12/10/2018") or an SSN
    (``666-91-9743``) is not a date column. With ``markers``, half the values being dates is
    enough when the others are at most ``MAX_MARKERS`` spellings (``unknown``, ``not done``):
    missing dates marked in words.
    """
    if pd.api.types.is_datetime64_any_dtype(series):
        return True
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return False
    present = series.dropna().astype(str).head(200).str.strip()
    if present.empty:
        return False
    shaped = present.str.fullmatch(_DATE_VALUE).astype(bool)
    share = float(shaped.mean())
    return share >= 0.8 or (markers and share >= MOSTLY_NUMBERS
                            and present[~shaped].nunique() <= MAX_MARKERS)


# Excel keeps a date as the days since 1899-12-30: 20000 is 1954-10-03, 60000 is 2064-04-08, the
# span of admissions, visits and follow-ups in a clinical extract. A date of birth may be older:
# from 7000 (1919-03-01), above any birth weight in grams.
EXCEL_DATES = (20_000, 60_000)
EXCEL_BIRTHS = 7_000
_DATE_NAME = re.compile(r"(^|_)(dates?|dt|dttm|datetime|timestamp|dob|dod|doa|admit|admitted|"
                        r"admission|discharged?|birthday|birthdate)($|_)|date($|_)")
_BIRTH_NAME = re.compile(r"(^|_)(dob|birthday|birthdate|date_of_birth|birth_date|birth_dt)($|_)")


def excel_serial_dates(series: pd.Series, name: str) -> bool:
    """Whether a numeric column is named like a date (``admit_date``, ``AdmitDt``, ``dob``,
    ``time of admission``) and holds only whole numbers that Excel would show as dates
    (``EXCEL_DATES``; from ``EXCEL_BIRTHS`` for a birth): a date column exported as its serial
    numbers."""
    if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return False
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", str(name))
    normalized = re.sub(r"[^a-z0-9]+", "_", spaced.lower()).strip("_")
    if not _DATE_NAME.search(normalized):
        return False
    values = series.dropna().to_numpy(dtype=float)
    low = EXCEL_BIRTHS if _BIRTH_NAME.search(normalized) else EXCEL_DATES[0]
    return bool(len(values)) and bool(np.all(values == np.round(values))) and \
        bool(values.min() >= low) and bool(values.max() <= EXCEL_DATES[1])


def first_date(series: pd.Series) -> object:
    """The first value of a date column (see looks_like_dates) that is a date."""
    present = series.dropna()
    if pd.api.types.is_datetime64_any_dtype(series):
        return present.iloc[0]
    shaped = present.astype(str).str.strip().str.fullmatch(_DATE_VALUE).astype(bool)
    return present[shaped.to_numpy()].iloc[0]


_TIME = re.compile(r"(?P<sep>[T ])(?P<h>\d{1,2}):\d{2}(?P<s>:\d{2}(?:\.\d+)?)?\s*"
                   r"(?P<zone>[AaPp][Mm]|Z|[+-]\d{2}:?\d{2})?$")
_NUMERIC_DATE = re.compile(r"(\d{1,4})([-/.])(\d{1,2})\2(\d{1,4})")


def date_format(value: object) -> str:
    """How a date is written, without the date: ``'04/15/1922'`` is ``MM/DD/YYYY``.

    A message quoting a patient's date of birth or admission would carry it into the console,
    the manifest and the report; its format says as much about how the column is written.
    Numbers are read month first unless the first is over 12 or the separator is a dot (the
    convention of ``permed deidentify``); a month written out is ``Mon`` or ``Month``.
    """
    if not isinstance(value, str):  # a datetime value
        return "YYYY-MM-DD"
    text = value.strip()
    time = _TIME.search(text)
    date = text[:time.start()] if time else text
    numeric = _NUMERIC_DATE.fullmatch(date)
    shape = _numeric_date_format(numeric) if numeric else re.sub(
        r"\d+", lambda m: "YYYY" if len(m.group()) == 4 else "D" * len(m.group()),
        re.sub(r"[A-Za-z]+", lambda m: "Mon" if len(m.group()) == 3 else "Month", date))
    if time:
        zone = time.group("zone") or ""
        zone = zone.upper() if zone.upper() in ("AM", "PM", "Z") else "+hh:mm" if zone else ""
        shape += (f"{time.group('sep')}hh:mm{':ss' if time.group('s') else ''}"
                  f"{' ' + zone if zone in ('AM', 'PM') else zone}")
    return shape


def _numeric_date_format(match: re.Match[str]) -> str:
    first, separator, second, last = match.groups()
    if len(first) == 4:
        return separator.join(("YYYY", "M" * len(second), "D" * len(last)))
    day_first = int(first) > 12 or (separator == "." and int(second) <= 12)
    day, month = (first, second) if day_first else (second, first)
    parts = ("D" * len(day), "M" * len(month)) if day_first else ("M" * len(month), "D" * len(day))
    return separator.join((*parts, "Y" * len(last)))


def non_numeric_values(series: pd.Series) -> pd.Series:
    """The non-missing values of ``series`` that do not parse as numbers."""
    if pd.api.types.is_numeric_dtype(series):
        return series.iloc[0:0]
    present = series.dropna()
    return present[to_numeric(present).isna()]


def infer_kind(series: pd.Series, declared: str | None = None) -> str:
    """``"numeric"`` or ``"categorical"``: the declared kind, else what the values look like.

    A column named like a ZIP code (``series.name``: zip, zip3, zipcode, postal...) holding 3- or
    5-digit codes is categorical: a ZIP code is a place, not a quantity (``021`` is no smaller
    than ``100``), and ``permed deidentify``'s ``zip3`` writes it as text.
    """
    if declared:
        return declared
    if is_zip_code(series):
        return "categorical"
    if pd.api.types.is_bool_dtype(series):
        return "categorical"
    if pd.api.types.is_numeric_dtype(series):
        return "categorical" if _looks_coded(series.dropna()) else "numeric"
    present = series.dropna()
    if present.empty:
        return "numeric"
    share = float(to_numeric(present).notna().mean())
    return "numeric" if share >= NUMERIC_SHARE else "categorical"


@dataclass(frozen=True)
class DisguisedNumbers:
    """A text column that is mostly numbers (see ``disguised_numbers``).

    ``written`` marks the rows holding a number written with a unit, a sign or separators and
    ``markers`` those holding a value that is no number; ``ways`` names how the numbers are
    written (``"unit"``, ``"percent"``, ``"comparison"``, ``"thousands"``, ``"currency"``), in
    that order; ``units`` the units seen.
    """

    present: int
    numbers: int
    levels: int
    written: np.ndarray
    markers: np.ndarray
    ways: tuple[str, ...]
    units: tuple[str, ...]


_WAYS = ("unit", "percent", "comparison", "thousands", "currency")


def disguised_numbers(series: pd.Series) -> DisguisedNumbers | None:
    """Whether a text column is numbers in disguise, which infer_kind reads as categories.

    At least half of its values must be numbers, bare or written with a unit, a percent sign,
    a comparison, thousands separators or a currency sign (``145 mmHg``, ``65%``, ``<0.1``,
    ``2,330.0``), with at least ``MIN_NUMBERS`` distinct numbers (fewer are codes); the other
    values, at most ``MAX_MARKERS`` spellings (``unknown``): markers of a missing value.
    None when the column is not such a column.
    """
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return None
    text = series.dropna().astype(str).str.strip()
    text = text[text != ""]
    if text.empty:
        return None
    uniques = pd.unique(text)
    plain = to_numeric(pd.Series(uniques, dtype=object)).to_numpy()
    numbers: dict[str, float] = {}
    written: dict[str, tuple[tuple[str, ...], str | None]] = {}  # value -> (ways, unit)
    for value, number in zip(uniques, plain, strict=True):
        if np.isfinite(number):
            numbers[value] = float(number)
        elif (match := _DECORATED_NUMBER.fullmatch(value)) is not None:
            numbers[value] = float(match.group("number").replace(",", ""))
            unit = match.group("unit")
            written[value] = (_ways(match), unit if unit != "%" else None)
    markers = text[~text.isin(list(numbers))]
    if (len(text) - len(markers) < MOSTLY_NUMBERS * len(text)
            or len(set(numbers.values())) < MIN_NUMBERS or markers.nunique() > MAX_MARKERS):
        return None
    stripped = series.astype("string").str.strip()  # positions, not labels: an index may repeat
    seen = {way for ways, _ in written.values() for way in ways}
    units = (unit for _, unit in written.values() if unit)
    return DisguisedNumbers(
        present=len(text), numbers=len(text) - len(markers), levels=len(uniques),
        written=stripped.isin(list(written)).fillna(False).to_numpy(dtype=bool),
        markers=stripped.isin(markers.unique()).fillna(False).to_numpy(dtype=bool),
        ways=tuple(w for w in _WAYS if w in seen), units=tuple(dict.fromkeys(units)))


def _ways(match: re.Match[str]) -> tuple[str, ...]:
    """How a decorated number is written (names from ``_WAYS``)."""
    unit = match.group("unit")
    found = {"unit": bool(unit) and unit != "%", "percent": unit == "%",
             "comparison": bool(match.group("comparison")),
             "thousands": "," in match.group("number"), "currency": bool(match.group("currency"))}
    return tuple(way for way, present in found.items() if present)


def guess_kind(series: pd.Series) -> str | None:
    """The kind ``permed init`` writes for a column: infer_kind's, or None (no kind) for text
    that is numbers in disguise (``disguised_numbers``) or dates with missing-value markers,
    so that validation says what is wrong with it; declared categorical, it would be kept as
    categories without a word."""
    kind = infer_kind(series)
    if kind == "categorical" and (disguised_numbers(series) is not None
                                  or looks_like_dates(series, markers=True)):
        return None
    return kind


def boolean_spellings(counts: pd.Series) -> tuple[list[str], list[str]]:
    """The labels of ``counts`` (label -> patients) meaning yes and no, when the column is a
    yes/no column written more than two ways (``Yes``, ``Y``, ``TRUE``, ``1``...): two empty
    lists otherwise."""
    folded = {label: " ".join(str(label).split()).casefold() for label in counts.index}
    if (len(set(folded.values())) <= 2 or not set(folded.values()) <= set(_BOOLEAN_WORDS)
            or len({_BOOLEAN_WORDS[f] for f in folded.values()}) < 2):
        return [], []
    yes = [label for label, f in folded.items() if _BOOLEAN_WORDS[f]]
    return yes, [label for label in counts.index if label not in yes]


def is_zip_code(series: pd.Series) -> bool:
    """Whether a column is named like a ZIP code and holds 3- or 5-digit codes (``02139``,
    ``021``, ``02139-1234``; or whole numbers up to 99999, a ZIP code read as a number)."""
    if not isinstance(series.name, str) or pd.api.types.is_bool_dtype(series):
        return False
    name = re.sub(r"[^a-z0-9]+", "_", re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", series.name)
                  .lower()).strip("_")
    if not _ZIP_NAME.search(name):
        return False
    present = series.dropna()
    if present.empty:
        return False
    if pd.api.types.is_numeric_dtype(present):
        values = present.to_numpy(dtype=float)
        return bool(np.all(np.mod(values, 1) == 0) and values.min() >= 0
                    and values.max() <= 99999)
    return bool(present.astype(str).str.fullmatch(_ZIP_TEXT).all())


def _zip_labels(uniques: np.ndarray) -> list[str | float] | None:
    """Labels of a ZIP code column's distinct values with their leading zeros: ``21`` (a ZIP3
    ``021`` read as a number) is ``021``, ``2139`` is ``02139``; 3 digits when every number is
    under 1000, else 5. Text stays as written."""
    numbers = [v for v in uniques if isinstance(v, (int, float, np.integer, np.floating))
               and not pd.isna(v)]
    if not numbers:
        return None
    width = 3 if max(numbers) < 1000 else 5
    return [f"{int(v):0{width}d}" if isinstance(v, (int, float, np.integer, np.floating))
            and not pd.isna(v) else _label(v) for v in uniques]


def as_category(series: pd.Series) -> pd.Series:
    """Values as category labels (object dtype, NaN when missing, which scikit-learn's imputer
    fills; it would keep None as a category of its own); 3.0 and 3 both read '3'. A ZIP code
    column (``is_zip_code``) keeps its leading zeros: ``21`` reads ``'021'``, as written.

    Each distinct value is labelled once and the labels are spread back with the factorized
    codes, so a million rows with a handful of levels cost a handful of Python calls.
    """
    codes, uniques = pd.factorize(series.astype(object), use_na_sentinel=True)
    zipped = _zip_labels(uniques) if is_zip_code(series) else None
    labels = np.array([*(zipped or [_label(v) for v in uniques]), np.nan], dtype=object)
    return pd.Series(labels[codes], index=series.index, dtype=object)


def _label(value: object) -> str | float:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return np.nan
    if isinstance(value, (int, float, np.integer, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _looks_coded(values: pd.Series) -> bool:
    levels = values.unique()
    low, high = CODED_LEVELS
    return bool(low <= len(levels) <= high and np.all(np.mod(levels, 1) == 0)
                and len(values) >= 10 * len(levels))


def spelled_twice(counts: pd.Series) -> str:
    """The labels of ``counts`` (label -> patients) that differ only in letter case or spaces,
    as ``'ZDV' (462) and 'zdv' (70)`` groups joined by '; ' ('' when none)."""
    groups: dict[str, list[str]] = {}
    for label in counts.index:
        groups.setdefault(" ".join(str(label).split()).casefold(), []).append(label)
    return "; ".join(" and ".join(f"'{label}' ({int(counts[label])})" for label in labels)
                     for labels in groups.values() if len(labels) > 1)


def share_text(value: float) -> str:
    """A share as a percentage that never rounds a few cases to 0% or all but one to 100%."""
    if 0 < value < 0.005:
        return "under 1%"
    if 0.995 <= value < 1:
        return "over 99%"
    return f"{value:.0%}"


def is_missing_word(value: object) -> bool:
    """Whether a text is one of the common spellings of a missing value (``MISSING_WORDS``)."""
    return " ".join(str(value).split()).casefold() in MISSING_WORDS


def value_shape(value: object) -> str:
    """What a value is, without the value: ``a number``, ``a yes/no value``, ``a text of 6
    characters with letters`` (a value may be protected health information: messages are
    printed, and written into the manifest and the report, which are shared in clear)."""
    if isinstance(value, bool | np.bool_):
        return "a yes/no value"
    if isinstance(value, numbers.Number):
        return "a number"
    if isinstance(value, pd.Timestamp | np.datetime64):
        return "a date"
    return f"a text of {_characters(str(value))}"


def _characters(text: str) -> str:
    """``6 characters with letters``, ``4 characters with letters and digits``..."""
    kinds = [kind for kind, found in (
        ("letters", any(c.isalpha() for c in text)), ("digits", any(c.isdigit() for c in text)),
        ("spaces", any(c.isspace() for c in text)),
        ("other signs", any(not (c.isalnum() or c.isspace()) for c in text))) if found]
    listed = ", ".join(kinds[:-1]) + " and " + kinds[-1] if len(kinds) > 1 else "".join(kinds)
    return f"{len(text)} character{'s' if len(text) != 1 else ''} with {listed}"


def texts_text(values: pd.Series) -> str:
    """Text values for a message, none of a patient's quoted: the common spellings of a
    missing value named (``'n/a' and '-', which mark missing values``), any other text
    described by its length and its characters (``a value of 6 characters with letters``,
    ``3 different texts, e.g. one of 6 characters with letters``)."""
    distinct = list(dict.fromkeys(" ".join(str(v).split()) if str(v).strip() else str(v)
                                  for v in values))
    words = [v for v in distinct if is_missing_word(v)]
    others = [v for v in distinct if not is_missing_word(v)]
    parts = []
    if words:
        named = [f"'{w}'" for w in words[:3]] + (["..."] if len(words) > 3 else [])
        parts.append((", ".join(named[:-1]) + " and " + named[-1] if len(named) > 1
                      else named[0])
                     + (", which mark missing values" if len(words) > 1
                        else ", which marks a missing value"))
    if others:
        parts.append((f"{'another' if words else 'a'} value of {_characters(others[0])}")
                     if len(others) == 1 else
                     f"{len(others)} {'other' if words else 'different'} texts, e.g. one of "
                     f"{_characters(others[0])}")
    return ", and ".join(parts)


def text_among_numbers(series: pd.Series, bad: pd.Series | None = None) -> str:
    """``3 of 200 values are text (rows 5, 6, 7; a value of 6 characters with letters)``: the
    values of a numeric ``series`` that do not parse (``bad``, by default
    ``non_numeric_values(series)``), counted, with their rows, and described (``texts_text``)."""
    bad = non_numeric_values(series) if bad is None else bad
    rows = np.flatnonzero(series.index.isin(bad.index))
    one = len(bad) == 1
    return (f"{len(bad)} of {int(series.notna().sum())} values {'is' if one else 'are'} text "
            f"(row{'' if one else 's'} {rows_text(rows)}; {texts_text(bad)})")


def one_value(series: pd.Series) -> str:
    """``has one value, a text of 5 characters with letters, in all 200 rows``, for a column
    with one distinct value: its kind and length, never the value (it may identify a site or
    a patient, and findings are written into the manifest and the report)."""
    present = series.dropna()
    empty = len(series) - len(present)
    where = (f"in all {len(present)} rows where it is recorded ({empty} are empty)" if empty
             else f"in all {len(series)} rows")
    return f"has one value, {value_shape(present.iloc[0])}, {where}"


def duplicated_text(ids: pd.Series, limit: int = 3) -> str:
    """``2 duplicated ids (rows 4, 8 and 31 share one; rows 99 and 100 another)``: the rows
    each repeated id is held in, by position, never the id (an id may be a medical record
    number, and findings are written into the manifest and the report)."""
    repeated = (ids.duplicated(keep=False) & ids.notna()).to_numpy()
    groups: dict[object, list[int]] = {}
    for position, value in zip(np.flatnonzero(repeated), ids.to_numpy()[repeated], strict=True):
        groups.setdefault(value, []).append(int(position))
    shown = [_rows_and(rows) + (" share one" if i == 0 else " another")
             for i, rows in enumerate(list(groups.values())[:limit])]
    if len(groups) > limit:
        shown.append(f"and {len(groups) - limit} more")
    return (f"{len(groups)} duplicated id{'s' if len(groups) > 1 else ''} "
            f"({'; '.join(shown)})")


def _rows_and(positions: list[int], limit: int = 4) -> str:
    """``rows 4, 8 and 31`` (1-based), or ``rows 4, 8, 31, 40 and 2 more``."""
    rows = [str(p + 1) for p in positions[:limit]]
    if len(positions) > limit:
        return f"rows {', '.join(rows)} and {len(positions) - limit} more"
    return f"rows {', '.join(rows[:-1])} and {rows[-1]}"


def plural(count: int, noun: str) -> str:
    """``1 admission``, ``2 admissions``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def rows_phrase(index: pd.Index | np.ndarray) -> str:
    """``row 4`` or ``rows 4, 17 and 3 more``: 1-based data rows of the table as read."""
    return f"{'row' if len(index) == 1 else 'rows'} {rows_text(index)}"


def rows_text(index: pd.Index | np.ndarray, limit: int = 5) -> str:
    """Row positions for a message, 1-based (row 1 is the first data row under the header)."""
    positions = [int(i) + 1 for i in list(index)[:limit]]
    more = len(index) - len(positions)
    text = ", ".join(map(str, positions))
    return f"{text} and {more} more" if more > 0 else text
