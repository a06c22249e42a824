"""Checks of the EHR event-sequence column a study names (``--events``).

The column holds each patient's time-ordered event tokens separated by spaces. It is a
feature of its own kind (``"events"``): the sequence model (``--models gru``) reads it, and
it skips the tabular checks (every patient's sequence differs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from permed.study._study import Study

if TYPE_CHECKING:
    from permed.study._validate import ValidationReport

__all__ = ["check_events"]


def check_events(frame: pd.DataFrame, study: Study, report: ValidationReport) -> None:
    """Record the events column's kind; report a column without any event.

    Parameters
    ----------
    frame : pandas.DataFrame
    study : Study
    report : ValidationReport
        Receives errors, warnings and ``kinds[column] = "events"``.
    """
    column = study.events
    if not column or column not in frame.columns:
        return  # none named, or reported by the role check
    if study.task != "diagnose":
        report.warn(
            f"events column '{column}' (from --events) is read only by the diagnose sequence "
            f"model (--models gru); the {study.task} task leaves it out", column)
        return
    text = frame[column].astype("string").str.strip().fillna("")
    if (text == "").all():
        report.error(
            f"events column '{column}' (from --events) has no event for any patient: give the "
            "column of space-separated event tokens (permed ingest mimic --events writes "
            "'events')", column)
        return
    empty = int((text == "").sum())
    if empty:
        report.warn(
            f"events column '{column}' is empty for {empty} of {len(text)} patients: their "
            "sequence is read as having no event", column)
    report.kinds[column] = "events"
