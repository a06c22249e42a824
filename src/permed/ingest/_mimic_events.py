"""Each admission's time-ordered EHR event tokens known by the prediction time.

The rules (which events, the time each is known at, the prediction time) are in the notes of
:mod:`permed.ingest.mimic`. Every event is a (patient, time known, token) row; an admission's
sequence is the patient's events known at or before its prediction time, oldest first.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from permed.ingest._mimic_checks import Clock, plural, rows, unmatched_ids, warn

__all__ = ["add_events", "event_tokens"]

_BLANK = re.compile(r"\s+")
# Among events known at the same moment: the admission first, then its setting, then orders.
_ORDER = {"ADM": 0, "SVC": 1, "CU": 2, "DX": 3, "PX": 4, "RX": 5}
_CODES = (_ORDER["DX"], _ORDER["PX"])


def _token(kind: str, values: pd.Series) -> pd.Series:
    text = values.astype("string").str.strip().fillna("")
    return (kind + ":" + text.map(lambda v: _BLANK.sub("_", v))).where(text != "")


def _table(folder: Path, name: str, admissions: pd.DataFrame) -> pd.DataFrame | None:
    """An optional table (absent: its events are simply absent), its ids as ADMISSIONS'."""
    from permed.ingest.mimic import _optional

    frame = _optional(folder, name)
    if frame is not None and "SUBJECT_ID" in frame.columns:
        unmatched_ids(frame["SUBJECT_ID"], admissions["SUBJECT_ID"], f"{name}.SUBJECT_ID",
                      "ADMISSIONS.SUBJECT_ID")
    return frame


def _rows(frame: pd.DataFrame, time: pd.Series, kind: str, column: str) -> pd.DataFrame:
    return pd.DataFrame({"SUBJECT_ID": frame["SUBJECT_ID"].to_numpy(), "TIME": time.to_numpy(),
                         "TOKEN": _token(kind, frame[column]).to_numpy(),
                         "ORDER": _ORDER[kind],
                         "HADM_ID": frame.get("HADM_ID", pd.Series(None, index=frame.index,
                                                                    dtype=object)).to_numpy()})


def _timed(clock: Clock, frame: pd.DataFrame, name: str, column: str,
           end_of_day: bool = False) -> pd.Series:
    parsed = clock.read(frame, name, column, end_of_day=end_of_day)
    if parsed.unreadable.any():
        warn(f"{name}.{column} is not a time in {plural(int(parsed.unreadable.sum()), 'row')} "
             f"({rows(frame.index[parsed.unreadable])}): their events were left out")
    return parsed.times


def _coded(folder: Path, name: str, kind: str, admissions: pd.DataFrame) -> pd.DataFrame | None:
    """Billing codes, known when their admission was discharged (never before it began: a
    discharge written before its admission is an error in the data)."""
    codes = _table(folder, name, admissions)
    if codes is None:
        return None
    unmatched_ids(codes["HADM_ID"], admissions["HADM_ID"], f"{name}.HADM_ID",
                  "ADMISSIONS.HADM_ID")
    codes = codes.merge(admissions[["HADM_ID", "ADMITTIME", "DISCHTIME"]], on="HADM_ID",
                        how="inner")
    known = codes["DISCHTIME"].where(codes["DISCHTIME"] >= codes["ADMITTIME"],
                                     codes["ADMITTIME"])
    return _rows(codes, known, kind, "ICD9_CODE")


def event_tokens(folder: Path, admissions: pd.DataFrame,
                 clock: Clock | None = None) -> pd.DataFrame:
    """Every event of every patient: ``SUBJECT_ID``, ``TIME`` (when known), ``TOKEN``, ``ORDER``
    and ``HADM_ID`` (of a code; empty for other events).

    Parameters
    ----------
    folder : Path
        The MIMIC-III tables; ``SERVICES``, ``TRANSFERS``, ``PRESCRIPTIONS``, ``DIAGNOSES_ICD``
        and ``PROCEDURES_ICD`` are used when present.
    admissions : pandas.DataFrame
        ``ADMISSIONS`` with parsed ``ADMITTIME`` and ``DISCHTIME``.
    clock : Clock, optional
        Where the times of ``admissions`` were read: event times are read on the same clock
        (an export that gives offsets in some columns and none in others is refused).
    """
    clock = clock or Clock()
    parts = [_rows(admissions, admissions["ADMITTIME"], "ADM", "ADMISSION_TYPE")
             if "ADMISSION_TYPE" in admissions.columns else None,
             _coded(folder, "DIAGNOSES_ICD", "DX", admissions),
             _coded(folder, "PROCEDURES_ICD", "PX", admissions)]
    services = _table(folder, "SERVICES", admissions)
    if services is not None and {"TRANSFERTIME", "CURR_SERVICE"} <= set(services.columns):
        parts.append(_rows(services, _timed(clock, services, "SERVICES", "TRANSFERTIME"),
                           "SVC", "CURR_SERVICE"))
    transfers = _table(folder, "TRANSFERS", admissions)
    if transfers is not None and {"INTIME", "CURR_CAREUNIT"} <= set(transfers.columns):
        if "EVENTTYPE" in transfers.columns:  # the discharge row: the stay's end
            transfers = transfers[transfers["EVENTTYPE"].astype(str).str.lower() != "discharge"]
        parts.append(_rows(transfers, _timed(clock, transfers, "TRANSFERS", "INTIME"), "CU",
                           "CURR_CAREUNIT"))
    drugs = _table(folder, "PRESCRIPTIONS", admissions)
    if drugs is not None and {"STARTDATE", "DRUG"} <= set(drugs.columns):
        # a date without a time: known for sure only once the start day is over
        known = _timed(clock, drugs, "PRESCRIPTIONS", "STARTDATE", end_of_day=True)
        parts.append(_rows(drugs, known, "RX", "DRUG"))
    events = pd.concat([p for p in parts if p is not None], ignore_index=True)
    return events.dropna(subset=["TIME", "TOKEN"])


def add_events(out: pd.DataFrame, folder: Path, admissions: pd.DataFrame,
               horizon: pd.Timedelta, clock: Clock | None = None) -> pd.DataFrame:
    """``out`` with an ``events`` column, less the admissions that ended before the horizon.

    Parameters
    ----------
    out : pandas.DataFrame
        One row per admission with ``hadm_id``.
    folder : Path
        The MIMIC-III tables.
    admissions : pandas.DataFrame
        ``ADMISSIONS`` with parsed ``ADMITTIME`` and ``DISCHTIME``.
    horizon : pandas.Timedelta
        The prediction time after admission.
    clock : Clock, optional
        Where the times of ``admissions`` were read (see :func:`event_tokens`).
    """
    stays = admissions.set_index("HADM_ID").loc[out["hadm_id"], ["SUBJECT_ID", "ADMITTIME",
                                                                  "DISCHTIME"]]
    cutoff = stays["ADMITTIME"] + horizon
    ended = (stays["DISCHTIME"] < cutoff).to_numpy() if horizon > pd.Timedelta(0) else None
    index = pd.DataFrame({"hadm_id": out["hadm_id"].to_numpy(),
                          "SUBJECT_ID": stays["SUBJECT_ID"].to_numpy(),
                          "CUTOFF": cutoff.to_numpy()})
    events = event_tokens(folder, admissions, clock).merge(index, on="SUBJECT_ID")
    own_codes = events["ORDER"].isin(_CODES) & events["HADM_ID"].eq(events["hadm_id"])
    events = events[(events["TIME"] <= events["CUTOFF"]) & ~own_codes]
    events = events.sort_values(["hadm_id", "TIME", "ORDER", "TOKEN"], kind="stable")
    joined = events.groupby("hadm_id")["TOKEN"].agg(" ".join)
    out = out.assign(events=out["hadm_id"].map(joined).fillna("").to_numpy())
    if ended is not None:
        out = out[~ended].reset_index(drop=True)
    return out
