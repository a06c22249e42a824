"""A ZIP code is a place, not a quantity: a column named like one, or cut to 3 digits by
permed deidentify, is categorical, and keeps its leading zeros however it was read."""

from __future__ import annotations

import pandas as pd
import pytest

from permed.study import FittedSchema, Study, as_category, validate
from permed.study._columns import infer_kind

ZIP3 = ["021", "100", "606", "770", "900", "941"]


@pytest.mark.parametrize("name", ["zip", "zip3", "ZipCode", "zip_code", "postal", "postcode"])
@pytest.mark.parametrize("values", [ZIP3, [int(z) for z in ZIP3], [float(z) for z in ZIP3]])
def test_zip3_columns_are_categorical_with_their_leading_zeros(small_cohort, name, values):
    """'021' as written by zip3, or 21 once a CSV reader made it a number."""
    small_cohort[name] = [values[i % 6] for i in range(len(small_cohort))]
    study = Study(task="diagnose", target="disease", id="patient_id")
    report = validate(small_cohort, study)
    assert (report.errors, report.kinds[name]) == ([], "categorical")
    schema = FittedSchema.from_frame(small_cohort, report.kinds, study, ["0", "1"])
    (feature,) = [f for f in schema.features if f.name == name]
    assert feature.categories == ZIP3
    served = schema.coerce(pd.DataFrame({**small_cohort.iloc[:1].to_dict("list"),
                                         name: ["021"]}))  # the service's text
    assert served[name].tolist() == ["021"]


@pytest.mark.parametrize(("values", "labels"), [
    ([2139, 10001, None], ["02139", "10001", float("nan")]),
    (["02139", "10001", "10001-1234", "94110", "60606", None],
     ["02139", "10001", "10001-1234", "94110", "60606", float("nan")]),
])
def test_five_digit_zip_codes_keep_five_digits(values, labels):
    series = pd.Series(values, name="zip")
    assert infer_kind(series) == "categorical"
    assert as_category(series).fillna(-1).tolist() == [-1 if pd.isna(v) else v for v in labels]


def test_a_column_deidentified_as_zip3_is_categorical_whatever_its_name(small_cohort):
    small_cohort["area"] = [ZIP3[i % 6] for i in range(len(small_cohort))]
    study = Study(task="diagnose", target="disease", id="patient_id",
                  deidentify={"area": "zip3"})
    assert validate(small_cohort, study).kinds["area"] == "categorical"
    assert validate(small_cohort, Study(task="diagnose", target="disease",
                                        id="patient_id")).kinds["area"] == "numeric"
    for name, values in (("zipper", [21, 100, 606, 770, 900, 941]), ("zip", [2.5, 100, 606])):
        series = pd.Series(values * 10, name=name)  # not named like one, or no ZIP codes
        assert infer_kind(series) == "numeric"
        assert as_category(series).iloc[1] == "100"


def test_a_full_zip_code_for_every_patient_is_refused_without_quoting_one(small_cohort):
    small_cohort["zip"] = [f"{2100 + i:05d}" for i in range(len(small_cohort))]
    report = validate(small_cohort, Study(task="diagnose", target="disease", id="patient_id"))
    assert [f.message for f in report.errors] == [
        "column 'zip' holds a different ZIP code for every patient: a full ZIP code identifies "
        "where a patient lives (a Safe Harbor identifier); cut it to 3 digits with permed "
        "deidentify (--action zip=zip3) or drop it with --drop 'zip'"]
