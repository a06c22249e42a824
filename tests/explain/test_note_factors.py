"""A note is explained as a whole and never quoted: empty in the background, withheld in words."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from permed.explain import Explanation, background_sample, factor_text, patient_text
from permed.explain._text import (
    NOTE_ABSENT,
    NOTE_PRESENT,
    Factor,
    patient_factors,
    value_text,
    withhold_text,
)

NOTE = "Pt LOPEZ, FATIMA age 93. Call back at 617-555-8836. High fever and chills for 3 days."


def _explanation(notes: list[str]) -> Explanation:
    data = pd.DataFrame({"note": notes, "age": [61.0] * len(notes)})
    values = np.array([[[0.84], [-0.01]]] * len(notes))
    return Explanation(values, np.full((len(notes), 1), 0.1), data, ["Malaria"], "probability",
                       "permutation")


def test_the_background_holds_no_note_and_the_same_draws_for_other_columns():
    frame = pd.DataFrame({"age": np.arange(50.0), "note": [f"{NOTE} {i}" for i in range(50)],
                          "sex": ["F", "M"] * 25})
    plain = background_sample(frame, 20, seed=3)
    noteless = background_sample(frame, 20, seed=3, text_columns=["note"])
    assert noteless["note"].tolist() == [""] * 20
    pd.testing.assert_frame_equal(noteless[["age", "sex"]], plain[["age", "sex"]])
    assert plain["note"].str.contains("LOPEZ").all()  # what text_columns prevents


@pytest.mark.parametrize(("note", "shown"), [(NOTE, NOTE_PRESENT), ("", NOTE_ABSENT),
                                             ("fever", NOTE_PRESENT), (None, NOTE_ABSENT)])
def test_withheld_notes_are_told_as_a_whole(note, shown):
    explanation = withhold_text(_explanation([note]), ["note"])
    factor = patient_factors(explanation, 0, 1)[0]
    assert (factor.feature, factor.value) == ("note", shown)
    assert patient_text(explanation, 0, 2) == (
        f"note {shown} raises the probability of Malaria by 84.0 points; "
        "age 61 lowers the probability of Malaria by 1.0 points")


def test_withholding_keeps_the_contributions_and_other_features():
    explanation = _explanation([NOTE, "cough"])
    rows_before = explanation.rows  # cached before: withholding must refresh it
    values = explanation.values.copy()
    withhold_text(explanation, ["note", "not_a_column"])
    assert rows_before[0][0] == NOTE
    assert explanation.rows == [[NOTE_PRESENT, 61.0], [NOTE_PRESENT, 61.0]]
    np.testing.assert_array_equal(explanation.values, values)


def test_free_text_is_never_quoted_even_when_the_caller_did_not_withhold_it():
    # the service builds its tree explanations itself (serve/_explain.py)
    explanation = _explanation([NOTE])
    text = patient_text(explanation, 0)
    assert "LOPEZ" not in text
    assert "617" not in text
    assert text.startswith("note (free text) raises")
    assert patient_factors(explanation, 0, 1)[0].value == NOTE_PRESENT


@pytest.mark.parametrize(("value", "expected"), [
    ("typical angina", "chest_pain = typical angina"),
    (NOTE_PRESENT, "chest_pain (free text)"),
    ("x" * 60, "chest_pain = " + "x" * 60),  # a long code without a space is not free text
    (pd.NA, "chest_pain missing"),
])
def test_value_text_of_categories_and_text(value, expected):
    assert value_text("chest_pain", value) == expected


def test_factor_text_of_a_note():
    factor = Factor("note", NOTE_PRESENT, -0.2, "Dengue", "probability")
    assert factor_text(factor) == "note (free text) lowers the probability of Dengue by 20.0 points"
