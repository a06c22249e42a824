"""shift_date moves each value on its own clock and writes it in its own form: a time keeps the
zone it was written with, a date stays a date. Converting to UTC (as it did) moved a local
08:00+01:00 to 07:00 without its zone, so a later join with local-time data was hours off."""

from __future__ import annotations

import pandas as pd
import pytest

from permed.privacy import Key, deidentify_frame
from permed.study import Study

KEY = Key(bytes(range(32)))
SHIFTED = Study(id="mrn", deidentify={"admit": "shift_date", "seen": "shift_date"})


def _days(frame: pd.DataFrame) -> dict[str, pd.Timedelta]:
    """Each patient's offset, read off the date-only column ``seen``."""
    out = deidentify_frame(frame, KEY, SHIFTED).frame
    return {mrn: pd.Timestamp(after) - pd.Timestamp(before) for mrn, before, after in
            zip(frame["mrn"], frame["seen"], out["seen"], strict=True)}


@pytest.mark.parametrize(("written", "local", "form"), [
    ("2024-01-05T08:00:00+01:00", "2024-01-05 08:00:00", "{day}T{clock}+01:00"),
    ("2024-01-06T23:30:00-05:00", "2024-01-06 23:30:00", "{day}T{clock}-05:00"),
    ("2024-01-06T23:30-0500", "2024-01-06 23:30:00", "{day}T{clock}-0500"),
    ("2024-01-07T06:15:00Z", "2024-01-07 06:15:00", "{day}T{clock}Z"),
    ("2024-01-07 06:15:00", "2024-01-07 06:15:00", "{day} {clock}"),
    ("2024-01-07", "2024-01-07 00:00:00", "{day}"),
    ("5 Jan 2024", "2024-01-05 00:00:00", "{day}"),
])
def test_each_value_keeps_its_clock_time_zone_and_form(written, local, form):
    """The tester's column held '2024-01-05T08:00:00+01:00' (written back '... 07:00:00'),
    '2024-01-06T23:30:00-05:00' ('... 04:30:00', the next day) and date-only values (given
    '00:00:00')."""
    frame = pd.DataFrame({"mrn": ["001", "002", "003"],
                          "admit": [written, "2024-01-07", "2024-01-05T08:00:00+01:00"],
                          "seen": ["2024-01-01"] * 3})
    out = deidentify_frame(frame, KEY, SHIFTED).frame
    moved = pd.Timestamp(local) + _days(frame)["001"]
    assert out["admit"].iloc[0] == form.format(day=moved.strftime("%Y-%m-%d"),
                                               clock=moved.strftime("%H:%M:%S"))
    assert out["admit"].iloc[1].count(":") == 0  # the date-only value of the column stays one


def test_a_patient_shifts_alike_in_a_table_of_dates_and_one_of_local_times():
    """The same key moves a patient's admission date and their lab times by the same days, so
    the labs still fall on the day of the admission, at the local hour they were taken."""
    admissions = pd.DataFrame({"mrn": ["7730284", "9187073"],
                               "admit": ["2024-04-23", "2023-12-29"],
                               "seen": ["2024-04-23", "2023-12-29"]})
    labs = pd.DataFrame({"mrn": ["7730284", "7730284", "9187073"],
                         "lab_time": ["2024-04-23T06:00:00-05:00", "2024-04-24T06:00:00-05:00",
                                      "2023-12-29T23:45:00-05:00"]})
    days = _days(admissions)
    moved = deidentify_frame(labs, KEY, Study(id="mrn", deidentify={"lab_time": "shift_date"}))
    expected = [(pd.Timestamp(t[:19]) + days[m]).strftime("%Y-%m-%dT%H:%M:%S") + "-05:00"
                for m, t in zip(labs["mrn"], labs["lab_time"], strict=True)]
    assert moved.frame["lab_time"].tolist() == expected
    first, second = (pd.Timestamp(v) for v in moved.frame["lab_time"].iloc[:2])
    assert second - first == pd.Timedelta(days=1)


def test_a_zone_aware_datetime_column_keeps_each_values_offset():
    """A Parquet column of zone-aware times: 08:00 in Zurich stays 08:00, with its offset in
    winter (+01:00) and in summer (+02:00)."""
    times = pd.Series(pd.to_datetime(["2024-01-05 08:00", "2024-07-05 08:00"])
                      ).dt.tz_localize("Europe/Zurich")
    frame = pd.DataFrame({"mrn": ["001", "001"], "admit": times,
                          "seen": ["2024-01-01", "2024-01-01"]})
    out = deidentify_frame(frame, KEY, SHIFTED).frame
    day = _days(frame)["001"]
    assert out["admit"].tolist() == [
        f"{(pd.Timestamp('2024-01-05') + day):%Y-%m-%d} 08:00:00+01:00",
        f"{(pd.Timestamp('2024-07-05') + day):%Y-%m-%d} 08:00:00+02:00"]


def test_the_year_of_a_time_with_a_zone_is_its_local_year():
    frame = pd.DataFrame({"seen": ["2024-01-01T00:30:00+01:00", "2023-12-31T23:30:00-05:00"]})
    out = deidentify_frame(frame, KEY, Study(deidentify={"seen": "year"})).frame
    assert out["seen"].tolist() == [2024, 2023]
