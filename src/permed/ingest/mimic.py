"""MIMIC-III-style EHR tables to one row per admission for in-hospital mortality.

The table answers "will this patient die in this hospital stay?" **at the time of admission**.
Every feature is known when the patient is admitted; nothing recorded later reaches it.

Leakage rules (what is used, and what is left out and why)
----------------------------------------------------------
Used, from the admission and the patient's past:

- ``age_years`` at admission from ``PATIENTS.DOB`` and ``ADMISSIONS.ADMITTIME``. MIMIC shifts
  the birth dates of patients older than 89 by 300 years; such ages (and, in exports whose
  dates lost their century, ages below one year outside a ``NEWBORN`` admission) read 90. With
  two-digit years the age is taken modulo 100; with four-digit years a birth date after the
  admission is an error in the data: that age is left missing, with a warning.
- ``gender``; ``admission_type``, ``admission_location``, ``insurance``, ``language``,
  ``religion``, ``marital_status``, ``ethnicity`` (recorded at registration).
- ``admit_diagnosis``: the free-text working diagnosis written at admission (a note column:
  ``--note admit_diagnosis``).
- ``ed_hours``: time in the emergency department before admission (``EDOUTTIME - EDREGTIME``),
  and ``via_ed``.
- History: ``prior_admissions`` and ``days_since_last_discharge`` count only other admissions
  that began and were discharged before this one began (a discharge written before its own
  admission, an error MIMIC-III has 98 of, never makes a stay its own prior);
  ``prior_dx_<chapter>`` count the ICD-9 codes of those earlier admissions by chapter (codes
  are assigned at discharge, so an earlier admission's codes are known now; this admission's
  are not).

Left out, because they are recorded during or after the stay:

- ``DISCHTIME``, ``DEATHTIME``, ``DISCHARGE_LOCATION`` (``DEAD/EXPIRED`` is the answer),
  length of stay, ``PATIENTS.DOD*`` and ``EXPIRE_FLAG`` (death at any time, even years later),
  ``HAS_CHARTEVENTS_DATA``.
- This admission's ``DIAGNOSES_ICD``, ``PROCEDURES_ICD`` and ``DRGCODES`` (billing codes
  assigned at discharge: "cardiac arrest" as a feature predicts death perfectly).
- ICU stays, transfers, call-outs, prescriptions, input/output and chart events, notes: all
  happen after admission. A model for a later prediction time (24 h after admission) needs
  its own cut-off and is not what this table is.

The outcome column is ``died_in_hospital`` (``ADMISSIONS.HOSPITAL_EXPIRE_FLAG``).

Event sequences (``events=True``, ``permed ingest mimic --events``)
-------------------------------------------------------------------
An ``events`` column holds the patient's time-ordered event tokens, separated by spaces, known
by the **prediction time**: ``events_hours`` after the index admission began (24 by default;
0 keeps the prediction at admission). Every event carries the time at which it is known, and
only events known at or before the prediction time enter:

- ``ADM:<type>`` at each admission's ``ADMITTIME`` (earlier admissions and this one);
- ``DX:<ICD-9>`` and ``PX:<ICD-9>`` of earlier admissions, at their ``DISCHTIME`` (codes are
  assigned at discharge: this admission's codes never enter, even for a stay discharged at the
  prediction time; a discharge written before its admission counts at the admission);
- ``SVC:<service>`` at ``SERVICES.TRANSFERTIME`` and ``CU:<care unit>`` at
  ``TRANSFERS.INTIME`` (admit and transfer rows; the discharge row is left out);
- ``RX:<drug>`` from ``PRESCRIPTIONS``: ``STARTDATE`` is a date without a time, so a
  prescription counts as known only at the **end** of its start day (a drug started at
  23:00 is not known at 09:00 that day).

With ``events_hours > 0`` the prediction time lies after admission, so admissions that ended
(discharge or death) before it are left out: there is nothing left to predict for them, and
keeping their shorter sequences would let the model read the early death in the sequence
length. The other columns keep their admission-time rule (they are known by then too).

With ``level="patient"`` the table keeps each patient's first admission only: its selection uses
nothing from the future (choosing the *last* admission would: a patient who died in hospital
has no later one), and no patient appears in both the training and the test split.
``level="admission"`` keeps every admission with ``subject_id``; one patient's admissions can
then fall on both sides of a random split. Columns with a single value at the chosen level (the
history of first admissions is empty by construction) are left out.

What the export must satisfy (``permed.ingest._mimic_checks``)
---------------------------------------------------------------
Problems are told with the table, the column, a count and the rows (row 1 is the first data row
under the header), never a value. Ids (``SUBJECT_ID``, ``HADM_ID``) are read as text, as written
(``000101`` stays ``000101``), and matched as text: an id written otherwise in another table
(``101`` beside ``000101``) is refused. Refused, with the fix: ``ADMITTIME`` or ``DISCHTIME``
empty or not a time; ``HOSPITAL_EXPIRE_FLAG`` empty (an outcome may be missing for a reason tied
to it, and leaving out a first stay would make a later one look like the first) or other than
0/1/Y/N; two rows of one ``HADM_ID`` or ``SUBJECT_ID`` that differ; times with a UTC offset
beside times without one. Read with a warning: rows repeated exactly (read once); the flag
written Y/N; times that all carry offsets (converted to UTC); an age or gender left missing (no
``PATIENTS`` row, a ``DOB`` empty, unreadable or after the admission); event times that cannot
be read (those events left out).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from permed.exceptions import DataError
from permed.ingest._mimic_checks import (
    IDS,
    Clock,
    died_in_hospital,
    parse_times,
    plural,
    rows,
    unique_rows,
    unmatched_ids,
    warn,
)

__all__ = ["LEVELS", "TASKS", "parse_times", "read_mimic"]

TASKS = ("mortality",)
LEVELS = ("patient", "admission")
_NEEDED = {"ADMISSIONS": ("SUBJECT_ID", "HADM_ID", "ADMITTIME", "DISCHTIME",
                          "HOSPITAL_EXPIRE_FLAG"),
           "PATIENTS": ("SUBJECT_ID", "GENDER", "DOB"),
           "DIAGNOSES_ICD": ("SUBJECT_ID", "HADM_ID", "ICD9_CODE"),
           "PROCEDURES_ICD": ("SUBJECT_ID", "HADM_ID", "ICD9_CODE")}
_CATEGORIES = ("ADMISSION_TYPE", "ADMISSION_LOCATION", "INSURANCE", "LANGUAGE", "RELIGION",
               "MARITAL_STATUS", "ETHNICITY")
# ICD-9-CM chapters by the first three digits (V and E codes on their own).
_CHAPTERS = ((1, 139, "infectious"), (140, 239, "neoplasms"), (240, 279, "endocrine"),
             (280, 289, "blood"), (290, 319, "mental"), (320, 389, "nervous"),
             (390, 459, "circulatory"), (460, 519, "respiratory"), (520, 579, "digestive"),
             (580, 629, "genitourinary"), (630, 679, "pregnancy"), (680, 709, "skin"),
             (710, 739, "musculoskeletal"), (740, 759, "congenital"), (760, 779, "perinatal"),
             (780, 799, "symptoms"), (800, 999, "injury"))


def _find(folder: Path, name: str) -> Path | None:
    candidates = (f"{name}.csv", f"{name}.csv.gz", f"{name.lower()}.csv",
                  f"{name.lower()}.csv.gz")
    return next((folder / c for c in candidates if (folder / c).is_file()), None)


def _read(folder: Path, name: str) -> pd.DataFrame:
    path = _find(folder, name)
    if path is None:
        raise DataError(f"'{folder}' has no {name}.csv: point permed ingest mimic at the folder "
                        "holding the MIMIC-III tables (ADMISSIONS.csv, PATIENTS.csv, ...)")
    header = pd.read_csv(path, nrows=0).columns
    # ids as written (a number would turn 000101 into 101); tables are then joined on the text
    frame = pd.read_csv(path, low_memory=False,
                        dtype={c: str for c in header if str(c).upper() in IDS})
    frame.columns = [str(c).upper() for c in frame.columns]
    missing = [c for c in _NEEDED.get(name, ()) if c not in frame.columns]
    if missing:
        raise DataError(f"'{path}' lacks column(s) {missing}: a MIMIC-III {name} table "
                        f"has {list(_NEEDED[name])}")
    return frame


def _optional(folder: Path, name: str) -> pd.DataFrame | None:
    """A table whose absence only removes what it adds; one present must be well formed."""
    return _read(folder, name) if _find(folder, name) else None


def _age(admit: pd.Series, born: pd.Series, newborn: pd.Series,
         short: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Ages in years, and where a birth date written with four-digit years follows admission.

    ``short``: a date of the row was written with a two-digit year.
    """
    years = (admit - born).dt.days / 365.25
    # A two-digit year puts a date in the wrong century: the age is right modulo 100.
    # MIMIC's 300-year shift of the over-89s then shows as an age below one year.
    shifted = years >= 150
    years = years.where(shifted | ~short, years % 100)
    old = shifted | ((years < 1) & ~newborn & short)
    after = years < 0  # only with four-digit years: born after the admission, an error
    return years.where(~old, 90.0).where(~after).round(1), after


def _chapter(code: object) -> str | None:
    text = str(code).strip().upper()
    if not text or text == "NAN":
        return None
    if text[0] in "VE":
        return "supplementary" if text[0] == "V" else "external"
    digits = text[:3]
    if not digits.isdigit():
        return None
    number = int(digits)
    return next((name for low, high, name in _CHAPTERS if low <= number <= high), None)


def _history(admissions: pd.DataFrame, diagnoses: pd.DataFrame | None) -> pd.DataFrame:
    """Per admission: earlier admissions (discharged before it began) and their ICD chapters."""
    pairs = admissions[["SUBJECT_ID", "HADM_ID", "ADMITTIME"]].merge(
        admissions[["SUBJECT_ID", "HADM_ID", "ADMITTIME", "DISCHTIME"]], on="SUBJECT_ID",
        suffixes=("", "_PRIOR"))
    # another admission, begun and ended by then: a discharge written before its own admission
    # (an error in the data) makes a stay neither its own prior nor one of a stay begun before it
    pairs = pairs[(pairs["HADM_ID_PRIOR"] != pairs["HADM_ID"])
                  & (pairs["ADMITTIME_PRIOR"] <= pairs["ADMITTIME"])
                  & (pairs["DISCHTIME"] <= pairs["ADMITTIME"])]
    out = pd.DataFrame(index=admissions["HADM_ID"])
    out["prior_admissions"] = pairs.groupby("HADM_ID").size().reindex(out.index).fillna(0)
    last = pairs.groupby("HADM_ID").agg(admit=("ADMITTIME", "first"), last=("DISCHTIME", "max"))
    out["days_since_last_discharge"] = ((last["admit"] - last["last"]).dt.total_seconds()
                                        / 86400).round(1).reindex(out.index)
    if diagnoses is not None and len(pairs):
        coded = diagnoses.assign(chapter=diagnoses["ICD9_CODE"].map(_chapter)).dropna(
            subset=["chapter"])
        prior = pairs[["HADM_ID", "HADM_ID_PRIOR"]].merge(
            coded[["HADM_ID", "chapter"]].rename(columns={"HADM_ID": "HADM_ID_PRIOR"}),
            on="HADM_ID_PRIOR")
        counts = pd.crosstab(prior["HADM_ID"], prior["chapter"]).add_prefix("prior_dx_")
        out = out.join(counts).fillna(dict.fromkeys(counts.columns, 0))
    return out.reset_index()


def _check_arguments(folder: Path, task: str, level: str) -> Path:
    if task not in TASKS:
        raise DataError(f"--task '{task}' is not known for MIMIC; expected one of "
                        f"{', '.join(TASKS)}")
    if level not in LEVELS:
        raise DataError(f"--level '{level}' is not known; expected one of {', '.join(LEVELS)}")
    if not folder.is_dir():
        raise DataError(f"'{folder}' is not a folder: give the folder of MIMIC-III CSV tables")
    return folder


def _admission_notes_and_ed(table: pd.DataFrame, out: pd.DataFrame) -> None:
    """The working diagnosis written at admission, and the time spent in the ED before it."""
    if "DIAGNOSIS" in table.columns:
        out["admit_diagnosis"] = table["DIAGNOSIS"].fillna("")
    if {"EDREGTIME", "EDOUTTIME"} <= set(table.columns):
        hours = (table["EDOUTTIME"] - table["EDREGTIME"]).dt.total_seconds() / 3600
        out["via_ed"] = table["_VIA_ED"].astype(int)
        out["ed_hours"] = hours.where(hours >= 0).round(2)


def read_mimic(folder: str | Path, task: str = "mortality", level: str = "patient",
               events: bool = False, events_hours: float = 24.0) -> pd.DataFrame:
    """Build the in-hospital mortality table from MIMIC-III-style CSV tables.

    Parameters
    ----------
    folder : str or Path
        Holds ``ADMISSIONS.csv`` and ``PATIENTS.csv`` (``DIAGNOSES_ICD.csv`` adds the history
        of coded diagnoses); upper- or lower-case headers, ``.csv`` or ``.csv.gz``.
    task : {"mortality"}
        In-hospital mortality, predicted at admission.
    level : {"patient", "admission"}
        One row per patient (the first admission) or per admission (see the module notes).
    events : bool
        Add the ``events`` column of time-ordered event tokens (see the module notes).
    events_hours : float
        With ``events``: the prediction time, in hours after admission; admissions that ended
        before it are left out.

    Returns
    -------
    pandas.DataFrame
        ``hadm_id`` (and ``subject_id`` at admission level) as written (text: ``000101``), the
        features known at admission, and ``died_in_hospital`` (0/1).

    Raises
    ------
    DataError
        When a table or a needed column is missing, or the task or level is unknown; when the
        data would make a feature or the outcome wrong (see ``permed.ingest._mimic_checks``):
        ADMITTIME or DISCHTIME empty or not a time, HOSPITAL_EXPIRE_FLAG empty or not 0/1/Y/N,
        two differing rows of one admission or patient, ids written otherwise in another table,
        times with a UTC offset beside times without one.

    Warns
    -----
    ReadWarning
        When rows repeat exactly (read once), the flag is written Y/N, times carry offsets
        (read as UTC), a discharge precedes its admission (kept, never its own prior), or an
        age is left missing (no PATIENTS row, no readable DOB, a DOB after the admission).
    """
    folder = _check_arguments(Path(folder), task, level)
    if events and not events_hours >= 0:
        raise DataError(f"--events-hours {events_hours} must be 0 (at admission) or more, "
                        "e.g. 24")
    clock = Clock()
    admissions = _admissions(_read(folder, "ADMISSIONS"), clock)
    patients = _patients(_read(folder, "PATIENTS"), admissions, clock)
    diagnoses = _optional(folder, "DIAGNOSES_ICD")
    if diagnoses is not None:
        unmatched_ids(diagnoses["HADM_ID"], admissions["HADM_ID"], "DIAGNOSES_ICD.HADM_ID",
                      "ADMISSIONS.HADM_ID")
    table = admissions.merge(patients[["SUBJECT_ID", "GENDER", "DOB", "_DOB_2Y"]],
                             on="SUBJECT_ID", how="left")
    table.index = admissions.index  # one patient row at most each: the rows of ADMISSIONS
    out = pd.DataFrame({"hadm_id": table["HADM_ID"], "subject_id": table["SUBJECT_ID"],
                        "age_years": _ages(table), "gender": table["GENDER"]})
    for column in _CATEGORIES:
        if column in table.columns:
            out[column.lower()] = table[column]
    _admission_notes_and_ed(table, out)
    out = out.merge(_history(admissions, diagnoses).rename(columns={"HADM_ID": "hadm_id"}),
                    on="hadm_id", how="left")
    out["died_in_hospital"] = table["_DIED"].to_numpy()
    out = _order(out, table["ADMITTIME"], level)
    if events:
        from permed.ingest._mimic_events import add_events

        out = add_events(out, folder, admissions, pd.Timedelta(hours=events_hours), clock)
    clock.check()
    # e.g. the history of first admissions: empty by construction, no information
    empty = [c for c in out.columns
             if c not in ("hadm_id", "subject_id", "died_in_hospital", "events")
             and out[c].nunique(dropna=True) <= 1]
    return out.drop(columns=empty)


def _admissions(frame: pd.DataFrame, clock: Clock) -> pd.DataFrame:
    """ADMISSIONS with one row per HADM_ID, parsed times and the outcome (``_DIED``)."""
    frame = unique_rows(frame, "ADMISSIONS", "HADM_ID", ids=("SUBJECT_ID",)).copy()
    frame["_DIED"] = died_in_hospital(frame)
    _stay_times(frame, clock)
    _ed_times(frame, clock)
    clock.refuse_mixed()
    inverted = frame.index[frame["DISCHTIME"] < frame["ADMITTIME"]]
    if len(inverted):
        warn(f"ADMISSIONS.DISCHTIME is before ADMITTIME for {plural(len(inverted), 'admission')} "
             f"({rows(inverted)}): kept as written, but never counted as an earlier admission "
             "of itself or of a stay begun before it, and its codes are known no earlier than "
             "its admission; check those rows (MIMIC-III v1.4 has 98, same-day administrative "
             "errors)")
    return frame


def _stay_times(frame: pd.DataFrame, clock: Clock) -> None:
    """ADMITTIME and DISCHTIME, which every admission needs."""
    for column, what in (("ADMITTIME", "the time of the prediction and of its history"),
                         ("DISCHTIME", "the end of the stay (one still in hospital has no "
                                       "outcome yet)")):
        parsed = clock.read(frame, "ADMISSIONS", column)
        found = [f"{text} for {plural(n, 'admission')} ({rows(frame.index[mask])})"
                 for text, mask in (("empty", ~parsed.written), ("not a time", parsed.unreadable))
                 if (n := int(mask.sum()))]
        if found:
            raise DataError(f"ADMISSIONS.{column} is {' and '.join(found)}: every admission "
                            f"needs it, {what}; correct those rows (YYYY-MM-DD HH:MM:SS) or "
                            "remove the admissions")
        frame[column] = parsed.times
        if column == "ADMITTIME":
            frame["_ADMIT_2Y"] = parsed.short  # a two-digit year: ages modulo 100 (_age)


def _ed_times(frame: pd.DataFrame, clock: Clock) -> None:
    """EDREGTIME and EDOUTTIME (empty: not admitted through the ED); ``_VIA_ED``."""
    for column in ("EDREGTIME", "EDOUTTIME"):
        if column not in frame.columns:
            continue
        parsed = clock.read(frame, "ADMISSIONS", column)
        bad = frame.index[parsed.unreadable]
        if len(bad):
            warn(f"ADMISSIONS.{column} is not a time for {plural(len(bad), 'admission')} "
                 f"({rows(bad)}): their ed_hours is left missing")
        frame[column] = parsed.times
        if column == "EDREGTIME":
            frame["_VIA_ED"] = parsed.written  # written, even if unreadable: came via the ED


def _patients(frame: pd.DataFrame, admissions: pd.DataFrame, clock: Clock) -> pd.DataFrame:
    """PATIENTS with one row per SUBJECT_ID and parsed DOB; warns of ages left missing."""
    frame = unique_rows(frame, "PATIENTS", "SUBJECT_ID").copy()
    parsed = clock.read(frame, "PATIENTS", "DOB", compared=False)  # hours do not change ages
    frame["DOB"], frame["_DOB_2Y"] = parsed.times, parsed.short
    lacking = frame.index[~parsed.written | parsed.unreadable]
    if len(lacking):
        warn(f"PATIENTS.DOB is empty or not a date in {plural(len(lacking), 'row')} "
             f"({rows(lacking)}): age_years is left missing for those patients (a model imputes "
             "it); write DOB as YYYY-MM-DD")
    absent = admissions.index[unmatched_ids(admissions["SUBJECT_ID"], frame["SUBJECT_ID"],
                                            "ADMISSIONS.SUBJECT_ID", "PATIENTS.SUBJECT_ID")]
    if len(absent):
        warn(f"ADMISSIONS: {plural(len(absent), 'admission')} ({rows(absent)}) without a "
             "PATIENTS row for the SUBJECT_ID: age_years and gender are left missing for them "
             "(a model imputes them); export the PATIENTS row of every patient")
    return frame


def _ages(table: pd.DataFrame) -> pd.Series:
    newborn = table.get("ADMISSION_TYPE", pd.Series("", index=table.index)).eq("NEWBORN")
    short = table["_ADMIT_2Y"] | table["_DOB_2Y"].astype("boolean").fillna(False)
    ages, after = _age(table["ADMITTIME"], table["DOB"], newborn, short.astype(bool))
    if after.any():
        warn(f"PATIENTS.DOB is after ADMISSIONS.ADMITTIME for "
             f"{plural(int(after.sum()), 'admission')} (ADMISSIONS {rows(table.index[after])}): "
             "age_years is left missing for them (a model imputes it); check those birth dates "
             "(MIMIC-III moves those of patients over 89 about 300 years earlier, never later)")
    return ages


def _order(out: pd.DataFrame, admit: pd.Series, level: str) -> pd.DataFrame:
    """Each patient's admissions in time order (numeric ids by number, as before they were
    kept as text); at patient level the first admission only."""
    keys = out.assign(_admit=admit.to_numpy(),
                      _subject=pd.to_numeric(out["subject_id"], errors="coerce"),
                      _hadm=pd.to_numeric(out["hadm_id"], errors="coerce"))
    order = keys.sort_values(["_subject", "subject_id", "_admit", "_hadm", "hadm_id"],
                             kind="stable").index
    out = out.loc[order]
    if level == "patient":
        out = out.groupby("subject_id", sort=False).head(1).drop(columns="subject_id")
    return out.reset_index(drop=True)
