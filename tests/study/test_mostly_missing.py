"""A feature missing for most patients is warned about: the model sees an imputed value for
most of them and learns who was tested (a BNP drawn for 5% of a cohort trained silently)."""

from __future__ import annotations

import numpy as np
import pytest

from permed.study import Study, validate

_STUDY = Study(task="diagnose", target="disease", id="patient_id")


def _warnings(frame):
    return [f.message for f in validate(frame, _STUDY).warnings]


@pytest.mark.parametrize(("column", "missing", "share", "filled"), [
    ("bnp", 190, "95%", "the median of the recorded values, beside a was-missing indicator"),
    ("bnp", 198, "99%", "the median of the recorded values, beside a was-missing indicator"),
    ("smoker", 120, "60%", "the most frequent category"),
])
def test_a_feature_missing_for_most_patients_is_warned_about(small_cohort, column, missing,
                                                            share, filled):
    frame = small_cohort.assign(bnp=np.random.default_rng(1).normal(100, 30, 200))
    frame.loc[frame.index[:missing], column] = np.nan
    assert _warnings(frame) == [
        f"column '{column}' is missing for {missing} of 200 patients ({share}): each gap is "
        f"imputed with {filled} of the {200 - missing} patients who have it, so for most "
        f"patients the model sees a filled-in value and learns whether '{column}' was recorded "
        f"(who was tested) more than what it measures; drop it with --drop '{column}' if it is "
        "rarely recorded, or check the extract if most patients should have it"]


def test_a_feature_missing_for_half_the_patients_is_not_warned_about(small_cohort):
    frame = small_cohort.copy()
    frame.loc[frame.index[:100], "chol"] = np.nan
    assert _warnings(frame) == []


def test_a_dropped_feature_is_not_warned_about(small_cohort):
    frame = small_cohort.assign(bnp=np.nan)
    frame.loc[frame.index[:5], "bnp"] = 80.0
    study = Study(task="diagnose", target="disease", id="patient_id", drop=["bnp"])
    assert [f.message for f in validate(frame, study).warnings] == []
