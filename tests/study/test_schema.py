"""The fitted schema refuses mismatched data at predict time with a readable diff."""

from __future__ import annotations

import numpy as np
import pytest

from permed.exceptions import SchemaMismatchError
from permed.study import FittedSchema, Study, validate


@pytest.fixture
def schema(small_cohort):
    study = Study(task="diagnose", target="disease", id="patient_id", sensitive=["sex"])
    kinds = validate(small_cohort, study).kinds
    return FittedSchema.from_frame(small_cohort, kinds, study, ["0", "1"])


def test_missing_columns_are_all_named(schema, small_cohort):
    with pytest.raises(SchemaMismatchError, match=(
            r"^2 column\(s\) the model was trained on are missing: 'age', 'smoker': add them")):
        schema.check(small_cohort.drop(columns=["age", "smoker"]))


def test_a_missing_outcome_is_named_as_the_outcome(schema, small_cohort):
    # permed evaluate requires the outcome: it is not a feature to impute
    with pytest.raises(SchemaMismatchError, match=(
            r"^the outcome column\(s\) 'disease' are missing: evaluating a model needs each "
            r"patient's recorded outcome, in the columns named as in training \(to score "
            r"patients without it, use permed predict\)$")):
        schema.check(small_cohort.drop(columns=["disease"]), require=["disease"])


def test_text_in_a_numeric_column_is_refused(schema, small_cohort):
    small_cohort["chol"] = small_cohort["chol"].astype(object)
    small_cohort.loc[2, "chol"] = "high"
    with pytest.raises(SchemaMismatchError, match=(
            r"column 'chol' must be numeric \(as in training\) but 1 of 200 values is text "
            r"\(row 3; a value of 4 characters with letters\)")):
        schema.check(small_cohort)


def test_both_problems_are_listed(schema, small_cohort):
    small_cohort["chol"] = "high"
    with pytest.raises(SchemaMismatchError, match="does not match the model's schema") as info:
        schema.check(small_cohort.drop(columns=["age"]))
    assert len(info.value.problems) == 2


def test_extra_columns_are_returned_not_refused(schema, small_cohort):
    small_cohort["note"] = "x"
    assert schema.check(small_cohort) == ["note"]


def test_out_of_range_names_the_features(schema, small_cohort):
    new = small_cohort.head(3).copy()
    new.loc[0, "age"] = 140
    new.loc[1, "smoker"] = "vaping"
    assert new.pipe(schema.out_of_range).tolist() == ["age", "smoker", ""]


def test_schema_round_trips_through_json(schema):
    assert FittedSchema.from_dict(schema.to_dict()) == schema


def test_coded_categories_match_across_float_and_int_files(small_cohort):
    small_cohort["pain"] = np.tile([1.0, 2.0, 3.0, 4.0], 50)
    small_cohort.loc[0, "pain"] = np.nan  # a missing value makes the column float
    study = Study(task="diagnose", target="disease", id="patient_id")
    kinds = validate(small_cohort, study).kinds
    assert kinds["pain"] == "categorical"
    schema = FittedSchema.from_frame(small_cohort, kinds, study, ["0", "1"])
    assert schema.features[-1].categories == ["1", "2", "3", "4"]
    new = small_cohort.head(4).assign(pain=[1, 2, 3, 4])  # integers, as another file reads
    assert schema.coerce(new)["pain"].tolist() == ["1", "2", "3", "4"]
    assert schema.out_of_range(new).tolist() == ["", "", "", ""]


def test_a_missing_category_is_imputed_not_encoded_as_its_own_level(schema, small_cohort):
    from permed.preprocess import make_preprocessor

    typed = schema.coerce(small_cohort)
    preprocessor = make_preprocessor(schema.numeric, schema.categorical).fit(typed)
    mode = typed["smoker"].mode()[0]
    missing = typed.head(1).assign(smoker=np.nan)
    assert typed.head(1).assign(smoker=None).pipe(schema.coerce)["smoker"].isna().all()
    np.testing.assert_array_equal(preprocessor.transform(missing),
                                  preprocessor.transform(missing.assign(smoker=mode)))


def test_coerce_types_each_column_as_it_would_alone(schema, small_cohort):
    from permed.study._columns import as_category, to_numeric

    new = small_cohort.head(4).copy()
    new["chol"] = new["chol"].astype(object)
    new.loc[0, "chol"] = "90+"  # top-coded text reads as its bound
    new.loc[1, "chol"] = None
    new["age"] = new["age"].astype("Int64")  # nullable integers, one missing
    new.loc[2, "age"] = None
    typed = schema.coerce(new)
    assert list(typed.columns) == schema.names
    for feature in schema.features:
        expected = (to_numeric(new[feature.name]) if feature.kind == "numeric"
                    else as_category(new[feature.name]))
        np.testing.assert_array_equal(typed[feature.name].to_numpy(), expected.to_numpy())
    assert typed.loc[0, "chol"] == 90.0
    assert np.isnan(typed.loc[1, "chol"])
    assert np.isnan(typed.loc[2, "age"])


def test_a_renamed_column_gets_a_did_you_mean(schema, small_cohort):
    # only columns the model does not use are suggested: 'chol' is never offered for 'age'
    renamed = small_cohort.rename(columns={"age": "ages", "chol": "Chol", "disease": "outcome"})
    with pytest.raises(SchemaMismatchError, match=(
            r"^the data does not match the model's schema:\n"
            r"- 2 column\(s\) the model was trained on are missing: 'age' \(did you mean "
            r"'ages'\?\), 'chol' \(did you mean 'Chol'\? names are case-sensitive\): add them "
            r"\(empty values are allowed and are imputed\)\n"
            r"- the outcome column\(s\) 'disease' are missing: ")):
        schema.check(renamed, require=["disease"])


def test_a_renamed_outcome_column_gets_a_did_you_mean(schema, small_cohort):
    with pytest.raises(SchemaMismatchError, match=(
            r"^the outcome column\(s\) 'disease' \(did you mean 'Disease'\? names are "
            r"case-sensitive\) are missing: evaluating")):
        schema.check(small_cohort.rename(columns={"disease": "Disease"}), require=["disease"])
