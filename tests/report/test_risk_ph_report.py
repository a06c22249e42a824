"""Report wording of a risk run's proportional-hazards check."""

from __future__ import annotations

from pathlib import Path

import pytest

from permed.report._html import DASH, Note, RunFiles, Table
from permed.report._risk import ph_section


def _ph(violated: bool, violating: list[str]) -> dict:
    """The check of a Cox model on age and a three-level grade (one term, 2 df)."""
    return {
        "features": {"age": {"statistic": 3.1, "df": 1, "p_value": 0.078, "rho": 0.09},
                     "tgrade": {"statistic": 5.6, "df": 2, "p_value": 0.061, "rho": None}},
        "global": {"statistic": 9.9, "df": 3, "p_value": 0.019 if violated else 0.2},
        "events": 299, "model": "coxph", "method": "Grambsch-Therneau test", "alpha": 0.05,
        "violated": violated, "violating_features": violating}


def _section(ph: dict):
    run = RunFiles(Path("run"), {"task": "risk", "proportional_hazards": ph}, {"config": {}},
                   {"task": "risk"}, None)
    return ph_section(run)


def _note(section) -> Note:
    return next(block for block in section.blocks if isinstance(block, Note))


def test_a_global_violation_with_no_single_predictor_flagged_lists_none_to_stratify():
    # the report said "stratify the variables below" and listed none
    note = _note(_section(_ph(True, [])))
    assert note.tone == "warning"
    assert "stratify the variables below" not in note.text
    assert not note.items
    assert note.text.endswith(
        "No single predictor's test reaches p < 0.05: the departure is spread over several "
        "predictors, none of which can be singled out to stratify. Prefer a model without "
        "this assumption (random survival forest).")


def test_a_flagged_predictor_is_named_to_stratify():
    note = _note(_section({**_ph(True, ["tgrade"]),
                           "features": {"tgrade": {"statistic": 8.0, "df": 2,
                                                   "p_value": 0.018, "rho": None}}}))
    assert note.text.endswith("or stratify the variables below.")
    assert list(note.items) == ["tgrade"]


@pytest.mark.parametrize("violated", [False, True])
def test_a_categorical_predictor_is_one_row_with_its_degrees_of_freedom(violated):
    table = next(b for b in _section(_ph(violated, [])).blocks if isinstance(b, Table))
    assert list(table.header) == ["Predictor", "Correlation with time", "Chi-squared", "df",
                                  "p"]
    assert [list(row) for row in table.rows] == [
        ["tgrade", DASH, "5.60", "2", "0.061"],
        ["age", "0.09", "3.10", "1", "0.078"],
        ["global", DASH, "9.90", "3", "0.019" if violated else "0.200"]]
