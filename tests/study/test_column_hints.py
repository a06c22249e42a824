"""A column the study names that the table lacks: the message names it, suggests the columns
close to it (letter case, '_', '-' and spaces aside, or one word of a column's name) and
otherwise lists the table's columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from permed.exceptions import SchemaMismatchError
from permed.study import FittedSchema, Study, validate


@pytest.fixture
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 60
    return pd.DataFrame({
        "mrn_number": [f"{i:06d}" for i in range(n)], "age": rng.integers(30, 80, n),
        "Race_Ethnicity": rng.choice(["A", "B"], n), "Treatment_Arm": rng.choice(["0", "1"], n),
        "CD4_count": rng.normal(350, 50, n).round(), "time_days": rng.integers(1, 900, n),
        "Event_Status": rng.integers(0, 2, n)})


def _errors(frame: pd.DataFrame, study: Study) -> list[str]:
    return [f.message for f in validate(frame, study).errors]


# every case here got no suggestion before: difflib on the names as written
@pytest.mark.parametrize(("roles", "expected"), [
    ({"task": "risk", "time": "time_days", "event": "event"},
     "event column 'event' (from --event) is not in the data: did you mean 'Event_Status'?"),
    ({"task": "risk", "time": "time_days", "event": "evnt"},
     "event column 'evnt' (from --event) is not in the data: did you mean 'Event_Status'?"),
    ({"task": "risk", "time": "TIME", "event": "Event_Status"},
     "time column 'TIME' (from --time) is not in the data: did you mean 'time_days'?"),
    ({"task": "treat", "treatment": "arm", "outcome": "CD4_count"},
     "treatment column 'arm' (from --treatment) is not in the data: did you mean "
     "'Treatment_Arm'?"),
    ({"task": "treat", "treatment": "Treatment_Arm", "outcome": "cd4"},
     "outcome column 'cd4' (from --outcome) is not in the data: did you mean 'CD4_count'?"),
    ({"task": "diagnose", "target": "EVENT STATUS"},
     "target column 'EVENT STATUS' (from --target) is not in the data: did you mean "
     "'Event_Status'?"),
    ({"task": "diagnose", "target": "Event_Status", "id": "MRN"},
     "id column 'MRN' (from --id) is not in the data: did you mean 'mrn_number'?"),
    ({"task": "diagnose", "target": "Event_Status", "sensitive": ["race"]},
     "sensitive column 'race' (from --sensitive) is not in the data: did you mean "
     "'Race_Ethnicity'?"),
])
def test_every_role_suggests_the_columns_close_to_a_missing_one(table, roles, expected):
    assert _errors(table, Study(**roles)) == [expected]


def test_a_missing_column_with_nothing_close_lists_the_columns(table):
    assert _errors(table, Study(task="risk", time="duration", event="Event_Status")) == [
        "time column 'duration' (from --time) is not in the data: the table's columns are "
        "'mrn_number', 'age', 'Race_Ethnicity', 'Treatment_Arm', 'CD4_count', 'time_days', "
        "'Event_Status'"]


def test_a_wide_table_lists_its_first_twelve_columns_and_how_many_more():
    wide = pd.DataFrame({f"lab_{i:02d}": [1.0, 2.0] for i in range(30)})
    shown = ", ".join(f"'lab_{i:02d}'" for i in range(12))
    assert _errors(wide, Study(task="diagnose", target="duration")) == [
        "target column 'duration' (from --target) is not in the data: the table's 30 columns "
        f"are {shown} and 18 more"]


def test_a_short_name_is_not_matched_to_a_loosely_alike_word(table):
    # 'age' is within difflib's 0.6 of the word 'stage', but a word must be closer (0.8)
    table = table.rename(columns={"age": "stage_at_dx"})
    (message,) = _errors(table, Study(task="diagnose", target="Event_Status", drop=["age"]))
    assert message.startswith("drop column 'age' (from --drop) is not in the data: the "
                              "table's columns are 'mrn_number', 'stage_at_dx', ")


@pytest.fixture
def schema(table) -> FittedSchema:
    study = Study(task="risk", time="time_days", event="Event_Status", id="mrn_number")
    kinds = validate(table, study).kinds
    return FittedSchema.from_frame(table, kinds, study, [])


def test_evaluate_suggests_an_outcome_renamed_to_one_of_its_words(schema, table):
    with pytest.raises(SchemaMismatchError, match=(
            r"^the outcome column\(s\) 'Event_Status' \(did you mean 'status'\?\) are "
            r"missing: ")):
        schema.check(table.rename(columns={"Event_Status": "status"}),
                     require=["time_days", "Event_Status"])


def test_evaluate_lists_the_unused_columns_when_an_outcome_has_no_close_one(schema, table):
    with pytest.raises(SchemaMismatchError, match=(
            r"^the outcome column\(s\) 'Event_Status' are missing: evaluating a model needs each "
            r"patient's recorded outcome, in the columns named as in training \(to score "
            r"patients without it, use permed predict\); the table's columns the model does "
            r"not use are 'died'$")):
        schema.check(table.rename(columns={"Event_Status": "died"}),
                     require=["time_days", "Event_Status"])
