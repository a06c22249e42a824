"""What a MIMIC-III-style export must satisfy before its tables are joined, and how it is read.

Every problem is told with the table, the column, a count and the table's rows (row 1 is the
first data row under the header), never a value: a cell may hold PHI. What can be read safely is
read with a :class:`~permed.ingest.ReadWarning` saying how; what would make a feature or the
outcome wrong is refused with a :class:`~permed.exceptions.DataError` naming the fix.

Times: MIMIC-III writes local times without an offset. An export whose times all carry a UTC
offset (``-05:00``, ``Z``) is read on one clock, UTC. A time without an offset beside times with
one is on an unknown clock (the two cannot be ordered), so an export that mixes them, in one
column or across the columns compared with each other, is refused. ``PATIENTS.DOB`` takes no
part: an age in tenths of a year does not depend on the hour.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from permed.exceptions import DataError
from permed.ingest._csv import ReadWarning
from permed.study._columns import plural
from permed.study._columns import rows_phrase as rows

__all__ = ["IDS", "Clock", "Times", "died_in_hospital", "parse_times", "plural", "rows",
           "unique_rows", "unmatched_ids", "warn"]

IDS = ("SUBJECT_ID", "HADM_ID", "ICUSTAY_ID")  # read as text, as written: 000101 stays 000101
_FIX_CLOCK = ("export every time with its offset, or every time as local time without one (as "
              "MIMIC-III does)")
_TWO_DIGIT = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{2})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?)?$")
# A UTC offset after a clock time (a date's own "-01" is no offset): Z, +05:30, -0500, -05.
_OFFSET = re.compile(r"^(.*\d:\d{2}(?::\d{2}(?:\.\d+)?)?)\s*(Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)$",
                     re.IGNORECASE)
_SIGNED = re.compile(r"^([+-])(\d{2}):?(\d{2})?$")


def warn(message: str) -> None:
    """Tell how the export was read (the CLI prints it as ``warning: ...``)."""
    warnings.warn(message, ReadWarning, stacklevel=3)


@dataclass(frozen=True)
class Times:
    """One column's times: ``times`` naive (offsets converted to UTC); per row whether the year
    was written with two digits (``short``), a UTC offset was given (``aware``), a value was
    written at all (``written``) and a written value is no time (``unreadable``)."""

    times: pd.Series
    short: pd.Series
    aware: pd.Series
    written: pd.Series

    @property
    def unreadable(self) -> pd.Series:
        return self.written & self.times.isna()


def _offsets(text: pd.Series) -> pd.Series:
    signed = text.str.upper().str.extract(_SIGNED)
    hours = pd.to_numeric(signed[1], errors="coerce").fillna(0)
    minutes = pd.to_numeric(signed[2], errors="coerce").fillna(0)
    sign = signed[0].map({"+": 1, "-": -1}).fillna(0)
    return pd.to_timedelta(sign * (hours * 60 + minutes), unit="min")


def read_times(values: pd.Series, end_of_day: bool = False) -> Times:
    """Parse ISO or spreadsheet-mangled (``10/23/64 21:09``) times; see :func:`parse_times`.

    With ``end_of_day``, each value is a date: the result is the end of that day on the clock it
    was written in (a date with an offset: that end in UTC).
    """
    text = values.astype("string").str.strip()
    written = text.fillna("").ne("")
    split = text.str.extract(_OFFSET)
    aware = split[1].notna()
    wall = text.where(~aware, split[0])
    short = wall.str.extract(_TWO_DIGIT)
    rebuilt = ("21" + short[2] + "-" + short[0].str.zfill(2) + "-" + short[1].str.zfill(2)
               + " " + short[3].fillna("0").str.zfill(2) + ":" + short[4].fillna("00"))
    wall = wall.where(short[2].isna(), rebuilt)
    times = pd.to_datetime(wall, errors="coerce", format="mixed")
    if end_of_day:
        times = times.dt.normalize() + pd.Timedelta(days=1)
    if aware.any():
        times = times - _offsets(split[1].where(aware, "Z")).where(aware, pd.Timedelta(0))
    return Times(times, short[2].notna().fillna(False).astype(bool),
                 aware.fillna(False).astype(bool), written.astype(bool))


def _refuse_mixed(parsed: Times, where: str) -> None:
    naive = parsed.written & ~parsed.aware
    if parsed.aware.any() and naive.any():
        raise DataError(
            f"{where} mixes times with a UTC offset ({plural(int(parsed.aware.sum()), 'row')}: "
            f"{rows(parsed.aware[parsed.aware].index)}) and times without one "
            f"({plural(int(naive.sum()), 'row')}: {rows(naive[naive].index)}): a time without an "
            f"offset is on an unknown clock, so the two cannot be ordered; {_FIX_CLOCK}")


def parse_times(values: pd.Series, where: str = "the column") -> pd.Series:
    """MIMIC timestamps: ISO (``2164-10-23 21:10:15``) or spreadsheet-mangled ``10/23/64 21:09``.

    Two-digit years are read as 21yy (MIMIC-III shifts admissions into 2100-2210); ages are
    then taken modulo 100 years (see ``permed.ingest.mimic._age``). Times with a UTC offset
    (``2150-01-01T10:00:00-05:00``, ``...Z``) are converted to UTC, without an offset.

    Raises
    ------
    DataError
        When times with an offset and times without one are mixed (``where`` names them).
    """
    parsed = read_times(values)
    _refuse_mixed(parsed, where)
    return parsed.times


class Clock:
    """The time columns of one export read on one clock (see the module notes)."""

    def __init__(self) -> None:
        self._aware: dict[str, bool] = {}

    def read(self, frame: pd.DataFrame, table: str, column: str, *, end_of_day: bool = False,
             compared: bool = True) -> Times:
        """Parse ``frame[column]``; ``compared``: its times are compared with the others'."""
        where = f"{table}.{column}"
        parsed = read_times(frame[column], end_of_day=end_of_day)
        _refuse_mixed(parsed, where)
        if compared and parsed.written.any():
            self._aware[where] = bool(parsed.aware.any())
        return parsed

    def refuse_mixed(self) -> list[str]:
        """Refuse offsets in some columns and none in others; the columns with offsets."""
        aware = [where for where, has in self._aware.items() if has]
        naive = [where for where, has in self._aware.items() if not has]
        if aware and naive:
            raise DataError(
                f"times carry a UTC offset in {', '.join(aware)} but none in "
                f"{', '.join(naive)}: a time without an offset is on an unknown clock, so they "
                f"cannot be compared; {_FIX_CLOCK}")
        return aware

    def check(self) -> None:
        """:meth:`refuse_mixed` once every column is read, and say so when times became UTC."""
        aware = self.refuse_mixed()
        if aware:
            warn(f"times carry UTC offsets ({', '.join(aware)}): every time was converted to "
                 "UTC, one clock for ordering stays and events (MIMIC-III writes local times "
                 "without an offset)")


def unique_rows(frame: pd.DataFrame, table: str, key: str,
                ids: tuple[str, ...] = ()) -> pd.DataFrame:
    """``frame`` with exact repeats dropped (with a warning); refuses an empty id and two rows
    that differ under one ``key`` (which row is right cannot be told)."""
    columns = [c for c in frame.columns if c != "ROW_ID"]
    repeated = frame.duplicated(subset=columns)
    if repeated.any():
        warn(f"{table} repeats {plural(int(repeated.sum()), 'row')} exactly (ROW_ID aside; "
             f"{rows(frame.index[repeated])}): each was read once")
        frame = frame[~repeated]
    for column in (*ids, key):
        empty = frame[column].isna()
        if empty.any():
            raise DataError(f"{table}.{column} is empty in {plural(int(empty.sum()), 'row')} "
                            f"({rows(frame.index[empty])}): every row needs its {column}; fill "
                            "it in or remove those rows")
    clash = frame[key].duplicated(keep=False)
    if clash.any():
        groups = frame[clash].groupby(key)
        differ = [c for c in columns if c != key and groups[c].nunique(dropna=False).gt(1).any()]
        raise DataError(
            f"{table} has {plural(groups.ngroups, key)} with rows that differ (in "
            f"{', '.join(differ)}; {int(clash.sum())} rows: {rows(frame.index[clash])}): "
            f"{table} holds one row per {key}, and which of them is right cannot be told; keep "
            "the right row of each and remove the others")
    return frame


def unmatched_ids(ids: pd.Series, known: pd.Series, where: str, known_where: str) -> pd.Series:
    """Rows whose id is none of ``known``; refuses ids written otherwise than ``known``
    (``000101`` beside ``101``, ``101.0``): ids are matched as written, as text."""
    unmatched = ids.notna() & ~ids.isin(known.dropna().unique())
    if unmatched.any():
        numbers = pd.to_numeric(ids[unmatched], errors="coerce")
        other = numbers.isin(pd.to_numeric(known, errors="coerce").dropna().unique())
        if other.any():
            raise DataError(
                f"{where} writes {plural(int(other.sum()), 'id')} otherwise than {known_where} "
                f"({rows(other[other].index)}): the same number with other leading zeros or "
                "decimals (000101 and 101, 101.0); ids are matched as written, so these rows "
                "would match nothing: export the ids the same way in every table")
    return unmatched


def died_in_hospital(admissions: pd.DataFrame) -> np.ndarray:
    """``HOSPITAL_EXPIRE_FLAG`` as 0/1; ``Y``/``N`` are read as 1/0 with a warning.

    An empty flag is refused rather than its admission left out: an outcome may be missing for
    a reason tied to it, and leaving out a patient's first stay would make a later one look
    like the first (with an empty history).
    """
    where = "ADMISSIONS.HOSPITAL_EXPIRE_FLAG"
    text = admissions["HOSPITAL_EXPIRE_FLAG"].astype("string").str.strip().str.upper()
    empty = text.isna() | text.eq("")
    letters = text.isin(["Y", "N"]).fillna(False).astype(bool)
    value = pd.to_numeric(text.where(~letters), errors="coerce").astype("float64")
    value = value.where(~letters, text.eq("Y").astype("float64"))
    if empty.any():
        raise DataError(
            f"{where}, the outcome, is empty for {plural(int(empty.sum()), 'admission')} "
            f"({rows(admissions.index[empty])}): fill it in (1 died in hospital, 0 discharged "
            "alive) or remove those admissions; they are not left out silently, since an "
            "outcome may be missing for a reason tied to it")
    other = ~value.isin([0.0, 1.0])
    if other.any():
        raise DataError(
            f"{where} must be 0 or 1 (or Y/N); {plural(int(other.sum()), 'admission')} hold "
            f"another value ({rows(admissions.index[other])}): recode them as 1 (died in "
            "hospital) or 0 (discharged alive)")
    if letters.any():
        warn(f"{where} is written Y/N in {plural(int(letters.sum()), 'admission')}: Y was read "
             "as 1 (died in hospital), N as 0")
    return value.astype(int).to_numpy()
